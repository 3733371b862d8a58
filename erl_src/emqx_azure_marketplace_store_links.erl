%% @doc Links and claims: an account's link to its Azure subscription (azmp_link, on disc only; its
%% state row azmp_link_state, what gating and recording read on every call, in RAM) and the claim on
%% a subscription (azmp_claim, on disc only: one account per subscription, and a cancelled
%% subscription stays cancelled for linking's sake). A link and its state row are written in one
%% transaction, and the rows are derived from the links again when the plugin starts. A
%% link's subscription is always claimed by its account (written in the link's transaction, and
%% given back only when not linked): the claim is the link's index by subscription. A state change and the effects it
%% plans are committed in one transaction: the decision is passed in as a fun (it calls the C++
%% core) and runs inside it, on facts read in it. The linking job's transactions read and write
%% links and claims through the *_tx functions, inside their own transaction.
-module(emqx_azure_marketplace_store_links).

-export([tables/0, claim_linked_subscriptions/0, derive_link_states/0, sync_link_state/2]).
-export([link/1, link_state/1, gate_facts/1, link_usage/1, link_by_subscription/1, link_of/2, link_state_of/2,
         reading_links/2, links_changed_since/1, transition/5,
         enforce/3]).
%% inside another store's transaction
-export([claim_facts_tx/2, write_claim_tx/2, write_linked_tx/4, release_claim_tx/2]).

-include("emqx_azure_marketplace.hrl").

-define(DB, emqx_azure_marketplace_db).
-define(OUTBOX, emqx_azure_marketplace_store_outbox).
-define(OPERATIONS, emqx_azure_marketplace_store_operations).

-type effect_key() :: ?OUTBOX:effect_key().
-type plan() :: {ok, emqx_azure_marketplace_nif:link_change(), [?OUTBOX:effect()]} | ignore | stale.

%% @doc The tables of links and claims (see emqx_azure_marketplace_store:table_defs/0).
-spec tables() -> [emqx_azure_marketplace_store:table_def()].
tables() ->
    [{azmp_link, record_info(fields, azmp_link), [], on_disc},
     {azmp_link_state, record_info(fields, azmp_link_state), []},
     {azmp_claim, record_info(fields, azmp_claim), [], on_disc}].

