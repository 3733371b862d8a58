%% @doc Applies a subscription event (from a webhook, an unlink, or the reconciliation) to an
%% account: the state transition comes from the C++ core, made in a Mnesia transaction so that only
%% one caller performs it; then the deployments and the payment method follow.
-module(emqx_azure_marketplace_lifecycle).

-export([link_state/1, apply_event/3, schedule/4, cancel_deadlines/1, enforce_all/0]).

-include("emqx_azure_marketplace.hrl").
-include_lib("kernel/include/logger.hrl").

-define(NIF, emqx_azure_marketplace_nif).
-define(PLATFORM, emqx_azure_marketplace_platform).

-type event() :: change_plan | change_quantity | renew | suspend | reinstate | unsubscribe.
-export_type([event/0]).

%% @doc The account's link state as the core's decisions take it: a link in progress is `pending'.
-spec link_state(binary()) -> emqx_azure_marketplace_nif:link_state().
link_state(Account) ->
    case emqx_azure_marketplace_store:link(Account) of
        #azmp_link{state = S} ->
            S;
        undefined ->
            case emqx_azure_marketplace_store:job(Account) of
                #azmp_job{phase = P} when P =/= failed -> pending;
                _ -> none
            end
    end.

%% @doc Applies Event to the account's link. `ignored' when the event does not apply in the
%% current state (redelivered, out of order, or already done by someone else).
-spec apply_event(binary(), event(), map()) -> ok | ignored | {error, not_linked}.
apply_event(Account, Event, Info) ->
    Now = emqx_azure_marketplace_clock:now(),
    Transition = fun() ->
        case mnesia:wread({azmp_link, Account}) of
            [L = #azmp_link{state = Old}] ->
                case ?NIF:next_link_state(Old, Event) of
                    {ok, New} ->
                        L1 = update(L#azmp_link{state = New, updated_at = Now}, Event, Info),
                        mnesia:write(L1),
                        {changed, Old, L1};
                    ignore ->
                        ignored
                end;
            [] ->
                not_linked
        end
    end,
    case emqx_azure_marketplace_store:transaction(Transition) of
        {ok, {changed, Old, L}} ->
            ?LOG_INFO(#{msg => "azure_marketplace_subscription_event", account_id => Account, event => Event,
                        from => Old, to => L#azmp_link.state, subscription_id => L#azmp_link.subscription_id}),
            effects(Event, L, Now);
        {ok, ignored} -> ignored;
        {ok, not_linked} -> {error, not_linked};
        {error, Reason} -> erlang:error({azmp_store, Reason})
    end.

update(L, change_plan, #{plan_id := Plan}) -> L#azmp_link{plan_id = Plan};
update(L, change_quantity, #{quantity := Q}) -> L#azmp_link{quantity = Q};
update(L, renew, #{term := Term}) -> L#azmp_link{term = Term};
update(L, _, _) -> L.

effects(suspend, L = #azmp_link{account_id = A}, Now) ->
    enforce(L, Now),
    ?PLATFORM:notify(A, #{kind => subscription_suspended, subscription_id => L#azmp_link.subscription_id}),
    ok;
effects(reinstate, L = #azmp_link{account_id = A, suspended_deployments = Ids}, _Now) ->
    [ok = ?PLATFORM:start_deployment(A, Id) || Id <- Ids],
    {ok, ok} = emqx_azure_marketplace_store:transaction(fun() ->
        case mnesia:wread({azmp_link, A}) of
            [Cur] -> mnesia:write(Cur#azmp_link{suspended_deployments = []});
            [] -> ok
        end
    end),
    ?PLATFORM:notify(A, #{kind => subscription_reinstated, subscription_id => L#azmp_link.subscription_id}),
    ok;
effects(unsubscribe, L = #azmp_link{account_id = A}, Now) ->
    enforce(L, Now),
    ?PLATFORM:notify(A, #{kind => subscription_cancelled, subscription_id => L#azmp_link.subscription_id}),
    ok;
effects(_Event, _L, _Now) ->
    ok.

%% @doc What a suspended or cancelled link means for the account's deployments and payment method,
%% applied again for every such link. The effects of an event follow its committed state change; a
%% node that died between the two left them undone, and this (run by the reconciliation) catches up.
%% Idempotent: nothing is stopped twice, no deadline is scheduled twice, no notice is sent.
%% Only links changed within `enforce_window_s` (default 7 days) are looked at: cancelled accounts
%% pile up over the years, and an effect lost in a crash is caught up within minutes anyway.
-spec enforce_all() -> [binary()].
enforce_all() ->
    Now = emqx_azure_marketplace_clock:now(),
    Since = Now - application:get_env(emqx_azure_marketplace, enforce_window_s, 7 * 86400),
    [A || L = #azmp_link{account_id = A, state = S, updated_at = T} <- emqx_azure_marketplace_store:links(),
          S =:= suspended orelse S =:= unsubscribed, T >= Since, enforce(L, Now) =:= changed].

enforce(#azmp_link{state = suspended, account_id = A}, Now) ->
    Stopped = [Id || D = #{id := Id} <- ?PLATFORM:deployments(A), stop =:= action(suspended, D, Now)],
    [ok = ?PLATFORM:stop_deployment(A, Id) || Id <- Stopped],
    {ok, ok} = emqx_azure_marketplace_store:transaction(fun() ->
        case mnesia:wread({azmp_link, A}) of
            [Cur = #azmp_link{suspended_deployments = Before}] when Stopped =/= [] ->
                mnesia:write(Cur#azmp_link{suspended_deployments = lists:usort(Before ++ Stopped)});
            _ ->
                ok
        end
    end),
    changed_if(Stopped =/= []);
enforce(#azmp_link{state = unsubscribed, account_id = A}, Now) ->
    Method =
        case ?PLATFORM:payment_method(A) of
            azure_marketplace_subscription -> ok = ?PLATFORM:set_payment_method(A, none), changed;
            _ -> unchanged
        end,
    Changes = lists:map(
        fun(D = #{id := Id}) ->
            case ?NIF:decide_deployment(unsubscribed, D, Now) of
                {stop, _Reason} ->
                    ok = ?PLATFORM:stop_deployment(A, Id),
                    schedule(A, Id, delete, Now + 3 * 86400),
                    changed;
                {delete, At} ->
                    %% Stopped before the cancellation: still 3 days from now, as the customer was told.
                    schedule(A, Id, delete, max(At, Now + 3 * 86400));
                keep ->
                    %% A trial runs until its trial ends: stop it then.
                    schedule(A, Id, stop, trial_end(D, Now))
            end
        end,
        ?PLATFORM:deployments(A)
    ),
    changed_if(lists:member(changed, [Method | Changes]));
enforce(_Link, _Now) ->
    unchanged.

changed_if(true) -> changed;
changed_if(false) -> unchanged.

action(State, D, Now) ->
    case ?NIF:decide_deployment(State, D, Now) of
        {stop, _} -> stop;
        _ -> keep
    end.

trial_end(#{trial_ends_at := T}, _Now) when is_integer(T) -> T;
trial_end(_, Now) -> Now.

%% @doc Records a deadline: one pending per account, deployment and kind (a pending one is kept as
%% it is; a finished or cancelled one is replaced).
-spec schedule(binary(), binary(), stop | delete, integer()) -> changed | unchanged.
schedule(Account, Deployment, Kind, At) ->
    Key = {Account, Deployment, Kind},
    {ok, Result} = emqx_azure_marketplace_store:transaction(fun() ->
        case mnesia:wread({azmp_deadline, Key}) of
            [#azmp_deadline{done = false}] -> unchanged;
            _ ->
                mnesia:write(#azmp_deadline{key = Key, account_id = Account, deployment_id = Deployment,
                                            kind = Kind, at = At}),
                changed
        end
    end),
    Result.

%% @doc Inside a transaction: the account pays through the marketplace again, so what a former
%% cancellation scheduled (stopping trials, deleting stopped deployments) no longer applies.
-spec cancel_deadlines(binary()) -> ok.
cancel_deadlines(Account) ->
    Pending = mnesia:match_object(emqx_azure_marketplace_store:pattern(
        azmp_deadline, [{#azmp_deadline.account_id, Account}, {#azmp_deadline.done, false}])),
    lists:foreach(fun(D) -> mnesia:write(D#azmp_deadline{done = true}) end, Pending).
