%% @doc The plugin's durable state, in Mnesia (disc_copies on every node of the cluster that runs
%% the plugin): links, linking jobs, claims on subscriptions, landings, webhook operations,
%% deadlines, and the effects still to perform. The only module that touches Mnesia; callers see
%% maps. A state change and the effects it plans are committed in one transaction: the decision is
%% passed in as a fun (it calls the C++ core) and runs inside it, on facts read in it.
-module(emqx_azure_marketplace_store).

-export([start/0, tables/0, backlog/0]).
%% links and claims
-export([link/1, link_usage/1, link_by_subscription/1, links_changed_since/1, transition/5, enforce/3]).
%% linking jobs
-export([job/1, jobs_ready/1, start_job/3, claim_job/3, resume_jobs_of/1, decide_link/4, commit_linked/5,
         commit_link_failed/4, retry_job/4, job_activating/2]).
%% landings
-export([landing/1, landing_count/0, landing_of_token/3, claim_landing/4, release_landing/2, put_landing/5,
         redeem_landing/4, delete_expired_landings/1]).
%% webhook operations
-export([operation/1, claim_operation/5, release_operation/1, finish_operation/5]).
%% deadlines
-export([deadlines_due/1, deadlines_of/1, claim_deadline/3, finish_deadline/3]).
%% effects still to perform
-export([effect/1, effect_done/2, claim_stale_effects/3]).
%% metering
-export([record_usage_batch/4, sync_usage/0, dedupe_keys/1, fold_usage_dedupe/2, usage_dedupe_before/1,
         expire_usage_dedupe/1, usage_dedupe_bytes/0]).
-export([usage_due/1, close_usage/2, usage_to_send/1, usage_steps/1, usage_of/1, usage_held/0, hold_usage/1,
         mark_submitting/2, apply_usage_decisions/2, release_usage/3, usage_rows/3, usage_between/2, usage_all/0,
         usage_late/1, take_lease/3]).
%% the ledger's history, on disc
-export([archive_usage/2, usage_history_days/0, drop_usage_history/1]).

-include("emqx_azure_marketplace.hrl").
-include_lib("kernel/include/logger.hrl").

-type effect() :: emqx_azure_marketplace_nif:effect().
-type effect_key() :: {integer(), node(), integer()}.
-type plan() :: {ok, emqx_azure_marketplace_nif:link_change(), [effect()]} | ignore | stale.
-export_type([effect_key/0]).

-define(TABLES, [
    {azmp_link, record_info(fields, azmp_link), [subscription_id]},
    {azmp_job, record_info(fields, azmp_job), []},
    {azmp_landing, record_info(fields, azmp_landing), []},
    {azmp_landing_token, record_info(fields, azmp_landing_token), []},
    {azmp_operation, record_info(fields, azmp_operation), []},
    {azmp_deadline, record_info(fields, azmp_deadline), []},
    {azmp_claim, record_info(fields, azmp_claim), []},
    {azmp_effect, record_info(fields, azmp_effect), []},
    {azmp_usage, record_info(fields, azmp_usage), []},
    {azmp_usage_dedupe, record_info(fields, azmp_usage_dedupe), []},
    {azmp_usage_term, record_info(fields, azmp_usage_term), []},
    {azmp_usage_lease, record_info(fields, azmp_usage_lease), []}
]).

%% How long the process that committed effects has to perform them before the sweep may.
-define(EFFECT_CLAIM_S, 60).

-spec tables() -> [atom()].
tables() -> [T || {T, _, _} <- ?TABLES].

%% @doc Mnesia running and the tables there (through emqx_azure_marketplace_db: Mria tables inside
%% EMQX, Mnesia tables otherwise). A node already running Mnesia keeps its schema.
-spec start() -> ok | {error, term()}.
start() ->
    case emqx_azure_marketplace_db:start() of
        ok -> ensure_tables();
        {error, _} = E -> E
    end.

%% Creates the tables (disc_copies on this node) if missing, and waits for them; a table written by
%% an older version of the plugin gets the new fields, with their defaults.
ensure_tables() ->
    Results = [emqx_azure_marketplace_db:create_table(Name, Fields, Index) || {Name, Fields, Index} <- ?TABLES],
    case [E || {error, _} = E <- Results] of
        [] ->
            case emqx_azure_marketplace_db:wait_for_tables(tables(), 30000) of
                ok -> upgrade_tables();
                Error -> Error
            end;
        [E | _] -> E
    end.

%% @doc What is waiting: linking jobs not finished, effects not performed yet, deadlines not done
%% (local reads: the health check calls it).
-spec backlog() -> #{linking_jobs := non_neg_integer(), effects := non_neg_integer(),
                     deadlines := non_neg_integer()}.
