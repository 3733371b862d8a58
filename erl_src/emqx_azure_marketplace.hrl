%% Records of the plugin's Mnesia tables. Internal to the plugin.

%% One EMQX account's marketplace link, as the C++ core's LinkState names it.
-record(azmp_link, {
    account_id :: binary(),
    subscription_id :: binary(),
    state = linked :: linked | suspended | unsubscribed,
    plan_id :: binary() | undefined,
    quantity :: integer() | undefined,
    term :: map() | undefined,
    %% deployments stopped because of a suspension, to start again on reinstatement
    suspended_deployments = [] :: [binary()],
    updated_at = 0 :: integer()
}).

%% Linking in progress (or failed) for an account. Survives restarts; any node may pick it up once
%% its owner's lease has run out.
-record(azmp_job, {
    account_id :: binary(),
    phase = resolving :: resolving | activating | failed,
    reason :: atom() | undefined,
    %% {token, MarketplaceToken} | {resolved, SubscriptionMap}; holds a secret: never logged
    work :: term(),
    subscription_id :: binary() | undefined,
    owner :: node() | undefined,
    %% unix seconds: before it, only `owner' works on the job (also the retry back-off)
    lease_until = 0 :: integer(),
    attempts = 0 :: non_neg_integer(),
    updated_at = 0 :: integer()
}).

%% A subscription resolved (or a token kept) for a customer who has not signed in yet.
-record(azmp_landing, {
    id :: binary(),
    %% {resolved, SubscriptionMap} | {token, MarketplaceToken} (Azure was down at landing)
    work :: term(),
    expires_at :: integer()
}).

%% A webhook operation already handled (Azure redelivers).
-record(azmp_operation, {
    id :: binary(),
    subscription_id :: binary(),
    action :: binary(),
    outcome :: term(),
    at :: integer()
}).

%% Something to do to a deployment at a given time: stop a trial at its end, delete a stopped one.
-record(azmp_deadline, {
    key :: {binary(), binary(), stop | delete},  % {AccountId, DeploymentId, Kind}
    account_id :: binary(),
    deployment_id :: binary(),
    kind :: stop | delete,
    at :: integer(),
    done = false :: boolean(),
    claimed_by :: node() | undefined,
    claimed_until = 0 :: integer()
}).
