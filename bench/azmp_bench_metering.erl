%% Metering benchmarks, each beside a baseline measured in the same run:
%%  1. acknowledged, durable record_usage calls per second on one node (many callers), beside what
%%     a control plane would write by hand: one Mnesia transaction synced to disc per sample;
%%  2. closing and sending one hour of S subscriptions x 3 dimensions (batches of 25), its time and
%%     the VM's peak memory, beside the same events sent one usageEvent call each;
%%  3. the RAM the ledger takes after ?HOURS simulated hours of that load, beside after the second
%%     (the history is on disc: RAM must not grow with the hours kept).
%% AZMP_BENCH_SUBS (2,000) and AZMP_BENCH_HOURS (48) set the load; the issue's is 100,000 and 48.
%% AZMP_BENCH_METERING_SKIP_HOUR=1 runs only the first.
-module(azmp_bench_metering).

-export([main/0, lean_hour/1, lean_run/1]).
%% lean_hour/1: that phase alone (AZMP_BENCH_EPROF=1 profiles the hour's close and send).

-define(DIMS, [<<"session_minutes">>, <<"traffic_gb">>, <<"rule_actions">>]).
-define(CALLERS, 256).
-define(PER_CALLER, 400).
-define(ACCOUNTS, 200).
-define(SUBS, list_to_integer(os:getenv("AZMP_BENCH_SUBS", "2000"))).
-define(H, 3600).
-define(HOURS, list_to_integer(os:getenv("AZMP_BENCH_HOURS", "48"))).

main() ->
    %% The emulator runs on a node of its own: the memory measured here is the plugin's only.
    _ = azmp_test_peer:ensure_distributed(),
    Paths = [P || P <- code:get_path(), filelib:is_dir(P)],
    {ok, Peer, Node} = peer:start(#{name => list_to_atom("azmp_bench_emulator_" ++ os:getpid()),
                                    args => ["+P", "2000000", "-pa" | Paths], wait_boot => 30000}),
    Emu = erpc:call(Node, azmp_test_env, start_emulator, [#{dimensions => ?DIMS}]),
    Metering = #{dimensions => [#{id => D, unit => <<"unit">>} || D <- ?DIMS], grace_s => 300,
                 tick_ms => 3600000},
    %% The emulator serves both sides on a shared machine: calls may take long, and the hourly list of
    %% every subscription (the fulfillment reconciler) would compete with what is measured.
    Azure = azmp_test_env:client_config(Emu, #{transport => https, timeout_ms => 60000}),
    Plugin = azmp_test_env:start_plugin(Emu, #{http => disabled, metering => Metering, azure => Azure,
                                               reconcile_interval_ms => 86400000}),
    try
        recording(),
        case os:getenv("AZMP_BENCH_METERING_SKIP_HOUR") of
            false -> hour(Emu);
            _ -> ok
        end
    after
        azmp_test_env:stop_plugin(Plugin),
        peer:stop(Peer)
    end,
    case os:getenv("AZMP_BENCH_METERING_SKIP_HOUR") of
        false -> lean_hour(Paths);
        _ -> ok
    end.

%% One hour of ?SUBS subscriptions x 3 dimensions closed and sent to a lean metering responder (on a
%% node of its own, so that Azure's side is not the limit): the plugin's own CPU per event and the
%% hour's wall time. The plugin runs on a node of its own too, twice: as a VM starts by default
%% (its schedulers spin a while when they run out of work, and that CPU counts), and with spinning
%% off (+sbwt none), where the VM's CPU is the work done.
lean_hour(Paths) ->
    S = ?SUBS,
    io:format("~n== one hour of ~B subscriptions x 3 dimensions (~B events) sent to a lean responder~n", [S, 3 * S]),
    _ = azmp_test_peer:ensure_distributed(),
    [lean_hour(Paths, Label, Flags)
     || {Label, Flags} <- [{"default VM", []},
                           {"+sbwt none", ["+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none"]}]],
    ok.

lean_hour(Paths, Label, Flags) ->
    %% AZMP_BENCH_PERF: Linux perf samples the plugin's VM through the close and send, its JIT's
    %% code named (+JPperf), and the report is printed.
    Perf = case os:getenv("AZMP_BENCH_PERF") of false -> []; _ -> ["+JPperf", "true"] end,
    {ok, Peer, Node} = peer:start(#{name => list_to_atom("azmp_bench_plugin_" ++ os:getpid()),
                                    args => Perf ++ Flags ++ ["+P", "2000000", "-pa" | Paths], wait_boot => 30000}),
    try erpc:call(Node, ?MODULE, lean_run, [Paths], infinity) of
        #{wall_s := Wall, cpu_us := Cpu, sent := Sent, sched_busy_us := Busy, engine_us := Engine, ram := Ram,
          disc := Disc, on_disc := OnDisc, ram_with_sources := RamSources, derive_s := {Check, Full},
          row_cost := #{new := New, again := Again, delete := Delete}} ->
            io:format("  ~-11s hour sent in ~.2f s (target < 60 s at 300,000 events), ~B events billed~n",
                      [Label, Wall, Sent]),
            io:format("  ~-11s plugin CPU per event ~.1f us (target <= 20; the plugin's VM, the responder on its own)"
                      "; schedulers busy ~.1f us, engine thread ~.1f us~n",
                      [Label, Cpu / max(1, Sent), Busy / max(1, Sent), Engine / max(1, Sent)]),
            io:format("  ~-11s   Mnesia's own CPU per ledger row (1,000 a transaction, log and dumps included): "
                      "written ~.1f us, written again ~.1f us, deleted ~.1f us; an event's row written again once "
                      "(closed and marked) and deleted once (answered and archived): ~.1f us~n",
                      [Label, New, Again, Delete, Again + Delete]),
            %% The ledger's RAM once the hour is out (its hours moved to the history on disc): what
            %% every subscription keeps. Per-shard rows are spread thin below ~100,000 subscriptions.
            Subs = ?SUBS,
            %% The source ids' RAM is per sample, not per subscription.
            PerSub = fun(R) -> lists:join(", ", [io_lib:format("~s ~B", [T, B div Subs]) || {T, B} <- R, B div Subs > 0]) end,
            io:format("  ~-11s ledger RAM per subscription ~B bytes (target <= 200 at 100,000): ~ts~n",
                      [Label, lists:sum([B || {_, B} <- Ram]) div Subs, PerSub(Ram)]),
            io:format("  ~-11s   before the hour's source ids expired (3 samples a subscription): ~B bytes: ~ts~n",
                      [Label, lists:sum([B || {_, B} <- RamSources]) div Subs, PerSub(RamSources)]),
            io:format("  ~-11s on disc only, per subscription: ~ts~n",
                      [Label, lists:join(", ", [io_lib:format("~s ~B bytes", [T, B div Subs]) || {T, B} <- OnDisc])]),
            io:format("  ~-11s history on disc ~B bytes per billed hour~n", [Label, Disc div max(1, Sent)]),
            io:format("  ~-11s links' state rows at start: checked in ~.2f s, all derived (first start) in ~.2f s~n",
                      [Label, Check, Full])
    after
        peer:stop(Peer)
    end.

%% The hour on this node (a node of its own): the figures, for lean_hour/3 to print.
-spec lean_run([string()]) -> map().
lean_run(Paths) ->
    %% The VM's threads now: those that start later are the plugin's engine threads.
    ok = azmp_bench_os:remember_vm_threads(),
    _ = azmp_test_peer:ensure_distributed(),
    {ok, Peer, Node} = peer:start(#{name => list_to_atom("azmp_bench_lean_" ++ os:getpid()),
                                    args => ["+P", "2000000", "-pa" | Paths], wait_boot => 30000}),
    Port = erpc:call(Node, azmp_bench_lean_metering, start, []),
    Url = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port)]),
    Azure = #{tenant_id => <<"tenant-1">>, client_id => <<"client-1">>, client_secret => <<"secret-1">>,
              login_url => Url, marketplace_url => <<Url/binary, "/api">>, allow_insecure_loopback => true,
              timeout_ms => 60000, retry => #{max_attempts => 2, base_delay_ms => 10, max_delay_ms => 50}},
    %% The plugin's helpers want an emulator for their defaults; this one takes no call.
    Emu = azmp_test_env:start_emulator(#{dimensions => ?DIMS}),
    Metering = #{dimensions => [#{id => D, unit => <<"unit">>} || D <- ?DIMS], grace_s => 300,
                 tick_ms => 3600000},
    Plugin = azmp_test_env:start_plugin(Emu, #{http => disabled, metering => Metering, azure => Azure,
                                               reconcile_interval_ms => 86400000}),
    try
        H = (erlang:system_time(second) div 86400 - 2) * 86400 + 10 * ?H,
        at(Emu, H - ?H),
        true = azmp_test_run:meter_pass(),
        Accounts = accounts(<<"bench-lean-">>, ?SUBS),
        Derive = derive_link_states(),
        record_hour(Emu, Accounts, H),
        at(Emu, H + 2 * ?H),
        %% The hour's source ids are kept for deduplication until dedupe_window_s after they were
        %% recorded, then the recorder's sweep (on a timer) deletes them: their RAM is taken now,
        %% and they are swept now, so that the sweep's CPU is never counted as the close's.
        Sources = [TB || TB = {T, _} <- ledger_ram_by_table(), lists:member(T, [azmp_usage_dedupe, azmp_usage_dedupe_index])]
                  ++ [{source_binaries, off_heap_bytes([azmp_usage_dedupe])}],
        _ = emqx_azure_marketplace_recorder:sweep_now(),
        _ = erlang:system_flag(scheduler_wall_time, true),
        Sched0 = azmp_bench_load:sched_snapshot(),
        Threads0 = azmp_bench_os:threads_cpu_us(self),
        Cpu0 = azmp_bench_os:cpu_us(self),
        T0 = erlang:monotonic_time(microsecond),
        Perf = perf_start(),
        case os:getenv("AZMP_BENCH_EPROF") of
            false -> true = azmp_test_run:meter_pass();
            _ -> eprof:start(), eprof:start_profiling(processes()), true = azmp_test_run:meter_pass(),
                 eprof:stop_profiling(), eprof:analyze(total, [{sort, time}, {filter, [{time, 8000}]}])
        end,
        WallUs = erlang:monotonic_time(microsecond) - T0,
        Cpu = azmp_bench_os:cpu_us(self) - Cpu0,
        perf_stop(Perf),
        {SchedBusy, DirtyCpuBusy} = azmp_bench_load:sched_busy_us(Sched0, azmp_bench_load:sched_snapshot(), WallUs),
        Engine = engine_cpu_us(Threads0, azmp_bench_os:threads_cpu_us(self)),
        Sent = length([x || #{status := done} <- emqx_azure_marketplace_store_usage_history:usage_between(H, H)]),
        Ram = ledger_ram_by_table() ++ [{binaries, off_heap_bytes()}],
        RamSources = [TB || TB = {T, _} <- Ram, not lists:keymember(T, 1, Sources)] ++ Sources,
        Floor = row_cost(),
        #{wall_s => WallUs / 1.0e6, cpu_us => Cpu, sent => Sent, sched_busy_us => SchedBusy + DirtyCpuBusy,
          engine_us => Engine, ram_with_sources => RamSources, ram => Ram,
          on_disc => ledger_disc_by_table(), derive_s => Derive,
          disc => history_disc(), row_cost => Floor}
    after
        azmp_test_env:stop_plugin(Plugin),
        azmp_test_env:stop_emulator(Emu),
        peer:stop(Peer)
    end.

%% The floor under the hour's CPU: what Mnesia itself costs per ledger row, measured on this node
%% after the hour (its Mnesia, its disc) on a table of its own laid out as the ledger's
%% (disc_copies, rows of azmp_usage's shape), in transactions as the meter's (1,000 rows, the table
%% locked first): the VM's CPU per row written anew, written again and deleted, the log and its
%% dump to the table's files included. An event's row is written again twice (closed, marked) and
%% deleted once (answered and archived) after recording wrote it.
row_cost() ->
    Tab = azmp_bench_row_cost,
    Attrs = mnesia:table_info(azmp_usage, attributes),
    {atomic, ok} = mnesia:create_table(Tab, [{disc_copies, [node()]}, {record_name, azmp_usage},
                                             {attributes, Attrs}]),
    N = 100000,
    %% The rows made before any is timed: only Mnesia's work is counted.
    Rows = fun(Status) ->
               Fields = [row_field(A, Status) || A <- tl(Attrs)],
               [list_to_tuple([azmp_usage, {guid(<<"row-cost">>, I), <<"traffic_gb">>, 1765000800} | Fields])
                || I <- lists:seq(1, N)]
           end,
    Pass = fun(Op, Items) ->
               Cpu0 = azmp_bench_os:cpu_us(self),
               [{atomic, ok} = mnesia:transaction(fun() -> ok = mnesia:write_lock_table(Tab),
                                                           lists:foreach(Op, Group)
                                                  end) || Group <- emqx_azure_marketplace_lists:chunks(Items, 1000)],
               dumped = mnesia:dump_log(),
               (azmp_bench_os:cpu_us(self) - Cpu0) / N
           end,
    try
        New = Pass(fun(R) -> mnesia:write(Tab, R, write) end, Rows(pending)),
        Again = Pass(fun(R) -> mnesia:write(Tab, R, write) end, Rows(submitting)),
        Delete = Pass(fun(K) -> mnesia:delete(Tab, K, write) end, [element(2, R) || R <- Rows(done)]),
        #{new => New, again => Again, delete => Delete}
    after
        mnesia:delete_table(Tab)
    end.

row_field(account_id, _) -> <<"bench-lean-12345">>;
row_field(status, S) -> S;
row_field(event_id, _) -> guid(<<"event">>, 1);
row_field(message_time, _) -> <<"2026-12-06T10:00:00Z">>;
row_field(plan_id, _) -> <<"payg">>;
row_field(carried_in, _) -> [];
row_field(outcome_unknown, _) -> false;
row_field(_, _) -> 1765000800.

%% CPU of the threads started after the VM's own (the NIF's engine thread) between two readings.
engine_cpu_us(Before, After) ->
    lists:sum([C1 - C0 || {Tid, {Comm, C1}} <- maps:to_list(After),
                          azmp_bench_os:thread_group({Tid, Comm, os:getpid()}) =:= <<"non-BEAM threads (NIF engine)">>,
                          {_, C0} <- [maps:get(Tid, Before, {Comm, 0})]]).

%% What every start pays to check the links' state rows (none to write), and the first start after
%% an upgrade to derive them all: seconds.
derive_link_states() ->
    {Check, ok} = timer:tc(emqx_azure_marketplace_store_links, derive_link_states, []),
    {atomic, ok} = mnesia:clear_table(azmp_link_state),
    {Full, ok} = timer:tc(emqx_azure_marketplace_store_links, derive_link_states, []),
    {Check / 1.0e6, Full / 1.0e6}.

%% Links made through the store, as the linker makes them (no Azure call needed for recording),
%% activated a month ago (usage from before the activation is refused; the bench's hours are past),
%% shaped as Azure's: a GUID for the subscription, the term Azure resolves it with (a link's RAM
%% depends on both).
accounts(Prefix, N) ->
    Now = erlang:system_time(second) - 30 * 86400,
    Term = #{<<"startDate">> => rfc3339(Now - 86400), <<"endDate">> => rfc3339(Now + 29 * 86400),
             <<"termUnit">> => <<"P1M">>},
    [begin
         A = <<Prefix/binary, (integer_to_binary(I))/binary>>,
         none = emqx_azure_marketplace_store_jobs:commit_linked(A, guid(Prefix, I),
                                                                #{plan_id => <<"payg">>, quantity => undefined, term => Term},
                                                                [], Now),
         A
     end || I <- lists:seq(1, N)].

