%% Metering benchmarks, each beside a baseline measured in the same run:
%%  1. acknowledged, durable record_usage calls per second on one node (many callers), beside what
%%     a control plane would write by hand: one Mnesia transaction synced to disc per sample;
%%  2. closing and sending one hour of S subscriptions x 3 dimensions (batches of 25), its time and
%%     the VM's peak memory, beside the same events sent one usageEvent call each
%%     (AZMP_BENCH_METERING_SKIP_HOUR=1 runs only the first).
-module(azmp_bench_metering).

-export([main/0]).

-define(DIMS, [<<"session_minutes">>, <<"traffic_gb">>, <<"rule_actions">>]).
-define(CALLERS, 256).
-define(PER_CALLER, 400).
-define(ACCOUNTS, 200).
-define(SUBS, list_to_integer(os:getenv("AZMP_BENCH_SUBS", "2000"))).
-define(H, 3600).

main() ->
    Emu = azmp_test_env:start_emulator(#{dimensions => ?DIMS}),
    Metering = #{dimensions => [#{id => D, unit => <<"unit">>} || D <- ?DIMS], grace_s => 300,
                 tick_ms => 3600000},
    Plugin = azmp_test_env:start_plugin(Emu, #{http => disabled, metering => Metering}),
    try
        recording(),
        case os:getenv("AZMP_BENCH_METERING_SKIP_HOUR") of
            false -> hour(Emu);
            _ -> ok
        end
    after
        azmp_test_env:stop_plugin(Plugin),
        azmp_test_env:stop_emulator(Emu)
    end.

%% Links made through the store, as the linker makes them (no Azure call needed for recording).
accounts(Prefix, N) ->
    Now = erlang:system_time(second),
    [begin
         A = <<Prefix/binary, (integer_to_binary(I))/binary>>,
         none = emqx_azure_marketplace_store:commit_linked(A, <<"sub-", A/binary>>,
                                                           #{plan_id => <<"payg">>, quantity => undefined}, [], Now),
         A
     end || I <- lists:seq(1, N)].

recording() ->
    Accounts = list_to_tuple(accounts(<<"bench-rec-">>, ?ACCOUNTS)),
    Total = ?CALLERS * ?PER_CALLER,
    io:format("~n== record_usage: ~B callers x ~B samples, ~B accounts (acknowledged = on disc)~n",
              [?CALLERS, ?PER_CALLER, ?ACCOUNTS]),
    Now = erlang:system_time(millisecond),
    Commits0 = mnesia:system_info(transaction_commits),
    {Cpu0, _} = statistics(runtime),
    Ours = timed_parallel(?PER_CALLER, fun(C, I) ->
        A = element(1 + (C * 7 + I) rem ?ACCOUNTS, Accounts),
        ok = emqx_azure_marketplace:record_usage(A, #{dimension => lists:nth(1 + I rem 3, ?DIMS), quantity => 1,
                                                      at => Now, source_id => src(C, I)})
    end),
    {Cpu1, _} = statistics(runtime),
    Groups = mnesia:system_info(transaction_commits) - Commits0,
    %% Baseline: samples written one synced Mnesia transaction each, in a table of their own (a
    %% tenth as many: it is slow, and its rate is what counts).
    {atomic, ok} = mnesia:create_table(bench_usage_baseline, [{disc_copies, [node()]}, {attributes, [key, q]}]),
    BaseN = ?PER_CALLER div 10,
    Base = timed_parallel(BaseN, fun(C, I) ->
        {atomic, ok} = mnesia:transaction(fun() ->
            K = {C rem ?ACCOUNTS, I rem 3},
            Q = case mnesia:wread({bench_usage_baseline, K}) of [{_, _, Q0}] -> Q0; [] -> 0 end,
            mnesia:write({bench_usage_baseline, K, Q + 1})
        end),
        mnesia:sync_log()
    end),
    {atomic, ok} = mnesia:delete_table(bench_usage_baseline),
    BaseRate = ?CALLERS * BaseN / Base,
    io:format("  record_usage            ~9.1f calls/s  (~.1f s)~n", [Total / Ours, Ours]),
    io:format("    ~B transactions (~.1f samples each), VM CPU ~.1f us a sample (schedulers' spinning included)~n",
              [Groups, Total / max(1, Groups), (Cpu1 - Cpu0) * 1000 / Total]),
    io:format("  baseline (tx + sync)    ~9.1f calls/s  (~.1f s)~n", [BaseRate, Base]),
    io:format("  ratio ours/baseline     ~9.2f   target: >= 50,000 calls/s (~ts)~n",
              [Total / Ours / BaseRate, case Total / Ours >= 50000 of true -> "met"; false -> "not met" end]).

src(C, I) -> <<(integer_to_binary(C))/binary, "-", (integer_to_binary(I))/binary>>.

%% Seconds for ?CALLERS processes each running F(Caller, I) for I in 1..N.
timed_parallel(N, F) ->
    Self = self(),
    T0 = erlang:monotonic_time(),
    Pids = [spawn_link(fun() -> [F(C, I) || I <- lists:seq(1, N)], Self ! {done, self()} end)
            || C <- lists:seq(1, ?CALLERS)],
    [receive {done, P} -> ok end || P <- Pids],
    erlang:convert_time_unit(erlang:monotonic_time() - T0, native, microsecond) / 1.0e6.

hour(Emu) ->
    S = ?SUBS,
    io:format("~n== one hour of ~B subscriptions x 3 dimensions (~B events): close and send~n", [S, 3 * S]),
    H = (erlang:system_time(second) div ?H) * ?H - 2 * ?H,
    Subs = [begin
                {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
                Id
            end || _ <- lists:seq(1, S)],
    Now = erlang:system_time(second),
    Accounts = [begin
                    A = <<"bench-hour-", (integer_to_binary(I))/binary>>,
                    none = emqx_azure_marketplace_store:commit_linked(A, Sub, #{plan_id => <<"payg">>,
                                                                            quantity => undefined}, [], Now),
                    A
                end || {I, Sub} <- lists:zip(lists:seq(1, S), Subs)],
    azmp_test_clock:advance(H + 60 - emqx_azure_marketplace_clock:now()),
    [ok = emqx_azure_marketplace:record_usage(A, #{dimension => D, quantity => <<"1.5">>, at => (H + 60) * 1000,
                                                   source_id => <<A/binary, D/binary>>})
     || A <- Accounts, D <- ?DIMS],
    azmp_test_clock:advance(H + 2 * ?H - emqx_azure_marketplace_clock:now()),
    Mem0 = erlang:memory(total),
    {Peak, Ours} = peak_memory(fun() -> true = emqx_azure_marketplace_meter:run_now() end),
    Sent = length([x || #{status := done} <- emqx_azure_marketplace_store:usage_between(H, H)]),
    %% Baseline: the same events, one usageEvent call each (for the previous hour: a new slot).
    C = emqx_azure_marketplace_app:client(),
    Events = [#{resource_id => Sub, dimension => D, quantity => 1.5, plan_id => <<"payg">>,
                effective_start_time => iso(H - ?H)} || Sub <- Subs, D <- ?DIMS],
    {_, Base} = peak_memory(fun() -> parallel_post(C, Events, 64) end),
    azmp_test_clock:reset(),
    io:format("  close + batches of 25   ~.2f s, ~B events billed, VM peak +~.1f MiB~n",
              [Ours, Sent, (Peak - Mem0) / 1048576]),
    io:format("  baseline: one call each ~.2f s (64 callers)~n", [Base]),
    io:format("  ratio ours/baseline     ~.2f (time; below 1: faster)~n", [Ours / Base]).

iso(H) -> list_to_binary(calendar:system_time_to_rfc3339(H, [{unit, second}, {offset, "Z"}])).

parallel_post(C, Events, N) ->
    Self = self(),
    Chunks = split(Events, N),
    Pids = [spawn_link(fun() ->
                [{ok, _} = emqx_azure_marketplace_client:post_usage(C, E) || E <- Chunk],
                Self ! {posted, self()}
            end) || Chunk <- Chunks],
    [receive {posted, P} -> ok end || P <- Pids],
    ok.

split(L, N) ->
    Size = max(1, (length(L) + N - 1) div N),
    split_by(L, Size).

split_by([], _) -> [];
split_by(L, Size) when length(L) =< Size -> [L];
split_by(L, Size) ->
    {A, B} = lists:split(Size, L),
    [A | split_by(B, Size)].

%% {PeakTotalMemoryBytes, Seconds} while F runs (sampled every 10 ms).
peak_memory(F) ->
    Self = self(),
    Sampler = spawn_link(fun() -> sample(Self, erlang:memory(total)) end),
    T0 = erlang:monotonic_time(),
    F(),
    T = erlang:convert_time_unit(erlang:monotonic_time() - T0, native, microsecond) / 1.0e6,
    Sampler ! {stop, self()},
    receive {peak, Peak} -> {Peak, T} end.

sample(Parent, Peak) ->
    receive
        {stop, Parent} -> Parent ! {peak, max(Peak, erlang:memory(total))}
    after 10 ->
        sample(Parent, max(Peak, erlang:memory(total)))
    end.
