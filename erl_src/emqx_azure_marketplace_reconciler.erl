%% @doc Periodic reconciliation: Azure's list of subscriptions is the truth; a lost webhook
%% (suspension, reinstatement, cancellation) is repaired from it.
-module(emqx_azure_marketplace_reconciler).

-behaviour(gen_server).

-export([start_link/0, reconcile/0, resync/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include_lib("kernel/include/logger.hrl").

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Reconciles now; the events it applied.
-spec reconcile() -> {ok, [{binary(), atom()}]} | {error, term()}.
reconcile() -> gen_server:call(?MODULE, reconcile, 120000).

-spec init([]) -> {ok, #{}}.
init([]) ->
    schedule(),
    {ok, #{}}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(reconcile, _From, S) -> {reply, run(), S};
handle_call(_Req, _From, S) -> {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) -> {noreply, S}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(reconcile, S) ->
    case run() of
        {ok, []} -> ok;
        {ok, Applied} -> ?LOG_NOTICE(#{msg => "azure_marketplace_reconciled", applied => Applied});
        {error, Reason} -> ?LOG_WARNING(#{msg => "azure_marketplace_reconcile_failed", reason => Reason})
    end,
    schedule(),
    {noreply, S};
handle_info(_Msg, S) ->
    {noreply, S}.

schedule() ->
    erlang:send_after(application:get_env(emqx_azure_marketplace, reconcile_interval_ms, 300000), self(),
                      reconcile).

run() ->
    Result = emqx_azure_marketplace_client:list_subscriptions(emqx_azure_marketplace_azure:client()),
    case repairs(#{step => list, result => Result}) of
        {ok, Applied, Since} ->
            %% Then the effects of every recent suspension or cancellation, planned again, in case
            %% they were undone since (an operator, or a platform call that failed).
            Enforced = [{A, enforced} || A <- emqx_azure_marketplace_lifecycle:enforce_changed_since(Since)],
            {ok, Applied ++ Enforced};
        Error ->
            Error
    end.

%% @doc One subscription brought to Azure's state now (the operator's `resync'): what was applied.
-spec resync(binary()) -> {ok, [{binary(), atom()}]} | {error, term()}.
resync(SubId) ->
    Result = emqx_azure_marketplace_client:get_subscription(emqx_azure_marketplace_azure:client(), SubId),
    case repairs(#{step => one, subscription_id => SubId, result => Result}) of
        {ok, Applied, _} -> {ok, Applied};
        Error -> Error
    end.

%% Azure's answer against our links to the subscriptions it names (the core plans the repairs);
%% each repair applied as the subscription event it is.
repairs(Facts = #{result := Result}) ->
    Window = application:get_env(emqx_azure_marketplace, enforce_window_s, undefined),
    case emqx_azure_marketplace_nif:plan_reconcile(Facts#{now => emqx_azure_marketplace_clock:now(),
                                                           enforce_window_s => Window}) of
        #{outcome := need_links, subscription_ids := Ids} ->
            repairs(Facts#{links => links(Ids)});
        #{outcome := repairs, repairs := Repairs, enforce_changed_since := Since} ->
            %% A pass names what it applied by subscription, a resync by account (as they always did).
            Name = case Facts of #{step := list} -> subscription_id; #{step := one} -> account_id end,
            {ok, [{maps:get(Name, R), Event} || R = #{account_id := A, event := Event} <- Repairs,
                                                emqx_azure_marketplace_lifecycle:apply_event(A, Event, #{}, undefined) =:= ok],
             Since};
        #{outcome := bad_response} ->
            {error, {bad_response, no_status}};
        #{outcome := failed} ->
            {error, reason(Result)}
    end.

links(Ids) ->
    lists:foldl(fun(Id, Acc) ->
                        case emqx_azure_marketplace_store_links:link_by_subscription(Id) of
                            #{account_id := A, state := State} -> Acc#{Id => #{account_id => A, state => State}};
                            undefined -> Acc
                        end
                end, #{}, Ids).

reason({error, Reason}) -> emqx_azure_marketplace_client:redact(Reason).
