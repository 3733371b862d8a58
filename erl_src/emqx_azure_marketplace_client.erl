%% @doc Azure Marketplace client: SaaS Fulfillment API v2 and Metering, from any Erlang process.
%%
%% Every call runs in the C++ engine thread (libcurl multi); the calling process waits in a
%% `receive' and never blocks a scheduler. Tokens are fetched and cached per client; 429, 5xx and
%% transport failures are retried with jittered backoff honouring `Retry-After'.
%%
%% Results: `ok', `{ok, Value}' (Azure's JSON as maps with binary keys; list calls give the list
%% of items across all pages; the asynchronous operations give `{ok, OperationId}'), or
%% `{error, Reason}'.
-module(emqx_azure_marketplace_client).

-export([
    new/1,
    new/2,
    resolve/2,
    activate/4,
    get_subscription/2,
    list_subscriptions/1,
    list_subscriptions_page/2,
    list_available_plans/2,
    change_plan/3,
    change_quantity/3,
    delete_subscription/2,
    list_operations/2,
    get_operation/3,
    update_operation/4,
    post_usage/2,
    post_usage_batch/2,
    get_usage_events/2,
    stats/1,
    usable/1,
    timeout_ms/1,
    redact/1
]).

-record(client, {nif :: emqx_azure_marketplace_nif:client_res(), timeout_ms :: pos_integer(),
                 on_result :: on_result() | undefined}).

-opaque client() :: #client{}.
-type config() :: #{
    tenant_id := binary(),
    client_id := binary(),
    client_secret := binary(),
    marketplace_url => binary(),
    login_url => binary(),
    token_endpoint => v1 | v2,
    ca_file => binary() | string(),
    proxy => binary(),
    timeout_ms => pos_integer(),
    connect_timeout_ms => pos_integer(),
    max_in_flight => pos_integer(),
    %% true: plain http to a loopback login_url / marketplace_url is allowed (test endpoints only)
    allow_insecure_loopback => boolean(),
    retry => #{
        max_attempts => pos_integer(),
        base_delay_ms => non_neg_integer(),
        max_delay_ms => non_neg_integer(),
        max_retry_after_ms => non_neg_integer()
    }
}.
-type usage_event() :: #{
    resource_id := binary(),
    dimension := binary(),
    quantity := number(),
    effective_start_time := binary() | calendar:datetime(),
    plan_id := binary()
}.
-type usage_filter() :: #{
    usage_start_date := binary() | calendar:datetime(),
    usage_end_date => binary() | calendar:datetime(),
    offer_id => binary(),
    plan_id => binary(),
    dimension => binary(),
    azure_subscription_id => binary(),
    recon_status => binary()
}.
-type reason() ::
    timeout
    | overloaded
    | {http, Status :: pos_integer(), Body :: binary()}
    | {transport, binary()}
    | {bad_response, binary()}
    | {auth, binary()}
    | {badarg, atom()}
    %% (new/1, new/2) plain http to loopback without allow_insecure_loopback; Hint says what to do
    | {insecure_endpoint, Field :: atom(), Hint :: binary()}.
-type result(T) :: {ok, T} | {error, reason()}.
%% Told every call's operation and result once it has one (counting, reachability); its failure
%% does not fail the call.
-type on_result() :: fun((atom(), ok | result(term())) -> term()).
-type options() :: #{on_result => on_result()}.
-export_type([client/0, config/0, usage_event/0, usage_filter/0, reason/0, on_result/0, options/0]).

-include_lib("kernel/include/logger.hrl").

%% Extra wait beyond the client's own timeout: the engine always answers first; this only guards
%% against a reply that can never come (the library unloaded under us).
-define(REPLY_GRACE_MS, 5000).

