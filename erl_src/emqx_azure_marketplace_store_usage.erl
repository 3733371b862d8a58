%% @doc The hourly ledger (azmp_usage: a bucket per subscription, dimension and hour), the
%% included quantity's counters per term (azmp_usage_terms, a row per shard of subscriptions:
%% emqx_azure_marketplace_usage_terms) and the emitter's lease
%% (azmp_usage_lease): an hour is closed, sent (by the node that holds the lease), answered, held,
%% released or carried into a later hour here. Samples are recorded into it by
%% emqx_azure_marketplace_store_usage_dedupe, and settled hours move into the day tables of
%% emqx_azure_marketplace_store_usage_history.
-module(emqx_azure_marketplace_store_usage).

-export([tables/0, usage_map/1, move_term_counters/0]).
-export([usage_due/1, usage_accounts/1, close_usage/2, close_usage/3, usage_to_send/1, usage_steps/1, usage_of/1, usage_held/0, hold_usage/1,
         mark_submitting/2, apply_usage_decisions/2, apply_usage_decisions/4, release_usage/3, usage_late/1,
         take_lease/3]).

-include("emqx_azure_marketplace.hrl").
-include_lib("kernel/include/logger.hrl").

-define(DB, emqx_azure_marketplace_db).
-define(ROWS, emqx_azure_marketplace_locked_rows).
-define(TERMS, emqx_azure_marketplace_usage_terms).

%% {SubId, Dimension, Hour}
-type bucket_key() :: {binary(), binary(), integer()}.
-export_type([bucket_key/0]).

%% @doc The ledger's tables (see emqx_azure_marketplace_store:table_defs/0). The term counters are
%% on disc only: an hour's close reads and writes each shard's row once.
-spec tables() -> [emqx_azure_marketplace_store:table_def()].
tables() ->
    [{azmp_usage, record_info(fields, azmp_usage), []},
     {azmp_usage_terms, record_info(fields, azmp_usage_terms), [], on_disc},
     {azmp_usage_lease, record_info(fields, azmp_usage_lease), []}].

