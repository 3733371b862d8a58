%% EUnit tests of the Azure Marketplace emulator: SaaS Fulfillment v2: api auth,
%% resolve, activate, get, plans, PATCH, delete, operations, paging.
-module(azmp_emulator_fulfillment_tests).

-include_lib("eunit/include/eunit.hrl").
-include("azmp_emulator_tests.hrl").

-import(azmp_test_http, [auth/1, catch_error/1, emulator_tests/1, req/4, req/5, sub_url/3, token/1,
                         url/2, uuid/0]).

emulator_test_() ->
    emulator_tests(
      [{"api auth and api-version", fun api_auth/1},
       {"resolve: nasty but correct", fun resolve/1},
       {"resolve errors", fun resolve_errors/1},
       {"activate", fun activate/1},
       {"get and 404", fun get_subscription/1},
       {"listAvailablePlans", fun list_plans/1},
       {"change plan / quantity via PATCH", fun change_plan/1},
       {"delete subscription", fun delete_subscription/1},
       {"azure-initiated operation, PATCH Success / 409", fun azure_operation/1}]).

api_auth(Emu) ->
    U = url(Emu, "/api/saas/subscriptions/" ?V),
    {401, _, #{<<"error">> := _}} = req(get, U, [], <<>>),
    {401, _, _} = req(get, U, [{"authorization", "Bearer not-a-token"}], <<>>),
    %% a JWT we signed but did not issue as an access token
    Forged = azmp_emulator:sign_jwt(Emu, #{<<"aud">> => ?APP}),
    {401, _, _} = req(get, U, auth(Forged), <<>>),
    Tok = token(Emu),
    {200, _, _} = req(get, U, auth(Tok), <<>>),
    {400, _, _} = req(get, url(Emu, "/api/saas/subscriptions/"), auth(Tok), <<>>),
    {400, _, _} = req(get, url(Emu, "/api/saas/subscriptions/?api-version=2022-01-01"),
                      auth(Tok), <<>>).

resolve(Emu) ->
    {ok, #{id := Id, token := MT}} =
        azmp_emulator:add_subscription(Emu, #{quantity => 5, name => <<"my sub">>,
                                              beneficiary_email => <<"a@b.c">>,
                                              plan_id => <<"payg-premium">>}),
    ?assertMatch(<<_:8/binary, "-", _:4/binary, "-", _:4/binary, "-", _:4/binary, "-",
                   _:12/binary>>, Id),
    Tok = token(Emu),
    {200, H, R} = req(post, url(Emu, "/api/saas/subscriptions/resolve" ?V),
                      [{"x-ms-marketplace-token", binary_to_list(MT)} | auth(Tok)], <<>>),
    ?assertMatch(#{<<"id">> := Id, <<"subscriptionName">> := <<"my sub">>,
                   <<"offerId">> := <<"emqx-cloud-payg">>, <<"planId">> := <<"payg-premium">>,
                   <<"quantity">> := 5}, R),
    Sub = maps:get(<<"subscription">>, R),
    ?assertMatch(#{<<"id">> := Id, <<"quantity">> := <<"5">>,
                   <<"saasSubscriptionStatus">> := <<"PendingFulfillmentStart  ">>,
                   <<"beneficiary">> := #{<<"emailId">> := <<"a@b.c">>},
                   <<"storeFront">> := _}, Sub),
    ?assert(lists:keymember("x-ms-requestid", 1, H)),
    %% URL-encoded token (as found in the landing page URL) resolves too
    Enc = uri_string:compose_query([{"t", binary_to_list(MT)}]),
    "t=" ++ EncTok = Enc,
    {200, _, #{<<"id">> := Id}} =
        req(post, url(Emu, "/api/saas/subscriptions/resolve" ?V),
            [{"x-ms-marketplace-token", EncTok} | auth(Tok)], <<>>).

resolve_errors(Emu) ->
    Tok = token(Emu),
    U = url(Emu, "/api/saas/subscriptions/resolve" ?V),
    {400, _, #{<<"error">> := _}} = req(post, U, [{"x-ms-marketplace-token", "bogus"} | auth(Tok)],
                                        <<>>),
    {400, _, _} = req(post, U, auth(Tok), <<>>),
    {ok, #{token := MT}} = azmp_emulator:add_subscription(Emu, #{marketplace_token_ttl_s => 0}),
    {400, _, #{<<"error">> := #{<<"message">> := Msg}}} =
        req(post, U, [{"x-ms-marketplace-token", binary_to_list(MT)} | auth(Tok)], <<>>),
    ?assertNotEqual(nomatch, binary:match(Msg, <<"expired">>)),
    {401, _, _} = req(post, U, [{"x-ms-marketplace-token", binary_to_list(MT)}], <<>>).

activate(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{}),
    Tok = token(Emu),
    U = url(Emu, "/api/saas/subscriptions/" ++ binary_to_list(Id) ++ "/activate" ?V),
    {200, _, <<>>} = req(post, U, auth(Tok), <<"{\"planId\":\"payg\"}">>),
    {ok, #{status := <<"Subscribed">>, activations := 1}} = azmp_emulator:subscription(Emu, Id),
    {200, _, <<>>} = req(post, U, auth(Tok), <<>>),
    {ok, #{status := <<"Subscribed">>, activations := 2}} = azmp_emulator:subscription(Emu, Id),
    {400, _, _} = req(post, U, auth(Tok), <<"{\"planId\":\"payg-premium\"}">>),
    {404, _, _} = req(post, url(Emu, "/api/saas/subscriptions/" ++ uuid() ++ "/activate" ?V),
                      auth(Tok), <<>>),
    {ok, #{id := Gone}} = azmp_emulator:add_subscription(Emu, #{status => <<"Unsubscribed">>}),
    {400, _, _} = req(post, url(Emu, "/api/saas/subscriptions/" ++ binary_to_list(Gone) ++
                                    "/activate" ?V), auth(Tok), <<>>),
    {ok, #{activations := 0}} = azmp_emulator:subscription(Emu, Gone).

get_subscription(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>,
                                                              is_free_trial => true,
                                                              term => <<"P1Y">>}),
    Tok = token(Emu),
    {200, _, S} = req(get, sub_url(Emu, Id, ""), auth(Tok), <<>>),
    ?assertMatch(#{<<"id">> := Id, <<"saasSubscriptionStatus">> := <<"Subscribed  ">>,
                   <<"isFreeTrial">> := true, <<"term">> := #{<<"termUnit">> := <<"P1Y">>},
                   <<"x-emulator-extra">> := _}, S),
    ?assertNot(maps:is_key(<<"quantity">>, S)),
    {404, _, #{<<"error">> := #{<<"code">> := _}}} = req(get, sub_url(Emu, uuid(), ""),
                                                         auth(Tok), <<>>).

list_plans(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{}),
    Tok = token(Emu),
    {200, _, #{<<"plans">> := Plans}} = req(get, sub_url(Emu, Id, "/listAvailablePlans"),
                                            auth(Tok), <<>>),
    ?assertEqual([<<"payg">>, <<"payg-premium">>], [maps:get(<<"planId">>, P) || P <- Plans]),
    {404, _, _} = req(get, sub_url(Emu, uuid(), "/listAvailablePlans"), auth(Tok), <<>>).

change_plan(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    Tok = token(Emu),
    {202, H, <<>>} = req(patch, sub_url(Emu, Id, ""), auth(Tok),
                         <<"{\"planId\":\"payg-premium\"}">>),
    {_, Loc} = lists:keyfind("operation-location", 1, H),
    Expected = "/api/saas/subscriptions/" ++ binary_to_list(Id) ++ "/operations/",
    ?assertMatch({match, _}, re:run(Loc, "^http://127\\.0\\.0\\.1:[0-9]+" ++ Expected ++
                                         "[0-9a-f-]{36}\\?api-version=2018-08-31$")),
    {200, _, Op} = req(get, list_to_binary(Loc), auth(Tok), <<>>),
    ?assertMatch(#{<<"status">> := <<"InProgress">>, <<"action">> := <<"ChangePlan">>,
                   <<"planId">> := <<"payg-premium">>, <<"subscriptionId">> := Id}, Op),
    {ok, #{plan_id := <<"payg">>}} = azmp_emulator:subscription(Emu, Id),
    timer:sleep(400),
    {200, _, #{<<"status">> := <<"Succeeded">>}} = req(get, list_to_binary(Loc), auth(Tok), <<>>),
    {ok, #{plan_id := <<"payg-premium">>}} = azmp_emulator:subscription(Emu, Id),
    {202, _, _} = req(patch, sub_url(Emu, Id, ""), auth(Tok), <<"{\"quantity\":7}">>),
    timer:sleep(400),
    {ok, #{quantity := 7}} = azmp_emulator:subscription(Emu, Id),
    {400, _, _} = req(patch, sub_url(Emu, Id, ""), auth(Tok),
                      <<"{\"planId\":\"payg\",\"quantity\":1}">>),
    {400, _, _} = req(patch, sub_url(Emu, Id, ""), auth(Tok), <<"{\"planId\":\"gold\"}">>),
    {404, _, _} = req(patch, sub_url(Emu, uuid(), ""), auth(Tok), <<"{\"planId\":\"payg\"}">>).

delete_subscription(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    Tok = token(Emu),
    {202, H, _} = req(delete, sub_url(Emu, Id, ""), auth(Tok), <<>>),
    {_, Loc} = lists:keyfind("operation-location", 1, H),
    {200, _, #{<<"action">> := <<"Unsubscribe">>}} = req(get, list_to_binary(Loc), auth(Tok), <<>>),
    {ok, #{status := <<"Unsubscribed">>}} = azmp_emulator:subscription(Emu, Id),
    {400, _, _} = req(delete, sub_url(Emu, Id, ""), auth(Tok), <<>>),
    {404, _, _} = req(delete, sub_url(Emu, uuid(), ""), auth(Tok), <<>>).

azure_operation(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    {ok, OpId} = azmp_emulator:add_operation(Emu, Id, #{action => <<"ChangePlan">>,
                                                       plan_id => <<"payg-premium">>}),
    Tok = token(Emu),
    {200, _, #{<<"operations">> := [#{<<"id">> := OpId, <<"status">> := <<"InProgress">>}]}} =
        req(get, sub_url(Emu, Id, "/operations"), auth(Tok), <<>>),
    OpUrl = sub_url(Emu, Id, "/operations/" ++ binary_to_list(OpId)),
    {400, _, _} = req(patch, OpUrl, auth(Tok), <<"{\"status\":\"Maybe\"}">>),
    {200, _, _} = req(patch, OpUrl, auth(Tok), <<"{\"status\":\"Success\"}">>),
    {200, _, #{<<"status">> := <<"Succeeded">>}} = req(get, OpUrl, auth(Tok), <<>>),
    {ok, #{plan_id := <<"payg-premium">>}} = azmp_emulator:subscription(Emu, Id),
    {409, _, _} = req(patch, OpUrl, auth(Tok), <<"{\"status\":\"Failure\"}">>),
    {200, _, #{<<"operations">> := []}} = req(get, sub_url(Emu, Id, "/operations"), auth(Tok),
                                              <<>>),
    {404, _, _} = req(get, sub_url(Emu, Id, "/operations/" ++ uuid()), auth(Tok), <<>>),
    {ok, _} = azmp_emulator:add_operation(Emu, Id, #{action => <<"Suspend">>}),
    {ok, #{status := <<"Suspended">>}} = azmp_emulator:subscription(Emu, Id).

%% Separate instances for options.
paging_test() ->
    {ok, _} = application:ensure_all_started(inets),
    {ok, Emu} = azmp_emulator:start(#{https_port => none, page_size => 2}),
    try
        Ids = [begin {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{}), Id end
               || _ <- lists:seq(1, 5)],
        Tok = token(Emu),
        Pages = follow(url(Emu, "/api/saas/subscriptions/" ?V), Tok, []),
        ?assertEqual([2, 2, 1], [length(maps:get(<<"subscriptions">>, P)) || P <- Pages]),
        Got = [maps:get(<<"id">>, S) || P <- Pages, S <- maps:get(<<"subscriptions">>, P)],
        ?assertEqual(Ids, Got),
        [First | _] = Pages,
        Next = maps:get(<<"@nextLink">>, First),
        ?assertMatch(<<"http://127.0.0.1:", _/binary>>, Next),
        ?assertNotEqual(nomatch, binary:match(Next, <<"continuationToken=">>)),
        ?assertEqual(https_disabled, catch_error(fun() -> azmp_emulator:https_url(Emu) end))
    after
        azmp_emulator:stop(Emu)
    end.

follow(undefined, _Tok, Acc) -> lists:reverse(Acc);
follow(Url, Tok, Acc) ->
    {200, _, Page} = req(get, Url, auth(Tok), <<>>),
    follow(maps:get(<<"@nextLink">>, Page, undefined), Tok, [Page | Acc]).
