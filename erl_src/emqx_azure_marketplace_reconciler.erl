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
    case emqx_azure_marketplace_client:list_subscriptions(emqx_azure_marketplace_azure:client()) of
        {ok, Subs} ->
            Applied = [{Id, Event} || #{<<"id">> := Id, <<"saasSubscriptionStatus">> := Status} <- Subs,
                                      is_binary(Id), is_binary(Status),
                                      {A, Event} <- repair(Id, Status),
                                      emqx_azure_marketplace_lifecycle:apply_event(A, Event, #{}, undefined) =:= ok],
            %% Then the effects of every recent suspension or cancellation, planned again, in case
            %% they were undone since (an operator, or a platform call that failed).
            Enforced = [{A, enforced} || A <- emqx_azure_marketplace_lifecycle:enforce_all()],
            {ok, Applied ++ Enforced};
        {error, {http, S, _}} ->
            {error, {http, S}};
        {error, Reason} ->
            {error, Reason}
    end.

%% @doc One subscription brought to Azure's state now (the operator's `resync'): what was applied.
-spec resync(binary()) -> {ok, [{binary(), atom()}]} | {error, term()}.
resync(SubId) ->
    case emqx_azure_marketplace_client:get_subscription(emqx_azure_marketplace_azure:client(), SubId) of
        {ok, #{<<"saasSubscriptionStatus">> := Status}} when is_binary(Status) ->
            {ok, [{A, Event} || {A, Event} <- repair(SubId, Status),
                                emqx_azure_marketplace_lifecycle:apply_event(A, Event, #{}, undefined) =:= ok]};
        {ok, _} -> {error, {bad_response, no_status}};
        {error, {http, S, _}} -> {error, {http, S}};
        {error, Reason} -> {error, Reason}
    end.

%% The event that brings our state to Azure's (the core decides which).
repair(SubId, AzureStatus) ->
    case emqx_azure_marketplace_store:link_by_subscription(SubId) of
        #{account_id := A, state := Local} ->
            case emqx_azure_marketplace_nif:repair_event(AzureStatus, Local) of
                none -> [];
                Event -> [{A, Event}]
            end;
        undefined ->
            []
    end.