%% @doc Open buckets whose hour has closed at Now, oldest hour first; within an hour, by shard of
%% their subscription (hours closed together then share their counters' rows).
-spec usage_due(integer()) -> [bucket_key()].
usage_due(Now) ->
    Head = ?DB:pattern(azmp_usage, [{#azmp_usage.status, open}, {#azmp_usage.closes_at, '$1'}]),
    by_shard(?DB:dirty_select(azmp_usage, [{Head, [{'=<', '$1', Now}], [{element, #azmp_usage.key, '$_'}]}])).

%% Oldest hour first; within an hour, by shard of their subscription: the order of the term
%% counters' rows and of the history's (emqx_azure_marketplace_store_usage_history), so that hours
%% handled together share those rows.
by_shard(Keys) ->
    [K || {_, K} <- lists:sort([{{H, ?TERMS:shard(S), S, D}, K} || K = {S, D, H} <- Keys])].

%% @doc The account that recorded each of these hours (a dirty read of each), for those still there.
-spec usage_accounts([bucket_key()]) -> [{bucket_key(), binary()}].
usage_accounts(Keys) ->
    [{K, A} || K <- Keys, #azmp_usage{account_id = A} <- [?DB:one(azmp_usage, K)]].

%% @doc Closes open buckets, in one transaction: Plan(Key, #{recorded, carried_in, counter, late})
%% (late: [{FromHour, Micros}], the late samples in `recorded'; counter: {TermStart, Used,
%% PrevTermStart, PrevUsed}) gives
%% {What, PlanId}: What is {Reported, Absorbed, Counter} (what the hour reports, what the included
%% quantity absorbed, the term counter after it), or {too_large, Counter} for an hour that may not be
%% sent (rejected, `hour_total_too_large'); PlanId is the plan the hour is sent with. Buckets of one
%% subscription and dimension go in hour order: each sees the counter the one before left. Returns
%% how many closed and the keys set apart as too large.
-spec close_usage([bucket_key()], fun((bucket_key(), map()) -> {{non_neg_integer(), non_neg_integer(), term()}
                                                                   | {too_large, term()}, binary() | undefined})) ->
          {non_neg_integer(), [bucket_key()]}.
close_usage(Keys, Plan) ->
    ?DB:tx_ok_locked([azmp_usage, azmp_usage_terms], fun() ->
        {Closed, TooLarge, Rows} = close_rows(Keys, Plan),
        ok = ?ROWS:write_back(Rows),
        {Closed, TooLarge}
    end).

%% @doc close_usage/2, and in the same transaction what becomes of the hours closed with something
%% to report, as the meter's send would do next (hold_usage/1, mark_submitting/2): each row is then
%% written once, not twice. Send: #{fence := Fence (as mark_submitting/2's), billable :=
%% fun((SubId) -> boolean())}. An hour of a subscription that may not be billed now is held; the
%% others are marked `submitting' when this node still holds the lease, else left pending (for
%% whichever node holds it). Returns {Closed, TooLarge, {ok, Marked} | {error, lost_lease}}, Marked
%% being what a send needs of each hour marked (sent_map/1), in the keys' order.
-spec close_usage([bucket_key()], fun((bucket_key(), map()) -> {{non_neg_integer(), non_neg_integer(), term()}
                                                                   | {too_large, term()}, binary() | undefined}),
                  #{fence := {node(), integer(), integer(), integer()}, billable := fun((binary()) -> boolean())}) ->
          {non_neg_integer(), [bucket_key()], {ok, [map()]} | {error, lost_lease}}.
close_usage(Keys, Plan, #{fence := Fence = {_, Now, _, InFlightUntil}, billable := Billable}) ->
    ?DB:tx_ok_locked([azmp_usage, azmp_usage_terms], fun() ->
        {Closed, TooLarge, Rows} = close_rows(Keys, Plan),
        Pending = [B || K <- Keys, {B = #azmp_usage{status = pending}, _} <- [?ROWS:read(azmp_usage, K, Rows)]],
        {Send, Hold} = lists:partition(fun(#azmp_usage{key = {Sub, _, _}}) -> Billable(Sub) end, Pending),
        Rows1 = lists:foldl(fun(B, Rs) -> ?ROWS:write(held(B), Rs) end, Rows, Hold),
        {Marked, Rows2} =
            fenced(Fence,
                   fun() ->
                           {Ms, Rs} = lists:mapfoldl(fun(#azmp_usage{key = K}, Rs0) ->
                                                             mark_one(K, Now, InFlightUntil, Rs0)
                                                     end, Rows1, Send),
                           {{ok, [sent_map(B) || {true, B} <- Ms]}, Rs}
                   end,
                   {{error, lost_lease}, Rows1}),
        ok = ?ROWS:write_back(Rows2),
        {Closed, TooLarge, Marked}
    end).

%% The hours closed (in Rows, not written yet), counted, and those set apart as too large.
close_rows(Keys, Plan) ->
    {Results, {Rows, Terms}} = lists:mapfoldl(fun(K, Acc) -> close_one(K, Plan, Acc) end, {?ROWS:new(), #{}}, Keys),
    Rows1 = maps:fold(fun(Shard, Counters, Rs) ->
                              ?ROWS:write(#azmp_usage_terms{shard = Shard, counters = ?TERMS:encode(Counters)}, Rs)
                      end, Rows, Terms),
    {length([x || R <- Results, R =/= not_open]), [K || {K, too_large} <- lists:zip(Keys, Results)], Rows1}.

%% Acc: {the rows, #{Shard => its counters decoded}}.
close_one(Key = {SubId, Dim, _}, Plan, {Rows0, Terms0}) ->
    case ?ROWS:read(azmp_usage, Key, Rows0) of
        {B = #azmp_usage{status = open, recorded = R, carried_in = C, closes_at = ClosesAt}, Rows1} ->
            {Shard, Counters, Rows2} = shard_counters(SubId, Terms0, Rows1),
            Counter = ?TERMS:get(SubId, Dim, Counters),
            Billable = lists:sum([Q || {_, Q, Why} <- C, Why =/= late_sample]),
            Late = [{From, Q} || {From, Q, late_sample} <- C],
            {What, PlanId} = Plan(Key, #{recorded => R, carried_in => Billable, counter => Counter, late => Late}),
            B1 = B#azmp_usage{plan_id = PlanId, next_attempt_at = ClosesAt},
            {Result, B2, Counter1} =
                case What of
                    {too_large, C1} ->
                        {too_large, B1#azmp_usage{status = rejected, reason = hour_total_too_large}, C1};
                    {Reported, Absorbed, C1} ->
                        Status = case Reported > 0 of true -> pending; false -> done end,
                        {closed, B1#azmp_usage{status = Status, reported = Reported, absorbed = Absorbed}, C1}
                end,
            Terms1 = Terms0#{Shard => ?TERMS:put(SubId, Dim, counter(Counter1), Counters)},
            {Result, {?ROWS:write(B2, Rows2), Terms1}};
        {_, Rows1} ->
            {not_open, {Rows1, Terms0}}
    end.

%% The counters of the subscription's shard, decoded once per transaction.
shard_counters(SubId, Terms, Rows) ->
    Shard = ?TERMS:shard(SubId),
    case Terms of
        #{Shard := Counters} ->
            {Shard, Counters, Rows};
        _ ->
            case ?ROWS:read(azmp_usage_terms, Shard, Rows) of
                {#azmp_usage_terms{counters = Bin}, Rows1} -> {Shard, ?TERMS:decode(Bin), Rows1};
                {none, Rows1} -> {Shard, #{}, Rows1}
            end
    end.

%% The core gives a counter without the term before when there is none.
counter({T, U}) -> {T, U, 0, 0};
counter({_, _, _, _} = C) -> C.

%% @doc A table upgrade: the counters a previous version kept a row per subscription and dimension
%% (`azmp_usage_term', {Key, TermStart, Used[, PrevTermStart, PrevUsed]}) move into the shards'
%% rows, and that table is deleted. A counter in both (a node of the previous version closed an
%% hour meanwhile) keeps the later: a term's usage only grows, and a later term is later.
-spec move_term_counters() -> ok | {error, term()}.
move_term_counters() ->
    Old = azmp_usage_term,
    case ?DB:old_table_rows(Old) of
        none ->
            ok;
        {ok, Rows} ->
            ByShard = maps:groups_from_list(fun(Row) -> ?TERMS:shard(element(1, element(2, Row))) end, Rows),
            ?DB:tx_ok_locked([azmp_usage_terms], fun() ->
                maps:foreach(fun(Shard, Olds) ->
                                     Now = case ?DB:wread({azmp_usage_terms, Shard}) of
                                               [#azmp_usage_terms{counters = Bin}] -> ?TERMS:decode(Bin);
                                               [] -> #{}
                                           end,
                                     Merged = lists:foldl(fun(Row, Acc) ->
                                                                  {Sub, Dim} = element(2, Row),
                                                                  C = old_counter(Row),
                                                                  ?TERMS:put(Sub, Dim, max(C, ?TERMS:get(Sub, Dim, Acc)), Acc)
                                                          end, Now, Olds),
                                     ?DB:write(#azmp_usage_terms{shard = Shard, counters = ?TERMS:encode(Merged)})
                             end, ByShard)
            end),
            ?LOG_INFO(#{msg => "azure_marketplace_usage_term_counters_moved", counters => length(Rows)}),
            ?DB:delete_table(Old)
    end.

%% A row of the previous versions' table; the oldest had no term before.
old_counter({_, _, T, U}) -> {T, U, 0, 0};
old_counter({_, _, T, U, PT, PU}) -> {T, U, PT, PU}.

%% @doc The closed hours to send (again) at Now: pending ones due, and those sent whose answer was
%% not recorded once their sender's time is up (a crash, or another node's lost lease). Their keys
%% only, in the history's order (a window's answers settle whole rows of it): the meter reads them
%% a window at a time, so that an hour of many subscriptions is never all in memory at once.
-spec usage_to_send(integer()) -> [bucket_key()].
usage_to_send(Now) -> usage_due_in([pending, submitting], Now).

%% @doc The hours whose next step is due at Now: Azure's usageEvents to be asked (lookup) or the
%% subscription to be read (check).
-spec usage_steps(integer()) -> [bucket_key()].
usage_steps(Now) -> usage_due_in([lookup, check], Now).

usage_due_in(Statuses, Now) ->
    Head = ?DB:pattern(azmp_usage, [{#azmp_usage.status, '$1'}, {#azmp_usage.next_attempt_at, '$2'}]),
    by_shard(lists:append(
        [?DB:dirty_select(azmp_usage, [{Head, [{'=:=', '$1', S}, {'=<', '$2', Now}], [{element, #azmp_usage.key, '$_'}]}])
         || S <- Statuses])).

%% @doc The hours not settled whose hour began before Before (the meter's overdue alarm): closed
%% hours still to send, held, or waiting for a step.
-spec usage_late(integer()) -> [bucket_key()].
usage_late(Before) ->
    Head = ?DB:pattern(azmp_usage, [{#azmp_usage.key, {'_', '_', '$1'}}, {#azmp_usage.status, '$2'}]),
    ?DB:dirty_select(azmp_usage, [{Head, [{'<', '$1', Before}, {'=/=', '$2', open}, {'=/=', '$2', done},
                                          {'=/=', '$2', carried}, {'=/=', '$2', mismatch},
                                          {'=/=', '$2', rejected}, {'=/=', '$2', dropped}],
                                   [{element, #azmp_usage.key, '$_'}]}]).

%% @doc These hours, those not settled (to send, held, or waiting for a step), as the ledger has them.
-spec usage_of([bucket_key()]) -> [map()].
usage_of(Keys) ->
    [usage_map(B) || K <- Keys, B = #azmp_usage{status = S} <- ?DB:dirty_read(azmp_usage, K),
                     lists:member(S, [pending, submitting, held, lookup, check])].

%% @doc The hours held (not billable now).
-spec usage_held() -> [map()].
usage_held() -> [usage_map(B) || B <- usage_with_status([held])].

usage_with_status(Statuses) ->
    lists:append([?DB:dirty_match_object(?DB:pattern(azmp_usage, [{#azmp_usage.status, S}])) || S <- Statuses]).

%% @doc Before the call, in one transaction that holds the emitter's lease (Fence: {Node, Now,
%% LeaseUntil, InFlightUntil}): the lease is checked and renewed, and the hours still to send are
%% marked `submitting', each with the exact quantity it has, not to be taken over before
%% InFlightUntil (when the call has surely ended, answered or not). An hour marked before and never
%% answered may have reached Azure: its outcome is unknown from then on. The hours marked, each with
%% whether its outcome is unknown, or {error, lost_lease} when another node holds the lease
%% (nothing is marked: nothing is sent).
-spec mark_submitting([bucket_key()], {node(), integer(), integer(), integer()}) ->
          {ok, [{bucket_key(), boolean()}]} | {error, lost_lease}.
mark_submitting(Keys, Fence = {_, Now, _, InFlightUntil}) ->
    ?DB:tx_ok_locked([azmp_usage], fun() ->
        fenced(Fence,
               fun() ->
                       {Marked, Rows} = lists:mapfoldl(fun(K, Rows) -> mark_one(K, Now, InFlightUntil, Rows) end,
                                                       ?ROWS:new(), Keys),
                       ok = ?ROWS:write_back(Rows),
                       {ok, [{K, U} || {K, {true, #azmp_usage{outcome_unknown = U}}} <- lists:zip(Keys, Marked)]}
               end,
               {error, lost_lease})
    end).

%% In a transaction: Then() when this node (Fence: {Node, Now, LeaseUntil, _}) holds the emitter's
%% lease at Now, the lease renewed until LeaseUntil; else Else.
fenced({Node, Now, LeaseUntil, _}, Then, Else) ->
    case ?DB:wread({azmp_usage_lease, emitter}) of
        [L = #azmp_usage_lease{node = Node, until = Held}] when Held >= Now ->
            ?DB:write(L#azmp_usage_lease{until = max(Held, LeaseUntil)}),
            Then();
        _ ->
            Else
    end.

%% {true, the row marked} or false, and the rows.
mark_one(K, Now, InFlightUntil, Rows) ->
    case ?ROWS:read(azmp_usage, K, Rows) of
        {B = #azmp_usage{status = S, next_attempt_at = At, outcome_unknown = U}, Rows1}
          when S =:= pending; S =:= submitting, At =< Now ->
            B1 = B#azmp_usage{status = submitting, next_attempt_at = InFlightUntil,
                              outcome_unknown = U orelse S =:= submitting},
            {{true, B1}, ?ROWS:write(B1, Rows1)};
        {_, Rows1} ->
            {false, Rows1}
    end.

%% @doc These hours may not be billed now (suspended): held until the subscription may be again.
-spec hold_usage([bucket_key()]) -> ok.
hold_usage([]) ->
    ok;
hold_usage(Keys) ->
    ?DB:tx_ok_locked([azmp_usage], fun() ->
        _ = [?DB:write(held(B))
             || K <- Keys, B = #azmp_usage{status = S} <- ?DB:wread({azmp_usage, K}),
                S =:= pending orelse S =:= submitting],
        ok
    end).

%% An hour held: not billable now, until its subscription may be billed again (release_usage/3).
held(B) -> B#azmp_usage{status = held, reason = not_billable_now}.

%% @doc What the core decided of each hour after an answer (emqx_azure_marketplace_nif:usage_answer/2),
%% applied in one transaction to the hours still at the step answered (From: submitting, lookup or
%% check; an hour another node answered meanwhile is left as it is). A carry goes into the hour
%% Into = {Hour, ClosesAt} (created open if needed).
-spec apply_usage_decisions([{bucket_key(), emqx_azure_marketplace_nif:usage_decision()}],
                            #{from := submitting | lookup | check, into := {integer(), integer()}}) -> ok.
apply_usage_decisions(Decisions, Ctx) ->
    apply_usage_decisions(Decisions, Ctx, [], fun(Rows) -> Rows end).

%% @doc apply_usage_decisions/2, and in the same transaction Then(Rows): what else becomes of the
%% rows once the decisions are applied (the history takes the hours they settled), with the
%% tables Then writes besides azmp_usage (Tabs) locked too.
-spec apply_usage_decisions([{bucket_key(), emqx_azure_marketplace_nif:usage_decision()}],
                            #{from := submitting | lookup | check, into := {integer(), integer()}}, [atom()],
                            fun((emqx_azure_marketplace_locked_rows:rows()) -> emqx_azure_marketplace_locked_rows:rows())) -> ok.
apply_usage_decisions(Decisions, Ctx, Tabs, Then) ->
    ?DB:tx_ok_locked([azmp_usage | Tabs], fun() ->
        ?ROWS:write_back(Then(lists:foldl(fun({Key, D}, Rows) -> apply_decision(Key, D, Ctx, Rows) end, ?ROWS:new(),
                                          Decisions)))
    end).

apply_decision(Key = {SubId, Dim, Hour}, D = #{outcome := Outcome}, #{from := From, into := {ToHour, ClosesAt}},
               Rows0) ->
    case ?ROWS:read(azmp_usage, Key, Rows0) of
        {B = #azmp_usage{status = From}, Rows1} ->
            Keep = fun(_Old, New) when New =/= undefined -> New; (Old, _) -> Old end,
            %% Sent again: it is `pending' until then.
            Status = case Outcome of
                         retry -> pending;
                         _ -> Outcome
                     end,
            B2 = B#azmp_usage{status = Status,
                              event_id = Keep(B#azmp_usage.event_id, maps:get(event_id, D)),
                              message_time = Keep(B#azmp_usage.message_time, maps:get(message_time, D)),
                              azure_quantity = Keep(B#azmp_usage.azure_quantity, maps:get(azure_quantity, D)),
                              plan_id = Keep(B#azmp_usage.plan_id, maps:get(plan_id, D)),
                              reason = maps:get(reason, D),
                              outcome_unknown = maps:get(outcome_unknown, D),
                              next_attempt_at = maps:get(next_attempt_at, D),
                              attempts = B#azmp_usage.attempts + case maps:get(attempt_failed, D) of
                                                                     true -> 1;
                                                                     false -> 0
                                                                 end},
            case maps:get(carry, D) of
                Q when Q > 0 ->
                    Why = case maps:get(reason, D) of undefined -> carried; R -> R end,
                    {Into, Rows2} = carry_into({SubId, Dim, ToHour}, B#azmp_usage.account_id, {Hour, Q, Why}, ClosesAt,
                                               Rows1),
                    ?ROWS:write(carried_out(B2, Into, {ToHour, Q, Why}), Rows2);
                _ ->
                    ?ROWS:write(B2, Rows1)
            end;
        {_, Rows1} ->
            Rows1  % answered already (another node took the hour over)
    end.

%% `ok', or `closed' when the later hour takes nothing any more (its subscription was cancelled).
carry_into(Key, Account, Entry, ClosesAt, Rows0) ->
    case ?ROWS:read(azmp_usage, Key, Rows0) of
        {B = #azmp_usage{status = open, carried_in = C}, Rows1} ->
            {ok, ?ROWS:write(B#azmp_usage{carried_in = C ++ [Entry]}, Rows1)};
        {none, Rows1} ->
            {ok, ?ROWS:write(#azmp_usage{key = Key, account_id = Account, carried_in = [Entry], closes_at = ClosesAt},
                             Rows1)};
        {_Closed, Rows1} ->
            {closed, Rows1}
    end.

%% The hour's quantity went on into a later hour, or nowhere (noted, not billed).
carried_out(B, ok, Out) -> B#azmp_usage{carried_out = Out};
carried_out(B, closed, Out) -> B#azmp_usage{carried_out = Out, status = dropped, reason = later_hour_closed}.

%% @doc A held hour may be billed again: sent as it is; carried into a later hour ({carry, ToHour,
%% ClosesAt}) when Azure would now refuse it as expired; or, when an attempt before the hold may
%% have reached Azure, looked up in Azure's usageEvents first (lookup). Or it never may (drop: its
%% link is gone): dropped, `link_not_found'.
-spec release_usage(bucket_key(), send | lookup | drop | {carry, integer(), integer()}, integer()) -> ok.
release_usage(Key = {SubId, Dim, Hour}, How, Now) ->
    ?DB:tx_ok_locked([azmp_usage], fun() ->
        ?ROWS:write_back(
            case ?ROWS:read(azmp_usage, Key, ?ROWS:new()) of
                {B = #azmp_usage{status = held}, Rows} when How =:= send ->
                    ?ROWS:write(B#azmp_usage{status = pending, next_attempt_at = Now}, Rows);
                {B = #azmp_usage{status = held}, Rows} when How =:= lookup ->
                    ?ROWS:write(B#azmp_usage{status = lookup, reason = expired_while_held, next_attempt_at = Now}, Rows);
                {B = #azmp_usage{status = held}, Rows} when How =:= drop ->
                    ?ROWS:write(B#azmp_usage{status = dropped, reason = link_not_found}, Rows);
                {B = #azmp_usage{status = held, reported = Q, account_id = A}, Rows} ->
                    {carry, ToHour, ClosesAt} = How,
                    Out = {ToHour, Q, expired_while_held},
                    {Into, Rows1} = carry_into({SubId, Dim, ToHour}, A, {Hour, Q, expired_while_held}, ClosesAt, Rows),
                    ?ROWS:write(carried_out(B#azmp_usage{status = carried}, Into, Out), Rows1);
                {_, Rows} ->
                    Rows
            end)
    end).

%% @doc A ledger row as callers see it.
-spec usage_map(#azmp_usage{}) -> map().
usage_map(#azmp_usage{key = {S, D, H}} = B) ->
    #{subscription_id => S, dimension => D, hour => H, account_id => B#azmp_usage.account_id,
      status => B#azmp_usage.status, recorded => B#azmp_usage.recorded, carried_in => B#azmp_usage.carried_in,
      carried_out => B#azmp_usage.carried_out, closes_at => B#azmp_usage.closes_at,
      reported => B#azmp_usage.reported, absorbed => B#azmp_usage.absorbed, event_id => B#azmp_usage.event_id,
      message_time => B#azmp_usage.message_time, azure_quantity => B#azmp_usage.azure_quantity,
      reason => B#azmp_usage.reason, attempts => B#azmp_usage.attempts,
      outcome_unknown => B#azmp_usage.outcome_unknown, plan_id => B#azmp_usage.plan_id,
      next_attempt_at => B#azmp_usage.next_attempt_at}.

%% What sending an hour needs of its row (emqx_azure_marketplace_nif:usage_answer/2's hours, with
%% the link's state added), no more: a window's rows are copied into each batch's process.
sent_map(#azmp_usage{key = {S, D, H}} = B) ->
    #{subscription_id => S, dimension => D, hour => H, account_id => B#azmp_usage.account_id,
      reported => B#azmp_usage.reported, plan_id => B#azmp_usage.plan_id, attempts => B#azmp_usage.attempts,
      outcome_unknown => B#azmp_usage.outcome_unknown}.

%% @doc Takes (or keeps) the emitter's lease for this node until Until: true when this node holds it.
-spec take_lease(node(), integer(), integer()) -> boolean().
take_lease(Node, Now, Until) ->
    ?DB:tx_or(fun() ->
        case ?DB:wread({azmp_usage_lease, emitter}) of
            [#azmp_usage_lease{node = Other, until = U}] when Other =/= Node, U > Now -> false;
            _ -> ?DB:write(#azmp_usage_lease{node = Node, until = Until}), true
        end
    end, false).
