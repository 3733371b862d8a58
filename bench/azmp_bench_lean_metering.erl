%% @doc A lean stand-in for Azure's metering API, for measuring the plugin's own CPU per usage
%% event when closing an hour: it answers the token request and batchUsageEvent (every item
%% Accepted, echoed) over HTTP/1.1 keep-alive and nothing else (404). It runs on a node of its own,
%% so its CPU is never the plugin's; it is fast enough not to be the limit (no state, no checks).
-module(azmp_bench_lean_metering).

-export([start/0]).

-define(NAME, azmp_bench_lean_metering).

%% @doc Starts the listener on a free loopback port (on the calling node); its port.
-spec start() -> inet:port_number().
start() ->
    Parent = self(),
    Pid = spawn(fun() ->
                    {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}, {packet, http_bin},
                                                 {reuseaddr, true}, {backlog, 1024}, {nodelay, true}]),
                    {ok, Port} = inet:port(L),
                    Parent ! {?NAME, Port},
                    azmp_test_http:accept_each(L, fun serve/1)
                end),
    register(?NAME, Pid),
    receive {?NAME, Port} -> Port after 5000 -> error(lean_metering_not_started) end.

serve(S) ->
    case request(S, undefined, undefined, 0) of
        {ok, Method, Path, Len} ->
            ok = inet:setopts(S, [{packet, raw}]),
            Body = case Len of 0 -> <<>>; _ -> {ok, B} = gen_tcp:recv(S, Len, 30000), B end,
            ok = gen_tcp:send(S, answer(Method, Path, Body)),
            ok = inet:setopts(S, [{packet, http_bin}]),
            serve(S);
        _ ->
            gen_tcp:close(S)
    end.

request(S, Method, Path, Len) ->
    case gen_tcp:recv(S, 0, 120000) of
        {ok, {http_request, M, {abs_path, P}, _}} -> request(S, M, P, Len);
        {ok, {http_header, _, 'Content-Length', _, V}} -> request(S, Method, Path, binary_to_integer(V));
        {ok, {http_header, _, _, _, _}} -> request(S, Method, Path, Len);
        {ok, http_eoh} -> {ok, Method, Path, Len};
        Other -> Other
    end.

answer('POST', Path, Body) ->
    case binary:match(Path, <<"batchUsageEvent">>) of
        nomatch ->
            case binary:match(Path, <<"token">>) of
                nomatch -> reply(404, <<"{}">>);
                _ -> reply(200, <<"{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"lean-token\"}">>)
            end;
        _ ->
            {ok, #{<<"request">> := Events}} = azmp_emulator_json:decode(Body),
            Now = list_to_binary(calendar:system_time_to_rfc3339(erlang:system_time(second), [{offset, "Z"}])),
            Items = [E#{<<"usageEventId">> => integer_to_binary(erlang:unique_integer([positive])),
                        <<"status">> => <<"Accepted">>, <<"messageTime">> => Now}
                     || E <- Events],
            reply(200, iolist_to_binary(azmp_emulator_json:encode(#{<<"result">> => Items,
                                                                     <<"count">> => length(Items)})))
    end;
answer(_, _, _) ->
    reply(404, <<"{}">>).

reply(Status, Body) ->
    [<<"HTTP/1.1 ">>, integer_to_binary(Status), <<" OK\r\ncontent-type: application/json\r\ncontent-length: ">>,
     integer_to_binary(byte_size(Body)), <<"\r\n\r\n">>, Body].
