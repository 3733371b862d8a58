%% Many callers at once: one token request for all, the in-flight bound, callers that die.
-module(azmp_concurrency_tests).

-include_lib("eunit/include/eunit.hrl").

-define(C, emqx_azure_marketplace_client).

concurrency_test_() ->
    {setup, fun azmp_test_env:start_emulator/0, fun azmp_test_env:stop_emulator/1, fun(Emu) ->
        [
            {"1,000 concurrent callers needing a token: one token request",
             {timeout, 60, fun() -> single_token_flight(Emu) end}},
            {"clients with the same credentials share one token", fun() -> shared_token(Emu) end},
            {"beyond max_in_flight: overloaded", {timeout, 30, fun() -> overloaded(Emu) end}},
            {"a caller that dies has its call cancelled", {timeout, 30, fun() -> caller_dies(Emu) end}}
        ]
    end}.

single_token_flight(Emu) ->
    C = azmp_test_env:client(Emu, #{transport => https, timeout_ms => 30000}),
    {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu, #{}),
    T0 = maps:get(token_requests, azmp_emulator:stats(Emu)),
    %% A slow token endpoint keeps every caller waiting on the same refresh.
    ok = azmp_emulator:inject(Emu, token, [{delay, 300}]),
    Results = parallel(1000, fun() -> ?C:get_subscription(C, SubId) end),
    ?assertEqual(1000, length([ok || {ok, #{<<"id">> := Id}} <- Results, Id =:= SubId])),
    ?assertEqual(T0 + 1, maps:get(token_requests, azmp_emulator:stats(Emu))),
    ?assertMatch(#{token_requests := 1, in_flight := 0}, ?C:stats(C)).

shared_token(_Emu) ->
    %% A fresh emulator URL (its own login_url) so that no earlier token is cached for it.
    Emu2 = azmp_test_env:start_emulator(),
    try
        {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu2, #{}),
        [C1, C2] = [azmp_test_env:client(Emu2, #{transport => http}) || _ <- [1, 2]],
        {ok, _} = ?C:get_subscription(C1, SubId),
        {ok, _} = ?C:get_subscription(C2, SubId),
        ?assertEqual(1, maps:get(token_requests, azmp_emulator:stats(Emu2))),
        ?assertMatch(#{token_requests := 1}, ?C:stats(C1)),
        ?assertMatch(#{token_requests := 0}, ?C:stats(C2)),
        %% v1 tokens are another cache entry.
        C3 = azmp_test_env:client(Emu2, #{transport => http, token_endpoint => v1}),
        {ok, _} = ?C:get_subscription(C3, SubId),
        ?assertEqual(2, maps:get(token_requests, azmp_emulator:stats(Emu2)))
    after
        azmp_test_env:stop_emulator(Emu2)
    end,
    ok.

overloaded(Emu) ->
    C = azmp_test_env:client(Emu, #{transport => http, max_in_flight => 5}),
    {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu, #{}),
    {ok, _} = ?C:get_subscription(C, SubId),
    ok = azmp_emulator:set_delay(Emu, 300),
    Results = parallel(20, fun() -> ?C:get_subscription(C, SubId) end),
    ok = azmp_emulator:set_delay(Emu, 0),
    Ok = length([x || {ok, _} <- Results]),
    Over = length([x || {error, overloaded} <- Results]),
    ?assertEqual(5, Ok),
    ?assertEqual(15, Over),
    ?assertMatch(#{in_flight := 0}, ?C:stats(C)).

caller_dies(Emu) ->
    C = azmp_test_env:client(Emu, #{transport => http}),
    {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu, #{}),
    {ok, _} = ?C:get_subscription(C, SubId),
    ok = azmp_emulator:set_delay(Emu, 2000),
    Pids = [spawn(fun() -> ?C:get_subscription(C, SubId) end) || _ <- lists:seq(1, 50)],
    ?assert(azmp_test_env:wait_until(fun() -> maps:get(in_flight, ?C:stats(C)) =:= 50 end, 5000)),
    [exit(P, kill) || P <- Pids],
    %% Cancelled at once, long before the server would have answered.
    ?assert(azmp_test_env:wait_until(fun() -> maps:get(in_flight, ?C:stats(C)) =:= 0 end, 1000)),
    ?assertMatch(#{transfers_active := 0}, emqx_azure_marketplace_nif:info()),
    ok = azmp_emulator:set_delay(Emu, 0).

%% Runs F in N processes at once; their results, in any order.
parallel(N, F) ->
    Self = self(),
    Go = make_ref(),
    Pids = [spawn_link(fun() -> receive Go -> ok end, Self ! {self(), F()} end) || _ <- lists:seq(1, N)],
    [P ! Go || P <- Pids],
    [receive {P, R} -> R end || P <- Pids].