%% A GUID as Azure writes a subscription's id, the same for the same prefix and number.
guid(Prefix, I) ->
    <<A:32, B:16, C:16, D:16, E:48, _/binary>> = crypto:hash(sha256, [Prefix, integer_to_binary(I)]),
    iolist_to_binary(io_lib:format("~8.16.0b-~4.16.0b-~4.16.0b-~4.16.0b-~12.16.0b", [A, B, C, D, E])).

rfc3339(T) -> list_to_binary(calendar:system_time_to_rfc3339(T, [{offset, "Z"}])).

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
    #{entries := Kept, bytes := KeptBytes} = emqx_azure_marketplace_recorder:sources(),
    io:format("    source ids kept for deduplication: ~B, ~B bytes of RAM each (index and rows)~n",
              [Kept, KeptBytes div max(1, Kept)]),
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
    %% 10:00 UTC some days back: the measured hour is not the one that reconciles a day.
    H = (erlang:system_time(second) div 86400 - ?HOURS div 24 - 2) * 86400 + 10 * ?H,
    at(Emu, H - ?H),
    true = azmp_test_run:meter_pass(),
    Subs = [begin
                {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
                Id
            end || _ <- lists:seq(1, S)],
    Now = erlang:system_time(second) - 30 * 86400,  % activated a month ago
    Accounts = [begin
                    A = <<"bench-hour-", (integer_to_binary(I))/binary>>,
                    none = emqx_azure_marketplace_store_jobs:commit_linked(A, Sub, #{plan_id => <<"payg">>,
                                                                                 quantity => undefined}, [], Now),
                    A
                end || {I, Sub} <- lists:zip(lists:seq(1, S), Subs)],
    record_hour(Emu, Accounts, H),
    at(Emu, H + 2 * ?H),
    Mem0 = erlang:memory(total),
    {Peak, Ours} = peak_memory(fun() -> true = azmp_test_run:meter_pass() end),
    Sent = length([x || #{status := done} <- emqx_azure_marketplace_store_usage_history:usage_between(H, H)]),
    %% Baseline: the same events, one usageEvent call each (for the hour before: a new slot).
    C = emqx_azure_marketplace_azure:client(),
    Events = [#{resource_id => Sub, dimension => D, quantity => 1.5, plan_id => <<"payg">>,
                effective_start_time => iso(H - ?H)} || Sub <- Subs, D <- ?DIMS],
    {_, Base} = peak_memory(fun() -> Self = self(), Self ! {failed, parallel_post(C, Events, 64)} end),
    Failed = receive {failed, F} -> F end,
    io:format("  close + batches of 25   ~.2f s, ~B events billed, VM peak +~.1f MiB~n",
              [Ours, Sent, (Peak - Mem0) / 1048576]),
    io:format("  baseline: one call each ~.2f s (64 callers; ~B of ~B calls failed)~n", [Base, Failed, length(Events)]),
    io:format("  ratio ours/baseline     ~.2f (time; below 1: faster)~n", [Ours / Base]),
    hours(Emu, Accounts, H + ?H),
    ok = azmp_emulator:set_clock_offset(Emu, 0),
    azmp_test_clock:reset().

%% The same load for ?HOURS hours (the first hour above included): each hour recorded, closed,
%% sent, and moved to the history. The RAM the ledger takes (its Mnesia tables), after the second
%% hour and after the last, beside each other: it must not grow with the hours kept.
hours(Emu, Accounts, First) ->
    io:format("~n== ~B simulated hours of that load: memory~n", [?HOURS]),
    Stats = [begin
                 record_hour(Emu, Accounts, H),
                 at(Emu, H + ?H + 301),
                 true = azmp_test_run:meter_pass(),
                 %% A real hour sees the recorder's sweep of expired source ids 60 times; a simulated
                 %% one lasts seconds: the sweep it would have had, once.
                 _ = emqx_azure_marketplace_recorder:sweep_now(),
                 erlang:garbage_collect(),
                 {H, ledger_ram(), erlang:memory(), history_disc()}
             end || H <- lists:seq(First, First + (?HOURS - 2) * ?H, ?H)],
    {_, Ram2, Mem2, _} = hd(Stats),
    {_, RamN, MemN, Disc} = lists:last(Stats),
    {Vm2, VmN} = {proplists:get_value(total, Mem2), proplists:get_value(total, MemN)},
    Live = mnesia:table_info(azmp_usage, size),
    io:format("  ledger in RAM after hour 2  ~8.1f MiB   after hour ~B ~8.1f MiB   ratio ~.2f~n",
              [Ram2 / 1048576, ?HOURS, RamN / 1048576, RamN / Ram2]),
    io:format("  VM total (the emulator runs elsewhere) ~.1f MiB -> ~.1f MiB (~ts)~n",
              [Vm2 / 1048576, VmN / 1048576,
               lists:join(", ", [io_lib:format("~s ~.1f -> ~.1f", [K, proplists:get_value(K, Mem2) / 1048576,
                                                                    proplists:get_value(K, MemN) / 1048576])
                                 || K <- [processes, ets, binary, code, atom, system]])]),
    io:format("  largest processes after the last hour: ~p~n",
              [lists:sublist(lists:reverse(lists:sort([{M, case process_info(P, registered_name) of {registered_name, N} -> N; _ -> P end}
                                                        || P <- processes(), {memory, M} <- [process_info(P, memory)]])), 5)]),
    io:format("  hours in RAM ~B; history on disc ~.1f MiB in ~B day tables (~B bytes per billed hour)~n",
              [Live, Disc / 1048576, length(emqx_azure_marketplace_store_usage_history:usage_history_days()),
               round(Disc / max(1, 3 * length(Accounts) * ?HOURS))]),
    io:format("  RAM by table after hour ~B: ~ts~n",
              [?HOURS, lists:join(", ", [io_lib:format("~s ~.1f MiB", [T, B / 1048576]) || {T, B} <- ledger_ram_by_table(), B > 1048576])]).

%% One sample per account and dimension in hour H, recorded by 64 callers.
record_hour(Emu, Accounts, H) ->
    at(Emu, H + 60),
    Work = [{A, D} || A <- Accounts, D <- ?DIMS],
    Self = self(),
    Pids = [spawn_link(fun() ->
                [ok = emqx_azure_marketplace:record_usage(A, #{dimension => D, quantity => <<"1.5">>, at => (H + 30) * 1000,
                                                                source_id => <<A/binary, D/binary, (integer_to_binary(H))/binary>>})
                 || {A, D} <- Chunk],
                Self ! {recorded, self()}
            end) || Chunk <- split(Work, 64)],
    [receive {recorded, P} -> ok end || P <- Pids],
    ok.

