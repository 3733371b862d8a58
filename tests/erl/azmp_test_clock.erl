%% @doc A clock for the demo and the tests: system time plus an offset they move forward ("three
%% days later") without waiting. Configured as the plugin's `clock' (application env); per node.
-module(azmp_test_clock).

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
