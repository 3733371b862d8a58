%% @doc The plugin's public API for the EMQX control plane: link an EMQX account to an Azure
%% Marketplace subscription, follow the link, unlink, handle Azure's webhooks, and gate deployments.
%%
%% Linking is asynchronous: `link/2' records the work and returns; `link_status/1' shows it moving
%% through `resolving', `activating', then `linked' or `failed' (with a reason the page can show).
-module(emqx_azure_marketplace).

-export([landing/1, link/2, link_status/1, unlink/1, payment_method/1]).
-export([handle_webhook/2]).
-export([can_create_deployment/2, deployment_action/3]).
-export([reconcile/0]).
-export([record_usage/2, usage_report/3, reconcile_usage/1]).

-include_lib("kernel/include/logger.hrl").

-define(CLIENT, emqx_azure_marketplace_client).
-define(NIF, emqx_azure_marketplace_nif).
-define(JOBS, emqx_azure_marketplace_store_jobs).
-define(LANDINGS, emqx_azure_marketplace_store_landings).
-define(LINKS, emqx_azure_marketplace_store_links).
%% A landing's resolution is claimed this long (above the client's timeout); a token Azure refused
%% is answered as such this long without asking again.
-define(LANDING_CLAIM_S, 60).
%% A copy of a landing being resolved waits this long for it, reading every ?LANDING_POLL_MS.
-define(LANDING_WAIT_MS, 9000).
-define(LANDING_POLL_MS, 20).

-type account_id() :: binary().
-type link_status() :: #{
    status := none | resolving | activating | linked | suspended | unsubscribed | failed,
    reason => atom(),
    title => binary(),
    message => binary(),
    subscription_id => binary()
}.
-type refusal() ::
    credit_card_on_file
    | uses_available_credits
    | already_linked_to_marketplace
    | subscription_linked_to_other_account
    | invalid_token
    | subscription_unsubscribed.
-export_type([account_id/0, link_status/0, refusal/0]).

%% @doc A customer arrives from Azure but is not signed in: resolve the marketplace token and keep
%% the subscription under a landing id (valid as long as Azure's token) until they sign in. When
%% Azure cannot be reached now, the token itself is kept and resolved at link time. The landing is
%% on disc before its id is given out. Landing again with the same token gives the same landing;
%% at most `landing_max' (100,000) are kept (`busy' beyond); expired ones are removed.
-spec landing(binary()) -> {ok, binary()} | {error, invalid_token | busy}.
landing(Token) when is_binary(Token), byte_size(Token) > 0 ->
    landing(Token, crypto:hash(sha256, Token), erlang:monotonic_time(millisecond) + ?LANDING_WAIT_MS);
landing(_) ->
    {error, invalid_token}.

%% One process resolves a token (its claim and the check that it has no landing are one
%% transaction); copies that arrive meanwhile read, without locks, until it is done, then answer
%% with its landing, or `busy' after ?LANDING_WAIT_MS.
landing(Token, Hash, Deadline) ->
    Now = emqx_azure_marketplace_clock:now(),
    Usable = fun(At) -> ?NIF:landing_usable(At, Now) end,
    case ?LANDINGS:landing_of_token(Hash, Now, Usable) of
        {ok, Id} -> {ok, Id};
        refused -> {error, invalid_token};
        busy -> await_landing(Token, Hash, Deadline);
        none ->
            case ?LANDINGS:claim_landing(Hash, Now, Now + ?LANDING_CLAIM_S, Usable) of
                claimed -> resolve_landing(Token, Hash, Now);
                {ok, Id} -> {ok, Id};
                refused -> {error, invalid_token};
                busy -> await_landing(Token, Hash, Deadline)
            end
    end.

await_landing(Token, Hash, Deadline) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        true -> timer:sleep(?LANDING_POLL_MS), landing(Token, Hash, Deadline);
        false -> {error, busy}
    end.

resolve_landing(Token, Hash, Now) ->
    try new_landing(Token, Hash, Now) of
        {error, invalid_token} = Invalid ->
            ok = ?LANDINGS:release_landing(Hash, {refused, Now + ?LANDING_CLAIM_S}),
            Invalid;
        Result ->
            Result
    catch
        Class:Reason:Stack ->
            ok = ?LANDINGS:release_landing(Hash, free),
            erlang:raise(Class, Reason, Stack)
    end.

new_landing(Token, Hash, Now) ->
    Result = ?CLIENT:resolve(emqx_azure_marketplace_azure:client(), Token),
    case ?NIF:plan_landing(#{result => Result, now => Now}) of
        #{outcome := invalid_token} ->
            {error, invalid_token};
        #{outcome := Outcome, expires_at := ExpiresAt} ->
            Work = case {Outcome, Result} of
                       {resolved, {ok, Sub}} -> {resolved, Sub};
                       {resolve_later, _} -> {token, Token}
                   end,
            Id = list_to_binary(uuid()),
            Max = application:get_env(emqx_azure_marketplace, landing_max, 100000),
            case ?LANDINGS:put_landing(Id, Hash, Work, ExpiresAt, Max) of
                ok -> {ok, Id};
                {error, busy} = Busy -> Busy
            end
    end.

%% @doc Links the signed-in account to the subscription of a marketplace token, or of an earlier
%% landing (used once). Returns at once; follow with `link_status/1'.
-spec link(account_id(), {token, binary()} | {landing, binary()}) ->
    ok | {error, invalid_token | landing_expired | link_in_progress | {badarg, term()}}.
