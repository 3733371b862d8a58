%% @doc The plugin's business clock in unix seconds (deadlines, leases, landings): system time,
%% unless the application env `clock' names a module whose now/0 to use instead (the demo and the
%% tests move time forward that way). Webhook token lifetimes always use real time.
-module(emqx_azure_marketplace_clock).

-export([now/0, configure/1]).

-define(KEY, {?MODULE, source}).

-spec now() -> integer().
now() ->
    case persistent_term:get(?KEY, system) of
        system -> erlang:system_time(second);
        Module -> Module:now()
    end.

%% @doc Sets the clock's source (at application start): `undefined' for system time.
-spec configure(module() | undefined) -> ok.
configure(undefined) ->
    _ = persistent_term:erase(?KEY),
    ok;
configure(Module) when is_atom(Module) ->
    persistent_term:put(?KEY, Module).
