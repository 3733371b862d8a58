%% @doc Applies a subscription event (from a webhook, an unlink, or the reconciliation) to an
%% account: gathers the facts (the link, the account's deployments and payment method), lets the C++
%% core plan the new state and the effects, commits both in one transaction, then performs the effects.
-module(emqx_azure_marketplace_lifecycle).

-export([link_state/1, gate_facts/1, apply_event/4, enforce_changed_since/1]).

-include_lib("kernel/include/logger.hrl").

-define(NIF, emqx_azure_marketplace_nif).
-define(PLATFORM, emqx_azure_marketplace_platform).
-define(JOBS, emqx_azure_marketplace_store_jobs).
-define(LINKS, emqx_azure_marketplace_store_links).

-type event() :: emqx_azure_marketplace_nif:link_event().
-export_type([event/0]).

%% @doc The account's link state as the core's rules take it: a link in progress is `pending'.
-spec link_state(binary()) -> emqx_azure_marketplace_nif:link_state().
link_state(Account) -> element(1, gate_facts(Account)).

%% @doc What the gating rules take of the account's link: its state (as link_state/1) and when it
%% was cancelled (undefined without a link).
-spec gate_facts(binary()) -> {emqx_azure_marketplace_nif:link_state(), integer() | undefined}.
gate_facts(Account) ->
    case ?LINKS:gate_facts(Account) of
        {_, _} = Facts ->
            Facts;
        undefined ->
            case ?JOBS:job_phase(Account) of
                undefined -> {none, undefined};
                failed -> {none, undefined};
                _InProgress -> {pending, undefined}
            end
    end.

%% @doc Applies Event to the account's link. Info: the link's new `plan_id', `quantity' or `term'.
%% Op: the webhook operation behind it (recorded as handled in the same transaction) and Azure's
%% time for it in ms, or undefined. `ignored' when the event does not apply in the current state
%% (redelivered, out of order, done by someone else), `stale' when a newer operation was applied.
-spec apply_event(binary(), event(), map(), {{binary(), binary(), binary()}, integer() | undefined} | undefined) ->
    ok | ignored | stale | {error, not_linked}.
apply_event(Account, Event, Info, Op) ->
    Now = emqx_azure_marketplace_clock:now(),
    Account1 = facts(Account),
    {OpRecord, OpAt} = case Op of {R, T} -> {R, T}; undefined -> {undefined, undefined} end,
    Plan = fun(LinkFacts) -> ?NIF:plan_event((maps:merge(Account1, LinkFacts))#{event => Event, now => Now, op_at => OpAt}) end,
    case ?LINKS:transition(Account, Plan, Info, OpRecord, Now) of
        {changed, Old, #{state := New, subscription_id := SubId}, Key} ->
            ?LOG_INFO(#{msg => "azure_marketplace_subscription_event", account_id => Account, event => Event,
                        from => Old, to => New, subscription_id => SubId}),
            emqx_azure_marketplace_effects:perform(Key);
        ignored -> ignored;
        stale ->
            ?LOG_NOTICE(#{msg => "azure_marketplace_stale_event_ignored", account_id => Account, event => Event}),
            stale;
        not_linked -> {error, not_linked}
    end.

%% The platform's side of the facts (asked before the transaction: the platform is not in it).
facts(Account) ->
    #{deployments => ?PLATFORM:deployments(Account),
      marketplace_pays => ?PLATFORM:payment_method(Account) =:= azure_marketplace_subscription}.

%% @doc What the state of every link changed since Since (the reconciliation's plan says when)
%% means for its deployments and payment method, planned and performed again: the catch-up for
%% effects a crash (or an operator) left undone. The accounts where anything was to be done.
-spec enforce_changed_since(integer()) -> [binary()].
enforce_changed_since(Since) ->
    Now = emqx_azure_marketplace_clock:now(),
    [A || #{account_id := A} <- ?LINKS:links_changed_since(Since), enforce(A, Now) =:= changed].

enforce(Account, Now) ->
    Facts = facts(Account),
    Plan = fun(LinkFacts) -> ?NIF:plan_event((maps:merge(Facts, LinkFacts))#{event => enforce, now => Now}) end,
    {Changed, Key} = ?LINKS:enforce(Account, Plan, Now),
    emqx_azure_marketplace_effects:perform(Key),
    Changed.
