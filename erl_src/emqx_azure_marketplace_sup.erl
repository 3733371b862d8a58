%% @doc Supervises the links' state rows' follower, the effects performer, the linking jobs runner, the usage meter, the deadlines runner, the reconciliation and, when
%% configured (`http' env: `#{port => P, ip => IP}'), the HTTP endpoints.
-module(emqx_azure_marketplace_sup).

-behaviour(supervisor).

-export([start_link/1, http_port/0, restart_http/0]).
-export([init/1]).

%% @doc Sources: what the metrics read of the Azure client (emqx_azure_marketplace_metrics:sources()).
-spec start_link(emqx_azure_marketplace_metrics:sources()) -> {ok, pid()} | {error, term()}.
start_link(Sources) -> supervisor:start_link({local, ?MODULE}, ?MODULE, Sources).

-spec init(emqx_azure_marketplace_metrics:sources()) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init(Sources) ->
    Workers = [
        %% first: the links' state rows follow links an earlier build writes, for what reads them
        worker(emqx_azure_marketplace_link_state_sync),
        worker(emqx_azure_marketplace_metrics, [Sources]),
        worker(emqx_azure_marketplace_effects),
        worker(emqx_azure_marketplace_linker),
        worker(emqx_azure_marketplace_deadlines),
        worker(emqx_azure_marketplace_reconciler),
        %% what recording reads of the metering config, the recorder is given
        worker(emqx_azure_marketplace_recorder,
               [#{decider => fun emqx_azure_marketplace_metering:decider/1,
                  dedupe_window_s => fun emqx_azure_marketplace_metering:dedupe_window_s/0}]),
        worker(emqx_azure_marketplace_meter)
    ],
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10}, Workers ++ http_spec()}}.

http_spec() ->
    case application:get_env(emqx_azure_marketplace, http, disabled) of
        disabled -> [];
        Opts -> [#{id => http, start => {emqx_azure_marketplace_http, start_link, [Opts]}}]
    end.

%% @doc Stops the HTTP endpoints and starts them again from the `http' env (a new address, or
%% `disabled'). Requests being answered by the old listener are cut; Azure delivers webhooks again.
-spec restart_http() -> ok | {error, term()}.
restart_http() ->
    _ = supervisor:terminate_child(?MODULE, http),
    _ = supervisor:delete_child(?MODULE, http),
    case http_spec() of
        [] -> ok;
        [Spec] ->
            case supervisor:start_child(?MODULE, Spec) of
                {ok, _} -> ok;
                {error, Reason} -> {error, {http_listener_not_started, Reason}}
            end
    end.

worker(M) -> worker(M, []).

worker(M, Args) -> #{id => M, start => {M, start_link, Args}}.

-spec http_port() -> inet:port_number() | undefined.
http_port() ->
    case [P || {http, P, _, _} <- supervisor:which_children(?MODULE), is_pid(P)] of
        [Pid] -> emqx_azure_marketplace_http:port(Pid);
        [] -> undefined
    end.