%% The plugin's clock and Azure's at T.
at(Emu, T) ->
    azmp_test_clock:advance(T - emqx_azure_marketplace_clock:now()),
    ok = azmp_emulator:set_clock_offset(Emu, T - erlang:system_time(second)).

%% Bytes of RAM the plugin's Mnesia tables take.
ledger_ram() -> lists:sum([B || {_, B} <- ledger_ram_by_table()]).

%% The tables held in RAM here (a table on disc only keeps none of its rows in RAM: Mnesia's
%% table_info(memory) is then its file's size), with their secondary indexes (tables of their own,
%% which table_info(memory) does not count), and the recorder's index of source ids.
ledger_ram_by_table() ->
    W = erlang:system_info(wordsize),
    InRam = [T || T <- emqx_azure_marketplace_store:tables(), lists:member(mnesia:table_info(T, storage_type), [ram_copies, disc_copies])],
    [{T, W * mnesia:table_info(T, memory)} || T <- InRam] ++
        [{list_to_atom(atom_to_list(T) ++ "_index"), W * lists:sum([ets:info(Ixt, memory) || {_, {ram, Ixt}} <- Indexes])}
         || T <- InRam, {index, _, Indexes} <- [mnesia:table_info(T, index_info)], Indexes =/= []] ++
        [{azmp_usage_dedupe_index, W * ets:info(azmp_usage_dedupe_index, memory)}].