link(Account, Work) ->
    case ?NIF:valid_id(Account) of
        true -> link_valid(Account, Work);
        false -> {error, {badarg, account_id}}
    end.

link_valid(Account, {token, Token}) when is_binary(Token), byte_size(Token) > 0 ->
    emqx_azure_marketplace_linker:start_job(Account, {token, Token});
link_valid(Account, {landing, Id}) when is_binary(Id) ->
    Now = emqx_azure_marketplace_clock:now(),
    case ?LANDINGS:redeem_landing(Account, Id, Now, fun(At) -> ?NIF:landing_usable(At, Now) end) of
        ok -> emqx_azure_marketplace_linker:kick();
        Error -> Error
    end;
link_valid(_Account, {token, _}) ->
    {error, invalid_token};
link_valid(_Account, Other) ->
    {error, {badarg, Other}}.

%% @doc Where linking stands for the account (what the index page's modal shows): the state, and
%% in words a page can show (the C++ core's, the product documentation's where it has them) a
%% stable `reason' and a `title' and `message'. A failure's `reason' is its refusal (see refusal());
%% a pending link whose last call to Azure failed (it is retried) has `reason => azure_unavailable'.
-spec link_status(account_id()) -> link_status().
link_status(Account) ->
    shown(status_of(Account)).

status_of(Account) ->
    case ?JOBS:job(Account) of
        #{phase := failed, reason := R} ->
            case ?LINKS:link_state(Account) of
                #{} = L -> link_map(L);
                undefined -> {#{status => failed, reason => R}, false}
            end;
        #{phase := P, subscription_id := SubId, attempts := N} ->
            {with_sub(#{status => P}, SubId), N > 0};
        undefined ->
            case ?LINKS:link_state(Account) of
                #{} = L -> link_map(L);
                undefined -> {#{status => none}, false}
            end
    end.

shown({#{status := S} = Status, Retrying}) ->
    case ?NIF:link_status_text(S, maps:get(reason, Status, undefined), Retrying) of
        #{reason := Reason, title := Title, message := Message} ->
            Status#{reason => Reason, title => Title, message => Message};
        undefined ->
            Status
    end.

link_map(#{state := S, subscription_id := SubId}) -> {with_sub(#{status => S}, SubId), false}.

with_sub(M, undefined) -> M;
with_sub(M, SubId) -> M#{subscription_id => SubId}.
%% @doc Support staff cancel the account's subscription from our side (Azure DELETE); the account
%% ends as after a cancellation in Azure.
-spec unlink(account_id()) -> ok | {error, not_linked | term()}.
unlink(Account) ->
    case ?LINKS:link_state(Account) of
        #{state := S, subscription_id := SubId} ->
            case ?NIF:marketplace_pays(S) of
                true -> unlink(Account, SubId);
                false -> {error, not_linked}
            end;
        undefined ->
            {error, not_linked}
    end.

unlink(Account, SubId) ->
    case ?CLIENT:delete_subscription(emqx_azure_marketplace_azure:client(), SubId) of
        {ok, _OperationId} ->
            ?LOG_NOTICE(#{msg => "azure_marketplace_unlinked_by_support", account_id => Account,
                          subscription_id => SubId}),
            case emqx_azure_marketplace_lifecycle:apply_event(Account, unsubscribe, #{}, undefined) of
                {error, _} = Error -> Error;
                _AppliedOrNot -> ok
            end;
        {error, {http, Status, _}} ->
            {error, {http, Status}};
        {error, Reason} ->
            {error, Reason}
    end.

%% @doc The account's payment method: the marketplace while its link is live, otherwise the platform's.
-spec payment_method(account_id()) -> emqx_azure_marketplace_platform:payment_method().
payment_method(Account) ->
    case ?LINKS:link_state(Account) of
        #{state := S} ->
            case ?NIF:marketplace_pays(S) of
                true -> azure_marketplace_subscription;
                false -> emqx_azure_marketplace_platform:payment_method(Account)
            end;
        undefined ->
            emqx_azure_marketplace_platform:payment_method(Account)
    end.

%% @doc Azure's webhook (see emqx_azure_marketplace_webhook).
-spec handle_webhook(emqx_azure_marketplace_webhook:headers(), binary()) -> emqx_azure_marketplace_webhook:response().
handle_webhook(Headers, Body) when is_binary(Body) -> emqx_azure_marketplace_webhook:handle(Headers, Body).

%% @doc May the account create a deployment now? (The platform is asked how the account pays only
%% when the answer depends on it: after a cancellation.)
-spec can_create_deployment(account_id(), #{trial := boolean()}) -> ok | {error, atom()}.
can_create_deployment(Account, #{trial := Trial}) when is_boolean(Trial) ->
    State = emqx_azure_marketplace_lifecycle:link_state(Account),
    case ?NIF:gate_create(State, Trial, unknown) of
        need_payment_method -> ?NIF:gate_create(State, Trial, pays_otherwise(Account));
        Decision -> Decision
    end.

%% @doc What to do with one of the account's deployments at Now (unix seconds).
-spec deployment_action(account_id(), emqx_azure_marketplace_platform:deployment(), integer()) ->
    keep | {stop, atom()} | {delete, integer()}.
deployment_action(Account, Deployment, Now) when is_map(Deployment), is_integer(Now) ->
    {State, CancelledAt} = emqx_azure_marketplace_lifecycle:gate_facts(Account),
    case ?NIF:gate_deployment(State, Deployment, Now, CancelledAt, unknown) of
        need_payment_method -> ?NIF:gate_deployment(State, Deployment, Now, CancelledAt, pays_otherwise(Account));
        Action -> Action
    end.

pays_otherwise(Account) -> emqx_azure_marketplace_platform:payment_method(Account) =/= none.

%% @doc Records usage of the account (see emqx_azure_marketplace_metering): `ok' once durable.
-spec record_usage(account_id(), emqx_azure_marketplace_metering:sample()) ->
    ok | {error, emqx_azure_marketplace_metering:refusal()}.
record_usage(Account, Sample) -> emqx_azure_marketplace_metering:record_usage(Account, Sample).

%% @doc The usage ledger of the account's subscription, hour by hour from From to To (unix s).
-spec usage_report(account_id(), integer(), integer()) -> {ok, [map()]} | {error, not_linked}.
usage_report(Account, From, To) -> emqx_azure_marketplace_metering:usage_report(Account, From, To).

%% @doc Compares the usage ledger of a UTC day (its start, unix s) with Azure's usageEvents; the
%% differences (also run daily by the meter for the day before).
-spec reconcile_usage(integer()) -> {ok, [map()]} | {error, term()}.
reconcile_usage(Day) -> emqx_azure_marketplace_meter:reconcile(Day).

%% @doc Compares every link with Azure's list of subscriptions now and repairs what differs.
-spec reconcile() -> {ok, [{binary(), atom()}]} | {error, term()}.
reconcile() -> emqx_azure_marketplace_reconciler:reconcile().

uuid() ->
    <<A:32, B:16, C:16, D:16, E:48>> = crypto:strong_rand_bytes(16),
    io_lib:format("~8.16.0b-~4.16.0b-~4.16.0b-~4.16.0b-~12.16.0b", [A, B, (C band 16#0fff) bor 16#4000,
                                                                   (D band 16#3fff) bor 16#8000, E]).
