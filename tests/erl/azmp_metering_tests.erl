%% Pay-as-you-go metering end to end against the emulator: samples in UTC hours, hours closed and
%% reported in batches of at most 25, every per-item answer, cancellation, included quantities and
%% their term. The plugin's clock moves (azmp_test_clock); the emulator's stays real unless a test
%% moves it, so that Azure's 24 h window is Azure's.
-module(azmp_metering_tests).

-include_lib("eunit/include/eunit.hrl").

-define(M, emqx_azure_marketplace).
-define(MEM, azmp_test_platform).
-define(METER, emqx_azure_marketplace_meter).
-define(RECORDER, emqx_azure_marketplace_recorder).
-define(H, 3600).
-define(DIMS, [<<"session_minutes">>, <<"traffic_gb">>, <<"rule_actions">>]).

metering_test_() ->
    {setup,
     fun() ->
         Emu = azmp_test_env:start_emulator(#{dimensions => ?DIMS}),
         Metering = #{dimensions => [#{id => D, unit => <<"unit">>} || D <- ?DIMS ++ [<<"undeclared">>]] ++
                                    [#{id => <<"included_10">>, unit => <<"minute">>,
                                       included => #{<<"payg">> => 10}}],
                      grace_s => 300, tick_ms => 3600000, lease_s => 30},
         %% the emulator's plan knows included_10 too
         ok = azmp_emulator:set_dimensions(Emu, ?DIMS ++ [<<"included_10">>]),
         {Emu, azmp_test_env:start_plugin(Emu, #{metering => Metering})}
     end,
     fun({Emu, Plugin}) ->
         azmp_test_env:stop_plugin(Plugin),
         azmp_test_env:stop_emulator(Emu)
     end,
     fun({Emu, _}) ->
         [{"samples at 10:00:00.000, 10:59:59.999 and 11:00:00.000 land in two hours, reported as the hours",
           {timeout, 60, fun() -> hours(Emu) end}},
          {"refusals: unknown dimension, bad quantities, not linked, malformed; a retried source id counts once",
           fun() -> refusals(Emu) end},
          {"a source id counts once for dedupe_window_s after it was recorded, then the sweep deletes it; "
           "the source ids kept stay within the window's worth",
           {timeout, 120, fun() -> dedupe_window(Emu) end}},
          {"200 concurrent copies of one sample count once, beside 200 distinct samples",
           {timeout, 60, fun() -> concurrent_copies(Emu) end}},
          {"the source ids previous versions kept (a row per sample; ids packed in rows) are read at start: a "
           "retry of a sample recorded before the upgrade counts once, the oldest table is gone",
           {timeout, 60, fun() -> old_sources(Emu) end}},
          {"60 pending events go out as 3 batches (25 + 25 + 10)", {timeout, 60, fun() -> sixty(Emu) end}},
          {"one batch, every answer: Accepted, Duplicate (same / other quantity), Expired, ResourceNotActive, "
           "InvalidDimension", {timeout, 60, fun() -> every_answer(Emu) end}},
          {"cancel at 15:20 (Azure's time), heard of at 15:25: a late sample of 15:15 still counts, the hour closes after its grace, later usage refused",
           {timeout, 60, fun() -> cancel(Emu) end}},
          {"included quantities: only the excess is reported; they reset at the term's anniversary",
           {timeout, 60, fun() -> included(Emu) end}},
          {"the term counters a previous version kept (a row per subscription and dimension) are moved at start: "
           "the included quantity used before the upgrade stays used, the later of two copies kept",
           {timeout, 60, fun() -> old_term_counters(Emu) end}},
          {"the previous version's layout (links, claims and term counters in RAM, links indexed by subscription, "
           "no state rows) is changed at start: every row kept, the three tables on disc only, the index dropped, "
           "the links' state rows derived; the link is still found by its subscription and gates, and the next "
           "hour counts on the counter", {timeout, 60, fun() -> old_layout(Emu) end}},
          {"after a rollback (links written without their state rows, a state row left without its link), the "
           "next start derives the rows again: gating and recording see the link as it was last written",
           {timeout, 60, fun() -> rolled_back(Emu) end}},
          {"in a rolling upgrade, a link a node of an earlier build writes or deletes alone (no state row) is "
           "followed by its state row on the upgraded nodes while they run: gating and recording see it",
           {timeout, 60, fun() -> old_node_writes(Emu) end}},
          {"a subscription Azure gives no term: its included quantities renew monthly from its activation",
           {timeout, 60, fun() -> no_term(Emu) end}},
          {"daily reconciliation: a clean day has no difference; Azure's Mismatch is one, with an alarm",
           {timeout, 60, fun() -> reconcile(Emu) end}},
          {"a 30-hour Azure outage: expired hours carried forward, nothing lost, the 12 h alarm raised",
           {timeout, 120, fun() -> outage(Emu) end}}]
     end}.

%%--------------------------------------------------------------------
%% Helpers

real_hour() -> (erlang:system_time(second) div ?H) * ?H.

set_clock(T) -> azmp_test_clock:advance(T - emqx_azure_marketplace_clock:now()).

linked(Emu) -> azmp_test_usage:linked(Emu).
linked(Emu, SubOpts) -> azmp_test_usage:linked(Emu, SubOpts).

record(A, Dim, Q, AtMs) -> azmp_test_usage:record(A, Dim, Q, AtMs).

%% What Azure accepted for the subscription: [{Hour, Dimension, Quantity}].
accepted(Emu, SubId) ->
    lists:sort([{H, D, Q} || #{resource_id := R, dimension := D, hour := H, quantity := Q} <- azmp_emulator:usage(Emu),
                             R =:= SubId]).

report(A, From, To) -> azmp_test_usage:report(A, From, To).

row(A, Dim, Hour) ->
    [R] = [R || R = #{dimension := D, hour := H} <- report(A, Hour, Hour), D =:= Dim, H =:= Hour],
    R.

batches(Emu) -> length([x || #{op := batch_usage_event} <- maps:get(requests, azmp_emulator:stats(Emu))]).

%%--------------------------------------------------------------------
%% Tests

%% (The same in another time zone: azmp_cluster_tests runs it on a node with TZ set.)
hours(Emu) ->
    H0 = real_hour() - 3 * ?H,
    {A, SubId} = linked(Emu),
    set_clock(H0 + ?H + 60),
    ok = record(A, <<"session_minutes">>, 1, H0 * 1000),
    ok = record(A, <<"session_minutes">>, <<"2.5">>, (H0 + ?H) * 1000 - 1),
    ok = record(A, <<"session_minutes">>, 4, (H0 + ?H) * 1000),
    set_clock(H0 + 2 * ?H + 301),
    true = azmp_test_run:meter_pass(),
    ?assertEqual([{H0, <<"session_minutes">>, 3.5}, {H0 + ?H, <<"session_minutes">>, 4}], accepted(Emu, SubId)),
    ?assertMatch(#{status := done, recorded := <<"3.5">>, reported := <<"3.5">>, event_id := <<_/binary>>},
                 row(A, <<"session_minutes">>, H0)),
    ?assertMatch(#{status := done, recorded := <<"4">>, reported := <<"4">>}, row(A, <<"session_minutes">>, H0 + ?H)),
    %% Sent as the hours: effectiveStartTime hh:00:00Z.
    Times = [T || #{resource_id := R, time := T} <- azmp_emulator:usage(Emu), R =:= SubId],
    ?assertEqual([H0, H0 + ?H], lists:sort(Times)),
    azmp_test_clock:reset().

refusals(Emu) ->
    {A, _SubId} = linked(Emu),
    Now = erlang:system_time(millisecond),
    Sample = #{dimension => <<"session_minutes">>, quantity => 1, at => Now, source_id => <<"r1">>},
    ?assertEqual({error, unknown_dimension}, ?M:record_usage(A, Sample#{dimension => <<"nope">>})),
    [?assertEqual({Q, {error, bad_quantity}}, {Q, ?M:record_usage(A, Sample#{quantity => Q})})
     || Q <- [0, -1, 0.0, <<"1.0000001">>, <<"abc">>, nan, [1]]],
    ?assertEqual({error, not_linked}, ?M:record_usage(<<"nobody">>, Sample)),
    ?assertEqual({error, {badarg, source_id}}, ?M:record_usage(A, maps:remove(source_id, Sample))),
    ?assertEqual({error, {badarg, at}}, ?M:record_usage(A, Sample#{at => <<"now">>})),
    ?assertEqual({error, {badarg, sample}}, ?M:record_usage(A, not_a_map)),
    ?assertEqual({error, {badarg, account_id}}, ?M:record_usage(<<>>, Sample)),
    %% A retried call (same source id) counts once.
    ok = ?M:record_usage(A, Sample),
    ok = ?M:record_usage(A, Sample),
    Hour = (Now div 1000 div ?H) * ?H,
    ?assertMatch(#{recorded := <<"1">>}, row(A, <<"session_minutes">>, Hour)).

%% The window is the default, 3600 s; the sweep (every 60 s for it) is run by hand as the clock moves.
dedupe_window(Emu) ->
    {A, _SubId} = linked(Emu),
    %% Later than any other test's clock: what they recorded is older than a window, swept here.
    T0 = real_hour() + 10 * 24 * ?H + 60,
    set_clock(T0),
    _ = ?RECORDER:sweep_now(),
    ?assertMatch(#{entries := 0}, ?RECORDER:sources()),
    Sample = #{dimension => <<"session_minutes">>, quantity => 1, at => T0 * 1000, source_id => <<"retried">>},
    ok = ?M:record_usage(A, Sample),
    set_clock(T0 + 3599),
    ok = ?M:record_usage(A, Sample),
    ?assertEqual(0, ?RECORDER:sweep_now()),
    ?assertMatch(#{recorded := <<"1">>}, row(A, <<"session_minutes">>, T0 - 60)),
    set_clock(T0 + 3600),
    ?assertEqual(0, ?RECORDER:sweep_now()),
    ?assertMatch(#{entries := 1}, ?RECORDER:sources()),
    set_clock(T0 + 3601),
    ?assertEqual(1, ?RECORDER:sweep_now()),
    ?assertMatch(#{entries := 0}, ?RECORDER:sources()),
    %% Gone: the same id again is another sample (the window is what a retry must come within).
    ok = ?M:record_usage(A, Sample),
    ?assertMatch(#{recorded := <<"2">>}, row(A, <<"session_minutes">>, T0 - 60)),
    %% Ten samples a minute for three hours, the sweep each minute: never more kept than the last
    %% hour's and the minute's (61 x 10), which is where it stays.
    Kept = [begin
                Now = T0 + 2 * ?H + M * 60,
                set_clock(Now),
                [ok = ?M:record_usage(A, #{dimension => <<"traffic_gb">>, quantity => 1, at => Now * 1000,
                                           source_id => iolist_to_binary(io_lib:format("m~B-~B", [M, I]))})
                 || I <- lists:seq(1, 10)],
                _ = ?RECORDER:sweep_now(),
                maps:get(entries, ?RECORDER:sources())
            end || M <- lists:seq(0, 179)],
    ?assert(lists:max(Kept) =< 611),
    ?assertEqual(610, lists:last(Kept)),
    ?assertEqual(10 * 180, lists:sum([binary_to_integer(R) || #{recorded := R} <- report(A, T0 + ?H, T0 + 6 * ?H)])),
    azmp_test_clock:reset().

concurrent_copies(Emu) ->
    {A, _SubId} = linked(Emu),
    Now = emqx_azure_marketplace_clock:now(),
    Sample = fun(Id) -> #{dimension => <<"traffic_gb">>, quantity => <<"0.001">>, at => Now * 1000, source_id => Id} end,
    Self = self(),
    Pids = [spawn_link(fun() ->
                           Id = case I rem 2 of 0 -> <<"copy">>; 1 -> integer_to_binary(I) end,
                           Self ! {self(), ?M:record_usage(A, Sample(Id))}
                       end) || I <- lists:seq(1, 400)],
    ?assertEqual([ok], lists:usort([receive {P, R} -> R end || P <- Pids])),
    ?assertMatch(#{recorded := <<"0.201">>}, row(A, <<"traffic_gb">>, Now - Now rem ?H)).

%% The previous versions' table of source ids, with the row record_usage wrote for a sample (its
%% quantity is in the ledger already), as it is on disc when the new version starts.
old_sources(Emu) ->
    {A, _SubId} = linked(Emu),
    Now = emqx_azure_marketplace_clock:now(),
    Sample = fun(Id) -> #{dimension => <<"session_minutes">>, quantity => 1, at => Now * 1000, source_id => Id} end,
    ok = ?M:record_usage(A, Sample(<<"before-upgrade">>)),
    {atomic, ok} = mnesia:create_table(azmp_usage_source, [{disc_copies, [node()]}, {attributes, [key, bucket, at]}]),
    ok = mnesia:dirty_write({azmp_usage_source, {A, <<"old-version">>}, undefined, Now}),
    %% The version before packed the ids themselves in the rows of azmp_usage_dedupe (its row for a
    %% sample whose quantity is in the ledger already, here the one recorded before the upgrade).
    OldKey = <<(byte_size(A)):16, A/binary, "row-of-version-before">>,
    ok = mnesia:dirty_write({azmp_usage_dedupe, {node(), 1, 1}, Now, <<(byte_size(OldKey)):16, OldKey/binary>>}),
    ok = application:stop(emqx_azure_marketplace),
    {ok, _} = application:ensure_all_started(emqx_azure_marketplace),
    ?assertNot(lists:member(azmp_usage_source, mnesia:system_info(tables))),
    %% counted before: once (the old table's row, and a row of this version read back at start)
    [ok = ?M:record_usage(A, Sample(Id)) || Id <- [<<"old-version">>, <<"before-upgrade">>, <<"row-of-version-before">>]],
    ?assertMatch(#{recorded := <<"1">>}, row(A, <<"session_minutes">>, Now - Now rem ?H)),
    ok = ?M:record_usage(A, Sample(<<"after-upgrade">>)),
    ?assertMatch(#{recorded := <<"2">>}, row(A, <<"session_minutes">>, Now - Now rem ?H)).

sixty(Emu) ->
    {A, SubId} = linked(Emu),
    Base = real_hour() - 22 * ?H,
    [begin
         set_clock(Base + I * ?H + 60),
         [ok = record(A, D, I + 1, (Base + I * ?H) * 1000) || D <- ?DIMS]
     end || I <- lists:seq(0, 19)],
    set_clock(real_hour() + 60),
    ok = azmp_emulator:reset_stats(Emu),
    true = azmp_test_run:meter_pass(),
    ?assertEqual(3, batches(Emu)),
    ?assertEqual(60, length(accepted(Emu, SubId))),
    ?assertEqual(lists:sum([3 * (I + 1) || I <- lists:seq(0, 19)]),
                 lists:sum([Q || {_, _, Q} <- accepted(Emu, SubId)])),
    azmp_test_clock:reset().

every_answer(Emu) ->
    {A, SubA} = linked(Emu),
    {B, SubB} = linked(Emu),
    H = real_hour() - 2 * ?H,
    Old = real_hour() - 26 * ?H,
    %% Azure suspended B; no webhook reached us (we still think it linked).
    {ok, _} = azmp_emulator:add_operation(Emu, SubB, #{action => <<"Suspend">>}),
    set_clock(Old + 60),
    ok = record(A, <<"session_minutes">>, 2, Old * 1000),
    set_clock(H + 60),
    ok = record(A, <<"session_minutes">>, 1, H * 1000),
    ok = record(A, <<"traffic_gb">>, 5, H * 1000),
    ok = record(A, <<"rule_actions">>, 3, H * 1000),
    ok = record(A, <<"undeclared">>, 1, H * 1000),
    ok = record(B, <<"session_minutes">>, 1, H * 1000),
    %% An earlier reply was lost (Azure holds traffic_gb = 5, ours), and Azure holds 1 for rule_actions.
    C = emqx_azure_marketplace_azure:client(),
    Ev = fun(D, Q) -> #{resource_id => SubA, dimension => D, quantity => Q, plan_id => <<"payg">>,
                        effective_start_time => iso(H)} end,
    {ok, _} = emqx_azure_marketplace_client:post_usage_batch(C, [Ev(<<"traffic_gb">>, 5), Ev(<<"rule_actions">>, 1)]),
    set_clock(real_hour() + 60),
    ok = azmp_emulator:reset_stats(Emu),
    true = azmp_test_run:meter_pass(),
    ?assertEqual(1, batches(Emu)),
    Current = real_hour(),
    ?assertMatch(#{status := done, event_id := <<_/binary>>}, row(A, <<"session_minutes">>, H)),
    ?assertMatch(#{status := done, azure_quantity := <<"5">>}, row(A, <<"traffic_gb">>, H)),
    ?assertMatch(#{status := mismatch, azure_quantity := <<"1">>,
                   carried_out := #{to_hour := Current, quantity := <<"2">>}}, row(A, <<"rule_actions">>, H)),
    ?assertMatch(#{status := rejected, reason := 'InvalidDimension'}, row(A, <<"undeclared">>, H)),
    ?assertMatch(#{status := carried, reason := 'Expired', carried_out := #{to_hour := Current, quantity := <<"2">>}},
                 row(A, <<"session_minutes">>, Old)),
    %% Azure says B is not active while we think it linked: its subscription is read (with back-off
    %% and an alarm) before anything else is done with the hour; it is never resent every tick.
    ?assertMatch(#{status := check, reason := 'ResourceNotActive'}, row(B, <<"session_minutes">>, H)),
    %% The carried quantities wait in the current hour, marked with their origin.
    ?assertMatch(#{status := open, carried_in := [#{from_hour := Old, quantity := <<"2">>, why := 'Expired'}]},
                 row(A, <<"session_minutes">>, Current)),
    ?assertMatch(#{carried_in := [#{from_hour := H, quantity := <<"2">>, why := 'Duplicate'}]},
                 row(A, <<"rule_actions">>, Current)),
    Alarms = ?METER:alarms(),
    [?assert(maps:is_key({usage, K}, Alarms)) || K <- [mismatch, carried, rejected, check]],
    %% Nothing Accepted is sent again; B's hour waits for its back-off.
    Before = accepted(Emu, SubA),
    ok = azmp_emulator:reset_stats(Emu),
    true = azmp_test_run:meter_pass(),
    ?assertEqual(Before, accepted(Emu, SubA)),
    ?assertEqual(0, batches(Emu)),
    %% After it, Azure says B is suspended: not gone, so the hour is sent again later, with back-off.
    set_clock(real_hour() + 60 + 61),
    true = azmp_test_run:meter_pass(),
    ?assertMatch(#{status := pending, reason := 'ResourceNotActive', attempts := 2}, row(B, <<"session_minutes">>, H)),
    azmp_test_clock:reset().

iso(H) -> list_to_binary(calendar:system_time_to_rfc3339(H, [{unit, second}, {offset, "Z"}])).

%% Azure cancels at 15:20 (its operation's time); we hear of it at 15:25. Usage up to 15:20 still
%% counts, even reported late, until its hour closes after the grace; usage from 15:20 on is refused.
cancel(Emu) ->
    {A, SubId} = linked(Emu),
    H = real_hour() - 3 * ?H,  % "15:00"
    set_clock(H + 10 * 60),
    ok = record(A, <<"session_minutes">>, 7, (H + 5 * 60) * 1000),
    ok = azmp_emulator:set_clock_offset(Emu, H + 20 * 60 - erlang:system_time(second)),
    set_clock(H + 25 * 60),
    {ok, 200, _} = azmp_emulator:send_webhook(Emu, azmp_test_env:webhook_url(), 'Unsubscribe', SubId, #{}),
    ok = azmp_emulator:set_clock_offset(Emu, 0),
    #{cancelled_at := Cancelled} = emqx_azure_marketplace_store_links:link(A),
    ?assertEqual(H + 20 * 60, Cancelled, "Azure's time of the cancellation, not when we heard of it"),
    ?assertMatch({error, after_cancellation}, record(A, <<"session_minutes">>, 1, (Cancelled + 60) * 1000)),
    ?assertMatch({error, after_cancellation}, record(A, <<"session_minutes">>, 1, Cancelled * 1000)),
    %% 15:40: a sample of 15:15 arrives late: its hour is still open.
    set_clock(H + 40 * 60),
    ok = record(A, <<"session_minutes">>, 1, (Cancelled - 5 * 60) * 1000),
    true = azmp_test_run:meter_pass(),
    ?assertEqual([], accepted(Emu, SubId), "the hour closes after its grace, like any other"),
    %% 16:05 and a second: closed and sent, within Azure's window.
    set_clock(H + ?H + 301),
    true = azmp_test_run:meter_pass(),
    ?assertEqual([{H, <<"session_minutes">>, 8}], accepted(Emu, SubId)),
    ?assertMatch(#{status := done}, row(A, <<"session_minutes">>, H)),
    ?assertEqual({error, hour_closed}, record(A, <<"session_minutes">>, 1, (Cancelled - 60) * 1000)),
    azmp_test_clock:reset().

included(Emu) ->
    %% The term renews at Anniversary (an hour 10 h ago); it began one month before.
    Anniversary = real_hour() - 10 * ?H,
    {{Y, Mo, D}, Time} = calendar:system_time_to_universal_time(Anniversary, second),
    {Y1, Mo1} = case Mo of 1 -> {Y - 1, 12}; _ -> {Y, Mo - 1} end,
    Start = calendar:datetime_to_gregorian_seconds({{Y1, Mo1, min(D, calendar:last_day_of_the_month(Y1, Mo1))}, Time})
            - 62167219200,
    {A, SubId} = linked(Emu, #{term => #{term_unit => <<"P1M">>, start_date => Start,
                                         end_date => Anniversary}}),
    Dim = <<"included_10">>,
    Samples = [{-3, 6}, {-2, 6}, {-1, 3}, {0, 4}, {1, 8}],
    [begin
         T = Anniversary + K * ?H,
         set_clock(T + 60),
         ok = record(A, Dim, Q, T * 1000)
     end || {K, Q} <- Samples],
    set_clock(real_hour() + 60),
    true = azmp_test_run:meter_pass(),
    Rows = [{(H - Anniversary) div ?H, I, R} || #{dimension := Di, hour := H, included := I, reported := R}
                                                    <- report(A, Anniversary - 3 * ?H, Anniversary + ?H), Di =:= Dim],
    ?assertEqual([{-3, <<"6">>, <<"0">>}, {-2, <<"4">>, <<"2">>}, {-1, <<"0">>, <<"3">>},
                  {0, <<"4">>, <<"0">>}, {1, <<"6">>, <<"2">>}], Rows),
    %% Nothing is sent for an hour whose amount is zero.
    ?assertEqual([{Anniversary - 2 * ?H, Dim, 2}, {Anniversary - ?H, Dim, 3}, {Anniversary + ?H, Dim, 2}],
                 accepted(Emu, SubId)),
    azmp_test_clock:reset().

%% Hours of a dimension with 10 included per term: 6 used before the upgrade; the previous version's
%% table says 9 (a node of that version closed another hour meanwhile), and holds another
%% subscription's counter; then the oldest versions' table shape.
old_term_counters(Emu) ->
    Anniversary = real_hour() - 10 * ?H,
    {{Y, Mo, D}, Time} = calendar:system_time_to_universal_time(Anniversary, second),
    {Y1, Mo1} = case Mo of 1 -> {Y - 1, 12}; _ -> {Y, Mo - 1} end,
    Start = calendar:datetime_to_gregorian_seconds({{Y1, Mo1, min(D, calendar:last_day_of_the_month(Y1, Mo1))}, Time})
            - 62167219200,
    {A, SubId} = linked(Emu, #{term => #{term_unit => <<"P1M">>, start_date => Start, end_date => Anniversary}}),
    Dim = <<"included_10">>,
    Counter = fun(Sub) ->
                  Shard = emqx_azure_marketplace_usage_terms:shard(Sub),
                  [{azmp_usage_terms, Shard, Bin}] = mnesia:dirty_read(azmp_usage_terms, Shard),
                  emqx_azure_marketplace_usage_terms:get(Sub, Dim, emqx_azure_marketplace_usage_terms:decode(Bin))
              end,
    set_clock(Anniversary + ?H + 60),
    ok = record(A, Dim, 6, (Anniversary + ?H) * 1000),
    set_clock(Anniversary + 2 * ?H + 400),
    true = azmp_test_run:meter_pass(),
    ?assertMatch({Anniversary, 6000000, _, _}, Counter(SubId)),
    {atomic, ok} = mnesia:create_table(azmp_usage_term, [{disc_copies, [node()]},
                                                         {attributes, [key, term_start, used, prev_term_start, prev_used]}]),
    ok = mnesia:dirty_write({azmp_usage_term, {SubId, Dim}, Anniversary, 9000000, 0, 0}),
    Other = <<"other-subscription">>,
    ok = mnesia:dirty_write({azmp_usage_term, {Other, Dim}, Anniversary, 2000000, Anniversary - 30 * 86400, 7}),
    Restart = fun() ->
                  ok = application:stop(emqx_azure_marketplace),
                  {ok, _} = application:ensure_all_started(emqx_azure_marketplace),
                  ?assertNot(lists:member(azmp_usage_term, mnesia:system_info(tables)))
              end,
    Restart(),
    ?assertEqual({Anniversary, 9000000, 0, 0}, Counter(SubId)),
    ?assertEqual({Anniversary, 2000000, Anniversary - 30 * 86400, 7}, Counter(Other)),
    %% The oldest versions' table, never given the term before.
    Oldest = <<"oldest-subscription">>,
    {atomic, ok} = mnesia:create_table(azmp_usage_term, [{disc_copies, [node()]}, {attributes, [key, term_start, used]}]),
    ok = mnesia:dirty_write({azmp_usage_term, {Oldest, Dim}, Anniversary, 5}),
    Restart(),
    ?assertEqual({Anniversary, 5, 0, 0}, Counter(Oldest)),
    ?assertEqual({Anniversary, 9000000, 0, 0}, Counter(SubId)),
    %% 9 of 10 used: of the next hour's 4, 1 is included, 3 reported.
    set_clock(Anniversary + 2 * ?H + 500),
    ok = record(A, Dim, 4, (Anniversary + 2 * ?H + 60) * 1000),
    set_clock(Anniversary + 3 * ?H + 400),
    true = azmp_test_run:meter_pass(),
    ?assertMatch([#{included := <<"1">>, reported := <<"3">>}],
                 [R || R = #{dimension := Di} <- report(A, Anniversary + 2 * ?H, Anniversary + 2 * ?H), Di =:= Dim]),
    azmp_test_clock:reset().

%% A node of the previous version kept claims and term counters in RAM (disc_copies) and links with
%% an index by subscription; it restarts with this version.
old_layout(Emu) ->
    H0 = real_hour() - 6 * ?H,
    {A, SubId} = linked(Emu, #{term => #{term_unit => <<"P1M">>, start_date => H0 - 86400, end_date => H0 + 29 * 86400}}),
    Dim = <<"included_10">>,
    set_clock(H0 + 60),
    ok = record(A, Dim, 7, (H0 + 30) * 1000),
    set_clock(H0 + ?H + 400),
    true = azmp_test_run:meter_pass(),
    {atomic, ok} = mnesia:change_table_copy_type(azmp_claim, node(), disc_copies),
    {atomic, ok} = mnesia:change_table_copy_type(azmp_usage_terms, node(), disc_copies),
    {atomic, ok} = mnesia:change_table_copy_type(azmp_link, node(), disc_copies),
    {atomic, ok} = mnesia:add_table_index(azmp_link, subscription_id),
    {atomic, ok} = mnesia:delete_table(azmp_link_state),
    Links = lists:sort(ets:tab2list(azmp_link)),
    Claims = lists:sort(ets:tab2list(azmp_claim)),
    Counters = lists:sort(ets:tab2list(azmp_usage_terms)),
    ?assert(lists:keymember(SubId, 2, Claims)),
    ok = application:stop(emqx_azure_marketplace),
    {ok, _} = application:ensure_all_started(emqx_azure_marketplace),
    ?assertEqual(disc_only_copies, mnesia:table_info(azmp_claim, storage_type)),
    ?assertEqual(disc_only_copies, mnesia:table_info(azmp_usage_terms, storage_type)),
    ?assertEqual(disc_only_copies, mnesia:table_info(azmp_link, storage_type)),
    ?assertEqual(disc_copies, mnesia:table_info(azmp_link_state, storage_type)),
    ?assertEqual([], mnesia:table_info(azmp_link, index)),
    ?assertEqual(Links, lists:sort(mnesia:dirty_match_object(mnesia:table_info(azmp_link, wild_pattern)))),
    ?assertEqual(length(Links), mnesia:table_info(azmp_link_state, size)),
    ?assertEqual(linked, emqx_azure_marketplace_lifecycle:link_state(A)),
    ?assertMatch(#{status := linked, subscription_id := SubId}, emqx_azure_marketplace:link_status(A)),
    ?assertEqual(Claims, lists:sort(mnesia:dirty_match_object(mnesia:table_info(azmp_claim, wild_pattern)))),
    ?assertEqual(Counters, lists:sort(mnesia:dirty_match_object(mnesia:table_info(azmp_usage_terms, wild_pattern)))),
    ?assertMatch(#{account_id := A, subscription_id := SubId},
                 emqx_azure_marketplace_store_links:link_by_subscription(SubId)),
    %% 7 of 10 used: of the next hour's 5, 3 are included, 2 reported.
    set_clock(H0 + ?H + 500),
    ok = record(A, Dim, 5, (H0 + ?H + 60) * 1000),
    set_clock(H0 + 2 * ?H + 400),
    true = azmp_test_run:meter_pass(),
    ?assertMatch([#{included := <<"3">>, reported := <<"2">>}],
                 [R || R = #{dimension := Di} <- report(A, H0 + ?H, H0 + ?H), Di =:= Dim]),
    azmp_test_clock:reset().

%% A previous version, rolled back to, wrote links and no state rows: one link cancelled 10 minutes
%% ago, and one state row whose link it deleted (as a test would: no version deletes links).
rolled_back(Emu) ->
    {A, SubId} = linked(Emu),
    {B, _} = linked(Emu),
    Now = emqx_azure_marketplace_clock:now(),
    ok = application:stop(emqx_azure_marketplace),
    [L] = mnesia:dirty_read(azmp_link, A),
    {atomic, ok} = mnesia:transaction(fun() ->
        %% #azmp_link.state, #azmp_link.cancelled_at
        mnesia:write(setelement(10, setelement(4, L, unsubscribed), Now - 600)),
        mnesia:delete({azmp_link, B})
    end),
    ?assertMatch([_], mnesia:dirty_read(azmp_link_state, B)),
    {ok, _} = application:ensure_all_started(emqx_azure_marketplace),
    ?assertEqual([], mnesia:dirty_read(azmp_link_state, B)),
    ?assertEqual(unsubscribed, emqx_azure_marketplace_lifecycle:link_state(A)),
    ?assertMatch(#{status := unsubscribed, subscription_id := SubId}, emqx_azure_marketplace:link_status(A)),
    ?assertEqual(none, emqx_azure_marketplace_lifecycle:link_state(B)),
    %% Usage after the cancellation is refused, as the link says.
    ?assertMatch({error, _}, record(A, <<"session_minutes">>, 1, Now * 1000)),
    %% Every state row is its link's.
    States = lists:sort(ets:tab2list(azmp_link_state)),
    ?assertEqual(length(States), mnesia:table_info(azmp_link, size)),
    [?assertMatch([_], mnesia:dirty_read(azmp_link, Acc)) || {azmp_link_state, Acc, _, _, _, _} <- States].

old_node_writes(Emu) ->
    {A, _} = linked(Emu),
    {B, _} = linked(Emu),
    Now = emqx_azure_marketplace_clock:now(),
    ?assertEqual(linked, emqx_azure_marketplace_lifecycle:link_state(A)),
    [L] = mnesia:dirty_read(azmp_link, A),
    %% What a node of a build before state rows does: the link alone, in its own transaction.
    {atomic, ok} = mnesia:transaction(fun() ->
        mnesia:write(setelement(10, setelement(4, L, unsubscribed), Now - 600)),  % state, cancelled_at
        mnesia:delete({azmp_link, B})
    end),
    true = azmp_test_env:wait_until(fun() -> emqx_azure_marketplace_lifecycle:link_state(A) =:= unsubscribed end, 5000),
    true = azmp_test_env:wait_until(fun() -> mnesia:dirty_read(azmp_link_state, B) =:= [] end, 5000),
    ?assertEqual(none, emqx_azure_marketplace_lifecycle:link_state(B)),
    ?assertMatch({error, _}, record(A, <<"session_minutes">>, 1, Now * 1000)),
    ?assertMatch([{azmp_link_state, A, _, unsubscribed, _, _}], mnesia:dirty_read(azmp_link_state, A)).

%% A link without Azure's term (as a version before terms were kept wrote it), activated a month
%% before Anniversary, which is not a calendar month's start: the hour after Anniversary opens a
%% new term, counted from the activation (monthly), not from the 1st of the month.
no_term(Emu) ->
    Anniversary = case real_hour() - 10 * ?H of
                      T0 -> case calendar:system_time_to_universal_time(T0, second) of
                                {{_, _, 1}, {0, _, _}} -> T0 + ?H;
                                _ -> T0
                            end
                  end,
    {{Y, Mo, D}, Time} = calendar:system_time_to_universal_time(Anniversary, second),
    {Y1, Mo1} = case Mo of 1 -> {Y - 1, 12}; _ -> {Y, Mo - 1} end,
    Activated = calendar:datetime_to_gregorian_seconds({{Y1, Mo1, min(D, calendar:last_day_of_the_month(Y1, Mo1))}, Time})
                - 62167219200,
    {A, SubId} = linked(Emu),
    [L] = mnesia:dirty_read(azmp_link, A),
    [St] = mnesia:dirty_read(azmp_link_state, A),
    {atomic, ok} = mnesia:transaction(fun() ->
        %% #azmp_link.term, #azmp_link.activated_at; #azmp_link_state.activated_at
        mnesia:write(setelement(12, setelement(7, L, undefined), Activated)),
        mnesia:write(setelement(6, St, Activated))
    end),
    Dim = <<"included_10">>,
    set_clock(Anniversary + ?H + 60),
    ok = record(A, Dim, 6, (Anniversary + ?H) * 1000),
    set_clock(Anniversary + 2 * ?H + 400),
    true = azmp_test_run:meter_pass(),
    Shard = emqx_azure_marketplace_usage_terms:shard(SubId),
    [{azmp_usage_terms, Shard, Bin}] = mnesia:dirty_read(azmp_usage_terms, Shard),
    ?assertMatch({Anniversary, 6000000, _, _},
                 emqx_azure_marketplace_usage_terms:get(SubId, Dim, emqx_azure_marketplace_usage_terms:decode(Bin))),
    azmp_test_clock:reset().

%% Azure's metering answers 503 for 30 hours (both clocks move: the plugin's and the emulator's).
outage(Emu) ->
    {A, SubId} = linked(Emu),
    S = real_hour(),
    ok = azmp_emulator:inject(Emu, batch_usage_event, lists:duplicate(2000, {status, 503})),
    At = fun(T) -> set_clock(T), ok = azmp_emulator:set_clock_offset(Emu, T - erlang:system_time(second)) end,
    Alarmed = lists:foldl(
        fun(I, Seen) ->
            At(S + I * ?H + 600),
            ok = record(A, <<"session_minutes">>, <<"1.25">>, (S + I * ?H + 300) * 1000),
            true = azmp_test_run:meter_pass(),
            Seen orelse maps:is_key(usage_unsent_12h, ?METER:alarms())
        end, false, lists:seq(0, 29)),
    ?assert(Alarmed),
    ?assertEqual([], accepted(Emu, SubId)),
    %% Azure is back. The retries' back-off is at most an hour. A 503 may have been taken by Azure: the
    %% hours it answered are in doubt, so those now Expired are looked up in usageEvents before being
    %% carried (Azure holds none of them), and the carries go out with the next hour.
    ok = azmp_emulator:clear_faults(Emu, batch_usage_event),
    [begin At(S + (30 + K) * ?H + 400), true = azmp_test_run:meter_pass(), true = azmp_test_run:meter_pass() end || K <- [0, 1, 2]],
    ?assert(lists:any(fun(#{reason := R}) -> R =:= 'Expired' end, report(A, S, S + 33 * ?H))),
    Rows = report(A, S, S + 33 * ?H),
    ?assert(lists:any(fun(#{status := St}) -> St =:= carried end, Rows)),
    %% Nothing lost: Azure holds exactly what was recorded (30 x 1.25).
    ?assertEqual(37.5, lists:sum([Q || {_, _, Q} <- accepted(Emu, SubId)])),
    ?assertEqual([], [{H, St} || #{hour := H, status := St} <- report(A, S, S + 33 * ?H),
                                 not lists:member(St, [done, carried, open])]),
    %% (Another suite's subscription, suspended in Azure and never told us, may still be overdue.)
    ?assertNotMatch({SubId, _, _}, maps:get(usage_unsent_12h, ?METER:alarms(), undefined)),
    ok = azmp_emulator:set_clock_offset(Emu, 0),
    azmp_test_clock:reset().

reconcile(Emu) ->
    {A, SubId} = linked(Emu),
    H = real_hour() - 2 * ?H,
    Day = (H div 86400) * 86400,
    set_clock(H + 60),
    ok = record(A, <<"traffic_gb">>, <<"0.75">>, H * 1000),
    set_clock(real_hour() + 60),
    true = azmp_test_run:meter_pass(),
    Mine = fun({ok, Diffs}) -> [D || D = #{subscription_id := S} <- Diffs, S =:= SubId] end,
    ?assertEqual([], Mine(?M:reconcile_usage(Day))),
    ok = azmp_emulator:set_recon(Emu, #{resource_id => SubId, dimension => <<"traffic_gb">>, day => Day},
                                 #{recon_status => <<"Mismatch">>, processed_quantity => 0.5}),
    ?assertMatch([#{verdict := alarm, billed := <<"0.75">>, processed := <<"0.5">>, recon_status := <<"Mismatch">>}],
                 Mine(?M:reconcile_usage(Day))),
    ?assert(maps:is_key({usage, reconcile}, ?METER:alarms())),
    azmp_test_clock:reset().
