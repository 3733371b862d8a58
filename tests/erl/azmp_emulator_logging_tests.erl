%% The emulator's HTTP server logs a crashing handler without the request: a request holds bearer
%% tokens, and test logs end up in CI output.
-module(azmp_emulator_logging_tests).

-include_lib("eunit/include/eunit.hrl").

handler_crash_is_logged_without_the_request_test() ->
    ok = azmp_log_capture:start(),
    ok = logger:add_handler(azmp_emu_capture, azmp_log_capture, #{level => all}),
    {ok, L, Port} = azmp_emulator_http:listen(tcp, 0, []),
    Secret = <<"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.SECRET-PAYLOAD.SECRET-SIGNATURE">>,
    %% A handler that crashes with the request in its reason and in its arguments.
    _ = azmp_emulator_http:start_acceptors(tcp, L, 1, fun(Req) -> error({boom, Req}) end, self()),
    try
        {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
        ok = gen_tcp:send(S, [<<"GET /api/x HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ">>, Secret,
                              <<"\r\nconnection: close\r\n\r\n">>]),
        {ok, <<"HTTP/1.1 500", _/binary>>} = gen_tcp:recv(S, 0, 5000),
        gen_tcp:close(S),
        true = azmp_test_env:wait_until(fun() ->
            lists:any(fun(E) -> binary:match(E, <<"handler crash">>) =/= nomatch end, azmp_log_capture:events())
        end, 5000),
        Leaks = [E || E <- azmp_log_capture:events(), binary:match(E, <<"SECRET">>) =/= nomatch],
        ?assertEqual([], Leaks)
    after
        logger:remove_handler(azmp_emu_capture),
        gen_tcp:close(L)
    end.
