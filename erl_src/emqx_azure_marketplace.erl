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

-include("emqx_azure_marketplace.hrl").
-include_lib("kernel/include/logger.hrl").

-define(CLIENT, emqx_azure_marketplace_client).

-type account_id() :: binary().
-type link_status() :: #{
    status := none | resolving | activating | linked | suspended | unsubscribed | failed,
    reason => atom(),
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
%% the subscription under a landing id (valid 24 h, like Azure's token) until they sign in. When
%% Azure cannot be reached now, the token itself is kept and resolved at link time.
-spec landing(binary()) -> {ok, binary()} | {error, invalid_token}.
landing(Token) when is_binary(Token), byte_size(Token) > 0 ->
    Work =
        case ?CLIENT:resolve(emqx_azure_marketplace_app:client(), Token) of
            {ok, Sub} -> {resolved, Sub};
            {error, {http, S, _}} when S >= 400, S < 500, S =/= 429 -> invalid;
            {error, {badarg, _}} -> invalid;
            {error, _Unreachable} -> {token, Token}
        end,
    case Work of
        invalid ->
            {error, invalid_token};
        _ ->
            Id = list_to_binary(uuid()),
            TTL = application:get_env(emqx_azure_marketplace, landing_ttl_s, 86400),
            ok = emqx_azure_marketplace_store:put_landing(
                #azmp_landing{id = Id, work = Work, expires_at = emqx_azure_marketplace_clock:now() + TTL}),
            {ok, Id}
    end;
landing(_) ->
    {error, invalid_token}.

%% @doc Links the signed-in account to the subscription of a marketplace token, or of an earlier
%% landing. Returns at once; follow with `link_status/1'.
-spec link(account_id(), {token, binary()} | {landing, binary()}) ->
    ok | {error, invalid_token | landing_expired | link_in_progress | {badarg, term()}}.
link(Account, {token, Token}) when is_binary(Account), is_binary(Token), byte_size(Token) > 0 ->
    emqx_azure_marketplace_linker:start_job(Account, {token, Token});
link(Account, {landing, Id}) when is_binary(Account), is_binary(Id) ->
    case emqx_azure_marketplace_store:landing(Id) of
        #azmp_landing{work = Work, expires_at = At} ->
            case At > emqx_azure_marketplace_clock:now() of
                true ->
                    Result = emqx_azure_marketplace_linker:start_job(Account, Work),
                    Result =:= ok andalso emqx_azure_marketplace_store:delete_landing(Id),
                    Result;
                false ->
                    ok = emqx_azure_marketplace_store:delete_landing(Id),
                    {error, landing_expired}
            end;
        undefined ->
            {error, landing_expired}
    end;
link(_Account, {token, _}) ->
    {error, invalid_token};
link(_Account, Other) ->
    {error, {badarg, Other}}.

%% @doc Where linking stands for the account (what the index page's modal shows).
-spec link_status(account_id()) -> link_status().
link_status(Account) ->
    case emqx_azure_marketplace_store:job(Account) of
        #azmp_job{phase = failed, reason = R} ->
            case emqx_azure_marketplace_store:link(Account) of
                #azmp_link{} = L -> link_map(L);
                undefined -> #{status => failed, reason => R}
            end;
        #azmp_job{phase = P, subscription_id = SubId} ->
            with_sub(#{status => P}, SubId);
        undefined ->
            case emqx_azure_marketplace_store:link(Account) of
                #azmp_link{} = L -> link_map(L);
                undefined -> #{status => none}
            end
    end.

link_map(#azmp_link{state = S, subscription_id = SubId}) -> with_sub(#{status => S}, SubId).

with_sub(M, undefined) -> M;
with_sub(M, SubId) -> M#{subscription_id => SubId}.

%% @doc Support staff cancel the account's subscription from our side (Azure DELETE); the account
%% ends as after a cancellation in Azure.
-spec unlink(account_id()) -> ok | {error, not_linked | term()}.
unlink(Account) ->
    case emqx_azure_marketplace_store:link(Account) of
        #azmp_link{state = S, subscription_id = SubId} when S =:= linked; S =:= suspended ->
            case ?CLIENT:delete_subscription(emqx_azure_marketplace_app:client(), SubId) of
                {ok, _OperationId} ->
                    ?LOG_NOTICE(#{msg => "azure_marketplace_unlinked_by_support", account_id => Account,
                                  subscription_id => SubId}),
                    case emqx_azure_marketplace_lifecycle:apply_event(Account, unsubscribe, #{}) of
                        ok -> ok;
                        ignored -> ok;
                        Error -> Error
                    end;
                {error, {http, Status, _}} ->
                    {error, {http, Status}};
                {error, Reason} ->
                    {error, Reason}
            end;
        _ ->
            {error, not_linked}
    end.

%% @doc The account's payment method: the marketplace once linked, otherwise the platform's.
-spec payment_method(account_id()) -> emqx_azure_marketplace_platform:payment_method().
payment_method(Account) ->
    case emqx_azure_marketplace_store:link(Account) of
        #azmp_link{state = S} when S =:= linked; S =:= suspended -> azure_marketplace_subscription;
        _ -> emqx_azure_marketplace_platform:payment_method(Account)
    end.

%% @doc Azure's webhook (see emqx_azure_marketplace_webhook).
-spec handle_webhook(emqx_azure_marketplace_webhook:headers(), binary()) -> emqx_azure_marketplace_webhook:response().
handle_webhook(Headers, Body) when is_binary(Body) -> emqx_azure_marketplace_webhook:handle(Headers, Body).

%% @doc May the account create a deployment now?
-spec can_create_deployment(account_id(), #{trial := boolean()}) -> ok | {error, atom()}.
can_create_deployment(Account, #{trial := Trial}) when is_boolean(Trial) ->
    case emqx_azure_marketplace_nif:decide_create(emqx_azure_marketplace_lifecycle:link_state(Account), Trial) of
        {error, subscription_cancelled} = Refused ->
            %% After a cancellation the account may pay another way: then it is not ours to gate.
            %% (Asked only here, so that the common decisions stay a local read.)
            case pays_otherwise(Account) of
                true -> ok;
                false -> Refused
            end;
        Decision ->
            Decision
    end.

%% @doc What to do with one of the account's deployments at Now (unix seconds).
-spec deployment_action(account_id(), emqx_azure_marketplace_platform:deployment(), integer()) ->
    keep | {stop, atom()} | {delete, integer()}.
deployment_action(Account, Deployment, Now) when is_map(Deployment), is_integer(Now) ->
    State = emqx_azure_marketplace_lifecycle:link_state(Account),
    case emqx_azure_marketplace_nif:decide_deployment(State, Deployment, Now) of
        {stop, unsubscribed} = Stop ->
            case pays_otherwise(Account) of
                true -> keep;
                false -> Stop
            end;
        Action ->
            Action
    end.

pays_otherwise(Account) -> emqx_azure_marketplace_platform:payment_method(Account) =/= none.

%% @doc Compares every link with Azure's list of subscriptions now and repairs what differs.
-spec reconcile() -> {ok, [{binary(), atom()}]} | {error, term()}.
reconcile() -> emqx_azure_marketplace_reconciler:reconcile().

uuid() ->
    <<A:32, B:16, C:16, D:16, E:48>> = crypto:strong_rand_bytes(16),
    io_lib:format("~8.16.0b-~4.16.0b-~4.16.0b-~4.16.0b-~12.16.0b", [A, B, (C band 16#0fff) bor 16#4000,
                                                                   (D band 16#3fff) bor 16#8000, E]).
