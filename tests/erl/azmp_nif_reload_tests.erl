%% Hot code loading of the NIF module: a new version loaded over the old while calls are in flight
%% delivers every reply; after purge and unload no engine thread is left behind.
-module(azmp_nif_reload_tests).

-include_lib("eunit/include/eunit.hrl").

-define(C, emqx_azure_marketplace_client).
-define(NIF, emqx_azure_marketplace_nif).
-define(CALLS, 1000).

reload_test_() ->
    {setup, fun azmp_test_env:start_emulator/0, fun azmp_test_env:stop_emulator/1, fun(Emu) ->
        [{"reload with 1,000 calls in flight, then unload", {timeout, 120, fun() -> reload(Emu) end}},
         {"upgrade to a new library file with calls in flight", {timeout, 120, fun() -> upgrade(Emu) end}}]
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

%% A release upgrade: the new version in a new lib directory (its own copy of the library file, so a
%% different image), first on the code path, then the module loaded again.
upgrade(Emu) ->
    {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu, #{}),
    Ebin = filename:dirname(code:which(?NIF)),
    NewLib = filename:join(["/tmp", "azmp_upgrade_" ++ os:getpid() ++ "_" ++ integer_to_list(erlang:unique_integer([positive])),
                            "emqx_azure_marketplace-9.9.9"]),
    NewEbin = filename:join(NewLib, "ebin"),
    NewPriv = filename:join(NewLib, "priv"),
    ok = filelib:ensure_path(NewEbin),
    ok = filelib:ensure_path(NewPriv),
    {ok, Beams} = file:list_dir(Ebin),
    [{ok, _} = file:copy(filename:join(Ebin, F), filename:join(NewEbin, F)) || F <- Beams],
    So = "emqx_azure_marketplace_nif.so",
    {ok, _} = file:copy(filename:join(code:priv_dir(emqx_azure_marketplace), So), filename:join(NewPriv, So)),
    %% The plugin application runs too: its own client and webhook authenticator come from the old
    %% version and must keep working after the upgrade.
    Plugin = azmp_test_env:start_plugin(Emu),
    Before = threads(),
    Self = self(),
    %% The old version's client and calls live in a process of their own (dropped at the end).
    Old = spawn_link(fun() -> old_version_user(Emu, SubId, Self) end),
    receive {Old, in_flight} -> ok after 15000 -> error(calls_not_in_flight) end,
    true = code:add_patha(NewEbin),
    try
        _ = code:purge(?NIF),
        {module, ?NIF} = code:load_file(?NIF),
        ?assertEqual(NewPriv, code:priv_dir(emqx_azure_marketplace)),
        %% A new image: its own engine (one more thread) and its own resource types.
        ?assertEqual(Before + 1, threads()),
        ?assertMatch(#{module_refs := 1}, ?NIF:info()),
        C2 = azmp_test_env:client(Emu, #{transport => http}),
        ?assertMatch({ok, _}, ?C:get_subscription(C2, SubId)),
        %% The plugin's client and webhook authenticator are made again by the new version on use.
        ?assertMatch({ok, _}, ?C:get_subscription(emqx_azure_marketplace_azure:client(), SubId)),
        ?assertMatch({ok, 200, _}, azmp_emulator:send_webhook(Emu, azmp_test_env:webhook_url(), 'Renew', SubId, #{})),
        Old ! {Self, go_on},
        receive
            {Old, Results, StaleClient} ->
                %% Every call made through the old version replied...
                ?assertEqual(200, length([ok || {ok, #{<<"id">> := Id}} <- Results, Id =:= SubId])),
                %% ...and its client is refused by the new one, clearly.
                ?assertEqual({error, {badarg, client}}, StaleClient)
        after 30000 -> error(old_calls_lost)
        end,
        %% The old code goes; once nothing refers to its objects, the VM unloads the old image and its
        %% engine thread is joined.
        true = code:soft_purge(?NIF) orelse code:purge(?NIF),
        unlink(Old),
        exit(Old, kill),
        [erlang:garbage_collect(P) || P <- processes()],
        ?assert(azmp_test_env:wait_until(fun() -> threads() =:= Before end, 5000))
    after
        ok = azmp_emulator:set_delay(Emu, 0),
        azmp_test_env:stop_plugin(Plugin),
        true = code:del_path(NewEbin),
        _ = code:purge(?NIF),
        {module, ?NIF} = code:load_file(?NIF),
        _ = code:purge(?NIF),
        _ = file:del_dir_r(filename:dirname(NewLib))
    end,
    %% Back on the original library: it works.
    C3 = azmp_test_env:client(Emu, #{transport => http}),
    ?assertMatch({ok, _}, ?C:get_subscription(C3, SubId)).

old_version_user(Emu, SubId, Parent) ->
    C = azmp_test_env:client(Emu, #{transport => http, timeout_ms => 30000}),
    {ok, _} = ?C:get_subscription(C, SubId),
    ok = azmp_emulator:set_delay(Emu, 1000),
    Self = self(),
    Pids = [spawn_link(fun() -> Self ! {self(), ?C:get_subscription(C, SubId)} end) || _ <- lists:seq(1, 200)],
    true = azmp_test_env:wait_until(fun() -> maps:get(in_flight, ?C:stats(C)) =:= 200 end, 10000),
    Parent ! {self(), in_flight},
    receive {Parent, go_on} -> ok end,
    Results = [receive {P, R} -> R after 30000 -> no_reply end || P <- Pids],
    ok = azmp_emulator:set_delay(Emu, 0),
    Parent ! {self(), Results, ?C:get_subscription(C, SubId)},
    receive stop -> ok end.

threads() ->
    {ok, Tasks} = file:list_dir("/proc/self/task"),
    length(Tasks).