%% @doc Links made before claims existed hold their subscriptions too (a table upgrade). The claims'
%% keys are read in one pass over their file, not a read per link.
-spec claim_linked_subscriptions() -> ok.
claim_linked_subscriptions() ->
    Claimed = maps:from_keys(?DB:dirty_all_keys(azmp_claim), true),
    case [L || L = #azmp_link{subscription_id = S} <- ?DB:dirty_all(azmp_link), not is_map_key(S, Claimed)] of
        [] ->
            ok;
        Unclaimed ->
            ?DB:tx_ok(fun() ->
                [?DB:write(#azmp_claim{subscription_id = S, account_id = A, cancelled = St =:= unsubscribed})
                 || #azmp_link{subscription_id = S, account_id = A, state = St} <- Unclaimed,
                    ?DB:read(azmp_claim, S) =:= []],
                ok
            end)
    end.

%% @doc Links written by a previous version (which kept no state rows), or by one rolled back to,
%% get their state rows: each link's row as the link says, written where it differs (and a row
%% whose link is gone deleted). One pass over the links' file, reading only the rows' fields; when
%% anything differs, again in one transaction that locks both tables, so that no link changes
%% between the reading and the writing.
-spec derive_link_states() -> ok.
derive_link_states() ->
    case link_state_changes() of
        {[], []} ->
            ok;
        _ ->
            ?DB:tx_ok_locked([azmp_link, azmp_link_state], fun() ->
                {Write, Delete} = link_state_changes(),
                lists:foreach(fun ?DB:write/1, Write),
                lists:foreach(fun(A) -> ?DB:delete({azmp_link_state, A}) end, Delete)
            end)
    end.

link_state_changes() ->
    Have = maps:from_list([{A, R} || R = #azmp_link_state{account_id = A} <- ?DB:dirty_all(azmp_link_state)]),
    Fields = [#azmp_link.account_id, #azmp_link.subscription_id, #azmp_link.state, #azmp_link.cancelled_at,
              #azmp_link.activated_at],
    Vars = ['$1', '$2', '$3', '$4', '$5'],
    %% The state row's fields, in its record's order (a tuple in a match spec's body is in braces).
    Want = ?DB:dirty_select(azmp_link, [{?DB:pattern(azmp_link, lists:zip(Fields, Vars)), [],
                                         [{list_to_tuple([azmp_link_state | Vars])}]}]),
    Write = [R || R = #azmp_link_state{account_id = A} <- Want, maps:get(A, Have, none) =/= R],
    {Write, maps:keys(maps:without([A || #azmp_link_state{account_id = A} <- Want], Have))}.

%% @doc The account's state row made to say what its link says, where it does not: a link written
%% by a node of a build before state rows, in a rolling upgrade (emqx_azure_marketplace_link_state_sync
%% follows the links' changes). Seen: the link as the change left it, or undefined (gone, or not
%% known): compared first with the row in RAM, and only when they differ read again, with the row,
%% in a transaction that writes (or deletes) the row.
-spec sync_link_state(binary(), tuple() | undefined) -> ok.
sync_link_state(Account, Seen) ->
    case state_of(Seen) =:= ?DB:one(azmp_link_state, Account) of
        true ->
            ok;
        false ->
            ?DB:tx_ok(fun() ->
                Want = case ?DB:wread({azmp_link, Account}) of
                           [Link] -> state_row(Link);
                           [] -> undefined
                       end,
                case {Want, ?DB:wread({azmp_link_state, Account})} of
                    {undefined, []} -> ok;
                    {undefined, [_]} -> ?DB:delete({azmp_link_state, Account});
                    {Row, [Row]} -> ok;
                    {Row, _} -> ?DB:write(Row)
                end
            end)
    end.

state_of(L = #azmp_link{}) -> state_row(L);
state_of(_) -> undefined.

%% The part of a link its state row holds.
state_row(#azmp_link{account_id = A, subscription_id = S, state = St, cancelled_at = C, activated_at = T}) ->
    #azmp_link_state{account_id = A, subscription_id = S, state = St, cancelled_at = C, activated_at = T}.

%% Inside a transaction: the link New (which was Old, or none) and, when its part changed, its state row.
write_link_tx(Old, New) ->
    ok = ?DB:write(New),
    Row = state_row(New),
    case Old =/= undefined andalso state_row(Old) =:= Row of
        true -> ok;
        false -> ?DB:write(Row)
    end.

%% @doc The account's link, or undefined (a read on disc).
-spec link(binary()) -> map() | undefined.
link(Account) -> link_map(?DB:one(azmp_link, Account)).

%% @doc The account's link's state and subscription (read in RAM), or undefined.
-spec link_state(binary()) -> #{account_id := binary(), subscription_id := binary(),
                                state := emqx_azure_marketplace_nif:link_state(),
                                cancelled_at := integer() | undefined, activated_at := integer() | undefined}
                              | undefined.
link_state(Account) ->
    case ?DB:one(azmp_link_state, Account) of
        #azmp_link_state{subscription_id = Sub, state = S, cancelled_at = C, activated_at = T} ->
            #{account_id => Account, subscription_id => Sub, state => S, cancelled_at => C, activated_at => T};
        undefined ->
            undefined
    end.

%% @doc What gating a deployment needs of the account's link: its state and when it was cancelled
%% (one read of the row in RAM; no map built).
-spec gate_facts(binary()) -> {emqx_azure_marketplace_nif:link_state(), integer() | undefined} | undefined.
gate_facts(Account) ->
    case ?DB:one(azmp_link_state, Account) of
        #azmp_link_state{state = S, cancelled_at = C} -> {S, C};
        undefined -> undefined
    end.

%% @doc What recording a sample needs of the account's link (every sample reads it, in RAM: no map built).
-spec link_usage(binary()) ->
          {emqx_azure_marketplace_nif:link_state(), integer() | undefined, binary(), integer() | undefined} | undefined.
link_usage(Account) ->
    case ?DB:one(azmp_link_state, Account) of
        #azmp_link_state{state = S, cancelled_at = C, subscription_id = Sub, activated_at = A} -> {S, C, Sub, A};
        undefined -> undefined
    end.

%% @doc The link of a subscription, or undefined: the link of the account that claims it (a read
%% on disc), when that link is to this subscription.
-spec link_by_subscription(binary()) -> map() | undefined.
link_by_subscription(SubId) -> claimed(SubId, fun link/1).

%% @doc The link of a subscription, Account being the one most likely linked to it (the one that
%% recorded its usage): one read when it is, else as link_by_subscription/1.
-spec link_of(binary(), binary()) -> map() | undefined.
link_of(Account, SubId) -> of_subscription(Account, SubId, fun link/1).

%% @doc The state of a subscription's link (as link_state/1), Account being the one most likely
%% linked to it: a read in RAM when it is, else through the subscription's claim.
-spec link_state_of(binary(), binary()) -> map() | undefined.
link_state_of(Account, SubId) -> of_subscription(Account, SubId, fun link_state/1).

%% @doc Fun(Read) for a pass that reads about N links, Read(Account, SubId) answering as link_of/2
%% (an hour's close reads a link per subscription). When N is at least a quarter of the links, all
%% are read first in one pass over their file, into a table that lives while Fun runs, and Read
%% answers from there (a link the pass missed is read on disc; one changed since reads as it was,
%% as any read before the close's transaction may): at 100,000 links the pass takes
%% 0.32 s, where a read each takes ~13 us of CPU (measured). The pass runs in a process of its own:
%% the caller's heap never holds every link (a long-lived heap that large costs its owner every
%% collection).
-spec reading_links(non_neg_integer(), fun((fun((binary(), binary()) -> map() | undefined)) -> T)) -> T.
reading_links(N, Fun) ->
    case N * 4 >= ?DB:table_info(azmp_link, size) andalso N > 0 of
        false ->
            Fun(fun link_of/2);
        true ->
            Tab = ets:new(azmp_links_read, [set, public, {keypos, #azmp_link.account_id}]),
            try
                {Pid, Ref} = spawn_monitor(fun() -> ets:insert(Tab, ?DB:dirty_all(azmp_link)) end),
                receive {'DOWN', Ref, process, Pid, _} -> ok end,
                Read = fun(A) ->
                           case ets:lookup(Tab, A) of
                               [L] -> link_map(L);
                               [] -> link_map(?DB:one(azmp_link, A))
                           end
                       end,
                Fun(fun(Account, SubId) -> of_subscription(Account, SubId, Read) end)
            after
                ets:delete(Tab)
            end
    end.

of_subscription(Account, SubId, Read) ->
    case Read(Account) of
        #{subscription_id := SubId} = L -> L;
        _ -> claimed(SubId, Read)
    end.

%% Read(Account) of the account that claims the subscription, when it is linked to it.
claimed(SubId, Read) ->
    case ?DB:dirty_read(azmp_claim, SubId) of
        [#azmp_claim{account_id = Account}] ->
            case Read(Account) of
                #{subscription_id := SubId} = L -> L;
                _ -> undefined
            end;
        [] ->
            undefined
    end.

%% @doc Links in State changed at or after Since (unix seconds).
-spec links_changed_since(integer()) -> [map()].
links_changed_since(Since) ->
    Head = ?DB:pattern(azmp_link, [{#azmp_link.updated_at, '$1'}]),
    [link_map(L) || L <- ?DB:dirty_select(azmp_link, [{Head, [{'>=', '$1', Since}], ['$_']}])].

link_map(undefined) ->
    undefined;
link_map(#azmp_link{} = L) ->
    #{account_id => L#azmp_link.account_id, subscription_id => L#azmp_link.subscription_id,
      state => L#azmp_link.state, plan_id => L#azmp_link.plan_id, quantity => L#azmp_link.quantity,
      term => L#azmp_link.term, suspended => L#azmp_link.suspended_deployments,
      updated_at => L#azmp_link.updated_at, cancelled_at => L#azmp_link.cancelled_at,
      last_op_at => L#azmp_link.last_op_at, activated_at => L#azmp_link.activated_at}.

%% The link's part of the facts the rules take.
link_facts(#azmp_link{state = S, suspended_deployments = Ids, cancelled_at = C, last_op_at = T}) ->
    #{state => S, suspended => Ids, cancelled_at => C, last_op_at => T}.

%% @doc Applies a planned event to the account's link. Plan(LinkFacts) runs in the transaction and
%% returns the core's plan; Info (plan_id, quantity, term) is written with a change; Op (a webhook
%% operation being handled: {OpId, SubId, Action}) is recorded as handled in the same transaction.
-spec transition(binary(), fun((map()) -> plan()), map(), ?OPERATIONS:op() | undefined, integer()) ->
    {changed, atom(), map(), effect_key() | none} | ignored | stale | not_linked.
transition(Account, Plan, Info, Op, Now) ->
    ?DB:tx_ok(fun() ->
        case ?DB:wread({azmp_link, Account}) of
            [L = #azmp_link{state = Old}] ->
                case Plan(link_facts(L)) of
                    {ok, Change, Effects} ->
                        L1 = apply_change(L, Change, Info, Now),
                        write_link_tx(L, L1),
                        mark_claim(L1, Change),
                        Key = emqx_azure_marketplace_store_plans:effects_tx(Account, L1#azmp_link.subscription_id, Effects, Now),
                        ?OPERATIONS:record_operation_tx(Op, applied, Now),
                        {changed, Old, link_map(L1), Key};
                    ignore ->
                        ?OPERATIONS:record_operation_tx(Op, ignored, Now),
                        ignored;
                    stale ->
                        ?OPERATIONS:record_operation_tx(Op, stale, Now),
                        stale
                end;
            [] ->
                ?OPERATIONS:record_operation_tx(Op, not_linked, Now),
                not_linked
        end
    end).

apply_change(L, #{state := S, suspended := Ids, cancelled_at := C, last_op_at := T}, Info, Now) ->
    L1 = L#azmp_link{state = S, suspended_deployments = Ids, cancelled_at = C, last_op_at = T, updated_at = Now},
    L1#azmp_link{plan_id = maps:get(plan_id, Info, L1#azmp_link.plan_id),
                 quantity = maps:get(quantity, Info, L1#azmp_link.quantity),
                 term = maps:get(term, Info, L1#azmp_link.term)}.

%% The core's plan says when the claim records the cancellation.
mark_claim(#azmp_link{subscription_id = S, account_id = A}, #{claim_cancelled := true}) ->
    ?DB:write(#azmp_claim{subscription_id = S, account_id = A, cancelled = true});
mark_claim(_, _) ->
    ok.

%% @doc The effects of the link's state, planned again (reconciliation): `changed' when anything
%% was to be done (an effect to perform or a deadline not yet scheduled).
-spec enforce(binary(), fun((map()) -> plan()), integer()) -> {changed | unchanged, effect_key() | none}.
enforce(Account, Plan, Now) ->
    ?DB:tx_ok(fun() ->
        case ?DB:wread({azmp_link, Account}) of
            [L] ->
                {ok, #{suspended := Ids}, Effects} = Plan(link_facts(L)),
                Ids =/= L#azmp_link.suspended_deployments andalso
                    write_link_tx(L, L#azmp_link{suspended_deployments = Ids}),
                emqx_azure_marketplace_store_plans:enforce_effects_tx(Account, L#azmp_link.subscription_id, Effects, Now);
            [] ->
                {unchanged, none}
        end
    end).

%%--------------------------------------------------------------------
%% Inside the linking job's transactions

%% @doc Inside a transaction, what linking Account to SubId is decided on: who holds the claim on
%% the subscription (write-locked) and whether it was seen cancelled, and whether the account is
%% linked to another subscription that is not cancelled.
-spec claim_facts_tx(binary(), binary()) ->
          #{holder := binary() | undefined, seen_cancelled := boolean(), holds_other := boolean()}.
claim_facts_tx(Account, SubId) ->
    {Holder, Cancelled} =
        case ?DB:wread({azmp_claim, SubId}) of
            [#azmp_claim{account_id = H, cancelled = C}] -> {H, C};
            [] -> {undefined, false}
        end,
    HoldsOther =
        case ?DB:read(azmp_link, Account) of
            [#azmp_link{subscription_id = Other, state = St}] -> Other =/= SubId andalso St =/= unsubscribed;
            [] -> false
        end,
    #{holder => Holder, seen_cancelled => Cancelled, holds_other => HoldsOther}.

%% @doc Inside a transaction: the subscription is claimed by the account.
-spec write_claim_tx(binary(), binary()) -> ok.
write_claim_tx(SubId, Account) ->
    ?DB:write(#azmp_claim{subscription_id = SubId, account_id = Account}).

%% @doc Inside a transaction: the account is linked to the subscription it claims, from Now.
-spec write_linked_tx(binary(), binary(), map(), integer()) -> ok.
write_linked_tx(Account, SubId, Fields = #{plan_id := Plan, quantity := Q}, Now) ->
    write_link_tx(undefined, #azmp_link{account_id = Account, subscription_id = SubId, state = linked,
                                        plan_id = Plan, quantity = Q, term = maps:get(term, Fields, undefined),
                                        updated_at = Now, activated_at = Now}),
    write_claim_tx(SubId, Account).

%% @doc Inside a transaction: the account's claim on SubId (if any, not cancelled, and the account
%% not linked to it) is given back.
-spec release_claim_tx(binary(), binary() | undefined) -> ok.
release_claim_tx(Account, SubId) ->
    Linked = [x || #azmp_link{subscription_id = S} <- ?DB:read(azmp_link, Account), S =:= SubId],
    case SubId =/= undefined andalso Linked =:= [] andalso ?DB:wread({azmp_claim, SubId}) of
        [#azmp_claim{account_id = Account, cancelled = false}] -> ?DB:delete({azmp_claim, SubId});
        _ -> ok
    end.
