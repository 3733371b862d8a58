%% EUnit tests of the Azure Marketplace emulator: the wire and the rest: stats,
%% the control API, keep-alive, pipelining, 100-continue, chunked bodies, routing, the JSON codec,
%% and many concurrent connections.
-module(azmp_emulator_wire_tests).

-include_lib("eunit/include/eunit.hrl").
-include("azmp_emulator_tests.hrl").

-import(azmp_test_http, [auth/1, emulator_tests/1, port_of/1, raw_get/2, recv_all/2, req/4, req/5,
                         sub_url/3, token/1, url/2, uuid/0, v2_form/0]).

emulator_test_() ->
    emulator_tests(
      [{"stats record request and correlation ids", fun stats/1},
       {"control API over HTTP", fun control_api/1},
       {"keep-alive, pipelining, 100-continue, chunked", fun wire/1},
       {"unknown path and wrong method", fun routing/1},
       {"invalid UTF-8 in a path or a token: answered, the emulator keeps serving", fun invalid_utf8/1}]).

stats(Emu) ->
    ok = azmp_emulator:reset_stats(Emu),
    #{token_requests := 0, requests := [], by_op := ByOp0} = azmp_emulator:stats(Emu),
    ?assertEqual(#{}, ByOp0),
    Tok = token(Emu),
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{}),
    {200, _, _} = req(get, sub_url(Emu, Id, ""),
                      [{"x-ms-requestid", "req-1"}, {"x-ms-correlationid", "corr-1"} | auth(Tok)],
                      <<>>),
    {404, _, _} = req(get, sub_url(Emu, uuid(), ""), auth(Tok), <<>>),
    #{token_requests := 1, requests := [R1, R2, R3], by_op := ByOp} = azmp_emulator:stats(Emu),
    ?assertMatch(#{op := token, method := <<"POST">>, status := 200}, R1),
    ?assertMatch(#{op := get_subscription, method := <<"GET">>, status := 200,
                   request_id := <<"req-1">>, correlation_id := <<"corr-1">>}, R2),
    ?assertMatch(#{op := get_subscription, status := 404, request_id := undefined,
                   correlation_id := undefined}, R3),
    ?assertEqual(<<"/api/saas/subscriptions/", Id/binary>>, maps:get(path, R2)),
    ?assertEqual(#{token => 1, get_subscription => 2}, ByOp),
    ok = azmp_emulator:reset_stats(Emu),
    #{requests := []} = azmp_emulator:stats(Emu).

control_api(Emu) ->
    {200, _, #{<<"id">> := Id, <<"token">> := MT}} =
        req(post, url(Emu, "/_emulator/subscriptions"), [],
            <<"{\"planId\":\"payg-premium\",\"quantity\":2}">>),
    {ok, #{plan_id := <<"payg-premium">>, quantity := 2, token := MT}} =
        azmp_emulator:subscription(Emu, Id),
    {200, _, #{<<"status">> := <<"PendingFulfillmentStart">>}} =
        req(get, url(Emu, "/_emulator/subscriptions/" ++ binary_to_list(Id)), [], <<>>),
    {200, _, _} = req(post, url(Emu, "/_emulator/faults"), [],
                      <<"{\"op\":\"get_subscription\",\"faults\":[{\"status\":429,"
                        "\"retryAfter\":3},\"reset\"]}">>),
    Tok = token(Emu),
    {429, H, _} = req(get, sub_url(Emu, Id, ""), auth(Tok), <<>>),
    ?assertEqual({"retry-after", "3"}, lists:keyfind("retry-after", 1, H)),
    ?assertMatch({error, _}, httpc:request(get, {binary_to_list(sub_url(Emu, Id, "")), auth(Tok)},
                                           [], [])),
    {200, _, #{<<"token_requests">> := _, <<"requests">> := [_ | _]}} =
        req(get, url(Emu, "/_emulator/stats"), [], <<>>),
    {400, _, _} = req(post, url(Emu, "/_emulator/faults"), [],
                      <<"{\"op\":\"nonsense\",\"faults\":[]}">>),
    {404, _, _} = req(get, url(Emu, "/_emulator/nothing"), [], <<>>).

wire(Emu) ->
    Port = port_of(azmp_emulator:http_url(Emu)),
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
    Get = <<"GET /common/discovery/v2.0/keys HTTP/1.1\r\nHost: localhost\r\n\r\n">>,
    %% two pipelined requests on one keep-alive connection, then a third
    ok = gen_tcp:send(S, [Get, Get]),
    {ok, Rest1} = read_response(S, <<>>),
    {ok, <<>>} = read_response(S, Rest1),
    ok = gen_tcp:send(S, Get),
    {ok, <<>>} = read_response(S, <<>>),
    %% Expect: 100-continue: the body is sent after the interim response
    Form = v2_form(),
    ok = gen_tcp:send(S, ["POST /tenant-1/oauth2/v2.0/token HTTP/1.1\r\nHost: x\r\n"
                          "Content-Type: application/x-www-form-urlencoded\r\n"
                          "Expect: 100-continue\r\nContent-Length: ",
                          integer_to_list(byte_size(Form)), "\r\n\r\n"]),
    {ok, <<"HTTP/1.1 100 Continue\r\n\r\n">>} = gen_tcp:recv(S, 0, 2000),
    ok = gen_tcp:send(S, Form),
    {ok, <<>>} = read_response(S, <<>>),
    %% chunked request body
    {A, B} = split_binary(Form, 10),
    Chunk = fun(X) -> [integer_to_list(byte_size(X), 16), "\r\n", X, "\r\n"] end,
    ok = gen_tcp:send(S, ["POST /tenant-1/oauth2/v2.0/token HTTP/1.1\r\nHost: x\r\n"
                          "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                          Chunk(A), Chunk(B), "0\r\n\r\n"]),
    {ok, All} = recv_all(S, <<>>),
    ?assertMatch(<<"HTTP/1.1 200 OK\r\n", _/binary>>, All),
    ?assertNotEqual(nomatch, binary:match(All, <<"access_token">>)),
    gen_tcp:close(S).

routing(Emu) ->
    Tok = token(Emu),
    {404, _, _} = req(get, url(Emu, "/api/nothing" ?V), auth(Tok), <<>>),
    {405, _, _} = req(get, url(Emu, "/api/usageEvent" ?V), auth(Tok), <<>>),
    {405, _, _} = req(put, url(Emu, "/api/saas/subscriptions/x" ?V), auth(Tok), <<"{}">>),
    {404, _, _} = req(get, url(Emu, "/"), [], <<>>).

invalid_utf8(Emu) ->
    Port = port_of(azmp_emulator:http_url(Emu)),
    ?assertMatch({404, _}, raw_get(Port, <<"/api/saas/subscriptions/%FF%FE?api-version=2018-08-31">>)),
    ?assertMatch({401, _}, raw_get(Port, <<"/api/saas/subscriptions/x?api-version=2018-08-31\r\n"
                                              "Authorization: Bearer \xff\xfe">>)),
    Tok = token(Emu),
    ?assertMatch({200, _, _}, req(get, url(Emu, "/api/saas/subscriptions" ?V), auth(Tok), <<>>)).

%% Many concurrent connections while every answer is delayed: the delay is
%% slept per connection, so the total is about one delay, not N.
concurrency_test_() ->
    {timeout, 60,
     fun() ->
             {ok, Emu} = azmp_emulator:start(#{https_port => none}),
             try
                 ok = azmp_emulator:set_delay(Emu, 500),
                 Port = port_of(azmp_emulator:http_url(Emu)),
                 N = 1000,
                 Self = self(),
                 T0 = erlang:monotonic_time(millisecond),
                 [spawn(fun() -> Self ! {done, raw_get(Port, "/common/discovery/v2.0/keys")} end)
                  || _ <- lists:seq(1, N)],
                 Results = [receive {done, R} -> R after 30000 -> timeout end
                            || _ <- lists:seq(1, N)],
                 Elapsed = erlang:monotonic_time(millisecond) - T0,
                 ?assertEqual(N, length([ok || {200, _} <- Results])),
                 ?assert(Elapsed >= 500),
                 ?assert(Elapsed < 10000),
                 #{by_op := #{jwks := N}} = azmp_emulator:stats(Emu)
             after
                 azmp_emulator:stop(Emu)
             end
     end}.

json_test() ->
    J = azmp_emulator_json,
    ?assertEqual({ok, #{<<"a">> => [1, 2.5, -3, 1.0e10, true, false, null, <<>>]}},
                 J:decode(<<" { \"a\" : [1, 2.5, -3, 1e10, true, false, null, \"\"] } ">>)),
    ?assertEqual({ok, <<"q\"\\/\b\f\n\r\t", 16#e9/utf8, 16#1F600/utf8>>},
                 J:decode(<<"\"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"">>)),
    ?assertMatch({error, _}, J:decode(<<"{\"a\":1,}">>)),
    ?assertMatch({error, _}, J:decode(<<"[1 2]">>)),
    ?assertMatch({error, _}, J:decode(<<"01">>)),
    ?assertMatch({error, _}, J:decode(<<"\"\\ud83d\"">>)),
    ?assertMatch({error, _}, J:decode(<<"\"a">>)),
    ?assertMatch({error, _}, J:decode(<<"{} x">>)),
    ?assertMatch({error, _}, J:decode(<<"1e999">>)),
    ?assertMatch({error, _}, J:decode(<<"\"", 16#ff, "\"">>)),
    T = #{<<"k\n">> => [<<"\x01é"/utf8>>, 1, -0.5, #{}, []], <<"n">> => null},
    ?assertEqual({ok, T}, J:decode(J:encode(T))),
    ?assertEqual(<<"{\"a\":1}">>, J:encode(#{a => 1, b => undefined})),
    ?assertEqual(<<"\"\\u0001\"">>, J:encode(<<1>>)).

%% Read exactly one response (by content-length) from a keep-alive socket;
%% returns the bytes after it.
read_response(S, Buf) ->
    case binary:split(Buf, <<"\r\n\r\n">>) of
        [Head, Rest] ->
            {match, [L]} = re:run(Head, "content-length: ([0-9]+)",
                                  [caseless, {capture, all_but_first, binary}]),
            Len = binary_to_integer(L),
            ?assertMatch(<<"HTTP/1.1 200", _/binary>>, Head),
            ?assertEqual(nomatch, binary:match(Head, <<"connection: close">>)),
            case Rest of
                <<_:Len/binary, After/binary>> -> {ok, After};
                _ -> more(S, Buf)
            end;
        _ -> more(S, Buf)
    end.

more(S, Buf) ->
    {ok, D} = gen_tcp:recv(S, 0, 5000),
    read_response(S, <<Buf/binary, D/binary>>).