%% @doc Creates a client. Secrets stay in the NIF: the returned term does not contain them.
-spec new(config()) -> {ok, client()} | {error, reason()}.
new(Config) -> new(Config, #{}).

%% @doc A client whose every call's result is told to `on_result'.
-spec new(config(), options()) -> {ok, client()} | {error, reason()}.
new(Config, Options) when is_map(Config), is_map(Options) ->
    OnResult = maps:get(on_result, Options, undefined),
    case emqx_azure_marketplace_nif:client_new(normalise_config(Config)) of
        {ok, {Nif, TimeoutMs}} -> {ok, #client{nif = Nif, timeout_ms = TimeoutMs, on_result = OnResult}};
        {error, _} = Error -> Error
    end;
new(_, _) ->
    {error, {badarg, config}}.

%% @doc Resolves a marketplace token (the landing page's `?token=') into its subscription.
-spec resolve(client(), binary()) -> result(map()).
resolve(C, Token) -> call(C, resolve, #{token => Token}).

%% @doc Activates a subscription: billing starts. `Quantity' is `undefined' for non-seat plans.
-spec activate(client(), binary(), binary(), pos_integer() | undefined) -> ok | {error, reason()}.
activate(C, SubId, PlanId, undefined) ->
    call(C, activate, #{subscription_id => SubId, plan_id => PlanId});
activate(C, SubId, PlanId, Quantity) ->
    call(C, activate, #{subscription_id => SubId, plan_id => PlanId, quantity => Quantity}).

-spec get_subscription(client(), binary()) -> result(map()).
get_subscription(C, SubId) -> call(C, get_subscription, #{subscription_id => SubId}).

%% @doc Every subscription of the publisher, all pages followed.
-spec list_subscriptions(client()) -> result([map()]).
list_subscriptions(C) -> call(C, list_subscriptions, #{}).

%% @doc One page of the publisher's subscriptions: the first (`undefined'), or the one a page's
%% `@nextLink' names (refused, `{badarg, continuation}', unless it is at the configured
%% marketplace_url's origin). The page as Azure answers it: `subscriptions' and `@nextLink'.
-spec list_subscriptions_page(client(), binary() | undefined) -> result(map()).
list_subscriptions_page(C, undefined) -> call(C, list_subscriptions_page, #{});
list_subscriptions_page(C, Continuation) -> call(C, list_subscriptions_page, #{continuation => Continuation}).

-spec list_available_plans(client(), binary()) -> result([map()]).
list_available_plans(C, SubId) -> call(C, list_available_plans, #{subscription_id => SubId}).

%% @doc Asks Azure to change the plan; gives the operation id to follow with `get_operation/3'.
-spec change_plan(client(), binary(), binary()) -> result(binary()).
change_plan(C, SubId, PlanId) -> call(C, change_plan, #{subscription_id => SubId, plan_id => PlanId}).

-spec change_quantity(client(), binary(), pos_integer()) -> result(binary()).
change_quantity(C, SubId, Quantity) ->
    call(C, change_quantity, #{subscription_id => SubId, quantity => Quantity}).

%% @doc Cancels (unsubscribes) the subscription in Azure; gives the operation id.
-spec delete_subscription(client(), binary()) -> result(binary()).
delete_subscription(C, SubId) -> call(C, delete_subscription, #{subscription_id => SubId}).

-spec list_operations(client(), binary()) -> result([map()]).
list_operations(C, SubId) -> call(C, list_operations, #{subscription_id => SubId}).

-spec get_operation(client(), binary(), binary()) -> result(map()).
get_operation(C, SubId, OpId) ->
    call(C, get_operation, #{subscription_id => SubId, operation_id => OpId}).

%% @doc Accepts (`success') or refuses (`failure') an operation Azure notified by webhook.
-spec update_operation(client(), binary(), binary(), success | failure) -> ok | {error, reason()}.
update_operation(C, SubId, OpId, Status) ->
    call(C, update_operation, #{subscription_id => SubId, operation_id => OpId, status => Status}).

%% @doc Posts one usage event. A duplicate (409) gives the event Azure had already accepted.
-spec post_usage(client(), usage_event()) -> result(map()).
post_usage(C, Event) -> call(C, post_usage, #{event => normalise_event(Event)}).

%% @doc Posts 1..25 usage events; each result item carries its own status.
-spec post_usage_batch(client(), [usage_event()]) -> result(map()).
post_usage_batch(C, Events) when is_list(Events) ->
    case safe_map(fun normalise_event/1, Events, 26) of
        {ok, Normalised} -> call(C, post_usage_batch, #{events => Normalised});
        error -> {error, {badarg, events}}
    end;
post_usage_batch(_C, _) ->
    {error, {badarg, events}}.

%% @doc The most one call of this client takes, retries included.
-spec timeout_ms(client()) -> pos_integer().
timeout_ms(#client{timeout_ms = T}) -> T.

-spec get_usage_events(client(), usage_filter()) -> result([map()]).
get_usage_events(C, Filter) when is_map(Filter) ->
    call(C, get_usage_events, #{filter => maps:map(fun(_, V) -> rfc3339(V) end, Filter)});
get_usage_events(_C, _) ->
    {error, {badarg, filter}}.

%% @doc Token requests made, calls in flight, retries made, and when the current access token was
%% obtained (unix seconds; 0: none yet) for this client.
-spec stats(client()) -> #{token_requests := non_neg_integer(), in_flight := non_neg_integer(),
                           retries := non_neg_integer(), token_obtained_at := integer()}.
stats(#client{nif = Nif}) -> emqx_azure_marketplace_nif:client_stats(Nif).

%% @doc False for a client the loaded library cannot use: made by an older version of the library
%% before a hot upgrade to a new file. Such a client must be made again with new/1.
-spec usable(client()) -> boolean().
usable(#client{nif = Nif}) ->
    try emqx_azure_marketplace_nif:client_stats(Nif) of
        _ -> true
    catch
        error:badarg -> false
    end;
usable(_) ->
    false.

%% @doc An error reason as it may be logged or kept: an HTTP error without Azure's body (it may
%% quote what was sent); any other reason as it is.
-spec redact(reason() | term()) -> term().
redact({http, Status, _Body}) -> {http, Status};
redact(Other) -> Other.

%%--------------------------------------------------------------------
%% Internals

call(C, Op, Args) ->
    Result = do_call(C, Op, Args),
    case C of
        #client{on_result = OnResult} when is_function(OnResult, 2) ->
            try OnResult(Op, Result)
            catch Class:Reason ->
                ?LOG_WARNING(#{msg => "azure_marketplace_client_on_result_failed", class => Class, reason => Reason})
            end;
        _ ->
            ok
    end,
    Result.

do_call(#client{nif = Nif, timeout_ms = Timeout}, Op, Args) ->
    case request(Nif, Op, Args) of
        {ok, Call} ->
            receive
                {azmp_reply, Call, Result} -> Result
            after Timeout + ?REPLY_GRACE_MS ->
                ok = emqx_azure_marketplace_nif:cancel(Call),
                receive
                    {azmp_reply, Call, Result} -> Result
                after 0 -> {error, timeout}
                end
            end;
        {error, _} = Error ->
            Error
    end;
do_call(_NotAClient, _Op, _Args) ->
    {error, {badarg, client}}.

%% The arguments are built here, so a badarg can only mean the client itself is not one the loaded
%% library knows: made by an older version of the library before an upgrade. Make a new one.
request(Nif, Op, Args) ->
    try
        emqx_azure_marketplace_nif:request(Nif, Op, Args)
    catch
        error:badarg -> {error, {badarg, client}}
    end.

normalise_config(Config) ->
    maps:map(
        fun
            (ca_file, Path) when is_list(Path) -> unicode:characters_to_binary(Path);
            (_, V) -> V
        end,
        Config
    ).

normalise_event(#{effective_start_time := T} = Event) ->
    Event#{effective_start_time := rfc3339(T)};
normalise_event(Event) ->
    Event.

%% A calendar:datetime() (UTC) becomes the RFC 3339 text Azure wants; anything else is left for
%% the library to judge.
rfc3339({{Y, Mo, D}, {H, Mi, S}} = DT) when
    is_integer(Y), is_integer(Mo), is_integer(D), is_integer(H), is_integer(Mi), is_integer(S)
->
    case
        calendar:valid_date(Y, Mo, D) andalso Y >= 0 andalso Y =< 9999 andalso H >= 0 andalso H < 24 andalso
            Mi >= 0 andalso Mi < 60 andalso S >= 0 andalso S < 60
    of
        true ->
            iolist_to_binary(
                io_lib:format("~4..0B-~2..0B-~2..0BT~2..0B:~2..0B:~2..0BZ", [Y, Mo, D, H, Mi, S])
            );
        false ->
            DT
    end;
rfc3339(Other) ->
    Other.

%% Maps F over at most Limit elements of a proper list; longer lists are passed through untouched
%% beyond the limit (the library refuses them).
safe_map(F, List, Limit) -> safe_map(F, List, Limit, []).
safe_map(_F, [], _Limit, Acc) -> {ok, lists:reverse(Acc)};
safe_map(_F, Rest, 0, Acc) -> {ok, lists:reverse(Acc, Rest)};
safe_map(F, [H | T], Limit, Acc) -> safe_map(F, T, Limit - 1, [F(H) | Acc]);
safe_map(_F, _Improper, _Limit, _Acc) -> error.
