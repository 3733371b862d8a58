%% Gating reads the link's state row from this node's Mnesia copy directly (emqx_azure_marketplace_db:one/2):
%% a change acknowledged is what the next decision sees, the decisions are the core's on the link's
%% facts, and a table this node holds no ETS copy of is read through Mnesia.
-module(azmp_gating_read_tests).

-include_lib("eunit/include/eunit.hrl").

-define(M, emqx_azure_marketplace).
-define(NIF, emqx_azure_marketplace_nif).
-define(LINKS, emqx_azure_marketplace_store_links).
-define(DB, emqx_azure_marketplace_db).

gating_read_test_() ->
    azmp_test_env:with_plugin(fun(_Emu) ->
        [{"a change acknowledged is what the next gating call sees", fun acknowledged_is_seen/0},
         {"the API decides as the core does on the link's facts", fun same_decisions/0},
         {"one/2 reads what Mnesia's dirty read reads, present or not", fun same_as_dirty_read/0},
         {"a table without an ETS copy here is read through Mnesia", fun not_in_ets/0},
         {"reading_links/2 answers as link_of/2, from one pass over the links or a read each; a link made "
          "during the pass is read on disc", fun reading_links/0}]
    end).

account() -> list_to_binary("gate-" ++ integer_to_list(erlang:unique_integer([positive]))).

linked(A) ->
    Now = erlang:system_time(second),
    none = emqx_azure_marketplace_store_jobs:commit_linked(A, <<"sub-", A/binary>>, #{plan_id => <<"payg">>, quantity => undefined}, [], Now),
    A.

%% The store's transition (as the lifecycle commits one), without effects.
move(A, State, CancelledAt) ->
    {changed, _, _, none} = ?LINKS:transition(
        A, fun(F) -> {ok, F#{state := State, cancelled_at := CancelledAt}, []} end, #{}, undefined,
        erlang:system_time(second)),
    ok.

acknowledged_is_seen() ->
    A = linked(account()),
    Now = erlang:system_time(second),
    Paid = #{id => <<"p">>, trial => false, state => running},
    Stopped = #{id => <<"s">>, trial => false, state => stopped, stopped_at => Now - 10},
    lists:foreach(fun(I) ->
        ok = move(A, suspended, undefined),
        ?assertEqual({error, subscription_suspended}, ?M:can_create_deployment(A, #{trial => false})),
        ?assertEqual({stop, suspended}, ?M:deployment_action(A, Paid, Now)),
        ok = move(A, linked, undefined),
        ?assertEqual(ok, ?M:can_create_deployment(A, #{trial => false})),
        ?assertEqual(keep, ?M:deployment_action(A, Paid, Now)),
        %% state and cancellation read together: the deletion is counted from this cancellation
        ok = move(A, unsubscribed, Now - I),
        ?assertEqual(?NIF:gate_deployment(unsubscribed, Stopped, Now, Now - I, false),
                     ?M:deployment_action(A, Stopped, Now)),
        ok = move(A, linked, undefined)
    end, lists:seq(1, 50)).

same_decisions() ->
    Now = erlang:system_time(second),
    Deployments = [#{id => <<"d">>, trial => T, trial_ends_at => E, state => S, stopped_at => At}
                   || T <- [true, false], E <- [undefined, Now + 60, Now - 60], S <- [running, stopped],
                      At <- [undefined, Now - 100]],
    Links = [{none, undefined}, {linked, undefined}, {suspended, undefined}, {unsubscribed, Now - 3600}],
    lists:foreach(fun({State, CancelledAt}) ->
        A = account(),
        State =:= none orelse begin linked(A), State =:= linked orelse move(A, State, CancelledAt) end,
        [?assertEqual(expected_create(State, Trial), ?M:can_create_deployment(A, #{trial => Trial}))
         || Trial <- [true, false]],
        [?assertEqual(expected_action(State, D, Now, CancelledAt), ?M:deployment_action(A, D, Now))
         || D <- Deployments]
    end, Links).

%% The account is unknown to the platform: it pays no other way.
expected_create(State, Trial) ->
    case ?NIF:gate_create(State, Trial, unknown) of
        need_payment_method -> ?NIF:gate_create(State, Trial, false);
        D -> D
    end.

expected_action(State, D, Now, CancelledAt) ->
    case ?NIF:gate_deployment(State, D, Now, CancelledAt, unknown) of
        need_payment_method -> ?NIF:gate_deployment(State, D, Now, CancelledAt, false);
        Action -> Action
    end.

same_as_dirty_read() ->
    A = linked(account()),
    ok = move(A, suspended, undefined),
    [L] = mnesia:dirty_read(azmp_link_state, A),
    ?assertEqual(suspended, element(4, L)),
    ?assertEqual(L, ?DB:one(azmp_link_state, A)),
    ?assertEqual([], mnesia:dirty_read(azmp_link_state, <<"gate-none">>)),
    ?assertEqual(undefined, ?DB:one(azmp_link_state, <<"gate-none">>)).

not_in_ets() ->
    Tab = azmp_gating_read_disc,
    ok = ?DB:create_disc_table(Tab, Tab, [k, v]),
    try
        ok = mnesia:dirty_write(Tab, {Tab, k1, v1}),
        ?assertEqual({Tab, k1, v1}, ?DB:one(Tab, k1)),
        ?assertEqual(undefined, ?DB:one(Tab, k2)),
        %% no local copy at all: the copy to read from is elsewhere or nowhere
        ?assertExit({aborted, {no_exists, _}}, ?DB:one(azmp_gating_read_missing, k1))
    after
        ok = ?DB:delete_table(Tab)
    end.

reading_links() ->
    As = [linked(account()) || _ <- lists:seq(1, 20)],
    ok = move(hd(As), suspended, undefined),
    Links = ?LINKS:links_changed_since(0),
    Pairs = [{A, S} || #{account_id := A, subscription_id := S} <- Links],
    Expected = [?LINKS:link_of(A, S) || {A, S} <- Pairs],
    ?assert(lists:all(fun is_map/1, Expected)),
    ?assertMatch(#{state := suspended}, ?LINKS:link_of(hd(As), <<"sub-", (hd(As))/binary>>)),
    %% A pass (every link), then a read each (none).
    [?assertEqual(Expected, ?LINKS:reading_links(N, fun(Read) -> [Read(A, S) || {A, S} <- Pairs] end))
     || N <- [length(Pairs), 0]],
    ?assertEqual(Expected, ?LINKS:reading_links(length(Pairs), fun(Read) -> [Read(A, S) || {A, S} <- Pairs] end)),
    Late = account(),
    ?assertMatch({#{subscription_id := _}, undefined, undefined},
                 ?LINKS:reading_links(length(Pairs), fun(Read) ->
                     linked(Late),
                     {Read(Late, <<"sub-", Late/binary>>), Read(Late, <<"sub-other">>), Read(<<"gate-none">>, <<"sub-x">>)}
                 end)).
