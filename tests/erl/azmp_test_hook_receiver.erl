%% The endpoint the emulator's webhooks are sent to in the emulator suites (see receiver_start/1).
-module(azmp_test_hook_receiver).

-export([receiver_start/1, receiver_stop/1, hook_url/2, received/0, nothing_received/0]).

-import(azmp_test_http, [auth/1, json/1, req/4, req/5, sub_url/3, to_list/1, token/1]).
-import(azmp_test_jwt, [problems/3]).

%% A tiny HTTP endpoint on 127.0.0.1 over gen_tcp, standing in for the
%% plugin's listener. Each request is verified (problems/3: an independent
%% JWT check against the JWKS fetched over HTTP), reported to the current
%% owner (the process that last called received/0 or hook_url/2) as
%% {webhook, Req, Problems}, and answered by path:
%%   /azure/webhook  200 {"ok":true} when there is no problem, else 401
%%   /status/NNN     NNN {"echo":NNN}
%%   /plugin         verify, then token + Get Operation + PATCH Success, 200
receiver_start(Emu) ->
    Tab = ets:new(wh_receiver, [public, set]),
    ets:insert(Tab, {owner, self()}),
    {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {ip, {127, 0, 0, 1}},
                                 {reuseaddr, true}, {packet, raw}]),
    {ok, Port} = inet:port(L),
    Acceptor = spawn(fun() -> accept(L, Emu, Tab) end),
    ok = gen_tcp:controlling_process(L, Acceptor),
    #{port => Port, tab => Tab, acceptor => Acceptor, listen => L}.

receiver_stop(#{acceptor := A, listen := L}) ->
    exit(A, kill),
    catch gen_tcp:close(L),
    ok.

hook_url(#{port := Port, tab := Tab}, Path) ->
    ets:insert(Tab, {owner, self()}),
    <<"http://127.0.0.1:", (integer_to_binary(Port))/binary, (list_to_binary(Path))/binary>>.

accept(L, Emu, Tab) ->
    case gen_tcp:accept(L) of
        {ok, S} ->
            Pid = spawn(fun() -> receive go -> serve_hook(S, Emu, Tab) end end),
            ok = gen_tcp:controlling_process(S, Pid),
            Pid ! go,
            accept(L, Emu, Tab);
        {error, _} -> ok
    end.

serve_hook(S, Emu, Tab) ->
    case read_request(S, <<>>) of
        {ok, Req = #{path := Path}} ->
            Problems = problems(Emu, Req, erlang:system_time(second)),
            [{owner, Owner}] = ets:lookup(Tab, owner),
            Owner ! {webhook, Req, Problems},
            {Status, Body} =
                case Path of
                    <<"/status/", N/binary>> ->
                        {binary_to_integer(N), <<"{\"echo\":", N/binary, "}">>};
                    _ when Problems =/= [] ->
                        {401, json(#{error => iolist_to_binary(io_lib:format("~p", [Problems]))})};
                    <<"/plugin">> ->
                        {200, plugin_like(Emu, Req)};
                    _ ->
                        {200, <<"{\"ok\":true}">>}
                end,
            gen_tcp:send(S, ["HTTP/1.1 ", integer_to_list(Status), " X\r\n"
                             "content-type: application/json\r\ncontent-length: ",
                             integer_to_list(byte_size(Body)), "\r\nconnection: close\r\n\r\n",
                             Body]);
        _ -> ok
    end,
    gen_tcp:close(S).

plugin_like(Emu, #{body := Raw}) ->
    {ok, #{<<"id">> := OpId, <<"subscriptionId">> := Id}} = azmp_emulator_json:decode(Raw),
    Tok = token(Emu),
    OpUrl = sub_url(Emu, Id, "/operations/" ++ to_list(OpId)),
    {200, _, #{<<"status">> := <<"InProgress">>}} = req(get, OpUrl, auth(Tok), <<>>),
    {200, _, _} = req(patch, OpUrl, auth(Tok), <<"{\"status\":\"Success\"}">>),
    <<"{\"patched\":\"Success\"}">>.

read_request(S, Buf) ->
    case binary:split(Buf, <<"\r\n\r\n">>) of
        [Head, Rest] ->
            [ReqLine | Lines] = binary:split(Head, <<"\r\n">>, [global]),
            [Method, Path, _] = binary:split(ReqLine, <<" ">>, [global]),
            Headers = [{string:lowercase(K), string:trim(V)}
                       || L <- Lines, [K, V] <- [binary:split(L, <<":">>)]],
            Len = case lists:keyfind(<<"content-length">>, 1, Headers) of
                      {_, N} -> binary_to_integer(N);
                      false -> 0
                  end,
            Body = read_body(S, Rest, Len),
            {ok, #{method => Method, path => Path, headers => Headers, body => Body}};
        _ ->
            case gen_tcp:recv(S, 0, 10000) of
                {ok, D} -> read_request(S, <<Buf/binary, D/binary>>);
                Err -> Err
            end
    end.

read_body(_S, Buf, Len) when byte_size(Buf) >= Len -> binary:part(Buf, 0, Len);
read_body(S, Buf, Len) ->
    {ok, D} = gen_tcp:recv(S, 0, 10000),
    read_body(S, <<Buf/binary, D/binary>>, Len).

received() ->
    receive {webhook, Req, Problems} -> {Req, Problems}
    after 10000 -> error(no_webhook_received)
    end.

nothing_received() ->
    receive {webhook, Req, _} -> error({unexpected_webhook, Req})
    after 100 -> ok
    end.
