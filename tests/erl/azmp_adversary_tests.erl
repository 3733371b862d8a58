%% The plugin tried as an attacker and an unlucky operator would: concurrent copies of one request
%% and of conflicting ones, out-of-order webhooks, and ids that can never be valid. Against the
%% emulator over real sockets (webhooks are signed by it; the 1,000 copies go straight to
%% handle_webhook/2 in-process, since they test the handling, not the HTTP listener's limits).
-module(azmp_adversary_tests).

-include_lib("eunit/include/eunit.hrl").

-define(M, emqx_azure_marketplace).
-define(MEM, azmp_test_platform).

adversary_test_() ->
    azmp_test_env:with_plugin(fun(Emu) ->
        [
            {"2 accounts link one subscription at once: one linked, one activation",
             {timeout, 60, fun() -> same_subscription(Emu, 2) end}},
            {"500 accounts link one subscription at once: one linked, one activation",
             {timeout, 120, fun() -> same_subscription(Emu, 500) end}},
            {"one landing redeemed by two accounts at once: one link, one activation",
             {timeout, 60, fun() -> landing_twice(Emu) end}},
            {"1,000 concurrent copies of one ChangePlan: one Get Operation, one PATCH, all answered",
             {timeout, 120, fun() -> change_plan_copies(Emu) end}},
            {"a Suspend older than the Reinstate applied after it changes nothing",
             {timeout, 60, fun() -> stale_suspend(Emu) end}},
            {"webhook bodies whose ids can never be valid are a 400, not a 503 redelivered forever",
             fun() -> bad_webhook_ids(Emu) end},
            {"an account id the core refuses is refused at once",
             fun() -> bad_account_ids(Emu) end}
        ]
    end).

new_account() ->
    A = list_to_binary("acct-" ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = ?MEM:add_account(A, #{}),
    A.

%% Waits until no linking job of these accounts is in progress.
await_settled(Accounts) ->
    Settled = fun() ->
        lists:all(fun(A) -> not lists:member(maps:get(status, ?M:link_status(A)), [resolving, activating]) end,
                  Accounts)
    end,
    ?assert(azmp_test_env:wait_until(Settled, 60000)).

activations(Emu, SubId) ->
    {ok, #{activations := N}} = azmp_emulator:subscription(Emu, SubId),
    N.

in_parallel(Funs) ->
    Self = self(),
    Pids = [spawn_link(fun() -> Self ! {self(), F()} end) || F <- Funs],
    [receive {P, R} -> R after 60000 -> error(timeout) end || P <- Pids].

same_subscription(Emu, N) ->
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    Accounts = [new_account() || _ <- lists:seq(1, N)],
    Results = in_parallel([fun() -> ?M:link(A, {token, Token}) end || A <- Accounts]),
    ?assertEqual([ok], lists:usort(Results)),
    await_settled(Accounts),
    Statuses = [?M:link_status(A) || A <- Accounts],
    Linked = [S || S = #{status := linked} <- Statuses],
    ?assertMatch([#{subscription_id := SubId}], Linked),
    ?assertEqual(N - 1, length([x || #{status := failed, reason := subscription_linked_to_other_account} <- Statuses])),
    ?assertEqual(1, activations(Emu, SubId)),
    io:format(user, "~n    ~b accounts, one subscription: ~b linked, ~b refused, ~b activation~n",
              [N, length(Linked), N - length(Linked), activations(Emu, SubId)]).

landing_twice(Emu) ->
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    {ok, Id} = ?M:landing(Token),
    [A, B] = [new_account(), new_account()],
    Results = in_parallel([fun() -> ?M:link(X, {landing, Id}) end || X <- [A, B]]),
    ?assertEqual([ok, {error, landing_expired}], lists:sort(Results)),
    await_settled([A, B]),
    ?assertEqual(1, length([x || X <- [A, B], maps:get(status, ?M:link_status(X)) =:= linked])),
    ?assertEqual(1, activations(Emu, SubId)).

%% A signed delivery of OpId (payload and token as the emulator makes them), not sent anywhere.
signed_delivery(Emu, SubId, OpId) ->
    {error, _} = azmp_emulator:send_webhook(Emu, <<"http://127.0.0.1:1/unreachable">>, 'ChangePlan', SubId,
                                            #{redeliver => OpId, timeout_ms => 2000}),
    #{token := Token, payload := Payload} = lists:last(azmp_emulator:webhooks(Emu)),
    {[{<<"authorization">>, <<"Bearer ", Token/binary>>}], Payload}.

linked(Emu) ->
    A = new_account(),
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = ?M:link(A, {token, Token}),
    azmp_test_env:await_linked(A),
    {A, SubId}.

requests(Emu, Op, Id) ->
    length([R || R = #{op := O, path := P} <- maps:get(requests, azmp_emulator:stats(Emu)), O =:= Op,
                 binary:match(iolist_to_binary(P), Id) =/= nomatch]).

change_plan_copies(Emu) ->
    {A, SubId} = linked(Emu),
    ok = ?MEM:set_plans([<<"payg">>, <<"payg-premium">>]),
    {ok, OpId} = azmp_emulator:add_operation(Emu, SubId, #{action => <<"ChangePlan">>, plan_id => <<"payg-premium">>}),
    {Headers, Body} = signed_delivery(Emu, SubId, OpId),
    Answers = in_parallel(lists:duplicate(1000, fun() -> element(1, ?M:handle_webhook(Headers, Body)) end)),
    ?assertEqual([{200, 1000}], [{S, length([x || X <- Answers, X =:= S])} || S <- lists:usort(Answers)]),
    ?assertEqual(1, requests(Emu, get_operation, OpId)),
    ?assertEqual(1, requests(Emu, update_operation, OpId)),
    ?assertEqual(<<"payg-premium">>, maps:get(plan_id, emqx_azure_marketplace_store_links:link(A))),
    io:format(user, "~n    1,000 copies of one ChangePlan: 1,000 x 200, ~b Get Operation, ~b PATCH~n",
              [requests(Emu, get_operation, OpId), requests(Emu, update_operation, OpId)]).

stale_suspend(Emu) ->
    {A, SubId} = linked(Emu),
    Paid = <<A/binary, "-paid">>,
    ok = ?MEM:add_deployment(A, #{id => Paid, trial => false}),
    %% Azure's operations carry their time in seconds: one second apart each.
    {ok, Suspend1} = azmp_emulator:add_operation(Emu, SubId, #{action => <<"Suspend">>}),
    timer:sleep(1100),
    {ok, Suspend2} = azmp_emulator:add_operation(Emu, SubId, #{action => <<"Suspend">>}),
    timer:sleep(1100),
    {ok, Reinstate} = azmp_emulator:add_operation(Emu, SubId, #{action => <<"Reinstate">>}),
    Deliver = fun(Action, OpId) ->
        azmp_emulator:send_webhook(Emu, azmp_test_env:webhook_url(), Action, SubId, #{redeliver => OpId})
    end,
    {ok, 200, _} = Deliver('Suspend', Suspend1),
    ?assertMatch(#{status := suspended}, ?M:link_status(A)),
    {ok, 200, _} = Deliver('Reinstate', Reinstate),
    ?assertMatch(#{status := linked}, ?M:link_status(A)),
    ?assertMatch({ok, #{deployments := #{Paid := #{state := running}}}}, ?MEM:account(A)),
    %% The older Suspend arrives last (delayed, or retried by Azure): it must not undo the Reinstate.
    {ok, 200, Answer} = Deliver('Suspend', Suspend2),
    ?assertMatch({ok, #{<<"status">> := <<"stale">>}}, emqx_azure_marketplace_nif:json_decode(Answer)),
    ?assertMatch(#{status := linked}, ?M:link_status(A)),
    ?assertMatch({ok, #{deployments := #{Paid := #{state := running}}}}, ?MEM:account(A)),
    ?assertEqual({ok, <<"Subscribed">>}, sub_status(Emu, SubId)).

sub_status(Emu, SubId) ->
    {ok, #{status := S}} = azmp_emulator:subscription(Emu, SubId),
    {ok, S}.

bad_webhook_ids(Emu) ->
    {_A, SubId} = linked(Emu),
    {ok, OpId} = azmp_emulator:add_operation(Emu, SubId, #{action => <<"Renew">>}),
    {Headers, Body} = signed_delivery(Emu, SubId, OpId),
    {ok, Hook} = emqx_azure_marketplace_nif:json_decode(Body),
    Long = binary:copy(<<"a">>, 2000),
    Bodies = [Hook#{<<"id">> => <<>>}, Hook#{<<"id">> => Long}, Hook#{<<"subscriptionId">> => <<>>},
              Hook#{<<"subscriptionId">> => Long}, Hook#{<<"id">> => 42}, maps:remove(<<"id">>, Hook),
              Hook#{<<"action">> => <<>>}],
    Before = requests(Emu, get_operation, SubId),
    [begin
         {ok, Json} = emqx_azure_marketplace_nif:json_encode(B),
         ?assertMatch({400, _, _}, ?M:handle_webhook(Headers, Json))
     end || B <- Bodies],
    %% None of them reached Azure.
    ?assertEqual(Before, requests(Emu, get_operation, SubId)),
    %% The genuine one still goes through.
    ?assertMatch({200, _, _}, ?M:handle_webhook(Headers, Body)).

bad_account_ids(Emu) ->
    {ok, #{token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    [?assertEqual({Bad, {error, {badarg, account_id}}}, {Bad, ?M:link(Bad, {token, Token})})
     || Bad <- [<<>>, binary:copy(<<"a">>, 1025), not_a_binary, 42]],
    {ok, Id} = ?M:landing(Token),
    ?assertEqual({error, {badarg, account_id}}, ?M:link(<<>>, {landing, Id})),
    %% The landing was not used up by the refused call.
    A = new_account(),
    ?assertEqual(ok, ?M:link(A, {landing, Id})),
    azmp_test_env:await_linked(A).
