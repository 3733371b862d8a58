%% @doc N concurrent calls released at once against a slow server: long-schedule events, memory,
%% threads and descriptors while they are all in flight. See README.md (figures 2 and 3).
-module(azmp_bench_burst).

-export([run/4, nif_request_timing/3]).

-define(SAMPLE_MS, 20).
-define(FD_EVERY, 10).
-define(MAX_EVENTS_KEPT, 8).

%% @doc CallFun: one call (ok | {error, _}); InFlight: fun(StartedMinusDone) -> the library's own
%% in-flight figure (or the counter itself when the library has none); ExtraSample: fun() -> map()
%% sampled with the rest while all calls are in flight.
-spec run(pos_integer(), fun(() -> ok | {error, term()}), fun((integer()) -> integer()),
          fun(() -> map())) -> map().
run(N, CallFun, InFlight, ExtraSample) ->
    process_flag(message_queue_data, off_heap),
    Coord = self(),
    Ctr = counters:new(2, [write_concurrency]),   % 1: started, 2: done
    Callers = [spawn(fun() -> caller(CallFun, Ctr, Coord) end) || _ <- lists:seq(1, N)],
    %% The idle callers exist now: their own memory is part of the baseline.
    erlang:garbage_collect(),
    timer:sleep(300),
    Before = #{rss_kib => azmp_bench_os:rss_kib(self), threads => azmp_bench_os:thread_count(self),
               fds => azmp_bench_os:fd_count(self), erlang_kib => erlang:memory(total) div 1024},
    Preempt0 = azmp_bench_os:scheduler_preemptions(),
    Drops0 = azmp_bench_os:tcp_listen_drops(),
    HwmReset = azmp_bench_os:reset_hwm(self),
    CallerSet = maps:from_keys(Callers, true),
    Mon = spawn(fun() -> monitor_collector(CallerSet, #{}, 0, []) end),
    _ = erlang:system_monitor(Mon, [{long_schedule, 1}]),
    T0 = erlang:monotonic_time(microsecond),
    Sampler = spawn_link(fun() ->
                                 sampler(N, Ctr, InFlight, ExtraSample, init_samples())
                         end),
    Mon ! {harness, Sampler, <<"bench harness (sampler)">>},
    Mon ! {harness, self(), <<"bench harness (release loop, collecting replies)">>},
    lists:foreach(fun(P) -> P ! go end, Callers),
    {Lat, Errors, FirstError} = collect(N, [], 0, none),
    T1 = erlang:monotonic_time(microsecond),
    Sampler ! {stop, self()},
    Samples = receive {Sampler, S} -> S after 10000 -> error(sampler_timeout) end,
    _ = erlang:system_monitor(undefined),
    Mon ! {report, self()},
    LongSched = receive {Mon, R} -> R after 10000 -> error(monitor_timeout) end,
    Preempt = azmp_bench_os:scheduler_preemptions() - Preempt0,
    Drops = azmp_bench_os:tcp_listen_drops() - Drops0,
    Hwm = azmp_bench_os:hwm_kib(self),
    timer:sleep(500),
    After = #{rss_kib => azmp_bench_os:rss_kib(self), threads => azmp_bench_os:thread_count(self),
              fds => azmp_bench_os:fd_count(self)},
    Sorted = lists:sort(Lat),
    #{n => N, ok => N - Errors, errors => Errors, first_error => FirstError,
      wall_us => T1 - T0,
      lat_ms => #{p50 => pct(Sorted, 0.50), p99 => pct(Sorted, 0.99), max => lists:last(Sorted),
                  min => hd(Sorted)},
      before => Before, 'after' => After, samples => Samples,
      hwm_kib => case HwmReset of true -> Hwm; false -> undefined end,
      long_schedule => LongSched, scheduler_preemptions => Preempt, listen_drops => Drops}.

caller(F, Ctr, Coord) ->
    receive go -> ok end,
    counters:add(Ctr, 1, 1),
    T0 = erlang:monotonic_time(microsecond),
    R = F(),
    Us = erlang:monotonic_time(microsecond) - T0,
    counters:add(Ctr, 2, 1),
    Coord ! {azmp_bench_done, R, Us}.

collect(0, Lat, Err, FE) -> {Lat, Err, FE};
collect(N, Lat, Err, FE) ->
    receive
        {azmp_bench_done, ok, Us} -> collect(N - 1, [Us div 1000 | Lat], Err, FE);
        {azmp_bench_done, {error, Why}, Us} ->
            collect(N - 1, [Us div 1000 | Lat], Err + 1, case FE of none -> Why; _ -> FE end)
    after 300000 ->
            error({burst_stuck, N, remaining})
    end.

pct(Sorted, P) ->
    lists:nth(max(1, min(length(Sorted), round(P * length(Sorted)))), Sorted).

%%% ------------------------------------------------- NIF entry point timing