%% Bytes on disc of the tables kept on disc only (but the history's).
ledger_disc_by_table() ->
    [{T, mnesia:table_info(T, memory)} || T <- emqx_azure_marketplace_store:tables(),
                                           mnesia:table_info(T, storage_type) =:= disc_only_copies].

%% Bytes of the binaries of more than 64 bytes the plugin's rows hold (kept outside their tables,
%% not counted by Mnesia's table_info(memory)): the term counters' shards, packed source ids, long ids.
off_heap_bytes() -> off_heap_bytes(emqx_azure_marketplace_store:tables()).

off_heap_bytes(Tables) ->
    lists:sum([ets:foldl(fun(Row, N) -> N + off_heap(Row) end, 0, T) || T <- Tables, ets:info(T, size) =/= undefined]).

off_heap(B) when is_binary(B), byte_size(B) > 64 -> byte_size(B);
off_heap(T) when is_tuple(T) -> off_heap(tuple_to_list(T));
off_heap([H | T]) -> off_heap(H) + off_heap(T);
off_heap(M) when is_map(M) -> off_heap(maps:to_list(M));
off_heap(_) -> 0.

%% Bytes on disc of the history's day tables.
history_disc() ->
    Dir = mnesia:system_info(directory),
    lists:sum([filelib:file_size(F) || F <- filelib:wildcard(filename:join(Dir, "azmp_usage_2*"))]).

iso(H) -> list_to_binary(calendar:system_time_to_rfc3339(H, [{unit, second}, {offset, "Z"}])).

%% How many of the calls failed.
parallel_post(C, Events, N) ->
    Self = self(),
    Chunks = split(Events, N),
    Pids = [spawn_link(fun() ->
                Failed = length([x || E <- Chunk, {error, _} <- [emqx_azure_marketplace_client:post_usage(C, E)]]),
                Self ! {posted, self(), Failed}
            end) || Chunk <- Chunks],
    lists:sum([receive {posted, P, F} -> F end || P <- Pids]).

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

%% `perf record' of this VM until perf_stop/1 (AZMP_BENCH_PERF set), else nothing.
perf_start() ->
    case os:getenv("AZMP_BENCH_PERF") of
        false ->
            undefined;
        _ ->
            case os:find_executable("perf") of
                false ->
                    io:format("  AZMP_BENCH_PERF: no perf here (Debian's linux-perf); not profiled~n"),
                    undefined;
                Exe ->
                    File = "/tmp/azmp_bench_lean_" ++ os:getpid() ++ ".perf",
                    Port = open_port({spawn_executable, Exe},
                                     [{args, ["record", "-F", "999", "-g", "-p", os:getpid(), "-o", File]},
                                      exit_status, stderr_to_stdout]),
                    timer:sleep(1000),  % perf attached
                    {Port, File}
            end
    end.

perf_stop(undefined) ->
    ok;
perf_stop({Port, File}) ->
    {os_pid, Pid} = erlang:port_info(Port, os_pid),
    _ = os:cmd("kill -INT " ++ integer_to_list(Pid)),
    receive {Port, {exit_status, _}} -> ok after 60000 -> ok end,
    Report = fun(Sort, Lines) ->
                     os:cmd("perf report -i " ++ File ++ " --no-children -g none --sort " ++ Sort ++
                            " --stdio 2>/dev/null | grep '%' | head -" ++ integer_to_list(Lines))
             end,
    io:format("  perf of the close and send (~s), by library, by thread, by symbol:~n~s~s~s",
              [File, Report("dso", 12), Report("comm", 12), Report("dso,sym", 40)]).