backlog() ->
    Jobs = mnesia:dirty_select(azmp_job, [{pattern(azmp_job, [{#azmp_job.phase, '$1'}]), [{'=/=', '$1', failed}], [true]}]),
    Deadlines = mnesia:dirty_select(azmp_deadline, [{pattern(azmp_deadline, [{#azmp_deadline.done, false}]), [], [true]}]),
    #{linking_jobs => length(Jobs), effects => mnesia:table_info(azmp_effect, size), deadlines => length(Deadlines)}.

%% Fields are only ever appended: an old row is the new record cut short.
upgrade_tables() ->
    Results = [upgrade_table(Name, Fields) || {Name, Fields, _} <- ?TABLES],
    case [E || {error, _} = E <- Results] of
        [] -> move_usage_sources(), claim_linked_subscriptions();
        [E | _] -> E
    end.

%% The source ids a previous version kept (a row per sample in `azmp_usage_source') become
%% azmp_usage_dedupe rows, one per second they were recorded in, and that table is deleted: a retry
%% of a sample recorded before the upgrade still counts once. (Every node may do it at once: the
%% rows' keys differ by node, and a source id twice in the index is the same entry.)
move_usage_sources() ->
    Old = azmp_usage_source,
    case lists:member(Old, mnesia:system_info(tables)) andalso
         emqx_azure_marketplace_db:wait_for_tables([Old], 30000) =:= ok of
        false ->
            ok;
        true ->
            Now = emqx_azure_marketplace_clock:now(),
            %% very old rows have no `at': kept a window from now
            At = fun(Row) when tuple_size(Row) >= 4 -> element(4, Row); (_) -> Now end,
            Rows = lists:append([mnesia:dirty_read(Old, K) || K <- mnesia:dirty_all_keys(Old)]),
            BySecond = maps:groups_from_list(At, fun(Row) -> {A, S} = element(2, Row), dedupe_key(A, S) end, Rows),
            tx_ok(fun() ->
                maps:foreach(fun(T, Sources) -> mnesia:write(dedupe_row(T, Sources)) end, BySecond)
            end),
            ?LOG_INFO(#{msg => "azure_marketplace_usage_sources_moved", source_ids => length(Rows)}),
            emqx_azure_marketplace_db:delete_table(Old)
    end.

upgrade_table(Name, Fields) ->
    case mnesia:table_info(Name, attributes) of
        Fields ->
            ok;
        Old when length(Old) < length(Fields) ->
            Pad = [added_default(Name, F) || F <- lists:nthtail(length(Old), Fields)],
            Transform = fun(Row) -> list_to_tuple(tuple_to_list(Row) ++ Pad) end,
            case mnesia:transform_table(Name, Transform, Fields) of
                {atomic, ok} -> ok;
                {aborted, Reason} -> {error, {Name, Reason}}
            end;
        Other ->
            {error, {Name, {unexpected_attributes, Other}}}
    end.

%% The value a row written before a field existed gets (the record's default).
added_default(azmp_link, cancelled_at) -> undefined;
added_default(azmp_link, last_op_at) -> undefined;
added_default(azmp_link, activated_at) -> undefined;
added_default(azmp_usage, outcome_unknown) -> false;
added_default(azmp_usage, plan_id) -> undefined;
added_default(azmp_usage_term, prev_term_start) -> 0;
added_default(azmp_usage_term, prev_used) -> 0;
added_default(azmp_operation, state) -> done;
added_default(azmp_operation, claimed_until) -> 0.

%% Links made before claims existed hold their subscriptions too.
claim_linked_subscriptions() ->
    tx_ok(fun() ->
        [mnesia:write(#azmp_claim{subscription_id = S, account_id = A, cancelled = St =:= unsubscribed})
         || #azmp_link{subscription_id = S, account_id = A, state = St} <- mnesia:match_object(mnesia:table_info(azmp_link, wild_pattern)),
            mnesia:read(azmp_claim, S) =:= []],
        ok
    end).

%% A match pattern for Tab: every field a wildcard but the given {Position, Value} ones. (Built
%% with setelement/3 because '_' and '$1' are not values of the records' typed fields.)
pattern(Tab, Fields) ->
    lists:foldl(fun({Pos, V}, P) -> setelement(Pos, P, V) end, mnesia:table_info(Tab, wild_pattern), Fields).

%% The record under Key, or undefined.
one(Tab, Key) ->
    case mnesia:dirty_read(Tab, Key) of
        [R] -> R;
        [] -> undefined
    end.

%% Runs F in a Mnesia transaction. On success the transaction is on this node's disc when this
%% returns: Mnesia's transaction log is written lazily (up to ~2 s later), and a node killed before
%% that loses what it just committed when no other node holds a copy. The sync costs ~0.2 ms.
transaction(F) ->
    case emqx_azure_marketplace_db:transaction(F) of
        {atomic, V} ->
            _ = mnesia:sync_log(),
            {ok, V};
        {aborted, R} ->
            {error, R}
    end.

%% A transaction that must not fail (the store's own invariants): its value, or an exception.
tx_ok(F) ->
    case transaction(F) of
        {ok, V} -> V;
        {error, Reason} -> erlang:error({azmp_store, Reason})
    end.

%%--------------------------------------------------------------------
%% Links

-spec link(binary()) -> map() | undefined.
link(Account) -> link_map(one(azmp_link, Account)).

%% @doc What recording a sample needs of the account's link (every sample reads it: no map built).
-spec link_usage(binary()) ->
          {emqx_azure_marketplace_nif:link_state(), integer() | undefined, binary(), integer() | undefined} | undefined.
link_usage(Account) ->
    case one(azmp_link, Account) of
        #azmp_link{state = S, cancelled_at = C, subscription_id = Sub, activated_at = A} -> {S, C, Sub, A};
        undefined -> undefined
    end.

-spec link_by_subscription(binary()) -> map() | undefined.
link_by_subscription(SubId) ->
    case mnesia:dirty_index_read(azmp_link, SubId, #azmp_link.subscription_id) of
        [L | _] -> link_map(L);
        [] -> undefined
    end.

%% @doc Links in State changed at or after Since (unix seconds).
-spec links_changed_since(integer()) -> [map()].
links_changed_since(Since) ->
    Head = pattern(azmp_link, [{#azmp_link.updated_at, '$1'}]),
    [link_map(L) || L <- mnesia:dirty_select(azmp_link, [{Head, [{'>=', '$1', Since}], ['$_']}])].

link_map(undefined) ->
    undefined;
link_map(#azmp_link{} = L) ->
    #{account_id => L#azmp_link.account_id, subscription_id => L#azmp_link.subscription_id,
      state => L#azmp_link.state, plan_id => L#azmp_link.plan_id, quantity => L#azmp_link.quantity,
      term => L#azmp_link.term, suspended => L#azmp_link.suspended_deployments,
      updated_at => L#azmp_link.updated_at, cancelled_at => L#azmp_link.cancelled_at,
      last_op_at => L#azmp_link.last_op_at}.

%% The link's part of the facts the rules take.
link_facts(#azmp_link{state = S, suspended_deployments = Ids, cancelled_at = C, last_op_at = T}) ->
    #{state => S, suspended => Ids, cancelled_at => C, last_op_at => T}.

%% @doc Applies a planned event to the account's link. Plan(LinkFacts) runs in the transaction and
%% returns the core's plan; Info (plan_id, quantity, term) is written with a change; Op (a webhook
%% operation being handled: {OpId, SubId, Action}) is recorded as handled in the same transaction.
-spec transition(binary(), fun((map()) -> plan()), map(), {binary(), binary(), binary()} | undefined, integer()) ->
    {changed, atom(), map(), effect_key() | none} | ignored | stale | not_linked.
transition(Account, Plan, Info, Op, Now) ->
    tx_ok(fun() ->
        case mnesia:wread({azmp_link, Account}) of
            [L = #azmp_link{state = Old}] ->
                case Plan(link_facts(L)) of
                    {ok, Change, Effects} ->
                        L1 = apply_change(L, Change, Info, Now),
                        mnesia:write(L1),
                        mark_claim(L1),
                        Key = commit_effects(Account, L1#azmp_link.subscription_id, Effects, Now),
                        record_operation(Op, applied, Now),
                        {changed, Old, link_map(L1), Key};
                    ignore ->
                        record_operation(Op, ignored, Now),
                        ignored;
                    stale ->
                        record_operation(Op, stale, Now),
                        stale
                end;
            [] ->
                record_operation(Op, not_linked, Now),
                not_linked
        end
    end).

apply_change(L, #{state := S, suspended := Ids, cancelled_at := C, last_op_at := T}, Info, Now) ->
    L1 = L#azmp_link{state = S, suspended_deployments = Ids, cancelled_at = C, last_op_at = T, updated_at = Now},
    L1#azmp_link{plan_id = maps:get(plan_id, Info, L1#azmp_link.plan_id),
                 quantity = maps:get(quantity, Info, L1#azmp_link.quantity),
                 term = maps:get(term, Info, L1#azmp_link.term)}.

%% A cancelled subscription stays cancelled for linking's sake.
mark_claim(#azmp_link{subscription_id = S, account_id = A, state = unsubscribed}) ->
    mnesia:write(#azmp_claim{subscription_id = S, account_id = A, cancelled = true});
mark_claim(_) ->
    ok.

%% @doc The effects of the link's state, planned again (reconciliation): `changed' when anything
%% was to be done (an effect to perform or a deadline not yet scheduled).
-spec enforce(binary(), fun((map()) -> plan()), integer()) -> {changed | unchanged, effect_key() | none}.
enforce(Account, Plan, Now) ->
    tx_ok(fun() ->
        case mnesia:wread({azmp_link, Account}) of
            [L] ->
                {ok, #{suspended := Ids}, Effects} = Plan(link_facts(L)),
                Ids =/= L#azmp_link.suspended_deployments andalso
                    mnesia:write(L#azmp_link{suspended_deployments = Ids}),
                {Outbox, State} = lists:partition(fun is_outbox_effect/1, Effects),
                New = [x || changed <- [commit_state_effect(Account, E) || E <- State]],
                Key = commit_effects(Account, L#azmp_link.subscription_id, Outbox, Now),
                {case Outbox =/= [] orelse New =/= [] of true -> changed; false -> unchanged end, Key};
            [] ->
                {unchanged, none}
        end
    end).

%%--------------------------------------------------------------------
%% Effects: deadlines are state, written in the transaction; the activation is the job's next step
%% (its `activating' phase, written with it, records it); the rest goes to the outbox.

is_outbox_effect({schedule_deadline, _, _, _}) -> false;
is_outbox_effect(cancel_deadlines) -> false;
is_outbox_effect(activate) -> false;
is_outbox_effect(_) -> true.

%% Inside a transaction: writes the deadline effects and records the others, to be performed.
commit_effects(Account, SubId, Effects, Now) ->
    {Outbox, State} = lists:partition(fun is_outbox_effect/1, Effects),
    _ = [commit_state_effect(Account, E) || E <- State],
    case Outbox of
        [] ->
            none;
        _ ->
            Key = {Now, node(), erlang:unique_integer([positive, monotonic])},
            mnesia:write(#azmp_effect{id = Key, account_id = Account, subscription_id = SubId, effects = Outbox,
                                      owner = node(), claimed_until = Now + ?EFFECT_CLAIM_S}),
            Key
    end.

%% One pending deadline per account, deployment and kind: a pending one is kept as it is; a
%% finished or cancelled one is replaced.
commit_state_effect(Account, {schedule_deadline, Deployment, Kind, At}) ->
    Key = {Account, Deployment, Kind},
    case mnesia:wread({azmp_deadline, Key}) of
        [#azmp_deadline{done = false}] ->
            unchanged;
        _ ->
            mnesia:write(#azmp_deadline{key = Key, account_id = Account, deployment_id = Deployment, kind = Kind, at = At}),
            changed
    end;
commit_state_effect(_Account, activate) ->
    unchanged;
commit_state_effect(Account, cancel_deadlines) ->
    Pending = mnesia:match_object(pattern(azmp_deadline, [{#azmp_deadline.account_id, Account},
                                                          {#azmp_deadline.done, false}])),
    lists:foreach(fun(D) -> mnesia:write(D#azmp_deadline{done = true}) end, Pending),
    changed_if(Pending =/= []).

changed_if(true) -> changed;
changed_if(false) -> unchanged.

-spec effect(effect_key()) -> #{account_id := binary(), subscription_id := binary() | undefined,
                                effects := [effect()]} | undefined.
effect(Key) ->
    case one(azmp_effect, Key) of
        #azmp_effect{account_id = A, subscription_id = S, effects = Es} -> #{account_id => A, subscription_id => S, effects => Es};
        undefined -> undefined
    end.

%% @doc Strikes one performed effect off the record (the record goes with its last effect).
-spec effect_done(effect_key(), effect()) -> ok.
effect_done(Key, Effect) ->
    tx_ok(fun() ->
        case mnesia:wread({azmp_effect, Key}) of
            [R = #azmp_effect{effects = Es}] ->
                case lists:delete(Effect, Es) of
                    [] -> mnesia:delete({azmp_effect, Key});
                    Rest -> mnesia:write(R#azmp_effect{effects = Rest})
                end;
            [] ->
                ok
        end
    end).

%% @doc Claims, until Until, the effects left unperformed: those of Node (which has just restarted:
%% nothing of its own is being performed) and those whose claim has run out at Now.
-spec claim_stale_effects(node() | undefined, integer(), integer()) -> [effect_key()].
claim_stale_effects(Node, Now, Until) ->
    Candidates = [K || #azmp_effect{id = K, owner = O, claimed_until = C} <- dirty_all(azmp_effect),
                       O =:= Node orelse C < Now],
    lists:filtermap(
        fun(K) ->
            tx_ok(fun() ->
                case mnesia:wread({azmp_effect, K}) of
                    [E = #azmp_effect{owner = O, claimed_until = C}] when O =:= Node; C < Now ->
                        mnesia:write(E#azmp_effect{owner = node(), claimed_until = Until}),
                        {true, K};
                    _ ->
                        false
                end
            end)
        end,
        Candidates).

dirty_all(Tab) -> mnesia:dirty_match_object(mnesia:table_info(Tab, wild_pattern)).

%%--------------------------------------------------------------------
%% Linking jobs and claims

-spec job(binary()) -> map() | undefined.
job(Account) -> job_map(one(azmp_job, Account)).

job_map(undefined) ->
    undefined;
job_map(#azmp_job{} = J) ->
    #{account_id => J#azmp_job.account_id, phase => J#azmp_job.phase, reason => J#azmp_job.reason,
      work => J#azmp_job.work, subscription_id => J#azmp_job.subscription_id, owner => J#azmp_job.owner,
      lease_until => J#azmp_job.lease_until, attempts => J#azmp_job.attempts}.

%% @doc Jobs still to work on whose lease has run out at Now.
-spec jobs_ready(integer()) -> [map()].
jobs_ready(Now) ->
    Head = pattern(azmp_job, [{#azmp_job.phase, '$1'}, {#azmp_job.lease_until, '$2'}]),
    MS = [{Head, [{'=/=', '$1', failed}, {'=<', '$2', Now}], ['$_']}],
    [job_map(J) || J <- mnesia:dirty_select(azmp_job, MS)].

%% @doc Records a new linking job (replacing a failed one).
-spec start_job(binary(), {token, binary()} | {resolved, map()}, integer()) -> ok | {error, link_in_progress}.
start_job(Account, Work, Now) ->
    tx_ok(fun() -> new_job(Account, Work, Now) end).

new_job(Account, Work, Now) ->
    case mnesia:wread({azmp_job, Account}) of
        [#azmp_job{phase = P}] when P =/= failed ->
            {error, link_in_progress};
        _ ->
            Phase = case Work of {token, _} -> resolving; {resolved, _} -> activating end,
            mnesia:write(#azmp_job{account_id = Account, phase = Phase, work = Work, owner = node(),
                                   lease_until = 0, updated_at = Now}),
            ok
    end.

%% @doc One node works on a job at a time: the lease says which, and until when.
-spec claim_job(binary(), integer(), integer()) -> {ok, map()} | taken.
claim_job(Account, Now, Until) ->
    F = fun() ->
        case mnesia:wread({azmp_job, Account}) of
            [J = #azmp_job{phase = P, lease_until = L}] when P =/= failed, L =< Now ->
                J1 = J#azmp_job{owner = node(), lease_until = Until},
                mnesia:write(J1),
                {ok, job_map(J1)};
            _ ->
                taken
        end
    end,
    case transaction(F) of
        {ok, Result} -> Result;
        {error, _} -> taken
    end.

%% @doc Node has just started: no step of its own is running, so the jobs it owned need not wait for
%% their lease to run out -- except one that may have sent its activation: Azure can still be
%% working on it, and Get Subscription would not show it yet. Such a job waits out its lease.
-spec resume_jobs_of(node()) -> ok.
resume_jobs_of(Node) ->
    tx_ok(fun() ->
        Own = mnesia:match_object(pattern(azmp_job, [{#azmp_job.owner, Node}])),
        _ = [mnesia:write(J#azmp_job{lease_until = 0}) || J = #azmp_job{phase = P, subscription_id = S} <- Own,
                                                          P =:= resolving orelse (P =:= activating andalso S =:= undefined)],
        ok
    end).

%% @doc The link decision and the claim on the subscription in one transaction: one account per
%% subscription. Decide(Facts) runs inside it; its verdict moves the job (activating, deleted,
%% failed) and its effects are committed with it.
-spec decide_link(binary(), binary(), map(), fun((map()) -> {term(), [effect()]})) ->
    {link | already_linked | {refuse, atom()}, effect_key() | none} | gone.
decide_link(Account, SubId, Sub, Decide) ->
    tx_ok(fun() ->
        Now = maps:get(now, Sub),
        case mnesia:wread({azmp_job, Account}) of
            [J = #azmp_job{phase = P}] when P =/= failed ->
                {Holder, Cancelled} =
                    case mnesia:wread({azmp_claim, SubId}) of
                        [#azmp_claim{account_id = H, cancelled = C}] -> {H, C};
                        [] -> {undefined, false}
                    end,
                HoldsOther =
                    case mnesia:read(azmp_link, Account) of
                        [#azmp_link{subscription_id = Other, state = St}] -> Other =/= SubId andalso St =/= unsubscribed;
                        [] -> false
                    end,
                Facts = #{status => maps:get(status, Sub), holder => Holder, seen_cancelled => Cancelled,
                          holds_other => HoldsOther},
                {Verdict, Effects} = Decide(Facts),
                case Verdict of
                    link ->
                        mnesia:write(#azmp_claim{subscription_id = SubId, account_id = Account}),
                        mnesia:write(J#azmp_job{phase = activating, subscription_id = SubId,
                                                work = {resolved, maps:get(subscription, Sub)},
                                                attempts = 0, updated_at = Now});
                    already_linked ->
                        mnesia:delete({azmp_job, Account});
                    {refuse, Reason} ->
                        mnesia:write(J#azmp_job{phase = failed, reason = Reason, work = undefined, updated_at = Now})
                end,
                {Verdict, commit_effects(Account, SubId, Effects, Now)};
            _ ->
                gone
        end
    end).

%% @doc The job's subscription was activated: the link, the end of the job and the effects, at once.
-spec commit_linked(binary(), binary(), map(), [effect()], integer()) -> effect_key() | none.
commit_linked(Account, SubId, Fields = #{plan_id := Plan, quantity := Q}, Effects, Now) ->
    tx_ok(fun() ->
        mnesia:write(#azmp_link{account_id = Account, subscription_id = SubId, state = linked, plan_id = Plan,
                                quantity = Q, term = maps:get(term, Fields, undefined), updated_at = Now,
                                activated_at = Now}),
        mnesia:write(#azmp_claim{subscription_id = SubId, account_id = Account}),
        mnesia:delete({azmp_job, Account}),
        commit_effects(Account, SubId, Effects, Now)
    end).

%% @doc Linking gave up: the job fails with Reason, the account's claim (if any, and not linked)
%% is given back, and the effects are committed with it.
-spec commit_link_failed(binary(), atom(), [effect()], integer()) -> effect_key() | none.
commit_link_failed(Account, Reason, Effects, Now) ->
    tx_ok(fun() ->
        SubId =
            case mnesia:wread({azmp_job, Account}) of
                [J = #azmp_job{subscription_id = S}] ->
                    mnesia:write(J#azmp_job{phase = failed, reason = Reason, work = undefined, updated_at = Now}),
                    S;
                [] ->
                    undefined
            end,
        Linked = [x || #azmp_link{subscription_id = S} <- mnesia:read(azmp_link, Account), S =:= SubId],
        case SubId =/= undefined andalso Linked =:= [] andalso mnesia:wread({azmp_claim, SubId}) of
            [#azmp_claim{account_id = Account, cancelled = false}] -> mnesia:delete({azmp_claim, SubId});
            _ -> ok
        end,
        commit_effects(Account, SubId, Effects, Now)
    end).

%% @doc Azure unreachable: the job's next attempt waits until RetryAt.
-spec retry_job(binary(), non_neg_integer(), integer(), integer()) -> ok.
retry_job(Account, Attempts, RetryAt, Now) ->
    tx_ok(fun() ->
        case mnesia:wread({azmp_job, Account}) of
            [Cur] -> mnesia:write(Cur#azmp_job{attempts = Attempts, lease_until = RetryAt, updated_at = Now});
            [] -> ok
        end
    end).

%% @doc Is the account's job still activating SubId (not failed or finished by another node)?
-spec job_activating(binary(), binary()) -> boolean().
job_activating(Account, SubId) ->
    case one(azmp_job, Account) of
        #azmp_job{phase = activating, subscription_id = SubId} -> true;
        _ -> false
    end.

%%--------------------------------------------------------------------
%% Landings

-spec landing(binary()) -> #{work := term(), expires_at := integer()} | undefined.
landing(Id) ->
    case one(azmp_landing, Id) of
        #azmp_landing{work = W, expires_at = At} -> #{work => W, expires_at => At};
        undefined -> undefined
    end.

%% @doc How many landings are kept.
-spec landing_count() -> non_neg_integer().
landing_count() -> mnesia:table_info(azmp_landing, size).

%% @doc What is known of a token (by its hash), read without a lock: its live landing, `refused'
%% (Azure refused it a moment ago), `busy' (a process is resolving it) or `none'.
-spec landing_of_token(binary(), integer(), fun((integer()) -> boolean())) -> {ok, binary()} | refused | busy | none.
landing_of_token(Hash, Now, Usable) ->
    token_state(mnesia:dirty_read(azmp_landing_token, Hash), fun(Id) -> mnesia:dirty_read(azmp_landing, Id) end,
                Now, Usable).

token_state([#azmp_landing_token{landing_id = {refused, Until}}], _Read, Now, _Usable) when Until >= Now -> refused;
token_state([#azmp_landing_token{landing_id = {resolving, Until}}], _Read, Now, _Usable) when Until >= Now -> busy;
token_state([#azmp_landing_token{landing_id = Id}], Read, _Now, Usable) when is_binary(Id) ->
    case Read(Id) of
        [#azmp_landing{expires_at = At}] -> case Usable(At) of true -> {ok, Id}; false -> none end;
        [] -> none
    end;
token_state(_, _Read, _Now, _Usable) ->
    none.

%% @doc The check that a token has no landing and the claim of its resolution, in one transaction:
%% one process resolves a token however many copies of its landing arrive at once. `claimed' (this
%% process resolves it, until Until, then puts the landing or releases the claim), or what
%% landing_of_token/3 says.
-spec claim_landing(binary(), integer(), integer(), fun((integer()) -> boolean())) ->
    {ok, binary()} | refused | busy | claimed.
claim_landing(Hash, Now, Until, Usable) ->
    tx_ok(fun() ->
        case token_state(mnesia:wread({azmp_landing_token, Hash}), fun(Id) -> mnesia:read(azmp_landing, Id) end,
                         Now, Usable) of
            none ->
                mnesia:write(#azmp_landing_token{token_hash = Hash, landing_id = {resolving, Until}}),
                claimed;
            Known ->
                Known
        end
    end).

%% @doc Ends a claim without a landing: `refused' until Until (Azure refused the token: copies get
%% that answer without asking again), or `free' (the resolution failed: the next copy claims it).
-spec release_landing(binary(), {refused, integer()} | free) -> ok.
release_landing(Hash, Outcome) ->
    tx_ok(fun() ->
        case mnesia:wread({azmp_landing_token, Hash}) of
            [#azmp_landing_token{landing_id = {resolving, _}}] ->
                case Outcome of
                    free -> mnesia:delete({azmp_landing_token, Hash});
                    {refused, _} -> mnesia:write(#azmp_landing_token{token_hash = Hash, landing_id = Outcome})
                end;
            _ ->
                ok
        end
    end).

%% @doc Keeps a landing (durably: it is acknowledged to the customer next), unless Max landings
%% are kept already (`busy': landings are made before anyone signs in, so they are bounded; the
%% token's claim is then released).
-spec put_landing(binary(), binary(), term(), integer(), pos_integer()) -> ok | {error, busy}.
put_landing(Id, Hash, Work, ExpiresAt, Max) ->
    case mnesia:table_info(azmp_landing, size) < Max of
        true ->
            tx_ok(fun() ->
                mnesia:write(#azmp_landing{id = Id, work = Work, expires_at = ExpiresAt}),
                mnesia:write(#azmp_landing_token{token_hash = Hash, landing_id = Id})
            end);
        false ->
            release_landing(Hash, free),
            {error, busy}
    end.

%% @doc Removes the landings expired at Now (and their tokens' entries); how many.
-spec delete_expired_landings(integer()) -> non_neg_integer().
delete_expired_landings(Now) ->
    Head = pattern(azmp_landing, [{#azmp_landing.expires_at, '$1'}]),
    Ids = mnesia:dirty_select(azmp_landing, [{Head, [{'=<', '$1', Now}], [{element, #azmp_landing.id, '$_'}]}]),
    TokenHead = pattern(azmp_landing_token, [{#azmp_landing_token.token_hash, '$1'},
                                              {#azmp_landing_token.landing_id, '$2'}]),
    Tokens = mnesia:dirty_select(azmp_landing_token, [{TokenHead, [], [{{'$1', '$2'}}]}]),
    Gone = sets:from_list(Ids),
    %% a claim or a refusal whose time has passed (its process died, or it is old news) goes too
    Done = fun({_, Until}) -> Until < Now; (Id) -> sets:is_element(Id, Gone) end,
    tx_ok(fun() ->
        _ = [mnesia:delete({azmp_landing, Id}) || Id <- Ids],
        _ = [mnesia:delete({azmp_landing_token, H}) || {H, Id} <- Tokens, Done(Id)],
        ok
    end),
    length(Ids).

%% @doc Turns a landing into the account's linking job, once: the landing is consumed in the same
%% transaction. Usable(ExpiresAt) says whether it may still be used.
-spec redeem_landing(binary(), binary(), integer(), fun((integer()) -> boolean())) ->
    ok | {error, landing_expired | link_in_progress}.
redeem_landing(Account, Id, Now, Usable) ->
    tx_ok(fun() ->
        case mnesia:wread({azmp_landing, Id}) of
            [#azmp_landing{work = Work, expires_at = At}] ->
                case Usable(At) of
                    true ->
                        case new_job(Account, Work, Now) of
                            ok -> mnesia:delete({azmp_landing, Id}), ok;
                            Error -> Error
                        end;
                    false ->
                        mnesia:delete({azmp_landing, Id}),
                        {error, landing_expired}
                end;
            [] ->
                {error, landing_expired}
        end
    end).

%%--------------------------------------------------------------------
%% Webhook operations

-spec operation(binary()) -> #{state := in_progress | done, outcome := term(), claimed_until := integer()} | undefined.
operation(OpId) ->
    case one(azmp_operation, OpId) of
        #azmp_operation{state = S, outcome = O, claimed_until = C} -> #{state => S, outcome => O, claimed_until => C};
        undefined -> undefined
    end.

%% @doc Checks and records at once that this process handles the operation (until Until):
%% `claimed', or `{done, Outcome}' when handled already, or `busy' while another handles it.
-spec claim_operation(binary(), binary(), binary(), integer(), integer()) -> claimed | busy | {done, term()}.
claim_operation(OpId, SubId, Action, Now, Until) ->
    tx_ok(fun() ->
        case mnesia:wread({azmp_operation, OpId}) of
            [#azmp_operation{state = done, outcome = O}] ->
                {done, O};
            [#azmp_operation{state = in_progress, claimed_until = C}] when C >= Now ->
                busy;
            _ ->
                mnesia:write(#azmp_operation{id = OpId, subscription_id = SubId, action = Action, at = Now,
                                             state = in_progress, claimed_until = Until}),
                claimed
        end
    end).

%% @doc Gives a claimed operation back, unhandled (Azure delivers it again).
-spec release_operation(binary()) -> ok.
release_operation(OpId) ->
    tx_ok(fun() ->
        case mnesia:wread({azmp_operation, OpId}) of
            [#azmp_operation{state = in_progress}] -> mnesia:delete({azmp_operation, OpId});
            _ -> ok
        end
    end).

%% @doc Records an operation handled with Outcome (when no link changed with it).
-spec finish_operation(binary(), binary(), binary(), term(), integer()) -> ok.
finish_operation(OpId, SubId, Action, Outcome, Now) ->
    tx_ok(fun() -> record_operation({OpId, SubId, Action}, Outcome, Now) end).

record_operation(undefined, _Outcome, _Now) ->
    ok;
record_operation({OpId, SubId, Action}, Outcome, Now) ->
    mnesia:write(#azmp_operation{id = OpId, subscription_id = SubId, action = Action, outcome = Outcome, at = Now,
                                 state = done}).

%%--------------------------------------------------------------------
%% Deadlines

-spec deadlines_of(binary()) -> [map()].
deadlines_of(Account) ->
    [deadline_map(D) || D <- mnesia:dirty_match_object(pattern(azmp_deadline, [{#azmp_deadline.account_id, Account}]))].

deadline_map(#azmp_deadline{key = K, account_id = A, deployment_id = D, kind = Kind, at = At, done = Done}) ->
    #{key => K, account_id => A, deployment_id => D, kind => Kind, at => At, done => Done}.

%% @doc Deadlines due at Now, not done.
-spec deadlines_due(integer()) -> [map()].
deadlines_due(Now) ->
    Head = pattern(azmp_deadline, [{#azmp_deadline.at, '$1'}, {#azmp_deadline.done, false}]),
    MS = [{Head, [{'=<', '$1', Now}], ['$_']}],
    [deadline_map(D) || D <- mnesia:dirty_select(azmp_deadline, MS)].

%% @doc Claims a due deadline for this node until Until (unix seconds), in a transaction: exactly
%% one node wins a deadline while its claim lasts.
-spec claim_deadline(term(), integer(), integer()) -> {ok, map()} | taken.
claim_deadline(Key, Now, Until) ->
    F = fun() ->
        case mnesia:wread({azmp_deadline, Key}) of
            [D = #azmp_deadline{done = false, at = At, claimed_until = C}] when At =< Now, C < Now ->
                D1 = D#azmp_deadline{claimed_by = node(), claimed_until = Until},
                mnesia:write(D1),
                {ok, deadline_map(D1)};
            _ ->
                taken
        end
    end,
    case transaction(F) of
        {ok, R} -> R;
        {error, _} -> taken
    end.

%% @doc The deadline is done; its effects are committed with that.
-spec finish_deadline(term(), [effect()], integer()) -> effect_key() | none.
finish_deadline({Account, _, _} = Key, Effects, Now) ->
    tx_ok(fun() ->
        case mnesia:wread({azmp_deadline, Key}) of
            [D] -> mnesia:write(D#azmp_deadline{done = true});
            [] -> ok
        end,
        SubId = case mnesia:read(azmp_link, Account) of [#azmp_link{subscription_id = S}] -> S; [] -> undefined end,
        commit_effects(Account, SubId, Effects, Now)
    end).

%%--------------------------------------------------------------------
%% Metering: hourly buckets per subscription and dimension, the samples already counted, the
%% included quantity's counter per term, and the emitter's lease.

-type bucket_key() :: {binary(), binary(), integer()}.

%% A sample: {Account, SourceId, {SubId, Dimension, HourOfTheSample}, Micros, Facts}. Decide(Facts,
%% BucketOpen) says where it goes (it calls the core): whether the sample's own hour still takes
%% samples decides it ({ok, Hour, CarriedFrom | undefined, ClosesAt} or {error, Reason}).
-type usage_sample() :: {binary(), binary(), bucket_key(), non_neg_integer(), term()}.
-type usage_decide() :: fun((term(), boolean(), fun((integer()) -> non_neg_integer())) ->
                                {ok, integer(), integer() | undefined, integer()} | {error, term()}).

%% @doc Many samples in one transaction, each counted once per {Account, SourceId}: the results, in
%% order, and the source ids counted (as dedupe keys). Seen() is called once the transaction holds
%% its locks and gives the predicate saying whether a source id was counted before (the recorder's
%% index of the azmp_usage_dedupe rows). The transaction is synchronous: it returns, and lets go of
%% its locks, once every node with a copy applied it, so that the next group to take the locks, on
%% any node, has this one's source ids (through the table events its recorder got before the
%% locks). It is committed, but not yet synced to disc, when this returns: no result may be
%% acknowledged before sync_usage/0, called after this returned (by any process), has returned (the
%% recorder syncs after each group). Now (unix s) is when the source ids are recorded: each is kept
%% `dedupe_window_s' from then.
-spec record_usage_batch([usage_sample()], usage_decide(), fun(() -> fun((binary()) -> boolean())), integer()) ->
          {[ok | {error, atom()}], [binary()]}.
record_usage_batch(Samples, Decide, Seen, Now) ->
    case emqx_azure_marketplace_db:sync_transaction(fun() -> record_samples(Samples, Decide, Seen, Now) end) of
        {atomic, Done} -> Done;
        {aborted, Reason} -> erlang:error({azmp_store, Reason})
    end.

%% @doc Mnesia's log synced to disc: every transaction committed before this call is durable.
-spec sync_usage() -> ok.
sync_usage() ->
    _ = mnesia:sync_log(),
    ok.

%% The group's source ids are one azmp_usage_dedupe row; the buckets it changes are written once
%% each. The bucket table is locked whole rather than a lock per row: the lock manager is one
%% process, and a message to it per record was most of a sample's cost. With the table locked no
%% other transaction writes it until this one ends, and this one writes nothing before its end (the
%% rows it changes are kept in maps, then written once each), so the rows as they are in the table
%% are what a transactional read would give: mnesia itself reads the table's copy (the
%% `where_to_read' node) directly once a table lock is held. Hence locked_read/2, without the
%% per-read bookkeeping of mnesia:read/1.
record_samples(Samples, Decide, Seen, Now) ->
    mnesia:write_lock_table(azmp_usage),
    {Results, Counted, Buckets} = record_samples(Samples, Decide, Seen(), [], #{}, #{}),
    Sources = maps:keys(Counted),
    Sources =/= [] andalso mnesia:write(dedupe_row(Now, Sources)),
    maps:foreach(fun(_, {B = #azmp_usage{carried_in = C}, LateRev, true}) ->
                         mnesia:write(B#azmp_usage{carried_in = C ++ lists:reverse(LateRev)});
                    (_, _) ->
                         ok
                 end, Buckets),
    {Results, Sources}.

record_samples([], _Decide, _Seen, Results, Counted, Buckets) ->
    {lists:reverse(Results), Counted, Buckets};
record_samples([{Account, SourceId, {SubId, Dim, SampleHour}, Q, Facts} | Rest], Decide, Seen, Results, Counted, Buckets0) ->
    Src = dedupe_key(Account, SourceId),
    case is_map_key(Src, Counted) orelse Seen(Src) of
        true ->
            %% counted already: a retried call
            record_samples(Rest, Decide, Seen, [ok | Results], Counted, Buckets0);
        false ->
            {Own, Buckets1} = bucket({SubId, Dim, SampleHour}, Buckets0),
            Open = case Own of
                       {absent, _, _} -> true;
                       {#azmp_usage{status = open}, _, _} -> true;
                       _ -> false
                   end,
            %% What an hour of this subscription and dimension holds already, as this transaction sees it.
            TotalOf = fun(H) ->
                          case bucket({SubId, Dim, H}, Buckets1) of
                              {{#azmp_usage{recorded = R}, _, _}, _} -> R;
                              {{absent, _, _}, _} -> 0
                          end
                      end,
            case Decide(Facts, Open, TotalOf) of
                {ok, Hour, From, ClosesAt} ->
                    Key = {SubId, Dim, Hour},
                    {B, Buckets2} = bucket(Key, Buckets1),
                    case add_sample(B, Key, Account, Q, From, ClosesAt) of
                        {ok, B1} ->
                            record_samples(Rest, Decide, Seen, [ok | Results], Counted#{Src => true}, Buckets2#{Key => B1});
                        {error, _} = Error ->
                            record_samples(Rest, Decide, Seen, [Error | Results], Counted, Buckets2)
                    end;
                {error, _} = Error ->
                    record_samples(Rest, Decide, Seen, [Error | Results], Counted, Buckets1)
            end
    end.

dedupe_row(At, Keys) ->
    #azmp_usage_dedupe{key = {node(), erlang:system_time(microsecond), erlang:unique_integer([positive])},
                       at = At, sources = << <<(byte_size(K)):16, K/binary>> || K <- Keys >>}.

%% A source id as deduplication knows it: one binary (the account's length first, so that no two
%% pairs give the same key), a third of the RAM of the {Account, SourceId} tuple.
dedupe_key(Account, SourceId) -> <<(byte_size(Account)):16, Account/binary, SourceId/binary>>.

%% @doc The dedupe keys packed in a row's `sources'.
-spec dedupe_keys(binary()) -> [binary()].
dedupe_keys(Packed) -> [K || <<Len:16, K:Len/binary>> <= Packed].

%% A bucket as this transaction sees it: {Row | absent, CarriedInToAddReversed, Changed}.
bucket(Key, Buckets) ->
    case Buckets of
        #{Key := B} ->
            {B, Buckets};
        _ ->
            B = case locked_read(azmp_usage, Key) of
                    [Row] -> {Row, [], false};
                    [] -> {absent, [], false}
                end,
            {B, Buckets#{Key => B}}
    end.

add_sample({absent, _, _}, Key, Account, Q, From, ClosesAt) ->
    {ok, {#azmp_usage{key = Key, account_id = Account, recorded = Q, closes_at = ClosesAt}, late(From, Q, []), true}};
add_sample({B = #azmp_usage{status = open, recorded = R}, LateRev, _}, _Key, _Account, Q, From, _ClosesAt) ->
    {ok, {B#azmp_usage{recorded = R + Q}, late(From, Q, LateRev), true}};
add_sample(_Closed, _Key, _Account, _Q, _From, _ClosesAt) ->
    {error, hour_closed}.

late(undefined, _Q, LateRev) -> LateRev;
late(From, Q, LateRev) -> [{From, Q, late_sample} | LateRev].

%% A row of a table this transaction holds the write lock of (see record_samples/3).
locked_read(Tab, Key) -> mnesia:dirty_read(Tab, Key).

%% @doc Folds F over the source ids kept in this node's copy, with when each was recorded:
%% F(DedupeKey, At, Acc). (The recorder builds its index with it.)
-spec fold_usage_dedupe(fun((binary(), integer(), Acc) -> Acc), Acc) -> Acc.
fold_usage_dedupe(F, Acc0) ->
    mnesia:async_dirty(fun() ->
        mnesia:foldl(fun(#azmp_usage_dedupe{at = At, sources = Sources}, Acc) ->
                             lists:foldl(fun(Key, A) -> F(Key, At, A) end, Acc, dedupe_keys(Sources))
                     end, Acc0, azmp_usage_dedupe)
    end).

%% @doc The keys of the dedupe rows recorded before Before (unix s), read on this node.
-spec usage_dedupe_before(integer()) -> [term()].
usage_dedupe_before(Before) ->
    Head = pattern(azmp_usage_dedupe, [{#azmp_usage_dedupe.key, '$1'}, {#azmp_usage_dedupe.at, '$2'}]),
    mnesia:dirty_select(azmp_usage_dedupe, [{Head, [{'<', '$2', Before}], ['$1']}]).

%% @doc Deletes these dedupe rows in one transaction. Idempotent: every node of a cluster sweeps.
-spec expire_usage_dedupe([term()]) -> ok.
expire_usage_dedupe(Keys) ->
    tx_ok(fun() -> lists:foreach(fun(K) -> mnesia:delete({azmp_usage_dedupe, K}) end, Keys) end).

%% @doc The bytes this node's copy of the dedupe rows takes in RAM: the table's and the packed
%% source ids' (binaries of more than 64 bytes are kept outside the table).
-spec usage_dedupe_bytes() -> non_neg_integer().
usage_dedupe_bytes() ->
    Head = pattern(azmp_usage_dedupe, [{#azmp_usage_dedupe.sources, '$1'}]),
    Packed = mnesia:dirty_select(azmp_usage_dedupe, [{Head, [], [{byte_size, '$1'}]}]),
    mnesia:table_info(azmp_usage_dedupe, memory) * erlang:system_info(wordsize) + lists:sum(Packed).

%% @doc Open buckets whose hour has closed at Now, oldest hour first.
-spec usage_due(integer()) -> [bucket_key()].
usage_due(Now) ->
    Head = pattern(azmp_usage, [{#azmp_usage.status, open}, {#azmp_usage.closes_at, '$1'}]),
    Keys = mnesia:dirty_select(azmp_usage, [{Head, [{'=<', '$1', Now}], [{element, #azmp_usage.key, '$_'}]}]),
    lists:sort(fun({_, _, H1}, {_, _, H2}) -> H1 =< H2 end, Keys).

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
    tx_ok(fun() ->
        Results = [{K, close_one(K, Plan)} || K <- Keys],
        {length([x || {_, R} <- Results, R =/= not_open]), [K || {K, too_large} <- Results]}
    end).

close_one(Key = {SubId, Dim, _}, Plan) ->
    case mnesia:wread({azmp_usage, Key}) of
        [B = #azmp_usage{status = open, recorded = R, carried_in = C, closes_at = ClosesAt}] ->
            Counter = case mnesia:wread({azmp_usage_term, {SubId, Dim}}) of
                          [#azmp_usage_term{term_start = T, used = U, prev_term_start = PT, prev_used = PU}] ->
                              {T, U, PT, PU};
                          [] -> {0, 0, 0, 0}
                      end,
            Billable = lists:sum([Q || {_, Q, Why} <- C, Why =/= late_sample]),
            Late = [{From, Q} || {From, Q, late_sample} <- C],
            {What, PlanId} = Plan(Key, #{recorded => R, carried_in => Billable, counter => Counter, late => Late}),
            B1 = B#azmp_usage{plan_id = PlanId, next_attempt_at = ClosesAt},
            case What of
                {too_large, Counter1} ->
                    mnesia:write(term_row({SubId, Dim}, Counter1)),
                    mnesia:write(B1#azmp_usage{status = rejected, reason = hour_total_too_large}),
                    too_large;
                {Reported, Absorbed, Counter1} ->
                    mnesia:write(term_row({SubId, Dim}, Counter1)),
                    Status = case Reported > 0 of true -> pending; false -> done end,
                    mnesia:write(B1#azmp_usage{status = Status, reported = Reported, absorbed = Absorbed}),
                    closed
            end;
        _ ->
            not_open
    end.

term_row(Key, {T, U}) -> #azmp_usage_term{key = Key, term_start = T, used = U};
term_row(Key, {T, U, PT, PU}) -> #azmp_usage_term{key = Key, term_start = T, used = U, prev_term_start = PT, prev_used = PU}.

%% @doc The closed hours to send (again) at Now: pending ones due, and those sent whose answer was
%% not recorded once their sender's time is up (a crash, or another node's lost lease). Their keys
%% only: the meter reads them a window at a time, so that an hour of many subscriptions is never
%% all in memory at once.
-spec usage_to_send(integer()) -> [bucket_key()].
usage_to_send(Now) -> usage_due_in([pending, submitting], Now).

%% @doc The hours whose next step is due at Now: Azure's usageEvents to be asked (lookup) or the
%% subscription to be read (check).
-spec usage_steps(integer()) -> [bucket_key()].
usage_steps(Now) -> usage_due_in([lookup, check], Now).

usage_due_in(Statuses, Now) ->
    Head = pattern(azmp_usage, [{#azmp_usage.status, '$1'}, {#azmp_usage.next_attempt_at, '$2'}]),
    lists:sort(lists:append(
        [mnesia:dirty_select(azmp_usage, [{Head, [{'=:=', '$1', S}, {'=<', '$2', Now}], [{element, #azmp_usage.key, '$_'}]}])
         || S <- Statuses])).

%% @doc The hours not settled whose hour began before Before (the meter's overdue alarm): closed
%% hours still to send, held, or waiting for a step.
-spec usage_late(integer()) -> [bucket_key()].
usage_late(Before) ->
    Head = pattern(azmp_usage, [{#azmp_usage.key, {'_', '_', '$1'}}, {#azmp_usage.status, '$2'}]),
    mnesia:dirty_select(azmp_usage, [{Head, [{'<', '$1', Before}, {'=/=', '$2', open}, {'=/=', '$2', done},
                                             {'=/=', '$2', carried}, {'=/=', '$2', mismatch},
                                             {'=/=', '$2', rejected}, {'=/=', '$2', dropped}],
                                      [{element, #azmp_usage.key, '$_'}]}]).

%% @doc These hours, those not settled (to send, held, or waiting for a step), as the ledger has them.
-spec usage_of([bucket_key()]) -> [map()].
usage_of(Keys) ->
    [usage_map(B) || K <- Keys, B = #azmp_usage{status = S} <- mnesia:dirty_read(azmp_usage, K),
                     lists:member(S, [pending, submitting, held, lookup, check])].

-spec usage_held() -> [map()].
usage_held() -> [usage_map(B) || B <- usage_with_status([held])].

usage_with_status(Statuses) ->
    lists:append([mnesia:dirty_match_object(pattern(azmp_usage, [{#azmp_usage.status, S}])) || S <- Statuses]).

%% @doc Before the call, in one transaction that holds the emitter's lease (Fence: {Node, Now,
%% LeaseUntil, InFlightUntil}): the lease is checked and renewed, and the hours still to send are
%% marked `submitting', each with the exact quantity it has, not to be taken over before
%% InFlightUntil (when the call has surely ended, answered or not). An hour marked before and never
%% answered may have reached Azure: its outcome is unknown from then on. The hours marked, each with
%% whether its outcome is unknown, or {error, lost_lease} when another node holds the lease
%% (nothing is marked: nothing is sent).
-spec mark_submitting([bucket_key()], {node(), integer(), integer(), integer()}) ->
          {ok, [{bucket_key(), boolean()}]} | {error, lost_lease}.
mark_submitting(Keys, {Node, Now, LeaseUntil, InFlightUntil}) ->
    tx_ok(fun() ->
        case mnesia:wread({azmp_usage_lease, emitter}) of
            [L = #azmp_usage_lease{node = Node, until = Held}] when Held >= Now ->
                mnesia:write(L#azmp_usage_lease{until = max(Held, LeaseUntil)}),
                {ok, [{K, Unknown} || K <- Keys, {true, Unknown} <- [mark_one(K, Now, InFlightUntil)]]};
            _ ->
                {error, lost_lease}
        end
    end).

mark_one(K, Now, InFlightUntil) ->
    case mnesia:wread({azmp_usage, K}) of
        [B = #azmp_usage{status = S, next_attempt_at = At, outcome_unknown = U}]
          when S =:= pending; S =:= submitting, At =< Now ->
            Unknown = U orelse S =:= submitting,
            mnesia:write(B#azmp_usage{status = submitting, next_attempt_at = InFlightUntil, outcome_unknown = Unknown}),
            {true, Unknown};
        _ ->
            false
    end.

%% @doc These hours may not be billed now (suspended): held until the subscription may be again.
-spec hold_usage([bucket_key()]) -> ok.
hold_usage(Keys) ->
    tx_ok(fun() ->
        _ = [mnesia:write(B#azmp_usage{status = held, reason = not_billable_now})
             || K <- Keys, B = #azmp_usage{status = S} <- mnesia:wread({azmp_usage, K}),
                S =:= pending orelse S =:= submitting],
        ok
    end).

%% @doc What the core decided of each hour after an answer (emqx_azure_marketplace_nif:usage_answer/2),
%% applied in one transaction to the hours still at the step answered (From: submitting, lookup or
%% check; an hour another node answered meanwhile is left as it is). A carry goes into the hour
%% Into = {Hour, ClosesAt} (created open if needed).
-spec apply_usage_decisions([{bucket_key(), emqx_azure_marketplace_nif:usage_decision()}],
                            #{from := submitting | lookup | check, into := {integer(), integer()}}) -> ok.
apply_usage_decisions(Decisions, Ctx) ->
    tx_ok(fun() ->
        lists:foreach(fun({Key, D}) -> apply_decision(Key, D, Ctx) end, Decisions)
    end).

apply_decision(Key = {SubId, Dim, Hour}, D = #{outcome := Outcome}, #{from := From, into := {ToHour, ClosesAt}}) ->
    case mnesia:wread({azmp_usage, Key}) of
        [B = #azmp_usage{status = From}] ->
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
            B3 = case maps:get(carry, D) of
                     Q when Q > 0 ->
                         Why = case maps:get(reason, D) of undefined -> carried; R -> R end,
                         carried_out(B2, carry_into({SubId, Dim, ToHour}, B#azmp_usage.account_id, {Hour, Q, Why},
                                                    ClosesAt), {ToHour, Q, Why});
                     _ ->
                         B2
                 end,
            mnesia:write(B3);
        _ ->
            ok  % answered already (another node took the hour over)
    end.

%% `ok', or `closed' when the later hour takes nothing any more (its subscription was cancelled).
carry_into(Key, Account, Entry, ClosesAt) ->
    case mnesia:wread({azmp_usage, Key}) of
        [B = #azmp_usage{status = open, carried_in = C}] ->
            mnesia:write(B#azmp_usage{carried_in = C ++ [Entry]});
        [] ->
            mnesia:write(#azmp_usage{key = Key, account_id = Account, carried_in = [Entry], closes_at = ClosesAt});
        [_Closed] ->
            closed
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
    tx_ok(fun() ->
        case mnesia:wread({azmp_usage, Key}) of
            [B = #azmp_usage{status = held}] when How =:= send ->
                mnesia:write(B#azmp_usage{status = pending, next_attempt_at = Now});
            [B = #azmp_usage{status = held}] when How =:= lookup ->
                mnesia:write(B#azmp_usage{status = lookup, reason = expired_while_held, next_attempt_at = Now});
            [B = #azmp_usage{status = held}] when How =:= drop ->
                mnesia:write(B#azmp_usage{status = dropped, reason = link_not_found});
            [B = #azmp_usage{status = held, reported = Q, account_id = A}] ->
                {carry, ToHour, ClosesAt} = How,
                Out = {ToHour, Q, expired_while_held},
                mnesia:write(carried_out(B#azmp_usage{status = carried},
                                         carry_into({SubId, Dim, ToHour}, A, {Hour, Q, expired_while_held}, ClosesAt),
                                         Out));
            _ ->
                ok
        end
    end).

%% @doc The ledger of a subscription's hours From..To (unix s), oldest first: the hours in RAM and
%% those in the history's day tables.
-spec usage_rows(binary(), integer(), integer()) -> [map()].
usage_rows(SubId, From, To) ->
    Head = pattern(azmp_usage, [{#azmp_usage.key, {SubId, '_', '$1'}}]),
    Live = mnesia:dirty_select(azmp_usage, [{Head, [{'>=', '$1', From}, {'=<', '$1', To}], ['$_']}]),
    Archived = lists:append([day_buckets(mnesia:dirty_read(T, {SubId, Day})) || {Day, T} <- history_tables(From, To)]),
    Rows = [B || B = #azmp_usage{key = {_, _, H}} <- Live ++ Archived, H >= From, H =< To],
    [usage_map(B) || B <- lists:sort(fun(#azmp_usage{key = {_, D1, H1}}, #azmp_usage{key = {_, D2, H2}}) ->
                                             {H1, D1} =< {H2, D2}
                                     end, Rows)].

%% @doc Every subscription's hours From..To (unix s), in RAM and in the history.
-spec usage_between(integer(), integer()) -> [map()].
usage_between(From, To) ->
    Head = pattern(azmp_usage, [{#azmp_usage.key, {'_', '_', '$1'}}]),
    Live = mnesia:dirty_select(azmp_usage, [{Head, [{'>=', '$1', From}, {'=<', '$1', To}], ['$_']}]),
    Archived = [B || {_, T} <- history_tables(From, To), B = #azmp_usage{key = {_, _, H}} <- day_buckets(day_rows(T)),
                     H >= From, H =< To],
    [usage_map(B) || B <- Live ++ Archived].

%% @doc Every bucket, in RAM and in the history (tests and the demo compare the ledger with Azure).
-spec usage_all() -> [map()].
usage_all() ->
    [usage_map(B) || B <- dirty_all(azmp_usage) ++ lists:append([day_buckets(day_rows(T)) || {_, T} <- history_tables()])].

%%--------------------------------------------------------------------
%% The ledger's history. A settled hour (billed, carried on, rejected or dropped: nothing will
%% change it again) leaves RAM once its hour has closed for good: it moves, in the transaction
%% that deletes it from azmp_usage, into the day table of its UTC day, one row per subscription
%% and day. RAM then holds the hours still in play (about two hours of usage), whatever the
%% number of days kept; the history costs disc only, and a day is dropped as a whole.

-define(DAY_PREFIX, "azmp_usage_").
%% Subscription-days moved per transaction.
-define(ARCHIVE_GROUP, 200).

%% @doc Moves into the history the hours whose start is at most LastHour and whose status is one of
%% Settled (the core says which: emqx_azure_marketplace_nif:usage_archivable/2): how many.
-spec archive_usage(integer(), [atom()]) -> non_neg_integer().
archive_usage(LastHour, Settled) ->
    Head = pattern(azmp_usage, [{#azmp_usage.key, {'_', '_', '$1'}}, {#azmp_usage.status, '$2'}]),
    Guard = list_to_tuple(['orelse', false | [{'=:=', '$2', St} || St <- Settled]]),
    Keys = mnesia:dirty_select(azmp_usage, [{Head, [{'=<', '$1', LastHour}, Guard],
                                             [{element, #azmp_usage.key, '$_'}]}]),
    Groups = maps:groups_from_list(fun({Sub, _, H}) -> {Sub, day_of(H)} end, Keys),
    lists:foreach(fun ensure_day_table/1, lists:usort([D || {_, D} <- maps:keys(Groups)])),
    lists:sum([tx_ok(fun() -> lists:sum([archive_day(Sub, Day, Ks, Settled) || {{Sub, Day}, Ks} <- Chunk]) end)
               || Chunk <- chunks(maps:to_list(Groups), ?ARCHIVE_GROUP)]).

archive_day(Sub, Day, Keys, Settled) ->
    %% Read again inside the transaction: only what is still settled moves.
    case [B || K <- Keys, B = #azmp_usage{status = St} <- mnesia:wread({azmp_usage, K}), lists:member(St, Settled)] of
        [] ->
            0;
        Moving ->
            Tab = day_table(Day),
            Kept = day_buckets(mnesia:wread({Tab, {Sub, Day}})),
            All = lists:ukeysort(#azmp_usage.key, Moving ++ Kept),
            ok = mnesia:write(Tab, #azmp_usage_day{key = {Sub, Day}, buckets = term_to_binary(All, [compressed])}, write),
            lists:foreach(fun(#azmp_usage{key = K}) -> mnesia:delete({azmp_usage, K}) end, Moving),
            length(Moving)
    end.

day_rows(Tab) -> mnesia:dirty_select(Tab, [{'_', [], ['$_']}]).

day_buckets(Rows) -> [current_usage(B) || #azmp_usage_day{buckets = Bin} <- Rows, B <- binary_to_term(Bin)].

%% An hour archived by a version whose record had fewer fields: the new ones get their defaults.
current_usage(B) when tuple_size(B) < tuple_size(#azmp_usage{}) ->
    Fields = record_info(fields, azmp_usage),
    Pad = [added_default(azmp_usage, F) || F <- lists:nthtail(tuple_size(B) - 1, Fields)],
    list_to_tuple(tuple_to_list(B) ++ Pad);
current_usage(B) ->
    B.

%% @doc The UTC days (unix s of their start) the history holds, oldest first.
-spec usage_history_days() -> [integer()].
usage_history_days() -> [D || {D, _} <- history_tables()].

%% @doc Drops the history of the days before Before (unix s): their day tables, on every node.
-spec drop_usage_history(integer()) -> [integer()].
drop_usage_history(Before) ->
    [begin
         ok = emqx_azure_marketplace_db:delete_table(T),
         D
     end || {D, T} <- history_tables(), D + 86400 =< Before].

day_of(Hour) -> Hour - Hour rem 86400.

day_table(Day) ->
    {{Y, M, D}, _} = calendar:system_time_to_universal_time(Day, second),
    list_to_atom(lists:flatten(io_lib:format(?DAY_PREFIX "~4..0b~2..0b~2..0b", [Y, M, D]))).

ensure_day_table(Day) ->
    Tab = day_table(Day),
    case lists:member(Tab, mnesia:system_info(tables)) of
        true ->
            ok;
        false ->
            ok = emqx_azure_marketplace_db:create_disc_table(Tab, azmp_usage_day, record_info(fields, azmp_usage_day)),
            ok = emqx_azure_marketplace_db:wait_for_tables([Tab], 30000)
    end.

%% The history's day tables, [{DayStart, Table}] oldest first (From..To: the days that overlap).
history_tables() ->
    lists:sort([{D, T} || T <- mnesia:system_info(tables), D <- day_of_table(T)]).

history_tables(From, To) ->
    [X || X = {D, _} <- history_tables(), D + 86400 > From, D =< To].

day_of_table(T) ->
    case atom_to_list(T) of
        ?DAY_PREFIX ++ [_, _, _, _, _, _, _, _] = Name ->
            Digits = lists:nthtail(length(?DAY_PREFIX), Name),
            try
                Date = {list_to_integer(lists:sublist(Digits, 4)), list_to_integer(lists:sublist(Digits, 5, 2)),
                        list_to_integer(lists:sublist(Digits, 7, 2))},
                [(calendar:date_to_gregorian_days(Date) - 719528) * 86400]
            catch
                error:_ -> []
            end;
        _ ->
            []
    end.

chunks(L, N) -> emqx_azure_marketplace_lists:chunks(L, N).

usage_map(#azmp_usage{key = {S, D, H}} = B) ->
    #{subscription_id => S, dimension => D, hour => H, account_id => B#azmp_usage.account_id,
      status => B#azmp_usage.status, recorded => B#azmp_usage.recorded, carried_in => B#azmp_usage.carried_in,
      carried_out => B#azmp_usage.carried_out, closes_at => B#azmp_usage.closes_at,
      reported => B#azmp_usage.reported, absorbed => B#azmp_usage.absorbed, event_id => B#azmp_usage.event_id,
      message_time => B#azmp_usage.message_time, azure_quantity => B#azmp_usage.azure_quantity,
      reason => B#azmp_usage.reason, attempts => B#azmp_usage.attempts,
      outcome_unknown => B#azmp_usage.outcome_unknown, plan_id => B#azmp_usage.plan_id,
      next_attempt_at => B#azmp_usage.next_attempt_at}.

%% @doc Takes (or keeps) the emitter's lease for this node until Until: true when this node holds it.
-spec take_lease(node(), integer(), integer()) -> boolean().
take_lease(Node, Now, Until) ->
    case transaction(fun() ->
        case mnesia:wread({azmp_usage_lease, emitter}) of
            [#azmp_usage_lease{node = Other, until = U}] when Other =/= Node, U > Now -> false;
            _ -> mnesia:write(#azmp_usage_lease{node = Node, until = Until}), true
        end
    end) of
        {ok, Held} -> Held;
        {error, _} -> false
    end.
