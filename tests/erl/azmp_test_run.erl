%% @doc Runs the plugin's periodic work now, for tests and the demo, through what the servers do
%% anyway: the meter's and the deadlines runner's own `tick' (which moves their next one). Each returns once the server has
%% done it (a sys:get_state/2 round-trip after the request), with what it did.
-module(azmp_test_run).

-export([meter_pass/0, deadlines_pass/0]).

-define(METER, emqx_azure_marketplace_meter).
-define(DEADLINES, emqx_azure_marketplace_deadlines).

%% @doc One meter tick now: whether this node held the emitter's lease.
-spec meter_pass() -> boolean().
meter_pass() ->
    whereis(?METER) ! tick,
    #{emitter := Held} = sys:get_state(?METER, 600000),
    Held.

%% @doc The due deadlines run now (and expired landings removed): how many this node ran.
-spec deadlines_pass() -> non_neg_integer().
deadlines_pass() ->
    whereis(?DEADLINES) ! tick,
    #{ran := Ran} = sys:get_state(?DEADLINES, 60000),
    Ran.
