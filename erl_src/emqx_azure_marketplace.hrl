%% Records of the plugin's Mnesia tables: private to the store modules (emqx_azure_marketplace_store
%% and emqx_azure_marketplace_store_*, each the owner of its tables), which alone read and write
%% them (other modules see maps). New fields go at the end, with a default: the store transforms
%% tables written by an older version when it starts (emqx_azure_marketplace_store:added_default/2).

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
    updated_at = 0 :: integer(),
    %% unix seconds: when it became unsubscribed
    cancelled_at :: integer() | undefined,
    %% Azure's time (ms) of the latest operation applied: an older one must not undo it
    last_op_at :: integer() | undefined,
    %% unix seconds: when the subscription was activated (usage before it is refused); undefined
    %% for links made by versions that did not keep it
    activated_at :: integer() | undefined
}).

%% What gating and recording read of an account's link, on every call: its copy in RAM (the link
%% itself is on disc only), written in the link's transaction and derived from it again when the
%% plugin starts (emqx_azure_marketplace_store_links:derive_link_states/0). The row is a link's
%% smallest part: 184 bytes in RAM at 100,000 links, where a whole link takes ~540.
-record(azmp_link_state, {
    account_id :: binary(),
    subscription_id :: binary(),
    state = linked :: linked | suspended | unsubscribed,
    cancelled_at :: integer() | undefined,
    activated_at :: integer() | undefined
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

%% The live landing of a marketplace token (its SHA-256): landing again with the same token gives
%% the same landing, without asking Azure again. While one process resolves the token, the row
%% says so ({resolving, Until}: copies of the request wait for it); a token Azure refused is
%% remembered a short while ({refused, Until}).
-record(azmp_landing_token, {
    token_hash :: binary(),
    landing_id :: binary() | {resolving | refused, integer()}
}).

%% A webhook operation: being handled (claimed until a time) or handled (Azure redelivers).
-record(azmp_operation, {
    id :: binary(),
    subscription_id :: binary(),
    action :: binary(),
    outcome :: term(),
    at :: integer(),
    state = done :: in_progress | done,
    claimed_until = 0 :: integer()
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

%% The one account that holds a subscription (linking it, or linked): written with the link
%% decision, in its transaction, so that two accounts can never both go on to activate it.
-record(azmp_claim, {
    subscription_id :: binary(),
    account_id :: binary(),
    %% seen cancelled once: final
    cancelled = false :: boolean()
}).

%% Effects committed with a state change, still to be performed (an outbox). The committing
%% process performs them right away; after a crash, the node's restart (or, once the claim has run
%% out, any node) performs them.
-record(azmp_effect, {
    id :: {integer(), node(), integer()},
    account_id :: binary(),
    subscription_id :: binary() | undefined,
    effects = [] :: [term()],
    owner :: node(),
    claimed_until = 0 :: integer()
}).

%% Metering: one subscription's usage of one dimension in one UTC hour, and what became of it.
%% Quantities are integer micro-units (6 exact decimals).
-record(azmp_usage, {
    key :: {binary(), binary(), integer()},  % {SubscriptionId, Dimension, HourStart}
    account_id :: binary(),
    %% open: taking samples; pending: closed, to send; submitting: sent (quantity fixed), answer
    %% not recorded yet; done: billed (or nothing to bill); held: not active in Azure now;
    %% carried: moved into a later hour; mismatch / rejected / dropped: see `reason'; lookup: Azure's
    %% usageEvents to be asked what it holds (an attempt with an unknown outcome, then Expired);
    %% check: the subscription to be read (refused for its plan or resource, `reason')
    status = open :: open | pending | submitting | done | held | carried | mismatch | rejected | dropped
                   | lookup | check,
    recorded = 0 :: non_neg_integer(),
    %% [{FromHour, Micros, Why}]: quantities already billable, carried in from other hours
    carried_in = [] :: [{integer(), non_neg_integer(), atom()}],
    %% {ToHour, Micros, Why} when (part of) this hour went on into a later one
    carried_out :: {integer(), non_neg_integer(), atom()} | undefined,
    closes_at = 0 :: integer(),
    reported = 0 :: non_neg_integer(),
    absorbed = 0 :: non_neg_integer(),
    event_id :: binary() | undefined,
    message_time :: binary() | undefined,
    azure_quantity :: non_neg_integer() | undefined,
    reason :: atom() | undefined,
    attempts = 0 :: non_neg_integer(),
    next_attempt_at = 0 :: integer(),
    %% an attempt may have reached Azure without us hearing its answer: never billed anew before
    %% Azure shows what it holds (Duplicate, Accepted, or its usageEvents)
    outcome_unknown = false :: boolean(),
    %% the plan the hour is sent with: the link's when it closed, Azure's after a plan mismatch
    plan_id :: binary() | undefined
}).

%% The ledger's history: the settled hours of the subscriptions of one shard in one UTC hour, in a
%% table of that hour's day (`azmp_usage_YYYYMMDD', disc_only_copies: on disc, not in RAM).
%% `buckets' is the compressed external form of #{SubscriptionId => the external form of its
%% #azmp_usage{} records of the hour}. Versions before kept a subscription's whole day in one row,
%% under {SubscriptionId, DayStart}, `buckets' being the compressed external form of its records.
-record(azmp_usage_day, {
    key :: {integer(), integer(), non_neg_integer()} | {binary(), integer()},  % {DayStart, HourStart, Shard}
    buckets = <<>> :: binary()
}).

%% The samples one recorder's transaction counted (record_usage's source_ids): a retried call counts
%% once, within the metering config's `dedupe_window_s' after it was recorded. One row per
%% transaction, not per sample (a row is most of a sample's cost in a transaction); each node's
%% recorder keeps an index of the source ids of every row, in RAM, and its sweep deletes the rows
%% (and index entries) older than the window.
-record(azmp_usage_dedupe, {
    key :: {node(), integer(), pos_integer()},  % {Node, SystemTimeUs, Unique}: one recorder's group
    at = 0 :: integer(),  % when the group was recorded (unix s, the plugin's clock)
    %% the source ids' 16-byte keys, packed (see emqx_azure_marketplace_store_usage_dedupe:dedupe_keys/1): one binary
    %% rather than a list of terms takes a third of the RAM, and is shared, not copied, by the
    %% table events the other nodes' recorders get
    sources = <<>> :: binary()
}).

%% The previous versions' table of source ids (a row per sample): read once at start, moved into
%% azmp_usage_dedupe rows, then deleted.
-record(azmp_usage_source, {
    key :: {binary(), binary()},
    bucket :: term(),
    at = 0 :: integer()
}).

%% The included quantity's counters of the subscriptions of one shard (emqx_azure_marketplace_usage_terms
%% says which, and how they are packed): per subscription and dimension, the usage of the current
%% term and of the term before. (Versions before kept a row per subscription and dimension, in
%% `azmp_usage_term'; emqx_azure_marketplace_store_usage:move_term_counters/0 moves them here.)
-record(azmp_usage_terms, {
    shard :: non_neg_integer(),
    counters = <<>> :: binary()
}).

%% The one node that closes and sends hours, until a time (a lease).
-record(azmp_usage_lease, {
    name = emitter :: emitter,
    node :: node(),
    until = 0 :: integer()
}).

%% The fulfillment reconciliation: where its pass stands (one row, `pass'), committed after each
%% page's repairs so that a restart, or another node, resumes it; and the node that runs passes
%% (a lease: one node at a time).
-record(azmp_recon_pass, {
    key = pass :: pass,
    %% the next page to read: `first', or Azure's @nextLink of the page before
    continuation = first :: first | binary(),
    %% unix ms: when this pass's first page was read
    started_ms = 0 :: integer(),
    pages_done = 0 :: non_neg_integer(),
    %% pages the last full pass read (0: none yet): the pass is paced by it
    pages_last_pass = 0 :: non_neg_integer(),
    %% unix ms: when the next call is due
    next_at_ms = 0 :: integer(),
    node :: node() | undefined,
    lease_until_ms = 0 :: integer(),
    %% ms: how long the last full pass took, first page to last
    last_pass_ms = 0 :: non_neg_integer()
}).

%% A subscription whose state is in doubt (its webhook was deferred or failed, an operator flagged
%% it, its suspension is recent): Get Subscription asks Azure before the next page.
-record(azmp_recon_doubt, {
    subscription_id :: binary(),
    since :: integer(),
    why :: atom()
}).
