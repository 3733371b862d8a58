%% Test support: plugin nodes as real OTP `peer' nodes of this (distributed) test node, each with
%% its Mnesia directory, the plugin started with a given env, and the in-memory control plane (a
%% global process here) reachable; hard kills (halt, SIGKILL). Used by the cluster suite and the soak.
-module(azmp_test_peer).

-export([ensure_distributed/0, start_node/4, start_node/5, join_mnesia/1, stop_node/1, kill/1, kill9/1,
         epmd_has/1, rpc/4]).

-define(MEM, azmp_test_platform).
-define(RPC_TIMEOUT, 15000).

rpc(Node, M, F, A) -> erpc:call(Node, M, F, A, ?RPC_TIMEOUT).

ensure_distributed() ->
    case node() of
        nonode@nohost ->
            _ = os:cmd("epmd -daemon"),
            Name = list_to_atom("azmp_test_" ++ os:getpid()),
            {ok, _} = net_kernel:start([Name, shortnames]),
            true;
        _ ->
            false
    end.

%% Starts a peer node named Name with Mnesia in Dir and the plugin running. Join: `none' (a fresh
%% one-node Mnesia, or the schema already in Dir on a restart) or a node whose Mnesia to join.
start_node(Name, Dir, Env, Join) -> start_node(Name, Dir, Env, Join, []).

%% OsEnv: the node's OS environment on top of ours (e.g. another time zone).
start_node(Name, Dir, Env, Join, OsEnv) ->
    Paths = [P || P <- code:get_path(), filelib:is_dir(P)],
    {ok, Peer, Node} = peer:start(#{name => Name, args => ["-pa" | Paths], wait_boot => 30000, env => OsEnv}),
    ok = rpc(Node, application, set_env, [mnesia, dir, Dir]),
    [ok = rpc(Node, application, set_env, [emqx_azure_marketplace, K, V]) || {K, V} <- maps:to_list(Env)],
    %% The control plane is this node's global process: the peer must resolve it before the plugin runs.
    Mem = global:whereis_name(?MEM),
    true = is_pid(Mem),
    true = azmp_test_env:wait_until(fun() -> rpc(Node, global, whereis_name, [?MEM]) =:= Mem end, 10000),
    case Join of
        none -> ok;
        Seed -> ok = rpc(Node, ?MODULE, join_mnesia, [Seed])
    end,
    {ok, _} = erpc:call(Node, application, ensure_all_started, [emqx_azure_marketplace], 60000),
    #{peer => Peer, node => Node, name => Name, dir => Dir}.

%% @doc On a node with an empty Mnesia directory: joins Seed's Mnesia cluster and keeps the schema
%% on disc, so that the plugin's ensure_tables/0 adds disc copies of its tables here.
-spec join_mnesia(node()) -> ok.
join_mnesia(Seed) ->
    ok = mnesia:start(),
    {ok, [Seed]} = mnesia:change_config(extra_db_nodes, [Seed]),
    {atomic, ok} = mnesia:change_table_copy_type(schema, node(), disc_copies),
    ok.

%% Stops the peer; a node restarted by a test under the same name (another peer) is halted too.
stop_node(#{peer := Peer, node := Node}) ->
    catch peer:stop(Peer),
    case lists:member(Node, nodes()) of
        true -> kill(Node);
        false -> ok
    end.

%% Hard kill (no application stop, no Mnesia shutdown); returns once this node saw it go down.
kill(Node) ->
    erlang:monitor_node(Node, true),
    erpc:cast(Node, erlang, halt, []),
    receive
        {nodedown, Node} -> ok
    after 10000 ->
        error({still_up, Node})
    end.

%% SIGKILL of the node's OS process: nothing runs after it, not even a VM exit handler.
kill9(Node) ->
    OsPid = rpc(Node, os, getpid, []),
    erlang:monitor_node(Node, true),
    _ = os:cmd("kill -9 " ++ OsPid),
    receive
        {nodedown, Node} -> ok
    after 10000 ->
        error({still_up, Node})
    end.

epmd_has(Name) ->
    [Short | _] = string:split(atom_to_list(Name), "@"),
    case erl_epmd:names() of
        {ok, Names} -> lists:keymember(Short, 1, Names);
        _ -> false
    end.

