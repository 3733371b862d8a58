%% @doc A plan's effects, committed inside the transaction that commits its state change: the
%% deadlines it schedules or cancels are state (the deadlines store's), the activation is the job's
%% next step (its `activating' phase, written with it, records it), and the rest goes to the outbox
%% to be performed. Also the end of a due deadline with its own plan.
-module(emqx_azure_marketplace_store_plans).

-export([effects_tx/4, enforce_effects_tx/4, finish_deadline/4]).

-define(DB, emqx_azure_marketplace_db).
-define(DEADLINES, emqx_azure_marketplace_store_deadlines).
-define(OUTBOX, emqx_azure_marketplace_store_outbox).

-type effect() :: ?OUTBOX:effect().
-type effect_key() :: ?OUTBOX:effect_key().

%% @doc Inside a transaction: writes the deadline effects and records the others, to be performed:
%% their record's key, or `none' when there is nothing to perform.
-spec effects_tx(binary(), binary() | undefined, [effect()], integer()) -> effect_key() | none.
effects_tx(Account, SubId, Effects, Now) ->
    {_, Key} = commit(Account, SubId, Effects, Now),
    Key.

%% @doc Inside a transaction: as effects_tx/4, and whether anything was to be done (an effect to
%% perform, or a deadline not yet scheduled or still to cancel).
-spec enforce_effects_tx(binary(), binary() | undefined, [effect()], integer()) ->
          {changed | unchanged, effect_key() | none}.
enforce_effects_tx(Account, SubId, Effects, Now) ->
    {StateChanged, Key} = commit(Account, SubId, Effects, Now),
    {case Key =/= none orelse StateChanged of true -> changed; false -> unchanged end, Key}.

%% @doc A due deadline is done, and its plan's effects committed with that, in one transaction.
%% SubId: the subscription of the account's link, for the record.
-spec finish_deadline(term(), binary() | undefined, [effect()], integer()) -> effect_key() | none.
finish_deadline({Account, _, _} = Key, SubId, Effects, Now) ->
    ?DB:tx_ok(fun() ->
        ok = ?DEADLINES:done_tx(Key),
        effects_tx(Account, SubId, Effects, Now)
    end).

commit(Account, SubId, Effects, Now) ->
    {Outbox, State} = lists:partition(fun is_outbox_effect/1, Effects),
    New = [x || changed <- [state_effect(Account, E) || E <- State]],
    {New =/= [], ?OUTBOX:write_tx(Account, SubId, Outbox, Now)}.

is_outbox_effect({schedule_deadline, _, _, _}) -> false;
is_outbox_effect(cancel_deadlines) -> false;
is_outbox_effect(activate) -> false;
is_outbox_effect(_) -> true.

state_effect(_Account, activate) -> unchanged;
state_effect(Account, Effect) -> ?DEADLINES:write_effect_tx(Account, Effect).
