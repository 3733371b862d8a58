%% @doc `make bench': the NIF client against OTP httpc, on one machine, against the Azure emulator
%% running in a separate OS process. Every figure is printed next to a baseline measured in the same
%% run (this machine is shared: absolute numbers are not comparable between runs). README.md in
%% this directory explains each figure.
-module(azmp_bench).

-export([main/0, main/1]).

-define(CONCURRENCY, 64).
-define(WARMUP_CALLS, 2000).
-define(ROUND_CALLS, 10000).     % per client per round
-define(ROUNDS, 2).              % rounds alternate the clients: 2 x 10,000 = 20,000 calls each
-define(BURST, 10000).
-define(DELAY_MS, 1000).
-define(RATIO_TARGET, 0.33).
-define(RSS_TARGET_MIB, 64).
-define(PROFILE, azmp_bench_keepalive).
-define(BURST_PROFILE, azmp_bench_burst).

-spec main() -> ok.
main() -> main(#{}).

%% @doc Opts (for quick trials): round_calls, rounds, burst.
-spec main(map()) -> ok.
main(Opts) ->
    T0 = erlang:monotonic_time(millisecond),
    %% Before anything loads the NIF library: its engine thread is not one of these.
    ok = azmp_bench_os:remember_vm_threads(),
    try
        run(Opts),
        io:format("~nTotal benchmark time: ~.1f s~n", [(erlang:monotonic_time(millisecond) - T0) / 1000])
    catch
        C:E:St ->
            io:format("~nBENCHMARK FAILED: ~p:~p~n~p~n", [C, E, St]),
            halt(1)
    end,
    ok.

run(Opts) ->
    RoundCalls = maps:get(round_calls, Opts, ?ROUND_CALLS),
    Rounds = maps:get(rounds, Opts, ?ROUNDS),
    Burst = maps:get(burst, Opts, ?BURST),
    {ok, _} = application:ensure_all_started(inets),
    %% The NIF library loads with its module; the plugin application itself is not started.
    _ = erlang:system_flag(scheduler_wall_time, true),
    header(),
    try
        Results = phases(RoundCalls, Rounds, Burst),
        summary(Results)
    after
        [stop_server(S) || S <- get_servers()]
    end.

%% Every emulator VM started is remembered, so that a failure stops them too.
start_server() ->
    Srv = azmp_bench_server:start(),
    put(azmp_bench_servers, [Srv | get_servers()]),
    io:format("  emulator VM started: OS pid ~s, ~s~n",
              [azmp_bench_server:os_pid(Srv), azmp_bench_server:url(Srv)]),
    Srv.

get_servers() ->
    case get(azmp_bench_servers) of
        undefined -> [];
        L -> L
    end.

stop_server(Srv) ->
    Pid = azmp_bench_server:os_pid(Srv),
    case azmp_bench_os:alive(Pid) of
        true ->
            azmp_bench_server:stop(Srv),
            io:format("  emulator VM (OS pid ~s) stopped: ~s~n",
                      [Pid, case azmp_bench_os:alive(Pid) of
                                true -> "NO, still running";
                                false -> "yes"
                            end]);
        false ->
            ok
    end.

header() ->
    Info = emqx_azure_marketplace_nif:info(),
    io:format("emqx_azure_marketplace benchmark~n"
              "  client VM: OS pid ~s, OTP ~s, ~b schedulers, ~b dirty CPU schedulers, ~b online CPUs~n"
              "  NIF engine: ~p~n"
              "  CPU times come from /proc/<pid>/stat (resolution ~b ms); the emulator runs in its own VM.~n",
              [os:getpid(), erlang:system_info(otp_release), erlang:system_info(schedulers),
               erlang:system_info(dirty_cpu_schedulers), erlang:system_info(logical_processors_online),
               Info, 1000 div azmp_bench_os:clk_tck()]).

%%% ------------------------------------------------------------------ phases

phases(RoundCalls, Rounds, Burst) ->
    Srv = start_server(),
    Url = azmp_bench_server:url(Srv),
    SrvPid = azmp_bench_server:os_pid(Srv),
    #{<<"id">> := SubId} = azmp_bench_server:control(Srv, <<"subscriptions">>,
                                                     #{<<"planId">> => <<"payg">>}),
    SubUrl = binary_to_list(<<Url/binary, "/api/saas/subscriptions/", SubId/binary,
                              "?api-version=2018-08-31">>),
    Token = azmp_bench_load:token(Url),
    C = azmp_bench_load:nif_client(Url, #{}),
    ok = azmp_bench_load:httpc_setup(?PROFILE, ?CONCURRENCY, 1),
    Nif = azmp_bench_load:nif_call(C, SubId),
    Httpc = azmp_bench_load:httpc_call(?PROFILE, SubUrl, Token, true),
    HttpcRaw = azmp_bench_load:httpc_call(?PROFILE, SubUrl, Token, false),

    %% ---- 1. CPU per call
    io:format("~n== 1. Client CPU per call: NIF vs OTP httpc "
              "(~b concurrent callers, HTTP keep-alive, GET subscription, no server delay)~n",
              [?CONCURRENCY]),
    ConnsAt0 = conns(),
    Warm = [{K, measure(SrvPid, fun() -> azmp_bench_load:run_workers(F, ?CONCURRENCY, ?WARMUP_CALLS) end)}
            || {K, F} <- [{nif, Nif}, {httpc, Httpc}, {httpc_raw, HttpcRaw}]],
    ConnsWarm = conns() - ConnsAt0,
    io:format("  warm-up: ~b calls per client (not counted); NIF connections opened: ~b~n",
              [?WARMUP_CALLS, ConnsWarm]),
    [check_errors(K, R) || {K, R} <- Warm],
    Kinds = [{nif, Nif}, {httpc, Httpc}, {httpc_raw, HttpcRaw}],
    PerRound = [[{K, measure(SrvPid, fun() -> azmp_bench_load:run_workers(F, ?CONCURRENCY, RoundCalls) end)}
                 || {K, F} <- rotate(Kinds, R)]
                || R <- lists:seq(0, Rounds - 1)],
    ConnsMeasured = conns() - ConnsAt0 - ConnsWarm,
    P1 = maps:from_list([{K, sum_measures([M || Round <- PerRound, {K1, M} <- Round, K1 =:= K])}
                         || {K, _} <- Kinds]),
    print_phase1(P1, PerRound),
    TotalNifCalls = ?WARMUP_CALLS + Rounds * RoundCalls,
    ConnsPer1000 = (ConnsWarm + ConnsMeasured) * 1000 / TotalNifCalls,
    io:format("~n  Connection reuse (NIF engine, emqx_azure_marketplace_nif:info() connections_opened):~n"
              "    ~b opened for ~b calls (warm-up ~b, measured rounds ~b) = ~.2f per 1000 calls;~n"
              "    with ~b callers on keep-alive the ideal is <= ~b in all (one per caller), 0 in the"
              " measured rounds.~n",
              [ConnsWarm + ConnsMeasured, TotalNifCalls, ConnsWarm, ConnsMeasured, ConnsPer1000,
               ?CONCURRENCY, ?CONCURRENCY]),
    {GoodSessions, _, _} = httpc:which_sessions(?PROFILE),
    io:format("    httpc baseline: ~b keep-alive sessions open at the end (max_sessions ~b)~n",
              [length(GoodSessions), ?CONCURRENCY]),
    ok = azmp_bench_load:httpc_stop(?PROFILE),

    %% ---- 2 + 3. 10,000 in flight against a 1 s server
    _ = azmp_bench_server:control(Srv, <<"delay">>, #{<<"ms">> => ?DELAY_MS}),
    _ = azmp_bench_server:control(Srv, <<"reset_stats">>, #{}),
    io:format("~n== 2 + 3. ~b calls released at once, server delay ~b ms: long schedules, "
              "memory, threads~n", [Burst, ?DELAY_MS]),
    io:format("  NIF burst running ...~n"),
    BNif = burst_measure(SrvPid, Burst, Nif,
                         fun(_Counter) -> maps:get(in_flight, emqx_azure_marketplace_client:stats(C)) end,
                         fun() -> maps:with([transfers_active], emqx_azure_marketplace_nif:info()) end),
    %% The engine keeps the burst's connections idle in libcurl's cache: too many descriptors
    %% for httpc's 10,000 on top (ulimit -n). A new emulator VM closes them at the server; libcurl
    %% drops dead connections when the next transfer starts (at most once a second).
    FdsKept = azmp_bench_os:fd_count(self),
    stop_server(Srv),
    Srv2 = start_server(),
    Url2 = azmp_bench_server:url(Srv2),
    #{<<"id">> := SubId2} = azmp_bench_server:control(Srv2, <<"subscriptions">>,
                                                      #{<<"planId">> => <<"payg">>}),
    _ = azmp_bench_server:control(Srv2, <<"delay">>, #{<<"ms">> => ?DELAY_MS}),
    timer:sleep(1100),
    C2 = azmp_bench_load:nif_client(Url2, #{}),
    ok = (azmp_bench_load:nif_call(C2, SubId2))(),
    FdsPruned = azmp_bench_os:fd_count(self),
    io:format("  client descriptors after the NIF burst: ~b; after the emulator VM's restart and one"
              " more NIF call: ~b~n", [FdsKept, FdsPruned]),
    io:format("  httpc burst running (profile with max_sessions ~b) ...~n", [Burst]),
    SubUrl2 = binary_to_list(<<Url2/binary, "/api/saas/subscriptions/", SubId2/binary,
                               "?api-version=2018-08-31">>),
    Token2 = azmp_bench_load:token(Url2),
    ok = azmp_bench_load:httpc_setup(?BURST_PROFILE, Burst, 1),
    HttpcBurst = azmp_bench_load:httpc_call(?BURST_PROFILE, SubUrl2, Token2, true),
    BHttpc = burst_measure(azmp_bench_server:os_pid(Srv2), Burst, HttpcBurst,
                           fun(Counter) -> Counter end, fun() -> #{} end),
    {BurstSessions, _, _} = httpc:which_sessions(?BURST_PROFILE),
    ok = azmp_bench_load:httpc_stop(?BURST_PROFILE),
    io:format("  NIF entry point timing running ...~n"),
    %% The client record is opaque; its second element is the NIF resource.
    NifTimes = azmp_bench_burst:nif_request_timing(element(2, C2), SubId2, Burst),
    print_bursts(BNif, BHttpc, length(BurstSessions), NifTimes),

    %% ---- 4. server
    print_server(P1, BNif, BHttpc),
    #{p1 => P1, conns_per_1000 => ConnsPer1000, conns_total => ConnsWarm + ConnsMeasured,
      conns_measured => ConnsMeasured, burst_nif => BNif, burst_httpc => BHttpc,
      nif_calls => TotalNifCalls, nif_times => NifTimes}.

conns() -> maps:get(connections_opened, emqx_azure_marketplace_nif:info()).

rotate(L, 0) -> L;
rotate([H | T], N) -> rotate(T ++ [H], N - 1).

check_errors(_K, #{result := #{errors := 0}}) -> ok;
check_errors(K, #{result := #{errors := E, first_error := FE}}) ->
    io:format("  !! ~p: ~b calls failed, first: ~P~n", [K, E, FE, 20]).

%%% ------------------------------------------------------------- measuring

%% Runs F (-> #{ok, errors, ...}) and takes the client's and the server's CPU around it.
measure(SrvPid, F) ->
    garbage_collect(),
    B = snap(SrvPid),
    R = F(),
    A = snap(SrvPid),
    diff(B, A, R).

snap(SrvPid) ->
    #{wall => erlang:monotonic_time(microsecond),
      cpu => azmp_bench_os:cpu_us(self),
      threads => azmp_bench_os:threads_cpu_us(self),
      sched => azmp_bench_load:sched_snapshot(),
      srv_cpu => azmp_bench_os:cpu_us(SrvPid)}.

diff(B, A, R) ->
    Wall = maps:get(wall, A) - maps:get(wall, B),
    {SchedBusy, DirtyBusy} = azmp_bench_load:sched_busy_us(maps:get(sched, B), maps:get(sched, A), Wall),
    #{result => R, calls => maps:get(ok, R) + maps:get(errors, R),
      wall_us => Wall,
      cpu_us => maps:get(cpu, A) - maps:get(cpu, B),
      srv_cpu_us => maps:get(srv_cpu, A) - maps:get(srv_cpu, B),
      sched_busy_us => SchedBusy, dirty_busy_us => DirtyBusy,
      groups => thread_groups(maps:get(threads, B), maps:get(threads, A))}.

thread_groups(Before, After) ->
    Main = os:getpid(),
    maps:fold(
      fun(Tid, {Comm, Us}, Acc) ->
              Prev = case Before of
                         #{Tid := {_, U0}} -> U0;
                         _ -> 0
                     end,
              G = azmp_bench_os:thread_group({Tid, Comm, Main}),
              maps:update_with(G, fun(V) -> V + Us - Prev end, Us - Prev, Acc)
      end, #{}, After).

sum_measures(Ms) ->
    Add = fun(K) -> lists:sum([maps:get(K, M) || M <- Ms]) end,
    Groups = lists:foldl(fun(M, Acc) ->
                                 maps:fold(fun(G, V, A) -> maps:update_with(G, fun(X) -> X + V end, V, A) end,
                                           Acc, maps:get(groups, M))
                         end, #{}, Ms),
    Errors = lists:sum([maps:get(errors, maps:get(result, M)) || M <- Ms]),
    FE = case [maps:get(first_error, maps:get(result, M)) || M <- Ms,
                                                           maps:get(errors, maps:get(result, M)) > 0] of
             [] -> none;
             [E | _] -> E
         end,
    #{calls => Add(calls), wall_us => Add(wall_us), cpu_us => Add(cpu_us),
      srv_cpu_us => Add(srv_cpu_us), sched_busy_us => Add(sched_busy_us),
      dirty_busy_us => Add(dirty_busy_us), groups => Groups, errors => Errors, first_error => FE}.

burst_measure(SrvPid, N, CallFun, InFlight, Extra) ->
    garbage_collect(),
    B = snap(SrvPid),
    R = azmp_bench_burst:run(N, CallFun, InFlight, Extra),
    A = snap(SrvPid),
    D = diff(B, A, R),
    %% The burst's own wall time is from release to the last reply; the snapshot brackets also
    %% spawning the callers and the settling pauses.
    D#{burst => R}.

%%% --------------------------------------------------------------- printing

label(nif) -> "NIF (emqx_azure_marketplace_client)";
label(httpc) -> "httpc + JSON decode (baseline)";
label(httpc_raw) -> "httpc, body not decoded (info)".

per_call(Us, Calls) when Calls > 0 -> Us / Calls;
per_call(_, _) -> 0.0.

print_phase1(P1, PerRound) ->
    io:format("  ~b rounds, clients alternating; per client ~b calls in all~n",
              [length(PerRound), maps:get(calls, maps:get(nif, P1))]),
    io:format("  ~-38s ~7s ~6s ~8s ~9s ~11s ~11s ~11s ~11s~n",
              ["client", "calls", "errors", "wall s", "calls/s", "client CPU", "sched busy",
               "server CPU", "server"]),
    io:format("  ~-38s ~7s ~6s ~8s ~9s ~11s ~11s ~11s ~11s~n",
              ["", "", "", "", "", "us/call", "us/call", "us/call", "cores used"]),
    [begin
         M = maps:get(K, P1),
         #{calls := Calls, wall_us := W, cpu_us := Cpu, srv_cpu_us := S, sched_busy_us := SB,
           errors := E} = M,
         io:format("  ~-38s ~7b ~6b ~8.2f ~9b ~11.1f ~11.1f ~11.1f ~11.2f~n",
                   [label(K), Calls, E, W / 1.0e6, round(Calls / (W / 1.0e6)), per_call(Cpu, Calls),
                    per_call(SB, Calls), per_call(S, Calls), S / W]),
         E > 0 andalso io:format("      first error: ~P~n", [maps:get(first_error, M), 20])
     end || K <- [nif, httpc, httpc_raw]],
    #{nif := N, httpc := H, httpc_raw := HR} = P1,
    Ratio = ratio(N, H),
    io:format("~n  >> client CPU per call, NIF / httpc+decode = ~.3f   (target <= ~.2f: ~s)~n",
              [Ratio, ?RATIO_TARGET, yes_no(Ratio =< ?RATIO_TARGET)]),
    io:format("     (NIF / httpc without decoding = ~.3f, for information)~n", [ratio(N, HR)]),
    io:format("     per round, NIF / httpc+decode: ~s~n",
              [string:join([io_lib:format("~.3f", [ratio(proplists:get_value(nif, R),
                                                         proplists:get_value(httpc, R))])
                            || R <- PerRound], ", ")]),
    io:format("     throughput, NIF / httpc+decode calls/s = ~.2f~n",
              [(maps:get(calls, N) / maps:get(wall_us, N)) / (maps:get(calls, H) / maps:get(wall_us, H))]),
    io:format("~n  Client CPU by thread group, us/call (from /proc/self/task/*/stat):~n"),
    Groups = lists:usort(lists:append([maps:keys(maps:get(groups, maps:get(K, P1)))
                                       || K <- [nif, httpc, httpc_raw]])),
    io:format("    ~-45s ~10s ~10s ~10s~n", ["", "NIF", "httpc+dec", "httpc raw"]),
    [io:format("    ~-45s ~10.1f ~10.1f ~10.1f~n",
               [G | [per_call(maps:get(G, maps:get(groups, maps:get(K, P1)), 0),
                              maps:get(calls, maps:get(K, P1))) || K <- [nif, httpc, httpc_raw]]])
     || G <- Groups],
    io:format("    (schedulers' CPU includes busy-waiting when idle; 'sched busy' above excludes it but is"
              " wall time,~n     so it also counts time the OS took the core away from a busy scheduler)~n").

ratio(#{cpu_us := A, calls := CA}, #{cpu_us := B, calls := CB}) ->
    per_call(A, CA) / max(1.0e-9, per_call(B, CB)).

print_bursts(BNif, BHttpc, HttpcSessions, NifTimes) ->
    Rows = [{"NIF", BNif}, {"httpc + JSON decode (baseline)", BHttpc}],
    io:format("  ~-32s ~7s ~6s ~8s ~8s ~8s ~8s ~10s ~11s~n",
              ["client", "calls", "errors", "lat p50", "lat p99", "lat max", "wall s", "client CPU",
               "server CPU"]),
    io:format("  ~-32s ~7s ~6s ~8s ~8s ~8s ~8s ~10s ~11s~n",
              ["", "", "", "ms", "ms", "ms", "(burst)", "us/call", "us/call"]),
    [begin
         #{burst := #{n := N, errors := E, lat_ms := L, wall_us := W}, cpu_us := Cpu,
           srv_cpu_us := S} = B,
         io:format("  ~-32s ~7b ~6b ~8b ~8b ~8b ~8.2f ~10.1f ~11.1f~n",
                   [Name, N, E, maps:get(p50, L), maps:get(p99, L), maps:get(max, L), W / 1.0e6,
                    per_call(Cpu, N), per_call(S, N)]),
         E > 0 andalso io:format("      first error: ~P~n", [maps:get(first_error, maps:get(burst, B)), 20])
     end || {Name, B} <- Rows],
    io:format("~n  2. Long-schedule events (erlang:system_monitor long_schedule, 1 ms), from release "
              "to last reply:~n"),
    [begin
         #{count := Cnt, by_who := ByWho, examples := Ex} = maps:get(long_schedule, maps:get(burst, B)),
         io:format("    ~-32s ~b~s~n", [Name, Cnt, case Cnt of
                                                           0 -> "";
                                                           _ -> "   by: " ++ who(ByWho)
                                                       end]),
         [io:format("        e.g. ~s: ~P~n", [W, I, 12]) || {W, I} <- lists:sublist(Ex, 3)]
     end || {Name, B} <- Rows],
    NC = lib_events(BNif),
    HC = lib_events(BHttpc),
    io:format("    >> outside the bench harness: NIF ~b (target 0: ~s); httpc baseline with ~b concurrent"
              " calls: ~b~n", [NC, yes_no(NC =:= 0), maps:get(n, maps:get(burst, BHttpc)), HC]),
    io:format("    OS preemptions of the client's scheduler threads (nonvoluntary context switches): "
              "NIF burst ~b, httpc burst ~b~n",
              [maps:get(scheduler_preemptions, maps:get(burst, BNif)),
               maps:get(scheduler_preemptions, maps:get(burst, BHttpc))]),
    Len = length(NifTimes),
    io:format("    NIF entry point emqx_azure_marketplace_nif:request/3, ~b calls released at once, "
              "time on the scheduler:~n      p50 ~b us, p99 ~b us, p99.9 ~b us, max ~b us; ~b of ~b took >= 1 ms~n",
              [Len, nth_pct(NifTimes, 0.5), nth_pct(NifTimes, 0.99), nth_pct(NifTimes, 0.999),
               lists:last(NifTimes), length([T || T <- NifTimes, T >= 1000]), Len]),
    io:format("~n  Client CPU during the bursts by thread group, us/call:~n"),
    BGroups = lists:usort(maps:keys(maps:get(groups, BNif)) ++ maps:keys(maps:get(groups, BHttpc))),
    io:format("    ~-45s ~10s ~10s~n", ["", "NIF", "httpc+dec"]),
    [io:format("    ~-45s ~10.1f ~10.1f~n",
               [G | [per_call(maps:get(G, maps:get(groups, B), 0), maps:get(n, maps:get(burst, B)))
                     || B <- [BNif, BHttpc]]])
     || G <- BGroups],
    io:format("    kernel listen-queue drops on this machine during the burst (TcpExt ListenOverflows"
              "+ListenDrops): NIF ~b, httpc ~b~n",
              [maps:get(listen_drops, maps:get(burst, BNif)), maps:get(listen_drops, maps:get(burst, BHttpc))]),
    io:format("~n  3. Memory, threads, descriptors of the client VM (baseline: the ~b callers "
              "already spawned, idle):~n", [maps:get(n, maps:get(burst, BNif))]),
    io:format("    ~-32s ~9s ~9s ~9s ~9s ~7s ~22s ~7s ~14s~n",
              ["client", "RSS MiB", "extra MiB", "extra MiB", "max in", "samples", "threads", "", "fds"]),
    io:format("    ~-32s ~9s ~9s ~9s ~9s ~7s ~22s ~7s ~14s~n",
              ["", "before", "in flight", "peak", "flight", "", "before/during/after", "", "before/in flight/after"]),
    [begin
         #{burst := #{before := Bf, 'after' := Af, samples := S, hwm_kib := Hwm}} = B,
         io:format("    ~-32s ~9.1f ~9s ~9s ~9b ~7b ~22s ~7s ~14s~n",
                   [Name, mib(maps:get(rss_kib, Bf)),
                    io_lib:format("~.1f~s", [extra_in_flight(B), star(B)]),
                    case Hwm of
                        undefined -> "n/a";
                        _ -> io_lib:format("~.1f", [mib(max(Hwm, maps:get(rss_max_kib, S)) - maps:get(rss_kib, Bf))])
                    end,
                    maps:get(max_in_flight, S), maps:get(all_in_flight_samples, S),
                    threads_str(Bf, S, Af), "",
                    io_lib:format("~b/~b/~b", [maps:get(fds, Bf), maps:get(fds_in_flight_max, S),
                                               maps:get(fds, Af)])])
     end || {Name, B} <- Rows],
    #{burst := #{samples := NS}} = BNif,
    io:format("    NIF engine while all in flight: ~p; httpc sessions at the end: ~b~n",
              [maps:get(extra_in_flight, NS), HttpcSessions]),
    [begin
         #{burst := #{before := Bf, samples := S}} = B,
         ErlExtra = mib(maps:get(erlang_in_flight_kib, S) - maps:get(erlang_kib, Bf)),
         io:format("    ~s extra in flight: ~.1f MiB, of which Erlang's allocators (erlang:memory(total))"
                   " ~.1f MiB, the rest (C/C++ heap: libcurl, the engine, libc) ~.1f MiB; per call ~.1f KiB~n",
                   [Name, extra_in_flight(B), ErlExtra, extra_in_flight(B) - ErlExtra,
                    extra_in_flight(B) * 1024 / maps:get(n, maps:get(burst, B))])
     end || {Name, B} <- Rows, maps:get(all_in_flight_samples, maps:get(samples, maps:get(burst, B))) > 0],
    [io:format("    ~s: never all ~b in flight at once (max ~b): its figures are at the fullest sample~n",
               [Name, maps:get(n, maps:get(burst, B)), maps:get(max_in_flight, maps:get(samples, maps:get(burst, B)))])
     || {Name, B} <- Rows, maps:get(all_in_flight_samples, maps:get(samples, maps:get(burst, B))) =:= 0],
    io:format("    ('in flight': max RSS over the samples taken while the library reported all ~b calls"
              " in flight and none had finished;~n     * = never all at once: RSS at the sample with the"
              " most calls in flight ('max in flight'); 'peak': max over the whole burst, VmHWM)~n",
              [maps:get(n, maps:get(burst, BNif))]).

lib_events(#{burst := #{long_schedule := #{by_who := ByWho}}}) ->
    lists:sum([C || {W, C} <- maps:to_list(ByWho), binary:match(W, <<"bench harness">>) =:= nomatch]).

nth_pct(Sorted, P) ->
    lists:nth(max(1, min(length(Sorted), round(P * length(Sorted)))), Sorted).

extra_in_flight(#{burst := #{before := Bf, samples := S}}) ->
    case maps:get(all_in_flight_samples, S) of
        0 -> mib(maps:get(rss_at_max_in_flight_kib, S, 0) - maps:get(rss_kib, Bf));
        _ -> mib(maps:get(rss_in_flight_max_kib, S) - maps:get(rss_kib, Bf))
    end.

%% "*" when not all N calls were ever in flight at once: the figure is then the RSS at the
%% fullest sample.
star(#{burst := #{samples := S}}) ->
    case maps:get(all_in_flight_samples, S) of
        0 -> "*";
        _ -> ""
    end.

threads_str(Bf, S, Af) ->
    During = case maps:get(threads_in_flight, S) of
                 [] -> "none";
                 L -> string:join([integer_to_list(X) || X <- L], ",")
             end,
    io_lib:format("~b/~s/~b", [maps:get(threads, Bf), During, maps:get(threads, Af)]).

who(ByWho) ->
    string:join([io_lib:format("~s ~b", [W, C])
                 || {W, C} <- lists:reverse(lists:keysort(2, maps:to_list(ByWho)))], ", ").

mib(Kib) -> Kib / 1024.

print_server(P1, BNif, BHttpc) ->
    io:format("~n== 4. The emulator VM's own CPU and wall time per phase (separate OS process)~n"),
    io:format("  ~-46s ~8s ~12s ~12s ~12s ~12s~n",
              ["phase", "wall s", "server CPU s", "server cores", "client CPU s", "client cores"]),
    Row = fun(Name, #{wall_us := W, srv_cpu_us := S, cpu_us := C}) ->
                  io:format("  ~-46s ~8.2f ~12.2f ~12.2f ~12.2f ~12.2f~n",
                            [Name, W / 1.0e6, S / 1.0e6, S / W, C / 1.0e6, C / W])
          end,
    Row("1. NIF, 64 callers (all rounds)", maps:get(nif, P1)),
    Row("1. httpc + decode, 64 callers (all rounds)", maps:get(httpc, P1)),
    Row("1. httpc no decode, 64 callers (all rounds)", maps:get(httpc_raw, P1)),
    Row("2+3. NIF burst (incl. spawn, settle pauses)", BNif),
    Row("2+3. httpc burst (incl. spawn, settle pauses)", BHttpc),
    io:format("  (cores = CPU time / wall time; this machine has ~b. The server is not the bottleneck"
              " while its cores stay well below that and below the client's.)~n",
              [erlang:system_info(logical_processors_online)]).

%%% ----------------------------------------------------------------- summary

summary(#{p1 := P1, conns_total := Conns, conns_measured := ConnsM, conns_per_1000 := CP1k,
          burst_nif := BNif, burst_httpc := BHttpc} = Results) ->
    #{nif := N, httpc := H} = P1,
    Ratio = ratio(N, H),
    #{burst := #{long_schedule := #{count := LS}, samples := S, before := Bf, 'after' := Af,
                 n := BN, errors := BE}} = BNif,
    #{burst := #{n := HN}} = BHttpc,
    HLS = lib_events(BHttpc),
    NifLS = lib_events(BNif),
    NifMax = lists:last(maps:get(nif_times, Results)),
    Extra = extra_in_flight(BNif),
    ThreadsDuring = maps:get(threads_in_flight, S),
    ThreadsConst = ThreadsDuring =/= [] andalso
        lists:usort([maps:get(threads, Bf), maps:get(threads, Af) | ThreadsDuring]) =:= [maps:get(threads, Bf)],
    MaxIF = maps:get(max_in_flight, S),
    HttpcExtra = extra_in_flight(BHttpc),
    Rows =
        [{"1. client CPU/call NIF / httpc+decode",
          io_lib:format("~.3f (~.1f / ~.1f us)", [Ratio, per_call(maps:get(cpu_us, N), maps:get(calls, N)),
                                                  per_call(maps:get(cpu_us, H), maps:get(calls, H))]),
          io_lib:format("<= ~.2f", [?RATIO_TARGET]), yes_no(Ratio =< ?RATIO_TARGET)},
         {"1. NIF connections opened (64 callers)",
          io_lib:format("~b in all, ~.2f/1000 calls, ~b measured", [Conns, CP1k, ConnsM]),
          "<= 64, 0 measured", yes_no(Conns =< ?CONCURRENCY andalso ConnsM =:= 0)},
         {"2. long_schedule events, NIF, 10k in flight",
          io_lib:format("~b (~b with harness; httpc ~b at ~b)", [NifLS, LS, HLS, HN]), "0",
          yes_no(NifLS =:= 0)},
         {"2. NIF request/3 max time on a scheduler",
          io_lib:format("~b us", [NifMax]), "< 1000 us", yes_no(NifMax < 1000)},
         {"3. in_flight reached",
          io_lib:format("~b of ~b (errors ~b)", [MaxIF, BN, BE]), io_lib:format("~b", [BN]),
          yes_no(MaxIF >= BN)},
         {"3. extra RSS, NIF, all in flight",
          io_lib:format("~.1f MiB (httpc ~.1f~s)", [Extra, HttpcExtra, star(BHttpc)]),
          io_lib:format("<= ~b MiB", [?RSS_TARGET_MIB]), yes_no(Extra >= 0 andalso Extra =< ?RSS_TARGET_MIB)},
         {"3. threads before/during/after, NIF",
          threads_str(Bf, S, Af), "constant", yes_no(ThreadsConst)}],
    io:format("~n== Summary~n"),
    io:format("  ~-44s ~-50s ~-18s ~s~n", ["figure", "value", "target", "met"]),
    [io:format("  ~-44s ~-50s ~-18s ~s~n", [F, V, T, M]) || {F, V, T, M} <- Rows],
    ok.

yes_no(true) -> "yes";
yes_no(false) -> "no".
