%% The plugin on a cluster of two REAL nodes (OTP `peer'), each with its own Mnesia directory:
%% one Mnesia cluster with disc copies of the plugin's tables on both; a link made on one node and
%% its webhook handled on the other; with one node killed the other answers gating and runs the
%% deadlines; a deadline runs once in the cluster; a node killed in the middle of a link resumes it
%% on restart and the subscription is activated once.
%%
%% The Azure emulator and the in-memory control plane (registered with `global') run on this (the
%% test) node; the peers reach both over the network like any other node of the cluster.
-module(azmp_cluster_tests).

-include_lib("eunit/include/eunit.hrl").

-import(azmp_test_peer, [ensure_distributed/0, start_node/4, start_node/5, stop_node/1, kill/1, kill9/1,
                         epmd_has/1]).



-define(M, emqx_azure_marketplace).
-define(MEM, azmp_test_platform).
-define(DEADLINES, emqx_azure_marketplace_store_deadlines).
-define(JOBS, emqx_azure_marketplace_store_jobs).
-define(LANDINGS, emqx_azure_marketplace_store_landings).
-define(OPERATIONS, emqx_azure_marketplace_store_operations).
-define(HISTORY, emqx_azure_marketplace_store_usage_history).
-define(DAY, 86400).
-define(RPC_TIMEOUT, 15000).

cluster_test_() ->
    {setup, fun setup/0, fun cleanup/1, fun(Ctx) ->
        {foreach, fun() -> start_cluster(Ctx) end, fun stop_cluster/1, [
            fun(Cl) -> {"two peers form one Mnesia cluster, disc copies of the plugin's tables on both (claims and term counters on disc only)",
                        {timeout, 30, fun() -> one_cluster(Cl) end}} end,
            fun(Cl) -> {"link on node 1, Suspend webhook to node 2: both nodes agree, node 2 acted",
                        {timeout, 30, fun() -> link_here_webhook_there(Cl) end}} end,
            fun(Cl) -> {"node 1 killed: node 2 answers gating and link status, runs the deadlines",
                        {timeout, 40, fun() -> survivor(Cl) end}} end,
            fun(Cl) -> {"a deadline runs once in the cluster: a pass on both nodes at once",
                        {timeout, 30, fun() -> deadline_once(Cl) end}} end,
            fun(Cl) -> {"node killed in the middle of a link, the other node up: linked, activated once",
                        {timeout, 60, fun() -> crash_mid_link(Cl, with_node2) end}} end,
            fun(Cl) -> {"node killed in the middle of a link, alone: resumed on restart, activated once",
                        {timeout, 60, fun() -> crash_mid_link(Cl, alone) end}} end,
            fun(Cl) -> {"kill -9 after a cancellation is committed, before its deployment stops: stopped on restart",
                        {timeout, 60, fun() -> killed_after_commit(Cl, cancellation) end}} end,
            fun(Cl) -> {"kill -9 after a link is committed, before the control plane is told: told on restart",
                        {timeout, 60, fun() -> killed_after_commit(Cl, link) end}} end,
            fun(Cl) -> {"kill -9 after a reinstatement is committed, before the restart: restarted on restart",
                        {timeout, 60, fun() -> killed_after_commit(Cl, reinstatement) end}} end,
            fun(Cl) -> {"kill -9 right after a landing is answered: the landing id still links",
                        {timeout, 60, fun() -> killed_after_commit(Cl, landing) end}} end,
            fun(Cl) -> {"metering on a node in another time zone (UTC+05:30): the same UTC hours",
                        {timeout, 60, fun() -> metering_time_zone(Cl) end}} end,
            fun(Cl) -> {"a retried record_usage counts once on the other node, sent to both at once, and after kill -9",
                        {timeout, 90, fun() -> retried_usage(Cl) end}} end,
            fun(Cl) -> {"kill -9 of the emitter after Azure accepted a batch, node 2 takes over: billed once",
                        {timeout, 90, fun() -> metering_killed_mid_batch(Cl, with_node2) end}} end,
            fun(Cl) -> {"kill -9 of the emitter after Azure accepted a batch, restarted alone: billed once",
                        {timeout, 90, fun() -> metering_killed_mid_batch(Cl, alone) end}} end,
            fun(Cl) -> {"two emitters: node 1's tick outlives its lease (Azure answers in 4.5 s, the lease is 3 s); "
                        "node 2 takes the lease over and sends its own hours, none of node 1's: no hour sent by both",
                        {timeout, 90, fun() -> two_emitters(Cl) end}} end
        ]}
    end}.

%%--------------------------------------------------------------------
%% Set-up: distribution, the emulator and the control plane on this node

setup() ->
    Started = ensure_distributed(),
    Emu = azmp_test_env:start_emulator(),
    {ok, Mem} = ?MEM:start(),
    ok = ?MEM:reset(),
    #{emu => Emu, mem => Mem, started_dist => Started}.

