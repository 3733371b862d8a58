%% Linking as the product documentation describes it, end to end: the plugin application on this
%% node, the Azure emulator over HTTPS, the in-memory control plane.
-module(azmp_linking_tests).

-include_lib("eunit/include/eunit.hrl").

-define(M, emqx_azure_marketplace).
-define(MEM, azmp_test_platform).

linking_test_() ->
    azmp_test_env:with_plugin(fun(Emu) ->
         [
             {"signed in: linked, activated once, payment method is the marketplace", fun() -> signed_in(Emu) end},
             {"refused: credit card on file", fun() -> refused(Emu, #{credit_card => true}, credit_card_on_file) end},
             {"refused: uses available credits",
              fun() -> refused(Emu, #{available_credits => true}, uses_available_credits) end},
             {"refused: already linked to a marketplace product",
              fun() -> refused(Emu, #{other_marketplace_link => true}, already_linked_to_marketplace) end},
             {"refused: subscription linked to another account", fun() -> other_account(Emu) end},
             {"refused: invalid token", fun() -> invalid_token(Emu) end},
             {"refused: subscription already cancelled", fun() -> unsubscribed(Emu) end},
             {"not signed in: landing over HTTP, then link after sign-in", fun() -> landing(Emu) end},
             {"landing again with a linked subscription is a success", fun() -> relanding(Emu) end},
             {"Azure down: the link stays pending and completes later", {timeout, 30, fun() -> azure_down(Emu) end}},
             {"a second account linking the same account's other subscription", fun() -> second_subscription(Emu) end},
             {"gating before, during and after linking", fun() -> gating(Emu) end}
         ]
    end).

new_account(Profile) ->
    Id = list_to_binary("acct-" ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = ?MEM:add_account(Id, Profile),
    Id.

signed_in(Emu) ->
    A = new_account(#{}),
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    ?assertEqual(none, maps:get(status, ?M:link_status(A))),
    ?assertEqual(none, ?M:payment_method(A)),
    ok = ?M:link(A, {token, Token}),
    ?assertMatch(#{status := linked, subscription_id := SubId}, azmp_test_env:await_status(A, linked)),
    ?assertEqual(azure_marketplace_subscription, ?M:payment_method(A)),
    {ok, EmuSub} = azmp_emulator:subscription(Emu, SubId),
    ?assertMatch(#{activations := 1}, EmuSub),
    %% The term is Azure's after the activation, when it starts (Resolve's has no dates yet): of it
    %% only what metering reads is kept (chargeDuration and anything else Azure adds never reach the
    %% link record).
    ?assertMatch(#{term := #{<<"startDate">> := <<_:80, _/binary>>, <<"endDate">> := <<_:80, _/binary>>,
                             <<"termUnit">> := <<"P1M">>}},
                 emqx_azure_marketplace_store_links:link(A)),
    #{term := #{<<"startDate">> := Start}} = emqx_azure_marketplace_store_links:link(A),
    ?assertEqual(maps:get(term_start, EmuSub), calendar:rfc3339_to_system_time(binary_to_list(Start))),
    ?assertEqual(3, map_size(maps:get(term, emqx_azure_marketplace_store_links:link(A)))),
    %% The pop-up follows the recorded link (the control plane is told right after).
    ?assert(azmp_test_env:wait_until(fun() ->
        {ok, #{payment_method := M, notices := Notices}} = ?MEM:account(A),
        M =:= azure_marketplace_subscription andalso lists:any(fun(#{kind := K}) -> K =:= linked end, Notices)
    end, 5000)).

refused(Emu, Profile, Reason) ->
    A = new_account(Profile),
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = ?M:link(A, {token, Token}),
    assert_refused(Reason, azmp_test_env:await_status(A, failed)),
    %% Nothing activated, nothing billed.
    {ok, EmuSub} = azmp_emulator:subscription(Emu, SubId),
    ?assertMatch(#{activations := 0}, EmuSub),
    ?assertNotEqual(azure_marketplace_subscription, ?M:payment_method(A)),
    ?assert(azmp_test_env:wait_until(fun() ->
        {ok, #{notices := Notices}} = ?MEM:account(A),
        lists:member(#{kind => link_failed, reason => Reason}, Notices)
    end, 5000)).

%% A refusal as link_status/1 gives it: the reason, and words the modal shows (the product
%% documentation's for its three refusals).
assert_refused(Reason, Status) ->
    ?assertMatch(#{status := failed, reason := Reason, title := <<_, _/binary>>, message := <<_, _/binary>>}, Status),
    #{message := Message} = Status,
    Says = case Reason of
               credit_card_on_file -> <<"The EMQX account already has been set up a credit card.">>;
               uses_available_credits -> <<"The EMQX account uses Available Credits.">>;
               already_linked_to_marketplace -> <<"already has been linked to a Marketplace EMQX product.">>;
               _ -> <<"please submit a ticket to get help.">>
           end,
    ?assertNotEqual(nomatch, binary:match(Message, Says)).

other_account(Emu) ->
    A1 = new_account(#{}),
    A2 = new_account(#{}),
    {ok, #{token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = ?M:link(A1, {token, Token}),
    azmp_test_env:await_status(A1, linked),
    ok = ?M:link(A2, {token, Token}),
    assert_refused(subscription_linked_to_other_account, azmp_test_env:await_status(A2, failed)),
    ?assertMatch(#{status := linked}, ?M:link_status(A1)).

invalid_token(_Emu) ->
    A = new_account(#{}),
    ok = ?M:link(A, {token, <<"not-a-token">>}),
    assert_refused(invalid_token, azmp_test_env:await_status(A, failed)),
    ?assertEqual({error, invalid_token}, ?M:landing(<<"not-a-token">>)).

unsubscribed(Emu) ->
    A = new_account(#{}),
    {ok, #{token := Token}} = azmp_emulator:add_subscription(Emu, #{status => <<"Unsubscribed">>}),
    ok = ?M:link(A, {token, Token}),
    assert_refused(subscription_unsubscribed, azmp_test_env:await_status(A, failed)).

landing(Emu) ->
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    Url = "http://127.0.0.1:" ++ integer_to_list(emqx_azure_marketplace_app:http_port()) ++
        "/azure/landing?token=" ++ uri_string:quote(binary_to_list(Token)),
    {ok, {{_, 200, _}, _, Body}} = httpc:request(get, {Url, []}, [], [{body_format, binary}]),
    {ok, #{<<"landing_id">> := LandingId}} = emqx_azure_marketplace_nif:json_decode(Body),
    %% Signs in afterwards.
    A = new_account(#{}),
    ok = ?M:link(A, {landing, LandingId}),
    ?assertMatch(#{status := linked, subscription_id := SubId}, azmp_test_env:await_status(A, linked)),
    %% A landing is used once.
    ?assertEqual({error, landing_expired}, ?M:link(new_account(#{}), {landing, LandingId})).

relanding(Emu) ->
    A = new_account(#{}),
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = ?M:link(A, {token, Token}),
    azmp_test_env:await_status(A, linked),
    %% "Manage account" in Azure: the customer lands again with the same subscription.
    {ok, LandingId} = ?M:landing(Token),
    ok = ?M:link(A, {landing, LandingId}),
    ?assertMatch(#{status := linked, subscription_id := SubId}, azmp_test_env:await_status(A, linked)),
    ?assert(azmp_test_env:wait_until(fun() -> emqx_azure_marketplace_store_jobs:job(A) =:= undefined end, 5000)),
    {ok, EmuSub} = azmp_emulator:subscription(Emu, SubId),
    ?assertMatch(#{activations := 1}, EmuSub).

azure_down(Emu) ->
    A = new_account(#{}),
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    %% Every attempt for a while fails: the client retries twice per attempt, the job backs off.
    ok = azmp_emulator:inject(Emu, resolve, lists:duplicate(4, {status, 503})),
    ok = ?M:link(A, {token, Token}),
    timer:sleep(300),
    ?assertMatch(#{status := resolving}, ?M:link_status(A)),
    %% the modal says why it takes long: Azure does not answer (the job waits for its next attempt)
    ?assert(azmp_test_env:wait_until(fun() ->
        maps:get(reason, ?M:link_status(A)) =:= azure_unavailable end, 3000)),
    ok = azmp_emulator:inject(Emu, activate, lists:duplicate(2, reset)),
    ?assertMatch(#{status := linked, subscription_id := SubId}, azmp_test_env:await_status(A, linked)),
    {ok, EmuSub} = azmp_emulator:subscription(Emu, SubId),
    ?assertMatch(#{activations := 1}, EmuSub).

second_subscription(Emu) ->
    A = new_account(#{}),
    {ok, #{token := T1}} = azmp_emulator:add_subscription(Emu, #{}),
    {ok, #{token := T2}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = ?M:link(A, {token, T1}),
    azmp_test_env:await_status(A, linked),
    ok = ?M:link(A, {token, T2}),
    %% The account keeps its link; the attempt is refused.
    ?assert(azmp_test_env:wait_until(fun() ->
        emqx_azure_marketplace_store_jobs:job(A) =/= undefined andalso
            maps:get(phase, emqx_azure_marketplace_store_jobs:job(A)) =:= failed
    end, 10000)),
    ?assertMatch(#{status := linked}, ?M:link_status(A)).

gating(Emu) ->
    A = new_account(#{}),
    {ok, #{token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    ?assertEqual(ok, ?M:can_create_deployment(A, #{trial => false})),
    ok = azmp_emulator:inject(Emu, activate, [{delay, 1500}]),
    ok = ?M:link(A, {token, Token}),
    azmp_test_env:await_status(A, activating),
    ?assertEqual({error, link_pending}, ?M:can_create_deployment(A, #{trial => false})),
    ?assertEqual(ok, ?M:can_create_deployment(A, #{trial => true})),
    azmp_test_env:await_status(A, linked),
    ?assertEqual(ok, ?M:can_create_deployment(A, #{trial => false})),
    Now = emqx_azure_marketplace_clock:now(),
    ?assertEqual(keep, ?M:deployment_action(A, #{id => <<"d">>, trial => false, state => running}, Now)).
