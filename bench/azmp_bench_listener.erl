%% The listener under abuse: genuine signed webhooks answered while 200 slow clients trickle their
%% requests and 20 clients push oversized chunked bodies, beside the same webhooks with no abuse
%% (the baseline, same run). Prints webhook latency (p50 / p99 / max) and the VM's memory.
-module(azmp_bench_listener).

-export([main/0]).

-define(WEBHOOKS, 100).
-define(SLOW, 200).
-define(CHUNKED, 20).

main() ->
    Emu = azmp_test_env:start_emulator(),
    Plugin = azmp_test_env:start_plugin(Emu, #{http => #{port => 0, request_timeout_ms => 20000}}),
    try run(Emu)
    after
        azmp_test_env:stop_plugin(Plugin),
        azmp_test_env:stop_emulator(Emu)
    end.

run(Emu) ->
    io:format("~n== Listener: ~B genuine webhooks, alone and under ~B slow clients + ~B oversized chunked uploads~n",
              [?WEBHOOKS, ?SLOW, ?CHUNKED]),
    A = <<"bench-listener">>,
    ok = azmp_test_platform:add_account(A, #{}),
    {ok, #{id := Sub, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = emqx_azure_marketplace:link(A, {token, Token}),
    azmp_test_env:await_linked(A),
    Base = webhooks(Emu, Sub),
    Mem0 = erlang:memory(total),
    Port = emqx_azure_marketplace_app:http_port(),
    Stop = make_ref(),
    Self = self(),
    Slow = [spawn(fun() -> slow_client(Port, Self, Stop) end) || _ <- lists:seq(1, ?SLOW)],
    Big = [spawn(fun() -> chunked_client(Port, Self, Stop) end) || _ <- lists:seq(1, ?CHUNKED)],
    timer:sleep(500),
    Abused = webhooks(Emu, Sub),
    MemAbused = erlang:memory(total),
    [P ! Stop || P <- Slow ++ Big],
    Refused = lists:sum([receive {big, N} -> N after 5000 -> 0 end || _ <- Big]),
    io:format("  alone          p50 ~6.1f ms  p99 ~6.1f ms  max ~6.1f ms~n", Base),
    io:format("  under abuse    p50 ~6.1f ms  p99 ~6.1f ms  max ~6.1f ms  (target p99 < 100 ms)~n", Abused),
    io:format("  oversized uploads answered 413: ~B of ~B; VM memory ~.1f MiB -> ~.1f MiB under abuse~n",
              [Refused, ?CHUNKED, Mem0 / 1048576, MemAbused / 1048576]).

%% Latencies (ms) of ?WEBHOOKS Renew webhooks, each a new operation, one after the other.
webhooks(Emu, Sub) ->
    Url = azmp_test_env:webhook_url(),
    Ms = [begin
              T0 = erlang:monotonic_time(microsecond),
              {ok, 200, _} = azmp_emulator:send_webhook(Emu, Url, 'Renew', Sub, #{}),
              (erlang:monotonic_time(microsecond) - T0) / 1000
          end || _ <- lists:seq(1, ?WEBHOOKS)],
    S = lists:sort(Ms),
    [lists:nth(max(1, length(S) div 2), S), lists:nth(max(1, (length(S) * 99) div 100), S), lists:last(S)].

%% A request head sent a byte at a time, slowly, until told to stop.
slow_client(Port, _Parent, Stop) ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
    trickle(S, <<"POST /azure/webhook HTTP/1.1\r\nhost: x\r\nx-padding: ", (binary:copy(<<"a">>, 4000))/binary>>, Stop).

trickle(S, <<B:1/binary, Rest/binary>>, Stop) ->
    receive Stop -> gen_tcp:close(S)
    after 50 ->
        case gen_tcp:send(S, B) of
            ok -> trickle(S, Rest, Stop);
            {error, _} -> gen_tcp:close(S)
        end
    end;
trickle(S, <<>>, Stop) ->
    receive Stop -> gen_tcp:close(S) end.

%% One oversized chunked upload (2 MiB, sent as fast as the server takes it): refused with 413?
chunked_client(Port, Parent, Stop) ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
    ok = gen_tcp:send(S, <<"POST /azure/webhook HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n">>),
    Chunk = binary:copy(<<"z">>, 64 * 1024),
    _ = [gen_tcp:send(S, [<<"10000\r\n">>, Chunk, <<"\r\n">>]) || _ <- lists:seq(1, 32)],
    Got = gen_tcp:recv(S, 0, 5000),
    gen_tcp:close(S),
    receive Stop -> Parent ! {big, case Got of {ok, <<"HTTP/1.1 413", _/binary>>} -> 1; _ -> 0 end} end.