cleanup(#{emu := Emu, started_dist := Started}) ->
    catch ?MEM:stop(),
    azmp_test_env:stop_emulator(Emu),
    Started andalso net_kernel:stop(),
    ok.

%% Two fresh peers; node 2 joins node 1's Mnesia before the plugin starts on it.
start_cluster(Ctx = #{emu := Emu}) ->
    ok = ?MEM:reset(),
    U = integer_to_list(erlang:unique_integer([positive])) ++ "_" ++ os:getpid(),
    Names = [list_to_atom("azmp_n" ++ I ++ "_" ++ U) || I <- ["1", "2"]],
    Dirs = [filename:join("/tmp", "azmp_cluster_mnesia_" ++ atom_to_list(N)) || N <- Names],
    [_ = file:del_dir_r(D) || D <- Dirs],
    Env = plugin_env(Emu),
    [Name1, Name2] = Names,
    [Dir1, Dir2] = Dirs,
    N1 = start_node(Name1, Dir1, Env, none),
    N2 = start_node(Name2, Dir2, Env, maps:get(node, N1)),
    Ctx#{n1 => N1, n2 => N2, env => Env}.

%% The env the single-node suites use (azmp_test_env:start_plugin/2): the emulator over HTTPS, the
%% HTTP listener on any port, fast ticks, a 5 s lease.
plugin_env(Emu) ->
    Azure = azmp_test_env:client_config(Emu, #{transport => https, timeout_ms => 5000,
                                               retry => #{max_attempts => 2, base_delay_ms => 10,
                                                          max_delay_ms => 50}}),
    #{azure => Azure, platform => azmp_test_platform, clock => azmp_test_clock,
      http => #{port => 0}, tick_ms => 100, deadline_tick_ms => 200,
      retry_base_s => 1, retry_max_s => 2, lease_s => 5, jwks_refresh_interval_s => 0,
      metering => #{dimensions => [#{id => D, unit => <<"unit">>} || D <- [<<"sessions">>, <<"traffic">>, <<"connections">>]],
                    grace_s => 300, tick_ms => 3600000, lease_s => 3}}.