%% @doc How long the NIF entry point itself runs on a scheduler: N processes each time one
%% emqx_azure_marketplace_nif:request/3 (what emqx_azure_marketplace_client does before its
%% receive), all released at once, then wait for their replies. -> sorted durations in us.
-spec nif_request_timing(term(), binary(), pos_integer()) -> [non_neg_integer()].
nif_request_timing(NifClient, SubId, N) ->
    Coord = self(),
    Pids = [spawn(fun() ->
                          receive go -> ok end,
                          T0 = erlang:monotonic_time(nanosecond),
                          {ok, Call} = emqx_azure_marketplace_nif:request(
                                         NifClient, get_subscription, #{subscription_id => SubId}),
                          T1 = erlang:monotonic_time(nanosecond),
                          receive {azmp_reply, Call, _} -> ok after 120000 -> ok end,
                          Coord ! {azmp_bench_nif_us, (T1 - T0) div 1000}
                  end) || _ <- lists:seq(1, N)],
    lists:foreach(fun(P) -> P ! go end, Pids),
    lists:sort([receive {azmp_bench_nif_us, Us} -> Us after 300000 -> error(nif_timing_stuck) end
                || _ <- Pids]).

%%% ----------------------------------------------------------------- sampler

init_samples() ->
    #{all_in_flight_samples => 0, max_in_flight => 0, max_started => 0,
      rss_in_flight_max_kib => 0, rss_max_kib => 0,
      threads_in_flight => [], threads_all => [], fds_in_flight_max => 0, fds_max => 0,
      erlang_in_flight_kib => 0, extra_in_flight => #{}}.

%% Samples every ?SAMPLE_MS; "in flight" samples are those where the library reports all N calls
%% in flight and none has finished yet.
sampler(N, Ctr, InFlight, Extra, Acc) ->
    receive
        {stop, From} -> From ! {self(), Acc}
    after ?SAMPLE_MS ->
            Started = counters:get(Ctr, 1),
            Done = counters:get(Ctr, 2),
            Lib = InFlight(Started - Done),
            Rss = azmp_bench_os:rss_kib(self),
            Thr = azmp_bench_os:thread_count(self),
            %% Listing 10,000 descriptors is not free: only every ?FD_EVERY-th sample.
            Tick = maps:get(tick, Acc, 0),
            Fds = case Tick rem ?FD_EVERY of
                      0 -> azmp_bench_os:fd_count(self);
                      _ -> maps:get(last_fds, Acc, 0)
                  end,
            #{max_in_flight := MaxIF, max_started := MaxS, rss_max_kib := RssMax,
              threads_all := TA, fds_max := FdsMax} = Acc,
            %% RSS at the fullest moment: the fallback when a library never reaches all N at once.
            RssAtMax = if
                           Lib > MaxIF -> Rss;
                           Lib =:= MaxIF -> max(Rss, maps:get(rss_at_max_in_flight_kib, Acc, 0));
                           true -> maps:get(rss_at_max_in_flight_kib, Acc, 0)
                       end,
            Acc1 = Acc#{tick => Tick + 1, last_fds => Fds, rss_at_max_in_flight_kib => RssAtMax,
                        max_in_flight := max(MaxIF, Lib), max_started := max(MaxS, Started),
                        rss_max_kib := max(RssMax, Rss), threads_all := add_uniq(Thr, TA),
                        fds_max := max(FdsMax, Fds)},
            Acc2 = case Lib >= N andalso Done =:= 0 of
                       true ->
                           #{all_in_flight_samples := K, rss_in_flight_max_kib := RIF,
                             threads_in_flight := TIF, fds_in_flight_max := FIF} = Acc1,
                           Acc1#{all_in_flight_samples := K + 1,
                                 rss_in_flight_max_kib := max(RIF, Rss),
                                 erlang_in_flight_kib := case Rss >= RIF of
                                                             true -> erlang:memory(total) div 1024;
                                                             false -> maps:get(erlang_in_flight_kib, Acc1)
                                                         end,
                                 threads_in_flight := add_uniq(Thr, TIF),
                                 fds_in_flight_max := max(FIF, Fds),
                                 extra_in_flight := Extra()};
                       false -> Acc1
                   end,
            sampler(N, Ctr, InFlight, Extra, Acc2)
    end.

add_uniq(X, L) ->
    case lists:member(X, L) of
        true -> L;
        false -> lists:sort([X | L])
    end.

%%% ---------------------------------------------------- long_schedule monitor

%% Counts {monitor, _, long_schedule, Info} by who was running: one of the callers, a port, or
%% another process (labelled by registered name or initial call).
monitor_collector(Callers, ByWho, Count, Kept) ->
    receive
        {harness, Pid, Label} ->
            monitor_collector(Callers#{Pid => Label}, ByWho, Count, Kept);
        {monitor, Who, long_schedule, Info} ->
            Label = label(Who, Callers),
            Kept1 = case length(Kept) < ?MAX_EVENTS_KEPT of
                        true -> [{Label, Info} | Kept];
                        false -> Kept
                    end,
            monitor_collector(Callers, maps:update_with(Label, fun(V) -> V + 1 end, 1, ByWho),
                              Count + 1, Kept1);
        {report, From} ->
            From ! {self(), #{count => Count, by_who => ByWho, examples => lists:reverse(Kept)}}
    end.

label(Port, _) when is_port(Port) ->
    case erlang:port_info(Port, name) of
        {name, Name} -> iolist_to_binary(["port ", Name]);
        undefined -> <<"port">>
    end;
label(Pid, Callers) when is_map_key(Pid, Callers) ->
    case maps:get(Pid, Callers) of
        true -> <<"caller process">>;
        Label -> Label
    end;
label(Pid, _) ->
    case erlang:process_info(Pid, [registered_name, initial_call, dictionary]) of
        undefined -> <<"exited process">>;
        [{registered_name, Name}, _, _] when is_atom(Name) -> atom_to_binary(Name);
        [_, {initial_call, IC}, {dictionary, D}] ->
            MFA = case proplists:get_value('$initial_call', D) of
                      undefined -> IC;
                      Real -> Real
                  end,
            iolist_to_binary(io_lib:format("~p", [MFA]))
    end.
