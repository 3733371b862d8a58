%% @doc The plugin application: Mnesia tables, the Azure client and webhook authenticator (made once
%% from the `azure' env and kept in persistent_term), and the supervision tree.
-module(emqx_azure_marketplace_app).

-behaviour(application).

-export([start/2, stop/1]).
-export([client/0, webhook_client/0, webhook_auth/0, renew_webhook_auth/0, http_port/0]).

-define(CLIENT_KEY, {?MODULE, client}).
-define(WEBHOOK_CLIENT_KEY, {?MODULE, webhook_client}).
%% Azure applies a ChangePlan / ChangeQuantity by itself 10 s after its webhook unless we answer:
%% the calls made while handling a webhook must finish well within that.
-define(WEBHOOK_CALL_TIMEOUT_MS, 8000).
-define(AUTH_KEY, {?MODULE, webhook_auth}).

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    Azure = application:get_env(emqx_azure_marketplace, azure, #{}),
    maybe_start(
        [
            fun() -> emqx_azure_marketplace_platform:configure(application:get_env(emqx_azure_marketplace, platform, undefined)) end,
            fun() -> emqx_azure_marketplace_clock:configure(application:get_env(emqx_azure_marketplace, clock, undefined)) end,
            fun emqx_azure_marketplace_store:start/0,
            fun() -> make_client(Azure) end,
            fun() -> make_webhook_client(Azure) end,
            fun() -> make_webhook_auth(Azure) end
        ],
        fun emqx_azure_marketplace_sup:start_link/0
    ).

maybe_start([], Then) ->
    Then();
maybe_start([Step | Rest], Then) ->
    case Step() of
        ok -> maybe_start(Rest, Then);
        {error, _} = Error -> Error
    end.

-spec stop(term()) -> ok.
stop(_State) ->
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

%% The client kept under Key, made again (by Make, from the configuration) when the loaded library
%% cannot use it.
usable_client(Key, Make) ->
    C = persistent_term:get(Key),
    case emqx_azure_marketplace_client:usable(C) of
        true ->
            C;
        false ->
            ok = Make(application:get_env(emqx_azure_marketplace, azure, #{})),
            persistent_term:get(Key)
    end.

-spec webhook_auth() -> emqx_azure_marketplace_nif:auth_res().
webhook_auth() -> persistent_term:get(?AUTH_KEY).

%% @doc Makes the webhook authenticator again (see client/0: after a hot upgrade).
-spec renew_webhook_auth() -> emqx_azure_marketplace_nif:auth_res().
renew_webhook_auth() ->
    ok = make_webhook_auth(application:get_env(emqx_azure_marketplace, azure, #{})),
    persistent_term:get(?AUTH_KEY).

%% @doc The port of the HTTP endpoints, when they run.
-spec http_port() -> inet:port_number() | undefined.
http_port() -> emqx_azure_marketplace_sup:http_port().

make_client(Azure) -> make_client(?CLIENT_KEY, Azure).

make_webhook_client(Azure) ->
    Timeout = min(maps:get(timeout_ms, Azure, ?WEBHOOK_CALL_TIMEOUT_MS), ?WEBHOOK_CALL_TIMEOUT_MS),
    make_client(?WEBHOOK_CLIENT_KEY, Azure#{timeout_ms => Timeout}).

make_client(Key, Azure) ->
    case emqx_azure_marketplace_client:new(Azure) of
        {ok, C} -> persistent_term:put(Key, C);
        {error, Reason} -> {error, {azure_config, Reason}}
    end.

%% Webhooks are signed for our app (aud = our client id) by our tenant's Entra.
make_webhook_auth(Azure) ->
    Cfg0 = maps:with([login_url, tenant_id, ca_file], Azure),
    Cfg = Cfg0#{
        audience => maps:get(client_id, Azure, <<>>),
        %% An unknown kid refreshes the JWKS at most this often (forged tokens cannot make us hammer Entra).
        min_refresh_interval_s => application:get_env(emqx_azure_marketplace, jwks_refresh_interval_s, 60)
    },
    Cfg1 = case Cfg of #{ca_file := F} when is_list(F) -> Cfg#{ca_file := list_to_binary(F)}; _ -> Cfg end,
    case emqx_azure_marketplace_nif:webhook_auth_new(Cfg1) of
        {ok, Auth} -> persistent_term:put(?AUTH_KEY, Auth);
        {error, Reason} -> {error, {azure_config, Reason}}
    end.