stop_cluster(#{n1 := N1, n2 := N2}) ->
    [stop_node(N) || N <- [N1, N2]],
    [_ = file:del_dir_r(D) || #{dir := D} <- [N1, N2]],
    ok.

%%--------------------------------------------------------------------
%% Tests

one_cluster(#{n1 := #{node := N1}, n2 := #{node := N2}, emu := Emu}) ->
    Both = lists:sort([N1, N2]),
    Tables = emqx_azure_marketplace_store:tables(),
    %% links and their state rows, jobs, landings (and their tokens), operations, deadlines, claims, effects still
    %% to perform; usage hours, usage dedupe rows, usage term counters, the emitter's lease; the reconciliation's
    %% checkpoint and doubts
    ?assertEqual(15, length(Tables)),
    [begin
         ?assertEqual({N, Both}, {N, lists:sort(rpc(N, mnesia, system_info, [running_db_nodes]))}),
         ?assertEqual({N, Both}, {N, lists:sort(rpc(N, mnesia, table_info, [schema, disc_copies]))}),
         %% links, claims and term counters are on disc only
         [?assertEqual({N, T, Both}, {N, T, lists:sort(rpc(N, mnesia, table_info, [T, Storage]))})
          || T <- Tables, Storage <- [case lists:member(T, [azmp_link, azmp_claim, azmp_usage_terms]) of
                                          true -> disc_only_copies;
                                          false -> disc_copies
                                      end]],
         %% The schema is on disc in the node's own directory.
         ?assert(filelib:is_file(filename:join(rpc(N, mnesia, system_info, [directory]), "schema.DAT")))
     end || N <- Both],
    ?assertNotEqual(rpc(N1, mnesia, system_info, [directory]), rpc(N2, mnesia, system_info, [directory])),
    %% A customer lands on node 1 and signs in on node 2.
    A = new_account(#{}),
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    {ok, LandingId} = rpc(N1, ?M, landing, [Token]),
    ok = rpc(N2, ?M, link, [A, {landing, LandingId}]),
    ?assertMatch(#{status := linked, subscription_id := SubId}, await_status(N2, A, linked)),
    ?assertMatch(#{status := linked, subscription_id := SubId}, rpc(N1, ?M, link_status, [A])),
    ?assertEqual(undefined, rpc(N1, ?LANDINGS, landing, [LandingId])),
    {ok, EmuSub} = azmp_emulator:subscription(Emu, SubId),
    ?assertMatch(#{activations := 1}, EmuSub).

link_here_webhook_there(#{n1 := #{node := N1}, n2 := #{node := N2}, emu := Emu}) ->
    {A, SubId} = linked_account(Emu, N1, [paid, trial]),
    %% Linked on node 1, seen on node 2.
    ?assertMatch(#{status := linked, subscription_id := SubId}, rpc(N2, ?M, link_status, [A])),
    ?assertEqual(azure_marketplace_subscription, rpc(N2, ?M, payment_method, [A])),
    Port1 = rpc(N1, emqx_azure_marketplace_app, http_port, []),
    Port2 = rpc(N2, emqx_azure_marketplace_app, http_port, []),
    ?assert(is_integer(Port2)),
    ?assertNotEqual(Port1, Port2),
    %% Azure delivers the Suspend webhook to node 2. Which node calls the control plane shows in
    %% the calls' sender (traced on the control plane's process).
    Calls = trace_mem(fun() ->
        ?assertMatch({ok, 200, _}, azmp_emulator:send_webhook(Emu, url(Port2), 'Suspend', SubId, #{}))
    end),
    Paid = <<A/binary, "-paid">>,
    Trial = <<A/binary, "-trial">>,
    ?assertEqual([{N2, stop, Paid}], [{Node, Op, D} || {Node, {deployment, Op, Acc, D}} <- Calls, Acc =:= A]),
    ?assert(lists:member({stop, A, Paid}, ?MEM:log())),
    ?assertNot(lists:member({stop, A, Trial}, ?MEM:log())),
    ?assertMatch(#{state := stopped}, deployment(A, Paid)),
    ?assertMatch(#{state := running}, deployment(A, Trial)),
    %% Both nodes see the suspension and gate alike.
    [begin
         ?assertMatch({N, #{status := suspended, subscription_id := SubId}}, {N, rpc(N, ?M, link_status, [A])}),
         ?assertEqual({N, {error, subscription_suspended}},
                      {N, rpc(N, ?M, can_create_deployment, [A, #{trial => false}])}),
         ?assertEqual({N, azure_marketplace_subscription}, {N, rpc(N, ?M, payment_method, [A])})
     end || N <- [N1, N2]],
    %% The operation is recorded cluster-wide: redelivered to node 1, it changes nothing.
    [#{operation_id := OpId}] = [W || W = #{subscription_id := S} <- azmp_emulator:webhooks(Emu), S =:= SubId],
    ?assertMatch(#{state := done}, rpc(N1, ?OPERATIONS, operation, [OpId])),
    Before = ?MEM:log(),
    {ok, 200, Body} = azmp_emulator:send_webhook(Emu, url(Port1), 'Suspend', SubId, #{redeliver => OpId}),
    ?assertMatch({ok, #{<<"status">> := <<"already_handled">>}}, emqx_azure_marketplace_nif:json_decode(Body)),
    ?assertEqual(Before, ?MEM:log()),
    %% Reinstate through node 1 starts what node 2 stopped.
    {ok, 200, _} = azmp_emulator:send_webhook(Emu, url(Port1), 'Reinstate', SubId, #{}),
    ?assertMatch(#{status := linked}, rpc(N2, ?M, link_status, [A])),
    ?assertMatch(#{state := running}, deployment(A, Paid)).

survivor(#{n1 := #{node := N1}, n2 := #{node := N2}, emu := Emu}) ->
    %% A: linked and cancelled through node 1 before it dies (its deadlines were written by node 1).
    {A, SubA} = linked_account(Emu, N1, [paid, trial]),
    {ok, 200, _} = azmp_emulator:send_webhook(Emu, url(rpc(N1, emqx_azure_marketplace_app, http_port, [])),
                                              'Unsubscribe', SubA, #{}),
    %% B: linked on node 1, still linked when it dies.
    {B, SubB} = linked_account(Emu, N1, [paid, trial]),
    T0 = erlang:monotonic_time(millisecond),
    kill(N1),
    ?assert(azmp_test_env:wait_until(fun() -> not lists:member(N1, rpc(N2, erlang, nodes, [])) end, 5000)),
    true = azmp_test_env:wait_until(fun() -> rpc(N2, mnesia, system_info, [running_db_nodes]) =:= [N2] end, 5000),
    %% Node 2 alone answers gating and link status.
    ?assertMatch(#{status := linked, subscription_id := SubB}, rpc(N2, ?M, link_status, [B])),
    ?assertEqual(ok, rpc(N2, ?M, can_create_deployment, [B, #{trial => false}])),
    ?assertMatch(#{status := unsubscribed}, rpc(N2, ?M, link_status, [A])),
    ?assertEqual({error, subscription_cancelled}, rpc(N2, ?M, can_create_deployment, [A, #{trial => false}])),
    %% ... and handles B's cancellation.
    Port2 = rpc(N2, emqx_azure_marketplace_app, http_port, []),
    {ok, 200, _} = azmp_emulator:send_webhook(Emu, url(Port2), 'Unsubscribe', SubB, #{}),
    ?assertMatch(#{status := unsubscribed}, rpc(N2, ?M, link_status, [B])),
    ?assertEqual({error, subscription_cancelled}, rpc(N2, ?M, can_create_deployment, [B, #{trial => false}])),
    [?assertMatch(#{state := stopped}, deployment(X, <<X/binary, "-paid">>)) || X <- [A, B]],
    [?assertMatch(#{state := running}, deployment(X, <<X/binary, "-trial">>)) || X <- [A, B]],
    %% One day later nothing is due; three days later node 2 stops the trials (ended on day 2) and
    %% deletes the paid deployments.
    ok = rpc(N2, azmp_test_clock, advance, [?DAY]),
    ?assertEqual(0, rpc(N2, azmp_test_run, deadlines_pass, [])),
    ?assertMatch(#{state := stopped}, deployment(A, <<A/binary, "-paid">>)),
    Calls = trace_mem(fun() ->
        ok = rpc(N2, azmp_test_clock, advance, [2 * ?DAY + 60]),
        _ = rpc(N2, azmp_test_run, deadlines_pass, []),
        %% The tick may have run some of them first, the pass the others: all done when it returns.
        ?assert(lists:all(fun(X) -> deployment(X, <<X/binary, "-paid">>) =:= gone end, [A, B])),
        ?assert(lists:all(fun(X) -> maps:get(state, deployment(X, <<X/binary, "-trial">>)) =:= stopped end,
                          [A, B]))
    end),
    Log = ?MEM:log(),
    [?assertEqual({X, 1}, {X, count({delete, X, <<X/binary, "-paid">>}, Log)}) || X <- [A, B]],
    [?assertEqual({X, 0}, {X, count({delete, X, <<X/binary, "-trial">>}, Log)}) || X <- [A, B]],
    %% Node 2 did it (node 1 is gone): 2 trial stops and 2 deletions.
    DeploymentCalls = [{Node, Op} || {Node, {deployment, Op, _, _}} <- Calls],
    ?assertEqual([{N2, delete}, {N2, delete}, {N2, stop}, {N2, stop}], lists:sort(DeploymentCalls)),
    %% The trials' deletion deadlines are there, 3 days after they stopped.
    [?assertMatch({X, [_]}, {X, [D || D <- rpc(N2, ?DEADLINES, deadlines_of, [X]),
                                      maps:get(kind, D) =:= delete,
                                      maps:get(deployment_id, D) =:= <<X/binary, "-trial">>]})
     || X <- [A, B]],
    io:format(user, "~n    survivor: node 2 alone handled gating, a webhook and 4 deadlines, ~b ms after the kill~n",
              [erlang:monotonic_time(millisecond) - T0]).

deadline_once(#{n1 := #{node := N1}, n2 := #{node := N2}, emu := Emu}) ->
    Nodes = [N1, N2],
    %% 4 accounts with 3 paid deployments each, linked and cancelled alternately through each node:
    %% 12 deletions due 3 days later.
    Accounts = [begin
                    Via = lists:nth(1 + I rem 2, Nodes),
                    {A, Sub} = linked_account(Emu, Via, [paid, paid2, paid3]),
                    {ok, 200, _} = azmp_emulator:send_webhook(
                        Emu, url(rpc(Via, emqx_azure_marketplace_app, http_port, [])), 'Unsubscribe', Sub, #{}),
                    A
                end || I <- lists:seq(1, 4)],
    Deployments = [{A, <<A/binary, S/binary>>} || A <- Accounts, S <- [<<"-paid">>, <<"-paid2">>, <<"-paid3">>]],
    ?assertEqual(12, length(Deployments)),
    [?assertMatch(#{state := stopped}, deployment(A, D)) || {A, D} <- Deployments],
    %% Only the passes run deadlines from here on (the pending tick fires within 200 ms, then not for
    %% 10 minutes), so that the two calls below race for all of them.
    [ok = rpc(N, application, set_env, [emqx_azure_marketplace, deadline_tick_ms, 600000]) || N <- Nodes],
    timer:sleep(500),
    [ok = rpc(N, azmp_test_clock, advance, [3 * ?DAY + 60]) || N <- Nodes],
    %% Make the runs overlap for certain: the control plane holds its calls until each node has
    %% claimed a deadline and is waiting on its first deletion.
    Mem = global:whereis_name(?MEM),
    ok = sys:suspend(Mem),
    Ran =
        try
            Reqs = [{N, erpc:send_request(N, azmp_test_run, deadlines_pass, [])} || N <- Nodes],
            true = azmp_test_env:wait_until(fun() ->
                {messages, Ms} = process_info(Mem, messages),
                lists:sort([node(P) || {'$gen_call', {P, _}, {deployment, delete, _, _}} <- Ms]) =:= lists:sort(Nodes)
            end, 10000),
            ok = sys:resume(Mem),
            [{N, erpc:receive_response(R, 30000)} || {N, R} <- Reqs]
        after
            catch sys:resume(Mem)
        end,
    Log = ?MEM:log(),
    %% Each deployment deleted exactly once, and the two nodes together ran each deadline once.
    [?assertEqual({D, 1}, {D, count({delete, A, D}, Log)}) || {A, D} <- Deployments],
    ?assertEqual(12, lists:sum([R || {_, R} <- Ran])),
    [?assert(R >= 1) || {_, R} <- Ran],
    [?assertEqual(gone, deployment(A, D)) || {A, D} <- Deployments],
    %% Done everywhere; nothing left to run on either node.
    [?assertEqual({N, A, 3, []}, {N, A, length(rpc(N, ?DEADLINES, deadlines_of, [A])),
                                   [D || D <- rpc(N, ?DEADLINES, deadlines_of, [A]), maps:get(done, D) =/= true]})
     || N <- Nodes, A <- Accounts],
    [?assertEqual({N, 0}, {N, rpc(N, azmp_test_run, deadlines_pass, [])}) || N <- Nodes],
    ?assertEqual(12, length([x || {delete, A, _} <- ?MEM:log(), lists:member(A, Accounts)])),
    io:format(user, "~n    deadline_once: 12 deletions due, passes split ~p, 12 delete calls in the log~n",
              [[{node_label(N, Nodes), R} || {N, R} <- Ran]]).

%% Mode `with_node2': node 2 runs meanwhile and may take the job over once node 1's lease has run
%% out; `alone': node 2 is gone first, so only the restarted node 1 can finish the link.
crash_mid_link(#{n1 := #{node := N1, name := Name1, dir := Dir1}, n2 := #{node := N2}, emu := Emu,
                 env := Env}, Mode) ->
    Live = case Mode of
               with_node2 -> [N1, N2];
               alone ->
                   kill(N2),
                   true = azmp_test_env:wait_until(
                            fun() -> rpc(N1, mnesia, system_info, [running_db_nodes]) =:= [N1] end, 5000),
                   [N1]
           end,
    A = new_account(#{}),
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = azmp_emulator:reset_stats(Emu),
    %% Azure takes 3 s to answer the activation.
    ok = azmp_emulator:inject(Emu, activate, [{delay, 3000}]),
    ok = rpc(N1, ?M, link, [A, {token, Token}]),
    ?assertMatch(#{status := activating, subscription_id := SubId}, await_status(N1, A, activating)),
    %% The linker asks Get Subscription, then activates: wait for that request, give the activation
    %% a moment to reach the emulator, and kill node 1 while Azure is still working on it.
    true = azmp_test_env:wait_until(fun() -> requests(Emu, get_subscription, SubId) >= 1 end, 5000),
    timer:sleep(300),
    TKill = erlang:monotonic_time(millisecond),
    Self = self(),
    %% Who finishes the link shows in the control plane's calls (traced from the kill on).
    Calls = trace_mem(fun() ->
        kill(N1),
        ?assertMatch({ok, #{activations := 0}}, azmp_emulator:subscription(Emu, SubId)),
        %% Node 2 sees the job still activating, owned by the dead node.
        Mode =:= with_node2 andalso ?assertMatch(#{status := activating}, rpc(N2, ?M, link_status, [A])),
        %% Restart under the same name, on the same Mnesia directory, once the others saw it die.
        true = azmp_test_env:wait_until(fun() -> not epmd_has(Name1) end, 5000),
        Mode =:= with_node2 andalso
            (true = azmp_test_env:wait_until(fun() -> not lists:member(N1, rpc(N2, erlang, nodes, [])) end, 5000)),
        Again = start_node(Name1, Dir1, Env, none),
        Self ! {restarted, Again, erlang:monotonic_time(millisecond)},
        N1 = maps:get(node, Again),
        ?assertMatch(#{status := linked, subscription_id := SubId}, await_status(N1, A, linked)),
        %% The link is recorded just before the control plane is told: wait for that too.
        true = azmp_test_env:wait_until(
                 fun() -> lists:member({set_payment_method, A, azure_marketplace_subscription}, ?MEM:log()) end, 5000)
    end),
    TLinked = erlang:monotonic_time(millisecond),
    {N1Again, TUp} = receive {restarted, Ag, T} -> {Ag, T} after 0 -> error(not_restarted) end,
    try
        [?assertMatch({N, #{status := linked, subscription_id := SubId}}, {N, rpc(N, ?M, link_status, [A])})
         || N <- Live],
        [?assert(lists:member(N2, rpc(N1, erlang, nodes, []))) || Mode =:= with_node2],
        ?assertEqual(lists:sort(Live), lists:sort(rpc(N1, mnesia, system_info, [running_db_nodes]))),
        ?assertEqual(undefined, rpc(N1, ?JOBS, job, [A])),
        ?assertEqual(azure_marketplace_subscription, rpc(N1, ?M, payment_method, [A])),
        %% Whatever was in flight when node 1 died has landed by now (3 s after it was sent).
        timer:sleep(max(0, TKill + 3500 - erlang:monotonic_time(millisecond))),
        {ok, EmuSub} = azmp_emulator:subscription(Emu, SubId),
        ?assertMatch(#{status := <<"Subscribed">>}, EmuSub),
        ?assertEqual(1, maps:get(activations, EmuSub)),
        %% The one activation is the request node 1 sent before it died (the delayed one).
        ?assertEqual([{delay, 3000}], [F || #{op := activate, fault := F} <- requests(Emu)]),
        Finisher = [N || {N, {set_payment_method, Acc, azure_marketplace_subscription}} <- Calls, Acc =:= A],
        ?assertMatch([_], Finisher),
        Mode =:= alone andalso ?assertEqual([N1], Finisher),
        io:format(user, "~n    crash_mid_link (~s): node 1 back ~b ms after the kill, linked ~b ms after the kill "
                        "(finished by ~s), activations = ~b~n",
                  [Mode, TUp - TKill, TLinked - TKill, node_label(hd(Finisher), [N1, N2]),
                   maps:get(activations, EmuSub)])
    after
        %% The restarted peer is not the one the teardown knows about.
        catch peer:stop(maps:get(peer, N1Again))
    end.

%% Node 1 alone (no other node to take anything over, no reconciliation before the check): the
%% control plane holds the effect's call unanswered, node 1 is killed with SIGKILL while it waits,
%% and the effect must be performed by node 1 itself when it starts again.
killed_after_commit(#{n1 := #{node := N1, name := Name1, dir := Dir1}, n2 := #{node := N2}, emu := Emu,
                      env := Env}, What) ->
    kill(N2),
    true = azmp_test_env:wait_until(fun() -> rpc(N1, mnesia, system_info, [running_db_nodes]) =:= [N1] end, 5000),
    Port1 = rpc(N1, emqx_azure_marketplace_app, http_port, []),
    {Before, After} = kill_scenario(What, N1, Port1, Emu),
    kill9(N1),
    ok = ?MEM:release(),
    Before(),
    true = azmp_test_env:wait_until(fun() -> not epmd_has(Name1) end, 5000),
    Again = #{node := N1} = start_node(Name1, Dir1, Env, none),
    try
        After(N1),
        io:format(user, "~n    killed_after_commit (~s): done by the restarted node~n", [What])
    after
        catch peer:stop(maps:get(peer, Again))
    end.

%% {checks before the restart, checks after}: the scenario runs until the effect's call is held.
kill_scenario(cancellation, N1, Port1, Emu) ->
    {A, SubId} = linked_account(Emu, N1, [paid]),
    Paid = <<A/binary, "-paid">>,
    ok = ?MEM:hold([stop]),
    spawn(fun() -> azmp_emulator:send_webhook(Emu, url(Port1), 'Unsubscribe', SubId, #{}) end),
    await_held({stop, A, Paid}),
    {fun() -> ?assertMatch(#{state := running}, deployment(A, Paid)) end,
     fun(N) ->
         ?assert(azmp_test_env:wait_until(fun() -> maps:get(state, deployment(A, Paid)) =:= stopped end, 15000)),
         ?assertMatch([#{kind := delete, done := false}], rpc(N, ?DEADLINES, deadlines_of, [A])),
         ?assertEqual(none, rpc(N, ?M, payment_method, [A]))
     end};
kill_scenario(link, N1, _Port1, Emu) ->
    A = new_account(#{}),
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = ?MEM:hold([set_payment_method, notify]),
    ok = rpc(N1, ?M, link, [A, {token, Token}]),
    await_held({set_payment_method, A, azure_marketplace_subscription}),
    {fun() -> ?assertMatch({ok, #{payment_method := none, notices := []}}, ?MEM:account(A)) end,
     fun(N) ->
         ?assertMatch(#{status := linked, subscription_id := SubId}, rpc(N, ?M, link_status, [A])),
         ?assert(azmp_test_env:wait_until(fun() ->
             {ok, #{payment_method := M, notices := Ns}} = ?MEM:account(A),
             M =:= azure_marketplace_subscription andalso
                 lists:member(#{kind => linked, subscription_id => SubId}, Ns)
         end, 15000)),
         ?assertMatch({ok, #{activations := 1}}, azmp_emulator:subscription(Emu, SubId))
     end};
kill_scenario(reinstatement, N1, Port1, Emu) ->
    {A, SubId} = linked_account(Emu, N1, [paid]),
    Paid = <<A/binary, "-paid">>,
    {ok, 200, _} = azmp_emulator:send_webhook(Emu, url(Port1), 'Suspend', SubId, #{}),
    ?assertMatch(#{state := stopped}, deployment(A, Paid)),
    ok = ?MEM:hold([start]),
    spawn(fun() -> azmp_emulator:send_webhook(Emu, url(Port1), 'Reinstate', SubId, #{}) end),
    await_held({start, A, Paid}),
    {fun() -> ?assertMatch(#{state := stopped}, deployment(A, Paid)) end,
     fun(N) ->
         ?assert(azmp_test_env:wait_until(fun() -> maps:get(state, deployment(A, Paid)) =:= running end, 15000)),
         ?assertMatch(#{status := linked}, rpc(N, ?M, link_status, [A]))
     end};
kill_scenario(landing, _N1, Port1, Emu) ->
    {ok, _} = application:ensure_all_started(inets),
    A = new_account(#{}),
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    Url = "http://127.0.0.1:" ++ integer_to_list(Port1) ++ "/azure/landing?" ++
              uri_string:compose_query([{"token", binary_to_list(Token)}]),
    {ok, {{_, 200, _}, _, Body}} = httpc:request(get, {Url, []}, [], [{body_format, binary}]),
    {ok, #{<<"landing_id">> := Id}} = emqx_azure_marketplace_nif:json_decode(Body),
    {fun() -> ok end,
     fun(N) ->
         ?assertEqual(ok, rpc(N, ?M, link, [A, {landing, Id}])),
         ?assertMatch(#{status := linked, subscription_id := SubId}, await_status(N, A, linked))
     end}.

-define(HOUR, 3600).

real_hour() -> (erlang:system_time(second) div ?HOUR) * ?HOUR.

%% Sets the plugin's clock on Node to T (unix s).
set_clock(Node, T) -> ok = rpc(Node, azmp_test_clock, advance, [T - rpc(Node, emqx_azure_marketplace_clock, now, [])]).

record(Node, A, Dim, Q, AtMs) ->
    rpc(Node, ?M, record_usage, [A, #{dimension => Dim, quantity => Q, at => AtMs,
                                      source_id => integer_to_binary(erlang:unique_integer([positive]))}]).

accepted(Emu, SubId) ->
    lists:sort([{H, D, Q} || #{resource_id := R, dimension := D, hour := H, quantity := Q} <- azmp_emulator:usage(Emu),
                             R =:= SubId]).

metering_time_zone(#{n1 := N1, n2 := N2, emu := Emu, env := Env}) ->
    [stop_node(N) || N <- [N1, N2]],
    Name = list_to_atom("azmp_tz_" ++ integer_to_list(erlang:unique_integer([positive])) ++ "_" ++ os:getpid()),
    Dir = filename:join("/tmp", "azmp_cluster_mnesia_" ++ atom_to_list(Name)),
    %% POSIX form: UTC+05:30 without tzdata. Hours there are not UTC hours.
    #{node := N, peer := Peer} = start_node(Name, Dir, Env, none, [{"TZ", "IST-5:30"}]),
    try
        ?assertNotEqual(rpc(N, calendar, universal_time, []), rpc(N, calendar, local_time, [])),
        {A, SubId} = linked_account(Emu, N, []),
        H0 = real_hour() - 3 * ?HOUR,
        set_clock(N, H0 + ?HOUR + 60),
        ok = record(N, A, <<"sessions">>, 1, H0 * 1000),
        ok = record(N, A, <<"sessions">>, <<"2.5">>, (H0 + ?HOUR) * 1000 - 1),
        ok = record(N, A, <<"sessions">>, 4, (H0 + ?HOUR) * 1000),
        set_clock(N, H0 + 2 * ?HOUR + 301),
        true = rpc(N, azmp_test_run, meter_pass, []),
        ?assertEqual([{H0, <<"sessions">>, 3.5}, {H0 + ?HOUR, <<"sessions">>, 4}], accepted(Emu, SubId)),
        Times = [T || #{resource_id := R, time := T} <- azmp_emulator:usage(Emu), R =:= SubId],
        ?assertEqual([H0, H0 + ?HOUR], lists:sort(Times))
    after
        catch peer:stop(Peer),
        _ = file:del_dir_r(Dir)
    end.

%% A sample recorded on node 1 and retried on node 2 counts once (node 2's recorder learns node 1's
%% source ids from Mnesia's table events), even while a copy waits in node 1's queue, and copies sent
%% to both nodes at once count once; and so does one
%% retried after the node that acknowledged
%% it was killed (-9) and restarted alone (its index is built again from the rows on disc).
retried_usage(#{n1 := #{node := N1, name := Name1, dir := Dir1}, n2 := #{node := N2}, emu := Emu, env := Env}) ->
    {A, SubId} = linked_account(Emu, N1, []),
    H = real_hour(),
    [set_clock(N, H + 60) || N <- [N1, N2]],
    Sample = fun(Id) -> #{dimension => <<"sessions">>, quantity => 1, at => (H + 60) * 1000, source_id => Id} end,
    Entries = fun(N) -> maps:get(entries, rpc(N, emqx_azure_marketplace_recorder, sources, [])) end,
    Before = Entries(N2),
    ok = rpc(N1, ?M, record_usage, [A, Sample(<<"once-1">>)]),
    true = azmp_test_env:wait_until(fun() -> Entries(N2) =:= Before + 1 end, 5000),
    ok = rpc(N2, ?M, record_usage, [A, Sample(<<"once-1">>)]),
    ?assertMatch([#{recorded := 1000000}], rpc(N2, ?HISTORY, usage_rows, [SubId, H, H])),
    %% A copy waiting in node 1's queue (its recorder held) while node 2 commits the sample: node 2's
    %% event is behind it in the mailbox, and still seen first.
    Rec1 = rpc(N1, erlang, whereis, [emqx_azure_marketplace_recorder]),
    Queue = fun() -> element(2, rpc(N1, erlang, process_info, [Rec1, message_queue_len])) end,
    ok = rpc(N1, sys, suspend, [Rec1]),
    Self = self(),
    _ = spawn(fun() -> Self ! {queued, catch rpc(N1, ?M, record_usage, [A, Sample(<<"queued">>)])} end),
    true = azmp_test_env:wait_until(fun() -> Queue() =:= 1 end, 5000),
    ok = rpc(N2, ?M, record_usage, [A, Sample(<<"queued">>)]),
    true = azmp_test_env:wait_until(fun() -> Queue() =:= 2 end, 5000),
    ok = rpc(N1, sys, resume, [Rec1]),
    receive {queued, Queued} -> ?assertEqual(ok, Queued) after 10000 -> error(queued_call_unanswered) end,
    ?assertMatch([#{recorded := 2000000}], rpc(N1, ?HISTORY, usage_rows, [SubId, H, H])),
    %% Copies sent to both nodes at the same moment (four of each of 20 samples): each counts once.
    Racers = [spawn_link(fun() -> Self ! {raced, self(), catch rpc(N, ?M, record_usage, [A, Sample(Id)])} end)
              || I <- lists:seq(1, 20), Id <- [<<"race-", (integer_to_binary(I))/binary>>], N <- [N1, N2, N1, N2]],
    ?assertEqual([ok], lists:usort([receive {raced, P, R} -> R after 15000 -> timeout end || P <- Racers])),
    ?assertMatch([#{recorded := 22000000}], rpc(N1, ?HISTORY, usage_rows, [SubId, H, H])),
    kill(N2),
    ok = rpc(N1, ?M, record_usage, [A, Sample(<<"once-2">>)]),
    kill9(N1),
    true = azmp_test_env:wait_until(fun() -> not epmd_has(Name1) end, 5000),
    #{peer := Peer} = start_node(Name1, Dir1, Env, none),
    try
        set_clock(N1, H + 120),
        [ok = rpc(N1, ?M, record_usage, [A, Sample(Id)]) || Id <- [<<"once-1">>, <<"queued">>, <<"once-2">>]],
        ?assertMatch([#{recorded := 23000000}], rpc(N1, ?HISTORY, usage_rows, [SubId, H, H])),
        ok = rpc(N1, ?M, record_usage, [A, Sample(<<"once-3">>)]),
        ?assertMatch([#{recorded := 24000000}], rpc(N1, ?HISTORY, usage_rows, [SubId, H, H]))
    after
        catch peer:stop(Peer)
    end.

%% The emitter (node 1) sends a batch; Azure accepts it but its answer never arrives (lost_reply):
%% node 1 is killed while its ledger still says `submitting'. The next emitter sends the same
%% quantities again; Azure's Duplicate proves them billed, and the ledger counts them once.
metering_killed_mid_batch(#{n1 := #{node := N1, name := Name1, dir := Dir1}, n2 := #{node := N2}, emu := Emu,
                            env := Env}, Mode) ->
    Mode =:= alone andalso kill(N2),
    {A, SubId} = linked_account(Emu, N1, []),
    H = real_hour() - 3 * ?HOUR,
    set_clock(N1, H + 60),
    Dims = [<<"sessions">>, <<"traffic">>, <<"connections">>],
    [ok = record(N1, A, D, Q, H * 1000) || {D, Q} <- lists:zip(Dims, [1, <<"0.5">>, 7])],
    [set_clock(N, real_hour() + 60) || N <- [N1, N2], Mode =:= with_node2 orelse N =:= N1],
    ok = azmp_emulator:inject(Emu, batch_usage_event, [{lost_reply, 5000}]),
    spawn(fun() -> catch erpc:call(N1, azmp_test_run, meter_pass, [], 20000) end),
    %% Azure has the three events; node 1 is still waiting for the answer.
    true = azmp_test_env:wait_until(fun() -> length(accepted(Emu, SubId)) =:= 3 end, 10000),
    ?assertEqual([submitting], lists:usort([S || #{status := S} <- rpc(N1, ?HISTORY, usage_rows, [SubId, H, H])])),
    kill9(N1),
    {Node, Cleanup} =
        case Mode of
            with_node2 ->
                %% Node 2 takes the emitter's lease once node 1's has run out (3 s), and the hours
                %% node 1 had in flight once its calls have surely ended: the lease and 5 waves of
                %% calls of at most 5 s (28 s); a minute on, on node 2's clock.
                ?assertEqual(false, rpc(N2, azmp_test_run, meter_pass, [])),
                set_clock(N2, real_hour() + 120),
                true = azmp_test_env:wait_until(
                         fun() -> rpc(N2, azmp_test_run, meter_pass, []) end, 15000),
                {N2, fun() -> ok end};
            alone ->
                true = azmp_test_env:wait_until(fun() -> not epmd_has(Name1) end, 5000),
                Again = start_node(Name1, Dir1, Env, none),
                %% Past the time its hours in flight were marked for (the lease and 5 waves of calls
                %% of at most 5 s, 28 s after the pass at +60): the restarted node's first tick runs
                %% on the real clock, which is before that in the first 88 s of an hour.
                set_clock(N1, real_hour() + 120),
                true = rpc(N1, azmp_test_run, meter_pass, []),
                {N1, fun() -> catch peer:stop(maps:get(peer, Again)) end}
        end,
    try
        Rows = rpc(Node, ?HISTORY, usage_rows, [SubId, H, H]),
        ?assertEqual([done], lists:usort([S || #{status := S} <- Rows])),
        ?assertEqual(3, length(accepted(Emu, SubId))),
        %% Sum reported = sum recorded, to the last decimal.
        ?assertEqual(lists:sum([R || #{recorded := R} <- Rows]), lists:sum([R || #{reported := R} <- Rows])),
        ?assertEqual(8500000, lists:sum([R || #{reported := R} <- Rows])),
        io:format(user, "~n    metering_killed_mid_batch (~s): 3 hours billed once, ledger done~n", [Mode])
    after
        Cleanup()
    end.

%% Node 1 marks its hours and sends them; Azure is slow (8 s), node 1's lease (3 s) runs out
%% meanwhile. Node 2 takes the lease and sends the hours recorded since, but not node 1's, still in
%% flight; node 1 then applies Azure's answer. Every hour went to Azure in exactly one request.
two_emitters(#{n1 := #{node := N1}, n2 := #{node := N2}, emu := Emu}) ->
    {A, SubA} = linked_account(Emu, N1, []),
    {B, SubB} = linked_account(Emu, N1, []),
    %% A's hour closes before node 1's tick, B's two seconds after it (the grace is 300 s).
    HA = real_hour() - 4 * ?HOUR,
    HB = HA + ?HOUR,
    [set_clock(N, HB + 60) || N <- [N1, N2]],
    [ok = record(N1, A, D, 1, HA * 1000) || D <- [<<"sessions">>, <<"traffic">>]],
    ok = record(N1, B, <<"sessions">>, 2, HB * 1000),
    T1 = HB + ?HOUR + 300 - 2,
    [set_clock(N, T1) || N <- [N1, N2]],
    ok = azmp_emulator:reset_stats(Emu),
    ok = azmp_emulator:inject(Emu, batch_usage_event, [{delay, 4500}]),
    Self = self(),
    spawn(fun() -> Self ! {node1_tick, catch erpc:call(N1, azmp_test_run, meter_pass, [], 30000)} end),
    true = azmp_test_env:wait_until(
             fun() -> [submitting] =:= lists:usort([S || #{status := S} <- rpc(N1, ?HISTORY, usage_rows, [SubA, HA, HA])]) end,
             5000),
    %% Node 1's lease (3 s) runs out while Azure holds its call; node 2 takes it over and sends B's
    %% hour, closed since, but not A's, still in flight.
    set_clock(N2, T1 + 4),
    true = azmp_test_env:wait_until(fun() -> rpc(N2, azmp_test_run, meter_pass, []) end, 10000),
    ?assertEqual([{HB, <<"sessions">>, 2}], accepted(Emu, SubB)),
    receive {node1_tick, true} -> ok after 30000 -> error(node1_tick_did_not_end) end,
    ?assertEqual(2, length(accepted(Emu, SubA))),
    %% Each hour was sent exactly once.
    ?assertEqual([1, 1, 1], maps:values(maps:filter(fun({R, _, _}, _) -> R =:= SubA orelse R =:= SubB end,
                                                    azmp_emulator:received(Emu)))),
    [?assertEqual([done], lists:usort([S || #{status := S} <- rpc(N, ?HISTORY, usage_rows, [Sub, HA, HB])]))
     || N <- [N1, N2], Sub <- [SubA, SubB]].

await_held(Call) ->
    case azmp_test_env:wait_until(fun() -> lists:member(Call, ?MEM:held()) end, 15000) of
        true -> ok;
        false -> error({not_held, Call, ?MEM:held()})
    end.

%%--------------------------------------------------------------------
%% Helpers

rpc(Node, M, F, A) -> erpc:call(Node, M, F, A, ?RPC_TIMEOUT).

new_account(Profile) ->
    Id = list_to_binary("acct-" ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = ?MEM:add_account(Id, Profile),
    Id.

%% An account linked through Via, with deployments named Account-Kind (trial: ends in 2 days).
%% Activated two days back on Via's clock (usage from before the activation is refused, and the
%% metering tests record usage of the hours before now), which is then put back where it was.
linked_account(Emu, Via, Kinds) ->
    A = new_account(#{}),
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    Now = rpc(Via, emqx_azure_marketplace_clock, now, []),
    set_clock(Via, Now - 2 * ?DAY),
    ok = rpc(Via, ?M, link, [A, {token, Token}]),
    await_status(Via, A, linked),
    set_clock(Via, Now),
    [ok = ?MEM:add_deployment(A, case K of
                                     trial -> #{id => <<A/binary, "-trial">>, trial => true,
                                                trial_ends_at => Now + 2 * ?DAY};
                                     _ -> #{id => <<A/binary, "-", (atom_to_binary(K))/binary>>, trial => false}
                                 end)
     || K <- Kinds],
    {A, SubId}.

await_status(Node, Account, Status) ->
    F = fun() -> maps:get(status, rpc(Node, ?M, link_status, [Account])) =:= Status end,
    case azmp_test_env:wait_until(F, 15000) of
        true -> rpc(Node, ?M, link_status, [Account]);
        false -> error({status_not_reached, Node, Account, Status, rpc(Node, ?M, link_status, [Account])})
    end.

url(Port) -> iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/azure/webhook"]).

deployment(A, Id) ->
    {ok, #{deployments := Ds}} = ?MEM:account(A),
    maps:get(Id, Ds, gone).

count(X, L) -> length([Y || Y <- L, Y =:= X]).

requests(Emu) -> maps:get(requests, azmp_emulator:stats(Emu)).

requests(Emu, Op, SubId) ->
    length([R || R = #{op := O, path := P} <- requests(Emu), O =:= Op,
                 binary:match(iolist_to_binary(P), SubId) =/= nomatch]).

node_label(N, [N1, _]) when N =:= N1 -> "node 1";
node_label(_, _) -> "node 2".

%% Runs F and returns the calls the control plane received meanwhile, as {CallerNode, Request}.
trace_mem(F) ->
    Mem = global:whereis_name(?MEM),
    1 = erlang:trace(Mem, true, ['receive', {tracer, self()}]),
    try
        F()
    after
        erlang:trace(Mem, false, ['receive'])
    end,
    %% Make sure every traced message is here: a call of ours is traced after them.
    _ = ?MEM:log(),
    collect(Mem, []).

collect(Mem, Acc) ->
    receive
        {trace, Mem, 'receive', {'$gen_call', {From, _}, Req}} when is_pid(From) ->
            collect(Mem, [{node(From), Req} | Acc]);
        {trace, Mem, 'receive', _} ->
            collect(Mem, Acc)
    after 0 ->
        lists:reverse(Acc)
    end.
