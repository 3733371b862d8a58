%% @doc The only module that calls EMQX or Mria. Every call is guarded: outside EMQX (tests, the
%% demo, a bare node) the module or function is missing and the call answers its `not in EMQX'
%% value instead. Calls go through apply/3 so the plugin compiles, and dialyzer runs, without EMQX.
-module(emqx_azure_marketplace_emqx).

-export([in_emqx/0, get_plugin_config/1, register_command/2, unregister_command/1, print/1,
         alarm_activate/3, alarm_deactivate/1]).
-export([mria_loaded/0, mria_create_table/2, mria_transaction/3, mria_wait_for_tables/1]).

-include_lib("kernel/include/logger.hrl").

%% @doc True when EMQX's plugin manager is there (the plugin runs inside EMQX).
-spec in_emqx() -> boolean().
in_emqx() -> available(emqx_plugins, get_config, 1).

%% @doc The plugin's configuration as EMQX holds it (binary keys, as in config.hocon):
%% `{ok, Map}' (5.8 and older answer `{ok, Map}', 5.9 and newer a bare map), or `not_in_emqx'.
-spec get_plugin_config(binary()) -> {ok, map()} | {error, term()} | not_in_emqx.
get_plugin_config(NameVsn) ->
    case guarded(emqx_plugins, get_config, [NameVsn]) of
        {ok, {ok, Map}} when is_map(Map) -> {ok, Map};
        {ok, Map} when is_map(Map) -> {ok, Map};
        {ok, {error, _} = Error} -> Error;
        {ok, Other} -> {error, {unexpected_plugin_config, Other}};
        {error, _} = Error -> Error;
        not_available -> not_in_emqx
    end.

%% @doc Registers an `emqx ctl' command; `not_in_emqx' outside EMQX.
-spec register_command(atom(), {module(), atom()}) -> ok | not_in_emqx.
register_command(Cmd, MF) ->
    case guarded(emqx_ctl, register_command, [Cmd, MF]) of
        not_available -> not_in_emqx;
        _ -> ok
    end.

-spec unregister_command(atom()) -> ok | not_in_emqx.
unregister_command(Cmd) ->
    case guarded(emqx_ctl, unregister_command, [Cmd]) of
        not_available -> not_in_emqx;
        _ -> ok
    end.

%% @doc Prints CLI output: through emqx_ctl inside EMQX (so it reaches `emqx ctl'), else to stdout.
-spec print(iodata()) -> ok.
print(Text) ->
    case guarded(emqx_ctl, print, ["~ts", [Text]]) of
        {ok, _} -> ok;
        _ -> io:put_chars(Text)
    end.

%% @doc Raises an alarm in EMQX's alarm list (shown in the dashboard); `not_in_emqx' outside.
-spec alarm_activate(binary(), map(), binary()) -> ok | not_in_emqx.
alarm_activate(Name, Details, Message) ->
    case guarded(emqx_alarm, activate, [Name, Details, Message]) of
        not_available -> not_in_emqx;
        _ -> ok
    end.

-spec alarm_deactivate(binary()) -> ok | not_in_emqx.
alarm_deactivate(Name) ->
    Result = case available(emqx_alarm, ensure_deactivated, 1) of
                 true -> guarded(emqx_alarm, ensure_deactivated, [Name]);
                 false -> guarded(emqx_alarm, deactivate, [Name])
             end,
    case Result of
        not_available -> not_in_emqx;
        _ -> ok
    end.

%% @doc True when Mria runs (inside EMQX): tables are then Mria tables, replicated by it.
-spec mria_loaded() -> boolean().
mria_loaded() ->
    available(mria, create_table, 2) andalso lists:keymember(mria, 1, application:which_applications()).

-spec mria_create_table(atom(), list()) -> ok | {error, term()}.
mria_create_table(Name, Opts) ->
    case guarded(mria, create_table, [Name, Opts]) of
        {ok, ok} -> ok;
        {ok, {atomic, ok}} -> ok;
        {ok, {aborted, {already_exists, _}}} -> ok;
        {ok, Other} -> {error, {Name, Other}};
        {error, _} = E -> E;
        not_available -> {error, mria_not_loaded}
    end.

%% @doc F in Mria's transaction (`transaction') or one that returns once every replica applied it
%% (`sync_transaction').
-spec mria_transaction(transaction | sync_transaction, atom(), fun(() -> T)) -> {atomic, T} | {aborted, term()}.
mria_transaction(Kind, Shard, F) ->
    case guarded(mria, Kind, [Shard, F]) of
        {ok, Result} -> Result;
        {error, Reason} -> {aborted, Reason};
        not_available -> {aborted, mria_not_loaded}
    end.

-spec mria_wait_for_tables([atom()]) -> ok | {error, term()}.
mria_wait_for_tables(Tabs) ->
    case guarded(mria, wait_for_tables, [Tabs]) of
        {ok, ok} -> ok;
        {ok, Other} -> {error, Other};
        {error, _} = E -> E;
        not_available -> {error, mria_not_loaded}
    end.

%%--------------------------------------------------------------------

available(M, F, A) ->
    case code:ensure_loaded(M) of
        {module, M} -> erlang:function_exported(M, F, A);
        _ -> false
    end.

%% {ok, Result}, {error, Reason} when it raised (logged), or not_available.
guarded(M, F, Args) ->
    case available(M, F, length(Args)) of
        false ->
            not_available;
        true ->
            try
                {ok, apply(M, F, Args)}
            catch
                Class:Reason ->
                    ?LOG_WARNING(#{msg => "azure_marketplace_emqx_call_failed", call => {M, F, length(Args)},
                                   class => Class, reason => Reason}),
                    {error, {M, F, Reason}}
            end
    end.
