%% @doc The plugin's Azure client, its client for the calls made while answering a webhook, and the
%% webhook authenticator: made from the `azure' env (by the application at start and when a config
%% is applied) and kept in persistent_term, for every module that calls Azure. Each Azure call's
%% result is counted (emqx_azure_marketplace_metrics:azure_call/2, given to the client).
-module(emqx_azure_marketplace_azure).

-export([configure/1, forget/0]).
-export([client/0, webhook_client/0, webhook_auth/0, renew_webhook_auth/0, client_stats/0]).

-define(CLIENT_KEY, {?MODULE, client}).
-define(WEBHOOK_CLIENT_KEY, {?MODULE, webhook_client}).
-define(AUTH_KEY, {?MODULE, webhook_auth}).
%% Azure applies a ChangePlan / ChangeQuantity by itself 10 s after its webhook unless we answer:
%% the calls made while handling a webhook must finish well within that.
-define(WEBHOOK_CALL_TIMEOUT_MS, 8000).

%% @doc Makes the clients and the authenticator from Azure (the `azure' env's shape): calls in flight
%% finish on the client they started with.
-spec configure(map()) -> ok | {error, {azure_config, term()}}.
configure(Azure) ->
    case make_client(Azure) of
        ok ->
            case make_webhook_client(Azure) of
                ok -> make_webhook_auth(Azure);
                Error -> Error
            end;
        Error ->
            Error
    end.

%% @doc Drops them (the application stopped).
-spec forget() -> ok.
forget() ->
    _ = persistent_term:erase(?CLIENT_KEY),
    _ = persistent_term:erase(?WEBHOOK_CLIENT_KEY),
    _ = persistent_term:erase(?AUTH_KEY),
    ok.

%% @doc The plugin's Azure client. After a hot upgrade to a new library file the client made by the
%% old one is not usable by the new code: it is made again, from the same configuration.
-spec client() -> emqx_azure_marketplace_client:client().
client() -> usable_client(?CLIENT_KEY, fun make_client/1).

%% @doc The client for the calls made while answering a webhook: same credentials (and so the same
%% cached token), but at most 8 s per call, retries included.
-spec webhook_client() -> emqx_azure_marketplace_client:client().
webhook_client() -> usable_client(?WEBHOOK_CLIENT_KEY, fun make_webhook_client/1).

%% @doc The plugin client's figures (emqx_azure_marketplace_client:stats/1).
-spec client_stats() -> map().
client_stats() -> emqx_azure_marketplace_client:stats(client()).

-spec webhook_auth() -> emqx_azure_marketplace_nif:auth_res().
webhook_auth() -> persistent_term:get(?AUTH_KEY).

%% @doc Makes the webhook authenticator again (see client/0: after a hot upgrade).
-spec renew_webhook_auth() -> emqx_azure_marketplace_nif:auth_res().
renew_webhook_auth() ->
    ok = make_webhook_auth(env()),
    persistent_term:get(?AUTH_KEY).

%% The client kept under Key, made again (by Make, from the configuration) when the loaded library
%% cannot use it.
usable_client(Key, Make) ->
    C = persistent_term:get(Key),
    case emqx_azure_marketplace_client:usable(C) of
        true ->
            C;
        false ->
            ok = Make(env()),
            persistent_term:get(Key)
    end.

env() -> application:get_env(emqx_azure_marketplace, azure, #{}).

make_client(Azure) -> make_client(?CLIENT_KEY, Azure).

make_webhook_client(Azure) ->
    Timeout = min(maps:get(timeout_ms, Azure, ?WEBHOOK_CALL_TIMEOUT_MS), ?WEBHOOK_CALL_TIMEOUT_MS),
    make_client(?WEBHOOK_CLIENT_KEY, Azure#{timeout_ms => Timeout}).

make_client(Key, Azure) ->
    case emqx_azure_marketplace_client:new(Azure, #{on_result => fun emqx_azure_marketplace_metrics:azure_call/2}) of
        {ok, C} -> persistent_term:put(Key, C);
        {error, Reason} -> {error, {azure_config, Reason}}
    end.

make_webhook_auth(Azure) ->
    case emqx_azure_marketplace_nif:webhook_auth_new(emqx_azure_marketplace_config:webhook_auth_config(Azure)) of
        {ok, Auth} -> persistent_term:put(?AUTH_KEY, Auth);
        {error, Reason} -> {error, {azure_config, Reason}}
    end.
