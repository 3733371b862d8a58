%% @doc The plugin application: Mnesia tables, the Azure client and webhook authenticator (made
%% from the `azure' env: emqx_azure_marketplace_azure), and the supervision tree. Also EMQX's plugin
%% callbacks: on_config_changed/2 (a new config, checked, then applied live) and on_health_check/1.
-module(emqx_azure_marketplace_app).

-behaviour(application).

-export([start/2, prep_stop/1, stop/1]).
-export([on_config_changed/2, on_health_check/1, health/0]).
-export([http_port/0]).

-define(APP, emqx_azure_marketplace).
-define(CLI, azure_marketplace).

-include_lib("kernel/include/logger.hrl").

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    %% Inside EMQX the config is EMQX's (the dashboard's); it becomes the application env first.
    case emqx_azure_marketplace_config:load() of
        ok -> start_configured(application:get_env(?APP, azure, #{}));
        {error, _} = Error -> Error
    end.

start_configured(Azure) ->
    maybe_start(
        [
            %% Outside EMQX the metering env is not checked anywhere else: a bad one is refused here,
            %% naming the setting, rather than billed with.
            fun() -> emqx_azure_marketplace_config:validate_metering(application:get_env(?APP, metering, #{})) end,
            fun() -> emqx_azure_marketplace_config:redirect_url(application:get_env(?APP, landing_redirect_url, <<>>)) end,
            fun() -> emqx_azure_marketplace_platform:configure(application:get_env(emqx_azure_marketplace, platform, undefined)) end,
            fun() -> emqx_azure_marketplace_clock:configure(application:get_env(emqx_azure_marketplace, clock, undefined)) end,
            fun emqx_azure_marketplace_store:start/0,
            fun() -> emqx_azure_marketplace_azure:configure(Azure) end
        ],
        fun() ->
            %% The metrics read the client's figures (retries, the token's age) through this.
            case emqx_azure_marketplace_sup:start_link(#{client_stats => fun emqx_azure_marketplace_azure:client_stats/0}) of
                {ok, _} = Ok ->
                    _ = emqx_azure_marketplace_emqx:register_command(?CLI, {emqx_azure_marketplace_cli, cmd}),
                    Ok;
                Error ->
                    Error
            end
        end
    ).

maybe_start([], Then) ->
    Then();
maybe_start([Step | Rest], Then) ->
    case Step() of
        ok -> maybe_start(Rest, Then);
        {error, _} = Error -> Error
    end.

%% The command goes before the processes it reports on.
-spec prep_stop(term()) -> term().
prep_stop(State) ->
    _ = emqx_azure_marketplace_emqx:unregister_command(?CLI),
    State.

-spec stop(term()) -> ok.
stop(_State) ->
    emqx_azure_marketplace_azure:forget().

%% @doc The port of the HTTP endpoints, when they run.
-spec http_port() -> inet:port_number() | undefined.
http_port() -> emqx_azure_marketplace_sup:http_port().

%%--------------------------------------------------------------------
%% EMQX's plugin callbacks

%% @doc EMQX calls this with the old and the new config (as the dashboard sends it: binary keys)
%% before it keeps the new one. A bad config is refused naming the setting; a good one is applied at
%% once when the plugin runs (new client and webhook authenticator, the listener moved if its
%% address changed), else kept for the next start. Calls in flight finish on the client they started
%% with. No network call is made here.
-spec on_config_changed(map(), map()) -> ok | {error, emqx_azure_marketplace_config:error() | term()}.
on_config_changed(_Old, New) ->
    case emqx_azure_marketplace_config:from_hocon(New) of
        {error, _} = Error ->
            refused(Error);
        {ok, Config} ->
            case emqx_azure_marketplace_config:validate(Config) of
                {error, _} = Error -> refused(Error);
                ok ->
                    case running() of
                        false -> emqx_azure_marketplace_config:apply_env(Config);
                        true -> reconfigure(Config)
                    end
            end
    end.

refused({error, Reason} = Error) ->
    ?LOG_WARNING(#{msg => "azure_marketplace_config_refused", reason => Reason}),
    Error.

running() -> is_pid(whereis(emqx_azure_marketplace_sup)).

reconfigure(#{azure := Azure} = Config) ->
    Old = emqx_azure_marketplace_config:current(),
    ok = emqx_azure_marketplace_config:apply_env(Config),
    Steps = [
        fun() -> emqx_azure_marketplace_platform:configure(application:get_env(?APP, platform, undefined)) end,
        fun() -> emqx_azure_marketplace_azure:configure(Azure) end,
        fun() ->
            case maps:get(http, Old, disabled) =:= application:get_env(?APP, http, disabled) of
                true -> ok;
                false -> restart_http(maps:get(http, Old, disabled))
            end
        end
    ],
    case maybe_start(Steps, fun() -> ok end) of
        ok ->
            ?LOG_INFO(#{msg => "azure_marketplace_config_applied",
                        changed => lists:sort([K || K <- maps:keys(Config), maps:get(K, Config) =/= maps:get(K, Old, undefined)])}),
            ok;
        {error, _} = Error ->
            refused(Error)
    end.

%% The listener on its new address; if that address cannot be had, back on the old one.
restart_http(OldHttp) ->
    case emqx_azure_marketplace_sup:restart_http() of
        ok -> ok;
        {error, Reason} ->
            ok = application:set_env(?APP, http, OldHttp),
            _ = emqx_azure_marketplace_sup:restart_http(),
            {error, #{msg => <<"invalid_config">>, field => <<"http">>, reason => Reason}}
    end.

%% @doc EMQX calls this on every plugin listing: local figures only, no network call. `ok', or
%% `{error, Why}' when Azure has not answered the last calls or the plugin is not running.
-spec on_health_check(term()) -> ok | {error, binary()}.
on_health_check(_Opts) ->
    case health() of
        #{running := false} -> {error, <<"emqx_azure_marketplace is not running">>};
        #{azure := #{state := unreachable}} ->
            {error, <<"Azure Marketplace APIs unreachable (see `emqx ctl azure_marketplace status`)">>};
        _ -> ok
    end.

%% @doc Azure reachability from the last calls (and the access token's age), the backlog (linking
%% jobs, effects not performed yet, deadlines pending), the alarms raised.
-spec health() -> map().
health() ->
    case running() of
        false -> #{running => false};
        true ->
            #{running => true,
              azure => emqx_azure_marketplace_metrics:reachability(),
              backlog => emqx_azure_marketplace_store:backlog(),
              alarms => emqx_azure_marketplace_metrics:alarms()}
    end.
