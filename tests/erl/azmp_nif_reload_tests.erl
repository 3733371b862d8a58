%% Hot code loading of the NIF module: a new version loaded over the old while calls are in flight
%% delivers every reply; after purge and unload no engine thread is left behind.
-module(azmp_nif_reload_tests).

-include_lib("eunit/include/eunit.hrl").

-define(C, emqx_azure_marketplace_client).
-define(NIF, emqx_azure_marketplace_nif).
-define(CALLS, 1000).

reload_test_() ->
    {setup, fun azmp_test_env:start_emulator/0, fun azmp_test_env:stop_emulator/1, fun(Emu) ->
        [{"reload with 1,000 calls in flight, then unload", {timeout, 120, fun() -> reload(Emu) end}}]
    end}.

reload(Emu) ->
    %% Run the calls in a process of their own: when it ends, no term of ours refers to a resource
    %% of the library any more, which is what lets the VM unload it.
    {Pid, MRef} = spawn_monitor(fun() -> exit(calls_across_upgrade(Emu)) end),
    receive {'DOWN', MRef, process, Pid, Outcome} -> ?assertEqual(ok, Outcome) end,
    %% Unload: delete and purge the module. The VM calls the library's unload once the last
    %% resource is garbage; the engine thread must then be joined.
    Before = threads(),
    true = code:delete(?NIF),
    _ = code:purge(?NIF),
    [erlang:garbage_collect(P) || P <- processes()],
    ?assert(azmp_test_env:wait_until(fun() -> threads() =:= Before - 1 end, 5000)),
    %% Loading it again gives a working library (and an engine thread) for the suites that follow.
    {module, ?NIF} = code:load_file(?NIF),
    ?assertEqual(Before, threads()),
    {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu, #{}),
    C = azmp_test_env:client(Emu, #{transport => http}),
    ?assertMatch({ok, _}, ?C:get_subscription(C, SubId)).

calls_across_upgrade(Emu) ->
    C = azmp_test_env:client(Emu, #{transport => http, timeout_ms => 30000}),
    {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu, #{}),
    {ok, _} = ?C:get_subscription(C, SubId),
    ok = azmp_emulator:set_delay(Emu, 1000),
    Self = self(),
    Pids = [spawn_link(fun() -> Self ! {self(), ?C:get_subscription(C, SubId)} end) || _ <- lists:seq(1, ?CALLS)],
    true = azmp_test_env:wait_until(fun() -> maps:get(in_flight, ?C:stats(C)) =:= ?CALLS end, 10000),
    %% Load the module again (the library's upgrade callback runs), then purge the old instance.
    _ = code:purge(?NIF),
    {module, ?NIF} = code:load_file(?NIF),
    #{module_refs := 2} = ?NIF:info(),
    true = code:soft_purge(?NIF),
    #{module_refs := 1} = ?NIF:info(),
    Results = [receive {P, R} -> R after 30000 -> no_reply end || P <- Pids],
    ok = azmp_emulator:set_delay(Emu, 0),
    ?assertEqual(?CALLS, length([ok || {ok, #{<<"id">> := Id}} <- Results, Id =:= SubId])),
    %% Calls still work through the clients made before the upgrade.
    {ok, _} = ?C:get_subscription(C, SubId),
    ok.

threads() ->
    {ok, Tasks} = file:list_dir("/proc/self/task"),
    length(Tasks).
