%% @doc The plugin's clock: system time in unix seconds, plus an offset that the demo and the tests
%% move forward ("three days later") without waiting. Production leaves the offset at 0.
-module(emqx_azure_marketplace_clock).

-export([now/0, advance/1, reset/0]).

-define(KEY, {?MODULE, offset_s}).

-spec now() -> integer().
now() -> erlang:system_time(second) + persistent_term:get(?KEY, 0).

%% @doc Moves this node's clock forward by Seconds.
-spec advance(integer()) -> ok.
advance(Seconds) when is_integer(Seconds) ->
    persistent_term:put(?KEY, persistent_term:get(?KEY, 0) + Seconds).

-spec reset() -> ok.
reset() ->
    _ = persistent_term:erase(?KEY),
    ok.
