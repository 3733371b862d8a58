%% @doc What the plugin needs from the EMQX control plane, as a behaviour the control plane
%% implements. The plugin never reads or writes the platform's data itself.
%%
%% The module is configured as application env `platform'; the application does not start
%% without it.
-module(emqx_azure_marketplace_platform).

-export([module/0, configure/1]).

-define(KEY, {?MODULE, module}).
-export([billing_profile/1, payment_method/1, set_payment_method/2, deployments/1, stop_deployment/2,
         start_deployment/2, delete_deployment/2, plan_known/1, notify/2]).

-type account_id() :: binary().
-type deployment_id() :: binary().
-type deployment() :: #{
    id := deployment_id(),
    trial := boolean(),
    trial_ends_at => integer() | undefined,  % unix seconds
    state := running | stopped,
    stopped_at => integer() | undefined      % unix seconds
}.
-type billing_profile() :: #{
    credit_card := boolean(),
    available_credits := boolean(),
    %% linked to a marketplace EMQX product other than through this plugin's own link
    other_marketplace_link := boolean()
}.
-type payment_method() :: credit_card | available_credits | azure_marketplace_subscription | none.
-type notice() :: #{kind := atom(), atom() => term()}.
-export_type([account_id/0, deployment_id/0, deployment/0, billing_profile/0, payment_method/0, notice/0]).

%% The account's billing set-up; `{error, not_found}' for an unknown account.
-callback billing_profile(account_id()) -> {ok, billing_profile()} | {error, not_found}.
%% The payment method the platform has for the account when it is not linked.
-callback payment_method(account_id()) -> payment_method().
-callback set_payment_method(account_id(), azure_marketplace_subscription | none) -> ok.
-callback deployments(account_id()) -> [deployment()].
%% Effects are performed at least once: a node killed after a call and before striking it off makes
%% it again when it restarts. Stopping a stopped deployment, or starting a running one, must be `ok'.
-callback stop_deployment(account_id(), deployment_id()) -> ok.
-callback start_deployment(account_id(), deployment_id()) -> ok.
%% Idempotent: deleting a deployment that is gone is `ok'.
-callback delete_deployment(account_id(), deployment_id()) -> ok.
%% Does the platform sell this plan (ChangePlan webhooks are refused otherwise)?
-callback plan_known(binary()) -> boolean().
%% Tells the account (the index page's pop-up).
-callback notify(account_id(), notice()) -> ok.

-spec module() -> module().
module() -> persistent_term:get(?KEY).

%% @doc Checks and sets the platform module (at application start).
-spec configure(term()) -> ok | {error, term()}.
configure(Module) when is_atom(Module), Module =/= undefined ->
    Callbacks = ?MODULE:behaviour_info(callbacks),
    case code:ensure_loaded(Module) of
        {module, Module} ->
            case [FA || {F, A} = FA <- Callbacks, not erlang:function_exported(Module, F, A)] of
                [] -> persistent_term:put(?KEY, Module);
                Missing -> {error, {platform_module_incomplete, Module, Missing}}
            end;
        {error, Reason} ->
            {error, {platform_module_not_loadable, Module, Reason}}
    end;
configure(_) ->
    {error, {missing_config, platform,
             "set the application env emqx_azure_marketplace.platform to the control plane's module "
             "implementing the emqx_azure_marketplace_platform behaviour"}}.

-spec billing_profile(account_id()) -> {ok, billing_profile()} | {error, not_found}.
billing_profile(A) -> (module()):billing_profile(A).
-spec payment_method(account_id()) -> payment_method().
payment_method(A) -> (module()):payment_method(A).
-spec set_payment_method(account_id(), azure_marketplace_subscription | none) -> ok.
set_payment_method(A, M) -> (module()):set_payment_method(A, M).
-spec deployments(account_id()) -> [deployment()].
deployments(A) -> (module()):deployments(A).
-spec stop_deployment(account_id(), deployment_id()) -> ok.
stop_deployment(A, D) -> (module()):stop_deployment(A, D).
-spec start_deployment(account_id(), deployment_id()) -> ok.
start_deployment(A, D) -> (module()):start_deployment(A, D).
-spec delete_deployment(account_id(), deployment_id()) -> ok.
delete_deployment(A, D) -> (module()):delete_deployment(A, D).
-spec plan_known(binary()) -> boolean().
plan_known(P) -> (module()):plan_known(P).
-spec notify(account_id(), notice()) -> ok.
notify(A, N) -> (module()):notify(A, N).
