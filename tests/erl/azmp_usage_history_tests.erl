%% The ledger's history against the emulator: settled hours leave RAM for a table per UTC day kept on
%% disc only, the ledger and the reconciliation read them there, a late sample for such an hour is
%% still carried forward, days past `history_days' are dropped, and the RAM the ledger takes does not
%% grow with the days it keeps. The plugin's clock and the emulator's move together.
-module(azmp_usage_history_tests).

-include_lib("eunit/include/eunit.hrl").

-define(M, emqx_azure_marketplace).
-define(USAGE, emqx_azure_marketplace_store_usage).
-define(HISTORY, emqx_azure_marketplace_store_usage_history).
-define(METER, emqx_azure_marketplace_meter).
-define(H, 3600).
-define(D, 86400).
-define(DIMS, [<<"session_minutes">>, <<"traffic_gb">>, <<"rule_actions">>]).

history_test_() ->
    {setup,
     fun() ->
         Emu = azmp_test_env:start_emulator(#{dimensions => ?DIMS}),
         Metering = #{dimensions => [#{id => D, unit => <<"unit">>} || D <- ?DIMS],
                      grace_s => 300, tick_ms => 3600000, lease_s => 30},
         Plugin = azmp_test_env:start_plugin(Emu, #{metering => Metering}),
         %% 5 days keeps twelve simulated days short; a config is refused below 35 (the start
         %% checks it), so it is set behind the check, as a running node would re-read it.
         ok = application:set_env(emqx_azure_marketplace, metering, Metering#{history_days => 5}),
         _ = emqx_azure_marketplace_metering:configure(),
         {Emu, Plugin}
     end,
     fun({Emu, Plugin}) ->
         azmp_test_env:stop_plugin(Plugin),
         azmp_test_env:stop_emulator(Emu)
     end,
     fun({Emu, _}) ->
         [{"settled hours move to the day's table on disc; the ledger and the reconciliation read them there",
           {timeout, 60, fun() -> archived(Emu) end}},
          {"8 archivers at once over the same settled hours: each hour moved once, none lost",
           {timeout, 60, fun() -> concurrent(Emu) end}},
          {"a subscription's hour moves once all its dimensions are settled; two subscriptions of one history row read apart; a day written by the version before is read beside it",
           {timeout, 60, fun() -> shards_and_upgrade() end}},
          {"answers applied and archived in one transaction: a subscription's hour moves with the answer "
           "settling its last dimension, not before (another still to send, or sent again); a row of a "
           "dimension no longer configured follows when it settles",
           {timeout, 60, fun() -> answered_and_archived() end}},
          {"closed and, in the same transaction, marked `submitting' (what a send needs returned) or held; "
           "nothing to report is done; with the lease another node's, closed and left pending",
           {timeout, 60, fun() -> closed_and_marked() end}},
          {"the history cannot be written (its day table read-only, as while it is not loaded): Azure's answers "
           "are recorded all the same and the tick goes on; the hours move at a tick once it can be",
           {timeout, 60, fun() -> history_unwritable(Emu) end}},
          {"the daily reconciliation: one query per dimension; when Azure fails it, tried again an hour later",
           {timeout, 60, fun() -> daily_retry(Emu) end}},
          {"twelve days of hours: RAM holds the hours in play, the history the days kept (5), older days dropped",
           {timeout, 300, fun() -> days(Emu) end}}]
     end}.

%%--------------------------------------------------------------------

linked(Emu) -> azmp_test_usage:linked(Emu).

record(A, Dim, Q, AtMs) -> azmp_test_usage:record(A, Dim, Q, AtMs).

%% Both clocks at T (the plugin's and Azure's).
at(Emu, T) ->
    azmp_test_clock:advance(T - emqx_azure_marketplace_clock:now()),
    ok = azmp_emulator:set_clock_offset(Emu, T - erlang:system_time(second)).

