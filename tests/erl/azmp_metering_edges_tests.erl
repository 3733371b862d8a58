%% The money path at its edges, end to end against the emulator: each scenario is one of the edges a
%% review found (the meter billed twice, billed the wrong hour, lost usage or stopped billing
%% everyone), and failed on the meter before the core's plans decided it. The plugin's and the
%% emulator's clocks move together.
-module(azmp_metering_edges_tests).

-include_lib("eunit/include/eunit.hrl").

-define(M, emqx_azure_marketplace).
-define(METER, emqx_azure_marketplace_meter).
-define(LINKS, emqx_azure_marketplace_store_links).
-define(HISTORY, emqx_azure_marketplace_store_usage_history).
-define(H, 3600).
-define(D, 86400).
-define(DIMS, [<<"session_minutes">>, <<"traffic_gb">>]).

edges_test_() ->
    {setup,
     fun() ->
         Emu = azmp_test_env:start_emulator(#{dimensions => ?DIMS ++ [<<"included_10">>]}),
         Metering = #{dimensions => [#{id => D, unit => <<"unit">>} || D <- ?DIMS] ++
                                    [#{id => <<"included_10">>, unit => <<"minute">>, included => #{<<"payg">> => 10}}],
                      grace_s => 300, tick_ms => 3600000, lease_s => 30},
         {Emu, azmp_test_env:start_plugin(Emu, #{metering => Metering})}
     end,
     fun({Emu, Plugin}) ->
         azmp_test_env:stop_plugin(Plugin),
         azmp_test_env:stop_emulator(Emu)
     end,
     fun({Emu, _}) ->
         [{"1. a batch Azure accepted whose reply was lost, then Azure unreachable until the hour is 24 h old: "
           "looked up in usageEvents, billed once (not carried a second time); a failed lookup holds it with "
           "an alarm", {timeout, 120, fun() -> lost_reply_then_expired(Emu) end}},
          {"2. samples days old, in 1970, in the future or before the activation are refused by name, nothing "
           "stored", {timeout, 60, fun() -> time_window(Emu) end}},
          {"3. one customer's hour of 4 trillion units is billed exactly, a fifth trillion refused, and every "
           "other subscription still bills", {timeout, 60, fun() -> large_customer(Emu) end}},
          {"4. our plan lags Azure's (a ChangePlan deferred): BadArgument, the subscription read, the hour "
           "sent again with Azure's plan and billed", {timeout, 60, fun() -> plan_lag(Emu) end}},
          {"6. Azure's answer as Microsoft's samples write it (no offset, ids in upper case) is read at once",
           {timeout, 60, fun() -> microsoft_answer(Emu) end}},
          {"8. an hour whose link is gone is dropped with its reason and an alarm, not held forever",
           {timeout, 60, fun() -> link_gone(Emu) end}},
          {"9. a late sample of a term's last hour, arriving in the next term, is billed against its own "
           "term (used up), not absorbed by the new term's included quantity",
           {timeout, 60, fun() -> late_sample_own_term(Emu) end}},
          {"10. 16 callers record into the current hour while the meter closes, sends and archives the one "
           "before (both lock the ledger's tables): every sample acknowledged counts once, both hours billed "
           "exactly", {timeout, 120, fun() -> record_while_closing(Emu) end}}]
     end}.

%%--------------------------------------------------------------------

real_hour() -> (erlang:system_time(second) div ?H) * ?H.

%% Both clocks at T.
at(Emu, T) ->
    azmp_test_clock:advance(T - emqx_azure_marketplace_clock:now()),
    ok = azmp_emulator:set_clock_offset(Emu, T - erlang:system_time(second)).

reset(Emu) ->
    ok = azmp_emulator:set_clock_offset(Emu, 0),
    ok = azmp_emulator:set_answer_style(Emu, emulator),
    azmp_test_clock:reset().

record(A, Dim, Q, AtMs) -> azmp_test_usage:record(A, Dim, Q, AtMs).

row(A, Dim, Hour) ->
    [R] = [R || R = #{dimension := D, hour := H} <- azmp_test_usage:report(A, Hour, Hour), D =:= Dim, H =:= Hour],
    R.

%% What Azure accepted for the subscription: [{Hour, Dimension, Quantity}].
accepted(Emu, SubId) ->
    lists:sort([{H, D, Q} || #{resource_id := R, dimension := D, hour := H, quantity := Q} <- azmp_emulator:usage(Emu),
                             R =:= SubId]).

ticks(N) -> [true = azmp_test_run:meter_pass() || _ <- lists:seq(1, N)], ok.

%%--------------------------------------------------------------------

lost_reply_then_expired(Emu) ->
    {A, SubId} = azmp_test_usage:linked(Emu),
    {B, SubB} = azmp_test_usage:linked(Emu),
    H = real_hour() - 3 * ?H,
    at(Emu, H + 600),
    ok = record(A, <<"session_minutes">>, 4, (H + 60) * 1000),
    ok = record(B, <<"session_minutes">>, 6, (H + 60) * 1000),
    %% The hour closes; Azure takes the batch, its reply is lost on the way back, and Azure is
    %% unreachable from then on until the hour is more than 24 h old: every retry is a 503.
    at(Emu, H + ?H + 301),
    ok = azmp_emulator:inject(Emu, batch_usage_event, [{lost_reply, 0} | lists:duplicate(500, {status, 503})]),
    ticks(1),
    ?assertEqual([{H, <<"session_minutes">>, 4}], accepted(Emu, SubId)),
    ?assertMatch(#{status := pending, outcome_unknown := true}, row(A, <<"session_minutes">>, H)),
    [begin at(Emu, H + ?H + 301 + K * ?H), ticks(1) end || K <- lists:seq(1, 24)],
    ok = azmp_emulator:clear_faults(Emu, batch_usage_event),
    %% Azure answers Expired; the hours are looked up (one query for the day and dimension), not
    %% carried. The lookup fails first: both hours are held (an alarm), billed nowhere.
    %% (The plugin's client tries a call twice.)
    ok = azmp_emulator:inject(Emu, usage_events, lists:duplicate(2, {status, 503})),
    at(Emu, H + 26 * ?H + 400),
    ticks(3),
    [?assertMatch(#{status := lookup, reason := lookup_failed}, row(X, <<"session_minutes">>, H)) || X <- [A, B]],
    ?assert(maps:is_key({usage, lookup}, ?METER:alarms())),
    %% The back-off over, Azure's usageEvents show it holds both.
    at(Emu, H + 27 * ?H + 401),
    ticks(1),
    [?assertMatch(#{status := done, reason := found_in_usage_events}, row(X, <<"session_minutes">>, H)) || X <- [A, B]],
    ?assertEqual([{H, <<"session_minutes">>, 4}], accepted(Emu, SubId), "billed once"),
    ?assertEqual([{H, <<"session_minutes">>, 6}], accepted(Emu, SubB), "billed once"),
    ?assertEqual([], [R || X <- [A, B], R = #{carried_in := [_ | _]} <- azmp_test_usage:report(X, H, H + 28 * ?H)],
                 "nothing carried into a later hour"),
    reset(Emu).

time_window(Emu) ->
    Now = real_hour() + 1800,
    {A, _} = azmp_test_usage:linked_at(Emu, Now - 600),
    at(Emu, Now),
    Rec = fun(AtMs) -> record(A, <<"traffic_gb">>, 1, AtMs) end,
    %% The test clock is real time plus an offset: a second may pass between two calls.
    Oldest = (Now - ?D + 300) * 1000,
    TooLate = fun(R) -> {error, {too_late, #{oldest_accepted_ms := O}}} = R, O >= Oldest andalso O =< Oldest + 2000 end,
    ?assert(TooLate(Rec((Now - 3 * ?D) * 1000)), "a replay of days ago"),
    ?assert(TooLate(Rec(Now)), "seconds taken for milliseconds: 1970"),
    {error, {in_future, #{latest_accepted_ms := Latest}}} = Rec((Now + ?H) * 1000),
    ?assert(Latest >= (Now + 300) * 1000 andalso Latest =< (Now + 302) * 1000),
    ?assertEqual({error, {before_subscription, #{activated_at_ms => (Now - 600) * 1000}}}, Rec((Now - 900) * 1000)),
    ?assertEqual([], azmp_test_usage:report(A, Now - 3 * ?D, Now + ?H), "nothing stored"),
    ok = Rec((Now - 300) * 1000),
    ok = Rec((Now + 299) * 1000),
    ?assertMatch([#{recorded := <<"2">>}], azmp_test_usage:report(A, Now - 3 * ?D, Now + ?H)),
    reset(Emu).

large_customer(Emu) ->
    {Big, SubBig} = azmp_test_usage:linked(Emu),
    {Small, SubSmall} = azmp_test_usage:linked(Emu),
    H = real_hour() - 2 * ?H,
    at(Emu, H + 600),
    Trillion = 1000000000000,
    [ok = record(Big, <<"traffic_gb">>, Trillion, (H + 60) * 1000) || _ <- lists:seq(1, 4)],
    ?assertEqual({error, {hour_total_too_large, #{max => 4 * Trillion * 1000000}}},
                 record(Big, <<"traffic_gb">>, 1, (H + 60) * 1000)),
    ok = record(Small, <<"traffic_gb">>, <<"0.5">>, (H + 60) * 1000),
    at(Emu, H + ?H + 301),
    ticks(1),
    ?assertEqual([{H, <<"traffic_gb">>, 4 * Trillion}], accepted(Emu, SubBig)),
    ?assertEqual([{H, <<"traffic_gb">>, 0.5}], accepted(Emu, SubSmall)),
    ?assertMatch(#{status := done, reported := <<"4000000000000">>}, row(Big, <<"traffic_gb">>, H)),
    reset(Emu).

plan_lag(Emu) ->
    {A, SubId} = azmp_test_usage:linked(Emu),
    ?assertMatch(#{plan_id := <<"payg">>}, ?LINKS:link(A)),
    ok = azmp_emulator:set_plan(Emu, SubId, <<"payg-premium">>),
    H = real_hour() - 2 * ?H,
    at(Emu, H + 600),
    ok = record(A, <<"session_minutes">>, 3, (H + 60) * 1000),
    at(Emu, H + ?H + 301),
    ticks(1),
    ?assertMatch(#{status := check, reason := 'BadArgument'}, row(A, <<"session_minutes">>, H)),
    ticks(2),
    ?assertMatch(#{status := done, plan_id := <<"payg-premium">>}, row(A, <<"session_minutes">>, H)),
    ?assertEqual([{H, <<"session_minutes">>, 3}], accepted(Emu, SubId)),
    ?assertEqual([<<"payg-premium">>], [P || #{resource_id := R, plan_id := P} <- azmp_emulator:usage(Emu), R =:= SubId]),
    reset(Emu).

microsoft_answer(Emu) ->
    {A, SubId} = azmp_test_usage:linked(Emu),
    ok = azmp_emulator:set_answer_style(Emu, microsoft_samples),
    H = real_hour() - 2 * ?H,
    at(Emu, H + 600),
    ok = record(A, <<"session_minutes">>, 2, (H + 60) * 1000),
    at(Emu, H + ?H + 301),
    ok = azmp_emulator:reset_stats(Emu),
    ticks(2),
    ?assertMatch(#{status := done, event_id := <<_:8, _/binary>>}, row(A, <<"session_minutes">>, H)),
    ?assertEqual([{H, <<"session_minutes">>, 2}], accepted(Emu, SubId)),
    ?assertEqual(1, length([x || #{op := batch_usage_event} <- maps:get(requests, azmp_emulator:stats(Emu))]),
                 "answered once: not resent"),
    reset(Emu).

link_gone(Emu) ->
    {A, SubId} = azmp_test_usage:linked(Emu),
    H = real_hour() - 2 * ?H,
    at(Emu, H + 600),
    ok = record(A, <<"session_minutes">>, 2, (H + 60) * 1000),
    {atomic, ok} = mnesia:transaction(fun() -> mnesia:delete({azmp_link, A}), mnesia:delete({azmp_link_state, A}) end),
    at(Emu, H + ?H + 301),
    ticks(2),
    [Row] = [R || R = #{subscription_id := S, hour := Hr} <- ?HISTORY:usage_between(H, H), S =:= SubId, Hr =:= H],
    ?assertMatch(#{status := dropped, reason := link_not_found}, Row),
    ?assert(maps:is_key({usage, dropped}, ?METER:alarms())),
    ?assertEqual([], accepted(Emu, SubId)),
    reset(Emu).

late_sample_own_term(Emu) ->
    %% The monthly term renews at T (an hour 6 h ago); 10 minutes included per term.
    T = real_hour() - 6 * ?H,
    {{Y, Mo, D}, Time} = calendar:system_time_to_universal_time(T, second),
    {Y1, Mo1} = case Mo of 1 -> {Y - 1, 12}; _ -> {Y, Mo - 1} end,
    Start = calendar:datetime_to_gregorian_seconds({{Y1, Mo1, min(D, calendar:last_day_of_the_month(Y1, Mo1))}, Time})
            - 62167219200,
    {A, SubId} = azmp_test_usage:linked(Emu, #{term => #{term_unit => <<"P1M">>, start_date => Start, end_date => T}}),
    Dim = <<"included_10">>,
    at(Emu, T - 2 * ?H + 60),
    ok = record(A, Dim, 12, (T - 2 * ?H + 30) * 1000),   % the old term: 10 included, 2 billed
    at(Emu, T + 60),
    ok = record(A, Dim, 3, (T + 30) * 1000),             % the new term: included
    at(Emu, T + ?H + 301),
    ticks(1),
    %% A sample of the old term's last hour (23:30), arriving after that hour closed: carried into
    %% the current hour, of the new term.
    at(Emu, T + ?H + 400),
    ok = record(A, Dim, 5, (T - 1800) * 1000),
    at(Emu, T + 2 * ?H + 301),
    ticks(1),
    ?assertEqual([{T - 2 * ?H, Dim, 2}, {T + ?H, Dim, 5}], accepted(Emu, SubId)),
    ?assertMatch(#{reported := <<"5">>, included := <<"0">>,
                   carried_in := [#{from_hour := _, quantity := <<"5">>, why := late_sample}]}, row(A, Dim, T + ?H)),
    reset(Emu).

%% The meter's transactions lock the ledger's tables whole, as recording does: they queue behind
%% each other. Nothing acknowledged may be lost or counted twice while they do.
record_while_closing(Emu) ->
    Subs = [azmp_test_usage:linked(Emu) || _ <- lists:seq(1, 20)],
    H0 = real_hour() - 3 * ?H,
    at(Emu, H0 + 60),
    [ok = record(A, D, 1, (H0 + 30) * 1000) || {A, _} <- Subs, D <- ?DIMS],
    H1 = H0 + ?H,
    at(Emu, H1 + 301),
    Self = self(),
    Callers = [spawn_link(fun() ->
                              rand:seed(exsss, {I, 7, 11}),
                              Acked = [{A, D} || _ <- lists:seq(1, 150),
                                                 {A, _} <- [lists:nth(rand:uniform(length(Subs)), Subs)],
                                                 D <- [lists:nth(rand:uniform(length(?DIMS)), ?DIMS)],
                                                 record(A, D, 1, (H1 + 400) * 1000) =:= ok],
                              Self ! {acked, self(), Acked}
                          end) || I <- lists:seq(1, 16)],
    %% meter passes for as long as they record: H0 is closed, sent and archived meanwhile
    {Passes, Acked} = passes_until_acked(Callers, [], []),
    ?debugFmt("meter passes while recording: ~p", [length(Passes)]),
    ?assertEqual([true], lists:usort(Passes)),
    ?assertEqual(16 * 150, length(Acked)),
    %% H0 billed once per subscription and dimension, 1 each
    [?assertEqual([{H0, D, 1} || D <- lists:sort(?DIMS)], [X || X = {H, _, _} <- accepted(Emu, S), H =:= H0])
     || {_, S} <- Subs],
    %% H1, once closed: each subscription and dimension billed what was acknowledged for it
    Want = maps:groups_from_list(fun(X) -> X end, Acked),
    at(Emu, H1 + ?H + 301),
    ticks(2),
    [?assertEqual(lists:sort([{H1, D, length(maps:get({A, D}, Want, []))} || D <- ?DIMS, is_map_key({A, D}, Want)]),
                  [X || X = {H, _, _} <- accepted(Emu, S), H =:= H1])
     || {A, S} <- Subs],
    reset(Emu).

passes_until_acked([], Passes, Acked) ->
    {Passes, Acked};
passes_until_acked(Callers, Passes, Acked) ->
    receive
        {acked, P, L} -> passes_until_acked(lists:delete(P, Callers), Passes, L ++ Acked)
    after 0 ->
        passes_until_acked(Callers, [azmp_test_run:meter_pass() | Passes], Acked)
    end.