reset(Emu) ->
    ok = azmp_emulator:set_clock_offset(Emu, 0),
    azmp_test_clock:reset().

%% The hours of SubId still in RAM.
live(SubId) ->
    [K || K = {S, _, _} <- mnesia:dirty_all_keys(azmp_usage), S =:= SubId].

report(A, From, To) -> azmp_test_usage:report(A, From, To).

%% What the meter's tick archives at Now (grace 300 s): the core says which hours.
archive(Now) ->
    #{archive_last_hour := LastHour, settled := Settled} =
        emqx_azure_marketplace_nif:usage_tick(#{now => Now, grace_s => 300, lease_s => 30, call_timeout_ms => 30000,
                                                history_days => 40, last_reconciled => 0, retry_after => 0,
                                                window_waves => 1, held => [], lookups => []}),
    ?HISTORY:archive_usage(LastHour, Settled).

day_table(Day) ->
    {{Y, M, D}, _} = calendar:system_time_to_universal_time(Day, second),
    list_to_atom(lists:flatten(io_lib:format("azmp_usage_~4..0b~2..0b~2..0b", [Y, M, D]))).

%%--------------------------------------------------------------------

archived(Emu) ->
    {A, SubId} = linked(Emu),
    H0 = (erlang:system_time(second) div ?H) * ?H - 3 * ?H,
    at(Emu, H0 + ?H + 120),
    ok = record(A, <<"session_minutes">>, <<"1.5">>, (H0 + 60) * 1000),
    ok = record(A, <<"traffic_gb">>, <<"0.000001">>, (H0 + 60) * 1000),
    ok = record(A, <<"session_minutes">>, 2, (H0 + ?H + 60) * 1000),
    %% Open hours are in RAM.
    true = azmp_test_run:meter_pass(),
    ?assertEqual(3, length(live(SubId))),
    %% Both hours' grace is past: billed, then out of RAM, in the day's table, on disc.
    at(Emu, H0 + 2 * ?H + 301),
    true = azmp_test_run:meter_pass(),
    ?assertEqual([], live(SubId)),
    Day = H0 - H0 rem ?D,
    ?assert(lists:member(Day, ?HISTORY:usage_history_days())),
    ?assertEqual(disc_only_copies, mnesia:table_info(day_table(Day), storage_type)),
    %% The ledger reads the same from there: every field.
    ?assertMatch([#{hour := H0, dimension := <<"session_minutes">>, status := done, recorded := <<"1.5">>,
                    reported := <<"1.5">>, event_id := <<_:8, _/binary>>, message_time := <<_:8, _/binary>>},
                  #{hour := H0, dimension := <<"traffic_gb">>, status := done, reported := <<"0.000001">>},
                  #{hour := _, dimension := <<"session_minutes">>, status := done, reported := <<"2">>}],
                 report(A, H0, H0 + ?H)),
    %% A late sample for an hour in the history goes into the current hour, its origin noted; the
    %% archived hour is not opened again.
    ok = record(A, <<"session_minutes">>, <<"0.25">>, (H0 + 120) * 1000),
    Current = H0 + 2 * ?H,
    ?assertEqual([{SubId, <<"session_minutes">>, Current}], live(SubId)),
    ?assertMatch([#{hour := Current, carried_in := [#{from_hour := H0, quantity := <<"0.25">>, why := late_sample}]}],
                 report(A, Current, Current)),
    ?assertMatch([#{recorded := <<"1.5">>, status := done}, _], report(A, H0, H0)),
    %% The reconciliation of the day reads the history: Azure holds what the ledger says.
    Mine = fun({ok, Diffs}) -> [X || X = #{subscription_id := S} <- Diffs, S =:= SubId] end,
    ?assertEqual([], Mine(?M:reconcile_usage(Day))),
    reset(Emu).

%% Twelve days of three dimensions every hour for a few subscriptions. After each day: the rows in
%% RAM, the RAM they take, and the days the history holds. RAM stays what the first day took; the
%% history holds at most `history_days' (5) days (the first test's day, today, aside); every billed hour of the kept days is in the ledger.
days(Emu) ->
    Start = (erlang:system_time(second) div ?D) * ?D - 13 * ?D,
    Subs = [azmp_test_usage:linked_at(Emu, Start) || _ <- lists:seq(1, 4)],
    PerDay = [begin
                  [begin
                       H = Start + Day * ?D + Hour * ?H,
                       at(Emu, H + 10),
                       [ok = record(A, D, <<"0.5">>, (H + 5) * 1000) || {A, _} <- Subs, D <- ?DIMS],
                       true = azmp_test_run:meter_pass()
                   end || Hour <- lists:seq(0, 23)],
                  {mnesia:table_info(azmp_usage, size), mnesia:table_info(azmp_usage, memory),
                   length([D || D <- ?HISTORY:usage_history_days(), D < Start + 12 * ?D])}
              end || Day <- lists:seq(0, 11)],
    ?debugFmt("per day: {rows in RAM, words in RAM, days in the history} ~p", [PerDay]),
    [{Rows1, Words1, _} | _] = PerDay,
    %% The hours in play: the open one and the one in its grace (3 dimensions x 4 subscriptions
    %% each), and whatever other tests left; never a day's worth.
    [?assert(Rows =< Rows1 + 12) || {Rows, _, _} <- PerDay],
    [?assert(Words =< Words1 * 2) || {_, Words, _} <- PerDay],
    ?assertEqual([1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 5, 5], [Days || {_, _, Days} <- PerDay]),
    %% The kept days: every hour billed, 0.5 each (at the last tick, 23:00:10, hours up to 21:00
    %% have closed), and nothing of the dropped days.
    LastDay = Start + 11 * ?D,
    [{A, _} | _] = Subs,
    Kept = report(A, LastDay - 3 * ?D, LastDay + 22 * ?H),
    ?assertEqual((3 * 24 + 22) * 3, length([x || #{status := done, reported := <<"0.5">>} <- Kept])),
    ?assertEqual([], report(A, Start, Start + 6 * ?D)),
    reset(Emu).

%% The same settled hours archived by 8 processes at once (as two emitters would, were the lease
%% ever to overlap): every hour moves exactly once, the history holds each once, RAM none.
concurrent(Emu) ->
    Subs = [linked(Emu) || _ <- lists:seq(1, 20)],
    H0 = (erlang:system_time(second) div ?H) * ?H - 5 * ?H,
    at(Emu, H0 + 600),
    [ok = record(A, D, 1, (H0 + 60) * 1000) || {A, _} <- Subs, D <- ?DIMS],
    %% Closed and billed through the store (the meter would archive them in the same tick).
    Keys = [K || K = {S, _, _} <- ?USAGE:usage_due(H0 + ?H + 300), lists:keymember(S, 2, Subs)],
    60 = length(Keys),
    {60, []} = ?USAGE:close_usage(Keys, fun(_, #{recorded := R, counter := C}) -> {{R, 0, C}, <<"payg">>} end),
    Now = H0 + ?H + 300,
    true = ?USAGE:take_lease(node(), Now, Now + 30),
    {ok, Marked} = ?USAGE:mark_submitting(Keys, {node(), Now, Now + 30, Now + 60}),
    60 = length(Marked),
    Done = #{outcome => done, reason => undefined, carry => 0, alarm => false, next_attempt_at => 0,
             outcome_unknown => false, attempt_failed => false, plan_id => undefined, event_id => <<"ev">>,
             message_time => undefined, azure_quantity => undefined},
    ok = ?USAGE:apply_usage_decisions([{K, Done} || K <- Keys], #{from => submitting, into => {Now, Now + ?H}}),
    Self = self(),
    Pids = [spawn_link(fun() -> Self ! {moved, self(), archive(H0 + ?H + 300)} end)
            || _ <- lists:seq(1, 8)],
    Moved = [receive {moved, P, N} -> N end || P <- Pids],
    ?debugFmt("moved by each archiver: ~p", [Moved]),
    ?assertEqual(60, lists:sum(Moved)),
    [begin
         ?assertEqual([], live(SubId)),
         ?assertMatch([#{status := done, reported := <<"1">>, event_id := <<"ev">>}, _, _], report(A, H0, H0)),
         ?assertEqual(3, length(report(A, H0, H0)))
     end || {A, SubId} <- Subs],
    reset(Emu).

%% Through the store, without Azure: closed hours settled by hand (done) or held.
shards_and_upgrade() ->
    %% Two subscription ids whose hours share a row of the history (the row's shard, by phash2).
    Ids = [<<"shard-", (integer_to_binary(I))/binary>> || I <- lists:seq(1, 5000)],
    ByShard = maps:groups_from_list(fun(Id) -> erlang:phash2(Id, 1024) end, Ids),
    [SubA, SubB | _] = hd([G || G <- maps:values(ByShard), length(G) >= 2]),
    H0 = (erlang:system_time(second) div ?D - 20) * ?D + 5 * ?H,
    Day = H0 - H0 rem ?D,
    Bucket = fun(Sub, Dim, Status) ->
                 {azmp_usage, {Sub, Dim, H0}, <<"acc-", Sub/binary>>, Status, 1000000, [], undefined, H0 + ?H + 300,
                  1000000, 0, <<"ev-", Sub/binary>>, undefined, undefined, undefined, 0, 0, false, <<"payg">>}
             end,
    [Ses, Traffic | _] = ?DIMS,
    ok = mnesia:dirty_write(Bucket(SubA, Ses, done)),
    ok = mnesia:dirty_write(Bucket(SubA, Traffic, held)),
    ok = mnesia:dirty_write(Bucket(SubB, Ses, done)),
    ArchiveAt = H0 + 2 * ?H,
    %% SubA's hour has a dimension held: none of it moves. SubB's does.
    ?assertEqual(1, archive(ArchiveAt)),
    ?assertEqual(2, length(live(SubA))),
    ?assertEqual([], live(SubB)),
    %% Settled later: SubA's hour moves whole, into the row SubB's is in, which keeps SubB's.
    ok = mnesia:dirty_write(Bucket(SubA, Traffic, done)),
    ?assertEqual(2, archive(ArchiveAt)),
    ?assertEqual([], live(SubA)),
    Tab = day_table(Day),
    ?assertEqual(1, mnesia:table_info(Tab, size)),
    Rows = fun(Sub) -> [{D, St, E} || #{dimension := D, status := St, event_id := E} <- ?HISTORY:usage_rows(Sub, H0, H0)] end,
    ?assertEqual([{Ses, done, <<"ev-", SubA/binary>>}, {Traffic, done, <<"ev-", SubA/binary>>}], lists:sort(Rows(SubA))),
    ?assertEqual([{Ses, done, <<"ev-", SubB/binary>>}], Rows(SubB)),
    %% The version before kept a subscription's day in one row under {SubId, Day}, its record
    %% without the last field (plan_id): read beside this version's rows, the missing field defaulted.
    Old = {azmp_usage, {SubA, Ses, H0 - ?H}, <<"acc">>, done, 2000000, [], undefined, H0 + 300, 2000000, 0,
           <<"ev-old">>, undefined, undefined, undefined, 0, 0, false},
    ok = mnesia:dirty_write(Tab, {azmp_usage_day, {SubA, Day}, term_to_binary([Old], [compressed])}),
    ?assertMatch([#{hour := _, event_id := <<"ev-old">>, plan_id := undefined}, _, _],
                 ?HISTORY:usage_rows(SubA, H0 - ?H, H0)),
    ?assertEqual([<<"ev-old">>], [E || #{event_id := E} <- ?HISTORY:usage_rows(SubA, H0 - ?H, H0 - 1)]),
    ?assertEqual(4, length([x || #{subscription_id := S} <- ?HISTORY:usage_between(Day, Day + ?D - 1),
                                 S =:= SubA orelse S =:= SubB])).

%% Through the store, without Azure: a subscription's hour sent, its answers applied in three goes.
answered_and_archived() ->
    Sub = <<"answered-archived-1">>,
    H0 = (erlang:system_time(second) div ?D - 21) * ?D + 7 * ?H,
    [Ses, Traffic, Rules] = ?DIMS,
    Retired = <<"retired_dimension">>,
    Bucket = fun(Dim) ->
                 {azmp_usage, {Sub, Dim, H0}, <<"acc-aa">>, submitting, 1000000, [], undefined, H0 + ?H + 300,
                  1000000, 0, undefined, undefined, undefined, undefined, 0, H0 + 2 * ?H, false, <<"payg">>}
             end,
    [ok = mnesia:dirty_write(Bucket(D)) || D <- [Ses, Traffic, Rules, Retired]],
    Now = H0 + 2 * ?H,
    #{archive_last_hour := LastHour, settled := Settled} =
        emqx_azure_marketplace_nif:usage_tick(#{now => Now, grace_s => 300, lease_s => 30, call_timeout_ms => 30000,
                                                history_days => 40, last_reconciled => 0, retry_after => 0,
                                                window_waves => 1, held => [], lookups => []}),
    Done = #{outcome => done, reason => undefined, carry => 0, alarm => false, next_attempt_at => 0,
             outcome_unknown => false, attempt_failed => false, plan_id => undefined, event_id => <<"ev">>,
             message_time => undefined, azure_quantity => undefined},
    Retry = Done#{outcome => retry, event_id => undefined, next_attempt_at => Now + 60, attempt_failed => true},
    Answer = fun(Decisions) ->
                 ?HISTORY:apply_and_archive([{{Sub, D, H0}, Dec} || {D, Dec} <- Decisions],
                                            #{from => submitting, into => {Now, Now + ?H}}, {LastHour, Settled, ?DIMS})
             end,
    Statuses = fun() -> lists:sort([{D, St} || #{dimension := D, status := St} <- ?HISTORY:usage_rows(Sub, H0, H0)]) end,
    %% Two dimensions answered, one of them to be sent again: nothing moves.
    ok = Answer([{Ses, Done}, {Traffic, Retry}]),
    ?assertEqual(4, length(live(Sub))),
    ?assertEqual([{Retired, submitting}, {Rules, submitting}, {Ses, done}, {Traffic, pending}], Statuses()),
    %% Sent again (marked), then both answered: the configured dimensions move in that transaction.
    true = ?USAGE:take_lease(node(), Now + 60, Now + 90),
    {ok, [_]} = ?USAGE:mark_submitting([{Sub, Traffic, H0}], {node(), Now + 60, Now + 90, Now + 120}),
    ok = Answer([{Traffic, Done}, {Rules, Done}]),
    ?assertEqual([{Sub, Retired, H0}], live(Sub)),
    Tab = day_table(H0 - H0 rem ?D),
    ?assertEqual(1, mnesia:table_info(Tab, size)),
    ?assertEqual([{Retired, submitting}, {Rules, done}, {Ses, done}, {Traffic, done}], Statuses()),
    %% The retired dimension's row, answered, follows at the end of a tick, beside the rest.
    ok = ?USAGE:apply_usage_decisions([{{Sub, Retired, H0}, Done}], #{from => submitting, into => {Now, Now + ?H}}),
    ?assertEqual(1, ?HISTORY:archive_usage(LastHour, Settled)),
    ?assertEqual([], live(Sub)),
    ?assertEqual(1, mnesia:table_info(Tab, size)),
    ?assertEqual([{Retired, done}, {Rules, done}, {Ses, done}, {Traffic, done}], Statuses()).

history_unwritable(Emu) ->
    Day = (erlang:system_time(second) div ?D - 1) * ?D,
    {A, Sub} = azmp_test_usage:linked_at(Emu, Day),
    Tab = day_table(Day),
    Hour = fun(H) ->
               at(Emu, H + 60),
               ok = record(A, <<"session_minutes">>, 2, (H + 30) * 1000),
               ok = record(A, <<"traffic_gb">>, 3, (H + 30) * 1000),
               at(Emu, H + ?H + 400)
           end,
    Moved = fun(H) -> lists:sort([{D, St} || #{dimension := D, status := St} <- ?HISTORY:usage_rows(Sub, H, H)]) end,
    %% An hour billed and archived: the day's table is there.
    H1 = Day + 2 * ?H,
    Hour(H1),
    true = azmp_test_run:meter_pass(),
    ?assertEqual([], live(Sub)),
    ?assertEqual([{<<"session_minutes">>, done}, {<<"traffic_gb">>, done}], Moved(H1)),
    %% The next hour's answers come while the table may not be written.
    H2 = Day + 4 * ?H,
    Hour(H2),
    ok = azmp_log_capture:start(),
    ok = logger:add_handler(azmp_history_capture, azmp_log_capture, #{level => all}),
    {atomic, ok} = mnesia:change_table_access_mode(Tab, read_only),
    try
        true = azmp_test_run:meter_pass(),
        %% Billed (the emulator holds each hour once) and recorded, in RAM still.
        ?assertEqual([{<<"session_minutes">>, done}, {<<"traffic_gb">>, done}],
                     lists:sort([{D, St} || #{dimension := D, hour := H, status := St} <- report(A, H2, H2), H =:= H2])),
        ?assertEqual(2, length(live(Sub))),
        Logged = azmp_log_capture:events(),
        %% Said once for the tick (not once per window of hours answered), with what stayed in RAM.
        ?assertMatch([_], [E || E <- Logged, binary:match(E, <<"azure_marketplace_usage_not_archived">>) =/= nomatch]),
        ?assertMatch([_], [E || E <- Logged, binary:match(E, <<"answered_in_ram: 2">>) =/= nomatch]),
        %% The tick went on to its end: nothing of it failed.
        ?assertEqual([], [E || E <- Logged, binary:match(E, <<"azure_marketplace_meter_failed">>) =/= nomatch])
    after
        ok = logger:remove_handler(azmp_history_capture),
        {atomic, ok} = mnesia:change_table_access_mode(Tab, read_write)
    end,
    true = azmp_test_run:meter_pass(),
    ?assertEqual([], live(Sub)),
    ?assertEqual([{<<"session_minutes">>, done}, {<<"traffic_gb">>, done}], Moved(H2)),
    %% Sent once each: recording the answers did not wait for the history.
    ?assertEqual(2, length([x || #{resource_id := R, hour := H} <- azmp_emulator:usage(Emu), R =:= Sub, H =:= H2])).

%% Through the store, without Azure (store_usage:close_usage/3).
closed_and_marked() ->
    H0 = (erlang:system_time(second) div ?D - 22) * ?D + 7 * ?H,
    [Ses, Traffic, _] = ?DIMS,
    Open = fun({Sub, Dim, H}) ->
               {azmp_usage, {Sub, Dim, H}, <<"acc-", Sub/binary>>, open, 1000000, [], undefined, H + ?H + 300,
                0, 0, undefined, undefined, undefined, undefined, 0, 0, false, undefined}
           end,
    Billed = <<"cm-billed">>,
    Suspended = <<"cm-suspended">>,
    Keys = [{S, D, H0} || S <- [Billed, Suspended], D <- [Ses, Traffic]],
    [ok = mnesia:dirty_write(Open(K)) || K <- Keys],
    Now = H0 + ?H + 300,
    %% Session minutes report what was recorded; traffic's is absorbed by what the plan includes.
    Close = fun({_, D, _}, #{recorded := R, counter := C}) when D =:= Ses -> {{R, 0, C}, <<"payg">>};
               (_, #{recorded := R, counter := C}) -> {{0, R, C}, <<"payg">>}
            end,
    Billable = fun(S) -> S =:= Billed end,
    true = ?USAGE:take_lease(node(), Now, Now + 30),
    {4, [], {ok, Marked}} = ?USAGE:close_usage(Keys, Close, #{fence => {node(), Now, Now + 30, Now + 60},
                                                               billable => Billable}),
    ?assertEqual([#{subscription_id => Billed, dimension => Ses, hour => H0, account_id => <<"acc-cm-billed">>,
                    reported => 1000000, plan_id => <<"payg">>, attempts => 0, outcome_unknown => false}], Marked),
    Row = fun(K) -> [B] = mnesia:dirty_read(azmp_usage, K), ?USAGE:usage_map(B) end,
    ?assertMatch(#{status := submitting, next_attempt_at := N, outcome_unknown := false, plan_id := <<"payg">>}
                   when N =:= Now + 60, Row({Billed, Ses, H0})),
    ?assertMatch(#{status := held, reason := not_billable_now, reported := 1000000}, Row({Suspended, Ses, H0})),
    ?assertMatch(#{status := done, reported := 0, absorbed := 1000000}, Row({Billed, Traffic, H0})),
    ?assertMatch(#{status := done, absorbed := 1000000}, Row({Suspended, Traffic, H0})),
    %% Another node holds the lease: the next hour closes and stays pending, the lease is not renewed.
    Next = {Billed, Ses, H0 + ?H},
    ok = mnesia:dirty_write(Open(Next)),
    true = ?USAGE:take_lease('other@host', Now + 31, Now + 90),
    ?assertEqual({1, [], {error, lost_lease}},
                 ?USAGE:close_usage([Next], Close, #{fence => {node(), Now + 40, Now + 70, Now + 100},
                                                     billable => Billable})),
    ?assertMatch(#{status := pending, reported := 1000000}, Row(Next)),
    ?assertMatch([{azmp_usage_lease, emitter, 'other@host', U}] when U =:= Now + 90,
                 mnesia:dirty_read(azmp_usage_lease, emitter)),
    true = ?USAGE:take_lease(node(), Now + 91, Now + 92),
    [ok = mnesia:dirty_delete(azmp_usage, K) || K <- [Next | Keys]].

daily_retry(Emu) ->
    Queries = fun() -> length([x || #{op := usage_events} <- maps:get(requests, azmp_emulator:stats(Emu))]) end,
    %% A day after any other test's: the meter has not reconciled it.
    Day = (erlang:system_time(second) div ?D + 3) * ?D,
    ok = azmp_emulator:inject(Emu, usage_events, lists:duplicate(100, {status, 503})),
    at(Emu, Day + ?D + ?H + 10),
    Q0 = Queries(),
    true = azmp_test_run:meter_pass(),
    Q1 = Queries(),
    ?assert(Q1 > Q0),
    ok = azmp_emulator:clear_faults(Emu, usage_events),
    %% Not again at once...
    true = azmp_test_run:meter_pass(),
    ?assertEqual(Q1, Queries()),
    %% ...but an hour later: one query per dimension, and then done for that day.
    at(Emu, Day + ?D + 2 * ?H + 20),
    true = azmp_test_run:meter_pass(),
    ?assertEqual(Q1 + length(?DIMS), Queries()),
    at(Emu, Day + ?D + 3 * ?H + 30),
    true = azmp_test_run:meter_pass(),
    ?assertEqual(Q1 + length(?DIMS), Queries()),
    reset(Emu).
