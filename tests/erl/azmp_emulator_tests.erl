%% EUnit tests of the Azure Marketplace emulator, over real sockets with OTP
%% httpc (HTTP and HTTPS with the generated CA) and raw gen_tcp where the
%% wire itself is under test.
-module(azmp_emulator_tests).

-include_lib("eunit/include/eunit.hrl").
-include_lib("public_key/include/public_key.hrl").

-define(APP, <<"20e940b3-4c77-4b0b-9a53-9e16a1b010a7">>).
-define(V, "?api-version=2018-08-31").

%%% ================================================================ fixtures

emulator_test_() ->
    {setup, fun setup/0, fun cleanup/1,
     fun(Emu) ->
             [{Name, fun() -> F(Emu) end} || {Name, F} <- shared_tests()]
     end}.

setup() ->
    {ok, _} = application:ensure_all_started(inets),
    {ok, _} = application:ensure_all_started(ssl),
    {ok, Emu} = azmp_emulator:start(#{operation_ms => 300}),
    Emu.

cleanup(Emu) -> ok = azmp_emulator:stop(Emu).

shared_tests() ->
    [{"entra v1 token", fun entra_v1/1},
     {"entra v2 token", fun entra_v2/1},
     {"entra errors", fun entra_errors/1},
     {"access token is a JWT verifiable with the JWKS", fun token_jwt_verifies/1},
     {"https with the CA, by IP and by localhost", fun https_ok/1},
     {"https with an unrelated CA fails closed", fun https_wrong_ca/1},
     {"api auth and api-version", fun api_auth/1},
     {"expire_tokens invalidates issued tokens", fun expire_tokens/1},
     {"resolve: nasty but correct", fun resolve/1},
     {"resolve errors", fun resolve_errors/1},
     {"activate", fun activate/1},
     {"get and 404", fun get_subscription/1},
     {"listAvailablePlans", fun list_plans/1},
     {"change plan / quantity via PATCH", fun change_plan/1},
     {"delete subscription", fun delete_subscription/1},
     {"azure-initiated operation, PATCH Success / 409", fun azure_operation/1},
     {"metering: single usage event rules", fun usage_event/1},
     {"metering: batch", fun batch_usage/1},
     {"metering: usageEvents report", fun usage_report/1},
     {"faults: status codes and Retry-After", fun fault_status/1},
     {"faults: reset, stall, truncated, malformed, delay", fun fault_transport/1},
     {"faults have no side effect", fun fault_no_side_effect/1},
     {"faults: any and order", fun fault_any_order/1},
     {"stats record request and correlation ids", fun stats/1},
     {"sign_jwt verifies with the served JWKS", fun sign_jwt/1},
     {"control API over HTTP", fun control_api/1},
     {"keep-alive, pipelining, 100-continue, chunked", fun wire/1},
     {"unknown path and wrong method", fun routing/1}].

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

token_ttl_test() ->
    {ok, _} = application:ensure_all_started(inets),
    {ok, Emu} = azmp_emulator:start(#{https_port => none, token_ttl_s => 1,
                                      tenant_id => <<"t-x">>, client_id => <<"c-x">>,
                                      client_secret => <<"s+x/=">>}),
    try
        {200, _, #{<<"expires_in">> := <<"1">>, <<"access_token">> := Tok}} =
            req(post, url(Emu, "/t-x/oauth2/token"), [],
                form([{"grant_type", "client_credentials"}, {"client_id", "c-x"},
                      {"client_secret", "s+x/="}, {"resource", binary_to_list(?APP)}])),
        {200, _, _} = req(get, url(Emu, "/api/saas/subscriptions/" ?V), auth(Tok), <<>>),
        timer:sleep(2100),
        ?assertMatch({401, _, _}, req(get, url(Emu, "/api/saas/subscriptions/" ?V),
                                      auth(Tok), <<>>))
    after
        azmp_emulator:stop(Emu)
    end.

%% Many concurrent connections while every answer is delayed: the delay is
%% slept per connection, so the total is about one delay, not N.
concurrency_test_() ->
    {timeout, 60,
     fun() ->
             {ok, Emu} = azmp_emulator:start(#{https_port => none}),
             try
                 ok = azmp_emulator:set_delay(Emu, 500),
                 Port = port_of(azmp_emulator:http_url(Emu)),
                 N = 1000,
                 Self = self(),
                 T0 = erlang:monotonic_time(millisecond),
                 [spawn(fun() -> Self ! {done, raw_get(Port, "/common/discovery/v2.0/keys")} end)
                  || _ <- lists:seq(1, N)],
                 Results = [receive {done, R} -> R after 30000 -> timeout end
                            || _ <- lists:seq(1, N)],
                 Elapsed = erlang:monotonic_time(millisecond) - T0,
                 ?assertEqual(N, length([ok || {200, _} <- Results])),
                 ?assert(Elapsed >= 500),
                 ?assert(Elapsed < 10000),
                 #{by_op := #{jwks := N}} = azmp_emulator:stats(Emu)
             after
                 azmp_emulator:stop(Emu)
             end
     end}.

json_test() ->
    J = azmp_emulator_json,
    ?assertEqual({ok, #{<<"a">> => [1, 2.5, -3, 1.0e10, true, false, null, <<>>]}},
                 J:decode(<<" { \"a\" : [1, 2.5, -3, 1e10, true, false, null, \"\"] } ">>)),
    ?assertEqual({ok, <<"q\"\\/\b\f\n\r\t", 16#e9/utf8, 16#1F600/utf8>>},
                 J:decode(<<"\"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"">>)),
    ?assertMatch({error, _}, J:decode(<<"{\"a\":1,}">>)),
    ?assertMatch({error, _}, J:decode(<<"[1 2]">>)),
    ?assertMatch({error, _}, J:decode(<<"01">>)),
    ?assertMatch({error, _}, J:decode(<<"\"\\ud83d\"">>)),
    ?assertMatch({error, _}, J:decode(<<"\"a">>)),
    ?assertMatch({error, _}, J:decode(<<"{} x">>)),
    ?assertMatch({error, _}, J:decode(<<"1e999">>)),
    ?assertMatch({error, _}, J:decode(<<"\"", 16#ff, "\"">>)),
    T = #{<<"k\n">> => [<<"\x01é"/utf8>>, 1, -0.5, #{}, []], <<"n">> => null},
    ?assertEqual({ok, T}, J:decode(J:encode(T))),
    ?assertEqual(<<"{\"a\":1}">>, J:encode(#{a => 1, b => undefined})),
    ?assertEqual(<<"\"\\u0001\"">>, J:encode(<<1>>)).

%%% =================================================================== Entra

entra_v1(Emu) ->
    {200, _, B} = req(post, url(Emu, "/tenant-1/oauth2/token"), [], v1_form()),
    #{<<"token_type">> := <<"Bearer">>, <<"expires_in">> := <<"3599">>,
      <<"ext_expires_in">> := <<"3599">>, <<"expires_on">> := On,
      <<"not_before">> := Nb, <<"resource">> := ?APP, <<"access_token">> := T} = B,
    ?assert(binary_to_integer(On) - binary_to_integer(Nb) =:= 3599),
    ?assertEqual(3, length(binary:split(T, <<".">>, [global]))).

entra_v2(Emu) ->
    {200, _, B} = req(post, url(Emu, "/tenant-1/oauth2/v2.0/token"), [], v2_form()),
    ?assertMatch(#{<<"token_type">> := <<"Bearer">>, <<"expires_in">> := 3599,
                   <<"ext_expires_in">> := 3599, <<"access_token">> := _}, B).

entra_errors(Emu) ->
    U = fun(T) -> url(Emu, "/" ++ T ++ "/oauth2/token") end,
    Base = [{"grant_type", "client_credentials"}, {"client_id", "client-1"},
            {"client_secret", "secret-1"}, {"resource", binary_to_list(?APP)}],
    With = fun(K, V) -> form(lists:keystore(K, 1, Base, {K, V})) end,
    {400, _, E1} = req(post, U("other-tenant"), [], form(Base)),
    ?assertMatch(#{<<"error">> := <<"invalid_request">>, <<"error_codes">> := [90002]}, E1),
    ?assertMatch(<<"AADSTS90002: Tenant 'other-tenant' not found", _/binary>>,
                 maps:get(<<"error_description">>, E1)),
    {400, _, E2} = req(post, U("tenant-1"), [], With("client_id", "nope")),
    ?assertMatch(#{<<"error">> := <<"unauthorized_client">>, <<"error_codes">> := [700016]}, E2),
    {401, _, E3} = req(post, U("tenant-1"), [], With("client_secret", "wrong")),
    ?assertMatch(#{<<"error">> := <<"invalid_client">>, <<"error_codes">> := [7000215],
                   <<"trace_id">> := _, <<"correlation_id">> := _, <<"timestamp">> := _}, E3),
    {400, _, E4} = req(post, U("tenant-1"), [], With("resource", "https://management.azure.com")),
    ?assertMatch(#{<<"error">> := <<"invalid_resource">>, <<"error_codes">> := [500011]}, E4),
    {400, _, E5} = req(post, U("tenant-1"), [], With("grant_type", "password")),
    ?assertMatch(#{<<"error">> := <<"unsupported_grant_type">>}, E5),
    V2 = url(Emu, "/tenant-1/oauth2/v2.0/token"),
    {400, _, E6} = req(post, V2, [], form([{"grant_type", "client_credentials"},
                                           {"client_id", "client-1"},
                                           {"client_secret", "secret-1"},
                                           {"scope", binary_to_list(?APP)}])),
    ?assertMatch(#{<<"error">> := <<"invalid_scope">>}, E6),
    {400, _, E7} = req(post, V2, [], form([{"grant_type", "client_credentials"},
                                           {"client_id", "client-1"},
                                           {"client_secret", "secret-1"},
                                           {"scope", "api://other/.default"}])),
    ?assertMatch(#{<<"error">> := <<"invalid_resource">>}, E7),
    ?assertMatch({405, _, _}, req(get, U("tenant-1"), [], <<>>)).

token_jwt_verifies(Emu) ->
    {200, _, #{<<"access_token">> := T1}} =
        req(post, url(Emu, "/tenant-1/oauth2/token"), [], v1_form()),
    {200, _, #{<<"access_token">> := T2}} =
        req(post, url(Emu, "/tenant-1/oauth2/v2.0/token"), [], v2_form()),
    {200, _, Jwks} = req(get, azmp_emulator:jwks_url(Emu), [], <<>>, ssl_opts(Emu)),
    {200, _, Jwks} = req(get, url(Emu, "/common/discovery/v2.0/keys"), [], <<>>),
    {200, _, Jwks} = req(get, url(Emu, "/tenant-1/discovery/keys"), [], <<>>),
    ?assertMatch({400, _, _}, req(get, url(Emu, "/nope/discovery/v2.0/keys"), [], <<>>)),
    {ok, C1} = verify_with_jwks(Jwks, T1),
    {ok, C2} = verify_with_jwks(Jwks, T2),
    Now = erlang:system_time(second),
    ?assertMatch(#{<<"aud">> := ?APP, <<"tid">> := <<"tenant-1">>,
                   <<"appid">> := <<"client-1">>, <<"ver">> := <<"1.0">>}, C1),
    ?assertMatch(#{<<"aud">> := ?APP, <<"tid">> := <<"tenant-1">>,
                   <<"azp">> := <<"client-1">>, <<"ver">> := <<"2.0">>}, C2),
    ?assert(maps:get(<<"exp">>, C1) > Now + 3000),
    {200, _, Oidc} = req(get, url(Emu, "/tenant-1/v2.0/.well-known/openid-configuration"),
                         [], <<>>),
    ?assertMatch(#{<<"jwks_uri">> := _, <<"token_endpoint">> := _}, Oidc).

https_ok(Emu) ->
    Https = azmp_emulator:https_url(Emu),
    {200, _, _} = req(post, <<Https/binary, "/tenant-1/oauth2/token">>, [], v1_form(),
                      ssl_opts(Emu)),
    Local = binary:replace(Https, <<"127.0.0.1">>, <<"localhost">>),
    {200, _, _} = req(post, <<Local/binary, "/tenant-1/oauth2/token">>, [], v1_form(),
                      ssl_opts(Emu)),
    %% and with the CLI, hostname verification included
    Out = os:cmd("curl -sS -o /dev/null -w '%{http_code}' --cacert " ++
                     azmp_emulator:ca_file(Emu) ++ " " ++ binary_to_list(Local) ++
                     "/common/discovery/v2.0/keys"),
    ?assertEqual("200", Out).

https_wrong_ca(Emu) ->
    Port = port_of(azmp_emulator:https_url(Emu)),
    %% a fresh connection (httpc would reuse its pooled session)
    ?assertMatch({error, {tls_alert, {unknown_ca, _}}},
                 ssl:connect("localhost", Port,
                             [{verify, verify_peer},
                              {cacertfile, azmp_emulator:other_ca_file(Emu)}], 5000)),
    {ok, S} = ssl:connect("localhost", Port, [{verify, verify_peer},
                                              {cacertfile, azmp_emulator:ca_file(Emu)}], 5000),
    ssl:close(S),
    Out = os:cmd("curl -sS -o /dev/null --cacert " ++ azmp_emulator:other_ca_file(Emu) ++
                     " https://127.0.0.1:" ++ integer_to_list(Port) ++
                     "/common/discovery/v2.0/keys 2>&1; echo \" rc=$?\""),
    ?assertEqual(nomatch, string:find(Out, " rc=0")).

%%% ======================================================== fulfillment API

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

expire_tokens(Emu) ->
    Tok = token(Emu),
    U = url(Emu, "/api/saas/subscriptions/" ?V),
    {200, _, _} = req(get, U, auth(Tok), <<>>),
    ok = azmp_emulator:expire_tokens(Emu),
    {401, _, _} = req(get, U, auth(Tok), <<>>),
    {200, _, _} = req(get, U, auth(token(Emu)), <<>>).

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

%%% ================================================================ metering

usage_event(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    Tok = token(Emu),
    U = url(Emu, "/api/usageEvent" ?V),
    Now = erlang:system_time(second),
    Hour = Now - (Now rem 3600),
    Ev = event(Id, <<"sessions">>, 10, Hour + 5),
    {200, _, Ok} = req(post, U, auth(Tok), json(Ev)),
    ?assertMatch(#{<<"status">> := <<"Accepted">>, <<"usageEventId">> := _,
                   <<"messageTime">> := _, <<"resourceId">> := Id, <<"quantity">> := 10,
                   <<"dimension">> := <<"sessions">>, <<"planId">> := <<"payg">>}, Ok),
    %% same hour, other minute: duplicate
    {409, _, Conflict} = req(post, U, auth(Tok), json(event(Id, <<"sessions">>, 3, Hour + 60))),
    ?assertEqual(#{<<"additionalInfo">> => #{<<"acceptedMessage">> => Ok},
                   <<"message">> => <<"This usage event already exist.">>,
                   <<"code">> => <<"Conflict">>}, Conflict),
    %% other dimension, previous hour: accepted
    {200, _, _} = req(post, U, auth(Tok), json(event(Id, <<"traffic">>, 1.5, Hour))),
    {200, _, _} = req(post, U, auth(Tok), json(event(Id, <<"sessions">>, 2, Hour - 3600))),
    {400, _, Exp} = req(post, U, auth(Tok), json(event(Id, <<"sessions">>, 1, Now - 25 * 3600))),
    ?assertMatch(#{<<"code">> := <<"BadArgument">>,
                   <<"details">> := [#{<<"code">> := <<"Expired">>}]}, Exp),
    {400, _, NF} = req(post, U, auth(Tok), json(event(list_to_binary(uuid()), <<"sessions">>, 1,
                                                      Now))),
    ?assertMatch(#{<<"details">> := [#{<<"code">> := <<"ResourceNotFound">>}]}, NF),
    {ok, #{id := Pending}} = azmp_emulator:add_subscription(Emu, #{}),
    {400, _, NA} = req(post, U, auth(Tok), json(event(Pending, <<"sessions">>, 1, Now))),
    ?assertMatch(#{<<"details">> := [#{<<"code">> := <<"ResourceNotActive">>}]}, NA),
    {400, _, ID} = req(post, U, auth(Tok), json(event(Id, <<"bananas">>, 1, Now))),
    ?assertMatch(#{<<"details">> := [#{<<"code">> := <<"InvalidDimension">>}]}, ID),
    {400, _, IQ} = req(post, U, auth(Tok), json(event(Id, <<"connections">>, -1, Now))),
    ?assertMatch(#{<<"details">> := [#{<<"code">> := <<"InvalidQuantity">>}]}, IQ),
    {400, _, _} = req(post, U, auth(Tok), <<"not json">>),
    {401, _, _} = req(post, U, [], json(Ev)).

batch_usage(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    Tok = token(Emu),
    U = url(Emu, "/api/batchUsageEvent" ?V),
    Now = erlang:system_time(second),
    Hour = Now - (Now rem 3600),
    TooMany = [event(Id, <<"sessions">>, 1, Hour - 3600 * N) || N <- lists:seq(0, 25)],
    {400, _, _} = req(post, U, auth(Tok), json(#{<<"request">> => TooMany})),
    {400, _, _} = req(post, U, auth(Tok), json(#{<<"request">> => []})),
    Items = [event(Id, <<"sessions">>, 1, Hour),
             event(Id, <<"sessions">>, 2, Hour + 1),
             event(Id, <<"sessions">>, 1, Now - 30 * 3600),
             event(list_to_binary(uuid()), <<"sessions">>, 1, Hour),
             event(Id, <<"nope">>, 1, Hour),
             event(Id, <<"traffic">>, 0, Hour),
             event(Id, <<"traffic">>, 4, Hour)],
    {200, _, #{<<"count">> := 7, <<"result">> := Rs}} =
        req(post, U, auth(Tok), json(#{<<"request">> => Items})),
    ?assertEqual([<<"Accepted">>, <<"Duplicate">>, <<"Expired">>, <<"ResourceNotFound">>,
                  <<"InvalidDimension">>, <<"InvalidQuantity">>, <<"Accepted">>],
                 [maps:get(<<"status">>, R) || R <- Rs]),
    [A, D | _] = Rs,
    ?assertEqual(A, maps:get(<<"acceptedMessage">>,
                             maps:get(<<"additionalInfo">>, maps:get(<<"error">>, D)))),
    %% 25 is fine
    Max = [event(Id, <<"connections">>, 1, Hour - 3600 * N) || N <- lists:seq(0, 22)],
    {200, _, #{<<"count">> := 23}} = req(post, U, auth(Tok), json(#{<<"request">> => Max})).

usage_report(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>,
                                                              plan_id => <<"payg-premium">>}),
    Tok = token(Emu),
    Now = erlang:system_time(second),
    Hour = Now - (Now rem 3600),
    Ev = fun(Q, T) -> (event(Id, <<"sessions">>, Q, T))#{<<"planId">> => <<"payg-premium">>} end,
    {200, _, _} = req(post, url(Emu, "/api/usageEvent" ?V), auth(Tok), json(Ev(5, Hour))),
    {200, _, _} = req(post, url(Emu, "/api/usageEvent" ?V), auth(Tok), json(Ev(7, Hour - 3600))),
    Today = lists:sublist(calendar:system_time_to_rfc3339(Now - 2 * 86400), 10),
    {200, _, Rows} = req(get, url(Emu, "/api/usageEvents" ?V "&usageStartDate=" ++ Today ++
                                      "&planId=payg-premium"), auth(Tok), <<>>),
    Mine = [R || R = #{<<"usageResourceId">> := R0} <- Rows, R0 =:= Id],
    ?assertEqual(lists:sum([C || #{<<"submittedCount">> := C} <- Mine]), 2),
    ?assertEqual(12, lists:sum([Q || #{<<"submittedQuantity">> := Q} <- Mine])),
    ?assertMatch([#{<<"dimension">> := <<"sessions">>, <<"offerId">> := _,
                    <<"usageDate">> := _, <<"reconStatus">> := _} | _], Mine),
    {400, _, _} = req(get, url(Emu, "/api/usageEvents" ?V), auth(Tok), <<>>).

event(Id, Dim, Q, T) ->
    #{<<"resourceId">> => Id, <<"dimension">> => Dim, <<"quantity">> => Q,
      <<"effectiveStartTime">> => list_to_binary(calendar:system_time_to_rfc3339(
                                                   T, [{offset, "Z"}])),
      <<"planId">> => <<"payg">>}.

%%% ================================================================== faults

fault_status(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{}),
    Tok = token(Emu),
    U = sub_url(Emu, Id, ""),
    ok = azmp_emulator:inject(Emu, get_subscription,
                              [{status, 503}, {status, 429}, {status, 429, 7}, {status, 500}]),
    {503, H1, #{<<"error">> := _}} = req(get, U, auth(Tok), <<>>),
    ?assertNot(lists:keymember("retry-after", 1, H1)),
    {429, H2, _} = req(get, U, auth(Tok), <<>>),
    ?assertNot(lists:keymember("retry-after", 1, H2)),
    {429, H3, _} = req(get, U, auth(Tok), <<>>),
    ?assertEqual({"retry-after", "7"}, lists:keyfind("retry-after", 1, H3)),
    {500, _, _} = req(get, U, auth(Tok), <<>>),
    {200, _, _} = req(get, U, auth(Tok), <<>>),
    ok = azmp_emulator:inject(Emu, token, [{status, 503}]),
    {503, _, _} = req(post, url(Emu, "/tenant-1/oauth2/token"), [], v1_form()),
    {200, _, _} = req(post, url(Emu, "/tenant-1/oauth2/token"), [], v1_form()).

fault_transport(Emu) ->
    Port = port_of(azmp_emulator:http_url(Emu)),
    Path = "/common/discovery/v2.0/keys",
    ok = azmp_emulator:inject(Emu, jwks, [reset]),
    ?assertEqual({error, econnreset}, raw_get(Port, Path)),
    ok = azmp_emulator:inject(Emu, jwks, [{stall, 1500}]),
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
    ok = gen_tcp:send(S, ["GET ", Path, " HTTP/1.1\r\nHost: x\r\n\r\n"]),
    ?assertEqual({error, timeout}, gen_tcp:recv(S, 0, 1000)),
    ?assertEqual({error, closed}, gen_tcp:recv(S, 0, 2000)),
    gen_tcp:close(S),
    ok = azmp_emulator:inject(Emu, jwks, [truncated]),
    {truncated, Len, Got} = raw_get(Port, Path),
    ?assert(Got < Len andalso Got > 0),
    ok = azmp_emulator:inject(Emu, jwks, [malformed]),
    {200, Body} = raw_get(Port, Path),
    ?assertMatch({error, _}, azmp_emulator_json:decode(Body)),
    ok = azmp_emulator:inject(Emu, jwks, [{delay, 300}]),
    T0 = erlang:monotonic_time(millisecond),
    {200, Keys} = raw_get(Port, Path),
    ?assert(erlang:monotonic_time(millisecond) - T0 >= 300),
    ?assertMatch({ok, #{<<"keys">> := [_]}}, azmp_emulator_json:decode(Keys)),
    %% the same over TLS: reset and truncated are transport errors for httpc
    ok = azmp_emulator:inject(Emu, jwks, [reset, truncated]),
    Https = binary_to_list(azmp_emulator:jwks_url(Emu)),
    ?assertMatch({error, _}, httpc:request(get, {Https, []}, [{ssl, ssl_opts(Emu)}], [])),
    ?assertMatch({error, _}, httpc:request(get, {Https, []}, [{ssl, ssl_opts(Emu)}], [])),
    ?assertMatch({ok, {{_, 200, _}, _, _}},
                 httpc:request(get, {Https, []}, [{ssl, ssl_opts(Emu)}], [])).

fault_no_side_effect(Emu) ->
    Tok = token(Emu),
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{}),
    U = sub_url(Emu, Id, "/activate"),
    ok = azmp_emulator:inject(Emu, activate, [{status, 500}, malformed]),
    {500, _, _} = req(post, U, auth(Tok), <<>>),
    {200, _, _} = req(post, U, auth(Tok), <<>>),
    {ok, #{status := <<"PendingFulfillmentStart">>, activations := 0}} =
        azmp_emulator:subscription(Emu, Id),
    ok = azmp_emulator:inject(Emu, activate, [truncated]),
    {error, _} = httpc:request(post, {binary_to_list(U), auth(Tok), "application/json", ""},
                               [{timeout, 5000}], []),
    {ok, #{status := <<"PendingFulfillmentStart">>, activations := 0}} =
        azmp_emulator:subscription(Emu, Id),
    %% a metering event that was truncated was not accepted
    {200, _, _} = req(post, U, auth(Tok), <<>>),
    Ev = json(event(Id, <<"sessions">>, 1, erlang:system_time(second))),
    EvUrl = url(Emu, "/api/usageEvent" ?V),
    ok = azmp_emulator:inject(Emu, usage_event, [truncated, reset]),
    {error, _} = httpc:request(post, {binary_to_list(EvUrl), auth(Tok), "application/json", Ev},
                               [{timeout, 5000}], []),
    {error, _} = httpc:request(post, {binary_to_list(EvUrl), auth(Tok), "application/json", Ev},
                               [{timeout, 5000}], []),
    {200, _, #{<<"status">> := <<"Accepted">>}} = req(post, EvUrl, auth(Tok), Ev),
    %% a faulted token request issues no usable token
    ok = azmp_emulator:inject(Emu, token, [truncated]),
    Port = port_of(azmp_emulator:http_url(Emu)),
    {truncated, _, _} = raw_post(Port, "/tenant-1/oauth2/v2.0/token", v2_form()).

fault_any_order(Emu) ->
    Port = port_of(azmp_emulator:http_url(Emu)),
    ok = azmp_emulator:inject(Emu, any, [{status, 502}, {status, 504}]),
    ok = azmp_emulator:inject(Emu, jwks, [{status, 500}]),
    {500, _} = raw_get(Port, "/common/discovery/v2.0/keys"),
    {502, _} = raw_get(Port, "/common/discovery/v2.0/keys"),
    {504, _} = raw_get(Port, "/tenant-1/v2.0/.well-known/openid-configuration"),
    {200, _} = raw_get(Port, "/common/discovery/v2.0/keys"),
    ?assertError({badarg, nonsense}, azmp_emulator:inject(Emu, nonsense, [reset])),
    Boom = list_to_atom("boom"),
    ?assertError({bad_fault, boom}, azmp_emulator:inject(Emu, jwks, [Boom])).

%%% ============================================================ stats, misc

stats(Emu) ->
    ok = azmp_emulator:reset_stats(Emu),
    #{token_requests := 0, requests := [], by_op := ByOp0} = azmp_emulator:stats(Emu),
    ?assertEqual(#{}, ByOp0),
    Tok = token(Emu),
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{}),
    {200, _, _} = req(get, sub_url(Emu, Id, ""),
                      [{"x-ms-requestid", "req-1"}, {"x-ms-correlationid", "corr-1"} | auth(Tok)],
                      <<>>),
    {404, _, _} = req(get, sub_url(Emu, uuid(), ""), auth(Tok), <<>>),
    #{token_requests := 1, requests := [R1, R2, R3], by_op := ByOp} = azmp_emulator:stats(Emu),
    ?assertMatch(#{op := token, method := <<"POST">>, status := 200}, R1),
    ?assertMatch(#{op := get_subscription, method := <<"GET">>, status := 200,
                   request_id := <<"req-1">>, correlation_id := <<"corr-1">>}, R2),
    ?assertMatch(#{op := get_subscription, status := 404, request_id := undefined,
                   correlation_id := undefined}, R3),
    ?assertEqual(<<"/api/saas/subscriptions/", Id/binary>>, maps:get(path, R2)),
    ?assertEqual(#{token => 1, get_subscription => 2}, ByOp),
    ok = azmp_emulator:reset_stats(Emu),
    #{requests := []} = azmp_emulator:stats(Emu).

sign_jwt(Emu) ->
    Claims = #{<<"aud">> => <<"my-app">>, <<"tid">> => <<"tenant-1">>, <<"azp">> => ?APP,
               <<"exp">> => erlang:system_time(second) + 600},
    Jwt = azmp_emulator:sign_jwt(Emu, Claims),
    {200, _, Jwks} = req(get, azmp_emulator:jwks_url(Emu), [], <<>>, ssl_opts(Emu)),
    ?assertEqual({ok, Claims}, verify_with_jwks(Jwks, Jwt)),
    [H, P, _] = binary:split(Jwt, <<".">>, [global]),
    Bad = <<H/binary, ".", P/binary, ".", (azmp_emulator_jwt:b64url(<<"nope">>))/binary>>,
    ?assertEqual({error, bad_signature}, verify_with_jwks(Jwks, Bad)),
    ?assertMatch(<<"https://127.0.0.1:", _/binary>>, azmp_emulator:jwks_url(Emu)).

control_api(Emu) ->
    {200, _, #{<<"id">> := Id, <<"token">> := MT}} =
        req(post, url(Emu, "/_emulator/subscriptions"), [],
            <<"{\"planId\":\"payg-premium\",\"quantity\":2}">>),
    {ok, #{plan_id := <<"payg-premium">>, quantity := 2, token := MT}} =
        azmp_emulator:subscription(Emu, Id),
    {200, _, #{<<"status">> := <<"PendingFulfillmentStart">>}} =
        req(get, url(Emu, "/_emulator/subscriptions/" ++ binary_to_list(Id)), [], <<>>),
    {200, _, _} = req(post, url(Emu, "/_emulator/faults"), [],
                      <<"{\"op\":\"get_subscription\",\"faults\":[{\"status\":429,"
                        "\"retryAfter\":3},\"reset\"]}">>),
    Tok = token(Emu),
    {429, H, _} = req(get, sub_url(Emu, Id, ""), auth(Tok), <<>>),
    ?assertEqual({"retry-after", "3"}, lists:keyfind("retry-after", 1, H)),
    ?assertMatch({error, _}, httpc:request(get, {binary_to_list(sub_url(Emu, Id, "")), auth(Tok)},
                                           [], [])),
    {200, _, #{<<"token_requests">> := _, <<"requests">> := [_ | _]}} =
        req(get, url(Emu, "/_emulator/stats"), [], <<>>),
    {400, _, _} = req(post, url(Emu, "/_emulator/faults"), [],
                      <<"{\"op\":\"nonsense\",\"faults\":[]}">>),
    {404, _, _} = req(get, url(Emu, "/_emulator/nothing"), [], <<>>).

wire(Emu) ->
    Port = port_of(azmp_emulator:http_url(Emu)),
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
    Get = <<"GET /common/discovery/v2.0/keys HTTP/1.1\r\nHost: localhost\r\n\r\n">>,
    %% two pipelined requests on one keep-alive connection, then a third
    ok = gen_tcp:send(S, [Get, Get]),
    {ok, Rest1} = read_response(S, <<>>),
    {ok, <<>>} = read_response(S, Rest1),
    ok = gen_tcp:send(S, Get),
    {ok, <<>>} = read_response(S, <<>>),
    %% Expect: 100-continue: the body is sent after the interim response
    Form = v2_form(),
    ok = gen_tcp:send(S, ["POST /tenant-1/oauth2/v2.0/token HTTP/1.1\r\nHost: x\r\n"
                          "Content-Type: application/x-www-form-urlencoded\r\n"
                          "Expect: 100-continue\r\nContent-Length: ",
                          integer_to_list(byte_size(Form)), "\r\n\r\n"]),
    {ok, <<"HTTP/1.1 100 Continue\r\n\r\n">>} = gen_tcp:recv(S, 0, 2000),
    ok = gen_tcp:send(S, Form),
    {ok, <<>>} = read_response(S, <<>>),
    %% chunked request body
    {A, B} = split_binary(Form, 10),
    Chunk = fun(X) -> [integer_to_list(byte_size(X), 16), "\r\n", X, "\r\n"] end,
    ok = gen_tcp:send(S, ["POST /tenant-1/oauth2/v2.0/token HTTP/1.1\r\nHost: x\r\n"
                          "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                          Chunk(A), Chunk(B), "0\r\n\r\n"]),
    {ok, All} = recv_all(S, <<>>),
    ?assertMatch(<<"HTTP/1.1 200 OK\r\n", _/binary>>, All),
    ?assertNotEqual(nomatch, binary:match(All, <<"access_token">>)),
    gen_tcp:close(S).

routing(Emu) ->
    Tok = token(Emu),
    {404, _, _} = req(get, url(Emu, "/api/nothing" ?V), auth(Tok), <<>>),
    {405, _, _} = req(get, url(Emu, "/api/usageEvent" ?V), auth(Tok), <<>>),
    {405, _, _} = req(put, url(Emu, "/api/saas/subscriptions/x" ?V), auth(Tok), <<"{}">>),
    {404, _, _} = req(get, url(Emu, "/"), [], <<>>).

%%% ================================================================ webhooks

-define(HOOK_KEYS, [<<"action">>, <<"activityId">>, <<"id">>, <<"offerId">>,
                    <<"operationRequestSource">>, <<"planId">>, <<"publisherId">>,
                    <<"purchaseToken">>, <<"quantity">>, <<"status">>, <<"subscription">>,
                    <<"subscriptionId">>, <<"timeStamp">>]).

webhook_test_() ->
    {setup,
     fun() ->
             {ok, _} = application:ensure_all_started(inets),
             {ok, Emu} = azmp_emulator:start(#{https_port => none}),
             {Emu, receiver_start(Emu)}
     end,
     fun({Emu, Rcv}) -> receiver_stop(Rcv), ok = azmp_emulator:stop(Emu) end,
     fun(Ctx) ->
             [{timeout, 60, {Name, fun() -> F(Ctx) end}}
              || {Name, F} <- [{"webhook: every action, body and state", fun wh_actions/1},
                               {"webhook: v1 and v2 tokens", fun wh_versions/1},
                               {"webhook: answer passed back as it is", fun wh_answer/1},
                               {"webhook: handler calls back (GET + PATCH)", fun wh_callback/1},
                               {"webhook: redeliver and operation_id", fun wh_redeliver/1},
                               {"webhook: errors", fun wh_errors/1},
                               {"webhook: every forgery, no state change", fun wh_forged/1},
                               {"webhook: control API", fun wh_control/1}]]
     end}.

wh_actions({Emu, Rcv}) ->
    Cases = [{'ChangePlan', #{}, #{plan_id => <<"payg-premium">>}},
             {<<"ChangeQuantity">>, #{quantity => 3}, #{quantity => 5}},
             {'Renew', #{}, #{}},
             {'Suspend', #{}, #{}},
             {<<"Unsubscribe">>, #{}, #{}},
             {'Reinstate', #{status => <<"Suspended">>}, #{}}],
    Tok = token(Emu),
    lists:foreach(
      fun({Action0, SubOpts, Opts}) ->
              Action = to_bin(Action0),
              {ok, #{id := Id}} = azmp_emulator:add_subscription(
                                    Emu, maps:merge(#{status => <<"Subscribed">>}, SubOpts)),
              {ok, Before} = azmp_emulator:subscription(Emu, Id),
              T0 = erlang:system_time(second),
              ?assertEqual({ok, 200, <<"{\"ok\":true}">>},
                           azmp_emulator:send_webhook(Emu, hook_url(Rcv, "/azure/webhook"),
                                                      Action0, Id, Opts)),
              {Req, Problems} = received(),
              ?assertEqual([], Problems),
              #{method := <<"POST">>, path := <<"/azure/webhook">>, body := Raw} = Req,
              ?assertEqual(<<"application/json">>, hdr(<<"content-type">>, Req)),
              {ok, Body} = azmp_emulator_json:decode(Raw),
              ?assertEqual(?HOOK_KEYS, lists:sort(maps:keys(Body))),
              #{<<"id">> := OpId, <<"activityId">> := ActId, <<"subscription">> := Sub,
                <<"timeStamp">> := Ts} = Body,
              ?assertMatch(#{<<"action">> := Action, <<"subscriptionId">> := Id,
                             <<"publisherId">> := <<"emqx-technologies">>,
                             <<"offerId">> := <<"emqx-cloud-payg">>,
                             <<"operationRequestSource">> := <<"Azure">>,
                             <<"purchaseToken">> := null}, Body),
              ?assertMatch(#{<<"id">> := Id, <<"saasSubscriptionStatus">> := _,
                             <<"beneficiary">> := #{}, <<"purchaser">> := #{},
                             <<"term">> := #{}, <<"planId">> := _}, Sub),
              ?assertEqual(36, byte_size(OpId)),
              ?assertEqual(36, byte_size(ActId)),
              {ok, TsS} = azmp_emulator_util:parse_time(Ts),
              ?assert(abs(TsS - T0) =< 2),
              %% the operation as Get Operation tells it
              {200, _, Op} = req(get, sub_url(Emu, Id, "/operations/" ++ to_list(OpId)),
                                 auth(Tok), <<>>),
              ?assertEqual(maps:with([<<"id">>, <<"action">>, <<"status">>, <<"planId">>,
                                      <<"subscriptionId">>], Body),
                           maps:with([<<"id">>, <<"action">>, <<"status">>, <<"planId">>,
                                      <<"subscriptionId">>], Op)),
              {ok, After} = azmp_emulator:subscription(Emu, Id),
              ?assertEqual(length(maps:get(operations, Before)) + 1,
                           length(maps:get(operations, After))),
              case Action of
                  <<"ChangePlan">> ->
                      ?assertMatch(#{<<"status">> := <<"InProgress">>,
                                     <<"planId">> := <<"payg-premium">>}, Body),
                      %% the subscription still has the old plan until accepted
                      ?assertEqual(<<"payg">>, maps:get(<<"planId">>, Sub)),
                      ?assertMatch(#{plan_id := <<"payg">>}, After),
                      {200, _, _} = req(patch, sub_url(Emu, Id, "/operations/" ++ to_list(OpId)),
                                        auth(Tok), <<"{\"status\":\"Success\"}">>),
                      ?assertMatch({ok, #{plan_id := <<"payg-premium">>}},
                                   azmp_emulator:subscription(Emu, Id));
                  <<"ChangeQuantity">> ->
                      ?assertMatch(#{<<"status">> := <<"InProgress">>, <<"quantity">> := 5},
                                   Body),
                      ?assertEqual(3, maps:get(<<"quantity">>, Sub)),
                      {200, _, _} = req(patch, sub_url(Emu, Id, "/operations/" ++ to_list(OpId)),
                                        auth(Tok), <<"{\"status\":\"Failure\"}">>),
                      ?assertMatch({ok, #{quantity := 3}}, azmp_emulator:subscription(Emu, Id));
                  _ ->
                      ?assertMatch(#{<<"status">> := <<"Succeeded">>}, Body),
                      Expected = #{<<"Renew">> => <<"Subscribed">>,
                                   <<"Suspend">> => <<"Suspended">>,
                                   <<"Unsubscribe">> => <<"Unsubscribed">>,
                                   <<"Reinstate">> => <<"Subscribed">>},
                      ?assertEqual(maps:get(Action, Expected), maps:get(status, After)),
                      ?assertEqual(maps:get(Action, Expected),
                                   maps:get(<<"saasSubscriptionStatus">>, Sub))
              end,
              %% the JWT: RS256 with the published key, claims as Entra issues them
              #{header := H, claims := C} = jwt_parts(Req),
              ?assertMatch(#{<<"alg">> := <<"RS256">>, <<"typ">> := <<"JWT">>}, H),
              ?assertEqual(azmp_emulator:signing_kid(Emu), maps:get(<<"kid">>, H)),
              ?assertMatch(#{<<"aud">> := <<"client-1">>, <<"tid">> := <<"tenant-1">>,
                             <<"azp">> := ?APP, <<"ver">> := <<"2.0">>,
                             <<"iss">> := <<"https://login.microsoftonline.com/tenant-1/v2.0">>},
                           C),
              #{<<"iat">> := Iat, <<"nbf">> := Nbf, <<"exp">> := Exp, <<"oid">> := Oid,
                <<"sub">> := Oid} = C,
              ?assert(abs(Iat - T0) =< 2),
              ?assertEqual(Iat, Nbf),
              ?assertEqual(Iat + 3600, Exp),
              ?assertEqual(false, maps:is_key(<<"appid">>, C)),
              %% the log
              #{operation_id := OpId, action := Action, forge := none, payload := Raw,
                result := {ok, 200, _}} = lists:last(azmp_emulator:webhooks(Emu))
      end, Cases).

wh_versions({Emu, Rcv}) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    {ok, 200, _} = azmp_emulator:send_webhook(Emu, hook_url(Rcv, "/azure/webhook"), 'Renew',
                                              Id, #{token_version => v1}),
    {Req1, []} = received(),
    #{claims := C1} = jwt_parts(Req1),
    ?assertMatch(#{<<"iss">> := <<"https://sts.windows.net/tenant-1/">>, <<"appid">> := ?APP,
                   <<"ver">> := <<"1.0">>, <<"aud">> := <<"client-1">>,
                   <<"tid">> := <<"tenant-1">>}, C1),
    ?assertEqual(false, maps:is_key(<<"azp">>, C1)),
    {ok, 200, _} = azmp_emulator:send_webhook(Emu, hook_url(Rcv, "/azure/webhook"), 'Renew',
                                              Id, #{token_version => v2}),
    {Req2, []} = received(),
    #{claims := C2} = jwt_parts(Req2),
    ?assertMatch(#{<<"azp">> := ?APP, <<"ver">> := <<"2.0">>}, C2),
    ?assertEqual({error, {bad_token_version, v3}},
                 azmp_emulator:send_webhook(Emu, hook_url(Rcv, "/azure/webhook"), 'Renew',
                                            Id, #{token_version => v3})).

%% Whatever the endpoint answers comes back as it is.
wh_answer({Emu, Rcv}) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    ?assertEqual({ok, 503, <<"{\"echo\":503}">>},
                 azmp_emulator:send_webhook(Emu, hook_url(Rcv, "/status/503"), 'Renew', Id, #{})),
    {_, _} = received(),
    ?assertEqual({ok, 202, <<"{\"echo\":202}">>},
                 azmp_emulator:send_webhook(Emu, hook_url(Rcv, "/status/202"), 'Renew', Id, #{})),
    {_, _} = received(),
    #{requests := Rs} = azmp_emulator:stats(Emu),
    ?assertMatch(#{method := <<"POST">>, status := 202, action := <<"Renew">>},
                 lists:last([R || R = #{op := webhook} <- Rs])).

%% A handler that does what the plugin does while the webhook is in flight:
%% token, Get Operation, PATCH Success. The emulator must not be blocked.
wh_callback({Emu, Rcv}) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    {ok, 200, <<"{\"patched\":\"Success\"}">>} =
        azmp_emulator:send_webhook(Emu, hook_url(Rcv, "/plugin"), 'ChangePlan', Id,
                                   #{plan_id => <<"payg-premium">>}),
    {_, []} = received(),
    {ok, #{plan_id := <<"payg-premium">>, operations := [#{<<"status">> := <<"Succeeded">>}]}} =
        azmp_emulator:subscription(Emu, Id).

wh_redeliver({Emu, Rcv}) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>,
                                                             quantity => 1}),
    Given = azmp_emulator_util:uuid(),
    Url = hook_url(Rcv, "/azure/webhook"),
    {ok, 200, _} = azmp_emulator:send_webhook(Emu, Url, 'ChangeQuantity', Id,
                                              #{operation_id => Given}),
    {#{body := Raw1} = R1, []} = received(),
    {ok, #{<<"id">> := Given, <<"quantity">> := 2}} = azmp_emulator_json:decode(Raw1),
    {ok, 200, _} = azmp_emulator:send_webhook(Emu, Url, <<"ChangeQuantity">>, Id,
                                              #{redeliver => Given}),
    {#{body := Raw2} = R2, []} = received(),
    ?assertEqual(Raw1, Raw2),
    %% a fresh token each time
    ?assertNotEqual(hdr(<<"authorization">>, R1), hdr(<<"authorization">>, R2)),
    {ok, #{operations := [#{<<"id">> := Given}], quantity := 1}} =
        azmp_emulator:subscription(Emu, Id),
    #{redelivery := true, operation_id := Given} = lists:last(azmp_emulator:webhooks(Emu)),
    %% an operation made by add_operation/3 can be delivered too
    {ok, OpId} = azmp_emulator:add_operation(Emu, Id, #{action => <<"Suspend">>}),
    {ok, 200, _} = azmp_emulator:send_webhook(Emu, Url, 'Suspend', Id, #{redeliver => OpId}),
    {#{body := Raw3}, []} = received(),
    {ok, #{<<"id">> := OpId, <<"status">> := <<"Succeeded">>, <<"action">> := <<"Suspend">>,
           <<"subscription">> := #{<<"saasSubscriptionStatus">> := <<"Suspended">>}}} =
        azmp_emulator_json:decode(Raw3),
    {ok, #{operations := [_, _]}} = azmp_emulator:subscription(Emu, Id),
    %% wrong uses
    ?assertEqual({error, {operation_exists, Given}},
                 azmp_emulator:send_webhook(Emu, Url, 'Renew', Id, #{operation_id => Given})),
    ?assertMatch({error, {redeliver_mismatch, _}},
                 azmp_emulator:send_webhook(Emu, Url, 'Renew', Id, #{redeliver => Given})),
    ?assertEqual({error, not_found},
                 azmp_emulator:send_webhook(Emu, Url, 'Renew', Id,
                                            #{redeliver => azmp_emulator_util:uuid()})),
    nothing_received().

wh_errors({Emu, Rcv}) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    Url = hook_url(Rcv, "/azure/webhook"),
    ?assertEqual({error, {bad_action, <<"Explode">>}},
                 azmp_emulator:send_webhook(Emu, Url, 'Explode', Id, #{})),
    ?assertEqual({error, {bad_forge, sneaky}},
                 azmp_emulator:send_webhook(Emu, Url, 'Renew', Id, #{forge => sneaky})),
    ?assertEqual({error, not_found},
                 azmp_emulator:send_webhook(Emu, Url, 'Renew', azmp_emulator_util:uuid(), #{})),
    nothing_received(),
    %% nobody listening: an error, but the operation exists (Azure made it)
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    Dead = <<"http://127.0.0.1:", (integer_to_binary(Port))/binary, "/azure/webhook">>,
    ?assertMatch({error, _}, azmp_emulator:send_webhook(Emu, Dead, 'Suspend', Id, #{})),
    {ok, #{status := <<"Suspended">>, operations := [_]}} = azmp_emulator:subscription(Emu, Id),
    #{result := {error, _}} = lists:last(azmp_emulator:webhooks(Emu)).

%% Each forgery: refused by a correct verifier for exactly its own reason,
%% and nothing changed in the emulator (no operation, no status change).
wh_forged({Emu, Rcv}) ->
    Url = hook_url(Rcv, "/azure/webhook"),
    Tok = token(Emu),
    Kid = azmp_emulator:signing_kid(Emu),
    Cases = [{no_token, v2, [no_token]},
             {bad_signature, v2, [bad_signature]},
             {other_key, v2, [bad_signature]},
             {alg_none, v2, [{alg, <<"none">>}]},
             {hs256_public_key, v2, [{alg, <<"HS256">>}]},
             {wrong_aud, v2, [bad_aud]},
             {wrong_tid, v2, [bad_tid]},
             {wrong_azp, v2, [bad_azp]},
             {wrong_azp, v1, [bad_azp]},
             {expired, v2, [expired]},
             {not_yet_valid, v1, [not_yet_valid]},
             {unknown_kid, v2, [unknown_kid]}],
    lists:foreach(
      fun({Forge, Version, Expected}) ->
              Action = case Forge of
                           wrong_tid -> 'ChangePlan';
                           _ -> 'Suspend'
                       end,
              {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
              {ok, Before} = azmp_emulator:subscription(Emu, Id),
              Now = erlang:system_time(second),
              {ok, 401, _} = azmp_emulator:send_webhook(Emu, Url, Action, Id,
                                                        #{forge => Forge,
                                                          token_version => Version}),
              {Req, Problems} = received(),
              ?assertEqual({Forge, Expected}, {Forge, Problems}),
              %% a well-formed webhook body all the same
              {ok, Body} = azmp_emulator_json:decode(maps:get(body, Req)),
              ?assertEqual(?HOOK_KEYS, lists:sort(maps:keys(Body))),
              #{<<"id">> := OpId, <<"subscriptionId">> := Id} = Body,
              %% nothing changed
              ?assertEqual({ok, Before}, azmp_emulator:subscription(Emu, Id)),
              {404, _, _} = req(get, sub_url(Emu, Id, "/operations/" ++ to_list(OpId)),
                                auth(Tok), <<>>),
              #{forge := Forge, token_version := Version, operation_id := OpId} =
                  lists:last(azmp_emulator:webhooks(Emu)),
              forge_property(Forge, Version, Req, Kid, Now, Emu)
      end, Cases).

forge_property(no_token, _, Req, _Kid, _Now, _Emu) ->
    ?assertEqual(undefined, hdr(<<"authorization">>, Req));
forge_property(Forge, _, Req, Kid, _Now, _Emu)
  when Forge =:= bad_signature; Forge =:= other_key ->
    #{header := H, sig := Sig} = jwt_parts(Req),
    ?assertMatch(#{<<"alg">> := <<"RS256">>, <<"kid">> := Kid}, H),
    ?assertEqual(256, byte_size(Sig));
forge_property(alg_none, _, Req, Kid, _Now, _Emu) ->
    #{header := H, sig := Sig} = jwt_parts(Req),
    ?assertMatch(#{<<"alg">> := <<"none">>, <<"kid">> := Kid}, H),
    ?assertEqual(<<>>, Sig);
forge_property(hs256_public_key, _, Req, Kid, _Now, Emu) ->
    #{header := H, input := Input, sig := Sig} = jwt_parts(Req),
    ?assertMatch(#{<<"alg">> := <<"HS256">>, <<"kid">> := Kid}, H),
    %% the HMAC secret is the published public key as PEM
    #{<<"keys">> := [#{<<"n">> := N, <<"e">> := E}]} = fetch_jwks(Emu),
    Pub = #'RSAPublicKey'{modulus = binary:decode_unsigned(b64(N)),
                          publicExponent = binary:decode_unsigned(b64(E))},
    Pem = public_key:pem_encode([public_key:pem_entry_encode('SubjectPublicKeyInfo', Pub)]),
    ?assertEqual(crypto:mac(hmac, sha256, Pem, Input), Sig);
forge_property(wrong_aud, _, Req, _Kid, _Now, _Emu) ->
    #{claims := C} = jwt_parts(Req),
    ?assertNotEqual(<<"client-1">>, maps:get(<<"aud">>, C));
forge_property(wrong_tid, _, Req, _Kid, _Now, _Emu) ->
    #{claims := C} = jwt_parts(Req),
    ?assertNotEqual(<<"tenant-1">>, maps:get(<<"tid">>, C));
forge_property(wrong_azp, v1, Req, _Kid, _Now, _Emu) ->
    #{claims := C} = jwt_parts(Req),
    ?assertNotEqual(?APP, maps:get(<<"appid">>, C)),
    ?assertEqual(false, maps:is_key(<<"azp">>, C));
forge_property(wrong_azp, v2, Req, _Kid, _Now, _Emu) ->
    #{claims := C} = jwt_parts(Req),
    ?assertNotEqual(?APP, maps:get(<<"azp">>, C)),
    ?assertEqual(false, maps:is_key(<<"appid">>, C));
forge_property(expired, _, Req, _Kid, Now, _Emu) ->
    #{claims := #{<<"exp">> := Exp, <<"nbf">> := Nbf, <<"iat">> := Iat}} = jwt_parts(Req),
    ?assert(abs(Exp - (Now - 3600)) =< 2),
    ?assert(abs(Nbf - (Now - 7200)) =< 2),
    ?assertEqual(Nbf, Iat);
forge_property(not_yet_valid, _, Req, _Kid, Now, _Emu) ->
    #{claims := #{<<"nbf">> := Nbf, <<"exp">> := Exp}} = jwt_parts(Req),
    ?assert(abs(Nbf - (Now + 3600)) =< 2),
    ?assert(Exp > Nbf);
forge_property(unknown_kid, _, Req, _Kid, _Now, Emu) ->
    #{header := #{<<"kid">> := K, <<"alg">> := <<"RS256">>}, sig := Sig} = jwt_parts(Req),
    Kids = [maps:get(<<"kid">>, J) || J <- maps:get(<<"keys">>, fetch_jwks(Emu))],
    ?assertNot(lists:member(K, Kids)),
    ?assertEqual(256, byte_size(Sig)).

wh_control({Emu, Rcv}) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    Target = hook_url(Rcv, "/azure/webhook"),
    Post = fun(M) -> req(post, url(Emu, "/_emulator/webhooks"), [], json(M)) end,
    {200, _, #{<<"status">> := 200, <<"operationId">> := OpId, <<"body">> := #{<<"ok">> := true}}} =
        Post(#{target => Target, action => <<"ChangePlan">>, subscriptionId => Id,
               planId => <<"payg-premium">>, tokenVersion => <<"v1">>}),
    {Req, []} = received(),
    {ok, #{<<"id">> := OpId, <<"planId">> := <<"payg-premium">>}} =
        azmp_emulator_json:decode(maps:get(body, Req)),
    #{claims := #{<<"ver">> := <<"1.0">>}} = jwt_parts(Req),
    {200, _, #{<<"status">> := 200, <<"operationId">> := OpId}} =
        Post(#{target => Target, action => <<"ChangePlan">>, subscriptionId => Id,
               redeliver => OpId}),
    {_, []} = received(),
    {200, _, #{<<"status">> := 401}} =
        Post(#{target => Target, action => <<"Unsubscribe">>, subscriptionId => Id,
               forge => <<"hs256_public_key">>}),
    {_, [{alg, <<"HS256">>}]} = received(),
    {ok, #{status := <<"Subscribed">>, operations := [_]}} = azmp_emulator:subscription(Emu, Id),
    {400, _, _} = Post(#{target => Target, action => <<"Explode">>, subscriptionId => Id}),
    {400, _, _} = Post(#{target => Target, action => <<"Renew">>, subscriptionId => Id,
                         forge => <<"sneaky">>}),
    {400, _, _} = Post(#{action => <<"Renew">>, subscriptionId => Id}),
    {404, _, _} = Post(#{target => Target, action => <<"Renew">>,
                         subscriptionId => azmp_emulator_util:uuid()}),
    {200, _, Log} = req(get, url(Emu, "/_emulator/webhooks"), [], <<>>),
    ?assertMatch([#{<<"operation_id">> := OpId, <<"status">> := 200} | _],
                 [W || W = #{<<"subscription_id">> := S} <- Log, S =:= Id]),
    nothing_received().

%% Key rotation: the JWKS gains the new key and keeps the old one; webhooks,
%% access tokens and sign_jwt/2 use the new key; JWKS fetches are counted.
webhook_rotation_test_() ->
    {timeout, 60,
     fun() ->
             {ok, _} = application:ensure_all_started(inets),
             {ok, Emu} = azmp_emulator:start(#{https_port => none}),
             Rcv = receiver_start(Emu),
             try
                 {ok, #{id := Id}} = azmp_emulator:add_subscription(
                                       Emu, #{status => <<"Subscribed">>}),
                 Url = hook_url(Rcv, "/azure/webhook"),
                 Old = azmp_emulator:signing_kid(Emu),
                 {ok, 200, _} = azmp_emulator:send_webhook(Emu, Url, 'Renew', Id, #{}),
                 {ReqOld, []} = received(),
                 ok = azmp_emulator:reset_stats(Emu),
                 New = azmp_emulator:rotate_signing_key(Emu),
                 ?assertNotEqual(Old, New),
                 ?assertEqual(New, azmp_emulator:signing_kid(Emu)),
                 ?assertEqual([Old, New], [maps:get(<<"kid">>, K)
                                           || K <- maps:get(<<"keys">>, fetch_jwks(Emu))]),
                 {ok, 200, _} = azmp_emulator:send_webhook(Emu, Url, 'Renew', Id, #{}),
                 {ReqNew, []} = received(),
                 #{header := #{<<"kid">> := New}} = jwt_parts(ReqNew),
                 %% the token signed before the rotation still verifies
                 ?assertEqual([], problems(Emu, ReqOld, erlang:system_time(second))),
                 %% access tokens and sign_jwt/2 follow the new key
                 #{header := #{<<"kid">> := New}} =
                     jwt_parts(#{headers => [{<<"authorization">>,
                                              <<"Bearer ", (token(Emu))/binary>>}]}),
                 Jwt = azmp_emulator:sign_jwt(Emu, #{<<"x">> => 1}),
                 ?assertMatch([_, _, _], binary:split(Jwt, <<".">>, [global])),
                 {ok, #{<<"kid">> := New}} =
                     azmp_emulator_json:decode(b64(hd(binary:split(Jwt, <<".">>)))),
                 %% a second rotation over the control API
                 {200, _, #{<<"kid">> := Third}} =
                     req(post, url(Emu, "/_emulator/rotate_signing_key"), [], <<>>),
                 ?assertEqual([Old, New, Third], [maps:get(<<"kid">>, K)
                                                  || K <- maps:get(<<"keys">>, fetch_jwks(Emu))]),
                 %% 1 (test) + 1 (verifier, new webhook) + 1 (verifier, old token) + 1 (test)
                 #{by_op := ByOp} = azmp_emulator:stats(Emu),
                 ?assertEqual(4, maps:get(jwks, ByOp)),
                 ?assertEqual(1, maps:get(webhook, ByOp))
             after
                 receiver_stop(Rcv),
                 azmp_emulator:stop(Emu)
             end
     end}.

%%% ------------------------------------------------- the receiving endpoint

%% A tiny HTTP endpoint on 127.0.0.1 over gen_tcp, standing in for the
%% plugin's listener. Each request is verified (problems/3: an independent
%% JWT check against the JWKS fetched over HTTP), reported to the current
%% owner (the process that last called received/0 or hook_url/2) as
%% {webhook, Req, Problems}, and answered by path:
%%   /azure/webhook  200 {"ok":true} when there is no problem, else 401
%%   /status/NNN     NNN {"echo":NNN}
%%   /plugin         verify, then token + Get Operation + PATCH Success, 200
receiver_start(Emu) ->
    Tab = ets:new(wh_receiver, [public, set]),
    ets:insert(Tab, {owner, self()}),
    {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {ip, {127, 0, 0, 1}},
                                 {reuseaddr, true}, {packet, raw}]),
    {ok, Port} = inet:port(L),
    Acceptor = spawn(fun() -> accept(L, Emu, Tab) end),
    ok = gen_tcp:controlling_process(L, Acceptor),
    #{port => Port, tab => Tab, acceptor => Acceptor, listen => L}.

receiver_stop(#{acceptor := A, listen := L}) ->
    exit(A, kill),
    catch gen_tcp:close(L),
    ok.

hook_url(#{port := Port, tab := Tab}, Path) ->
    ets:insert(Tab, {owner, self()}),
    <<"http://127.0.0.1:", (integer_to_binary(Port))/binary, (list_to_binary(Path))/binary>>.

accept(L, Emu, Tab) ->
    case gen_tcp:accept(L) of
        {ok, S} ->
            Pid = spawn(fun() -> receive go -> serve_hook(S, Emu, Tab) end end),
            ok = gen_tcp:controlling_process(S, Pid),
            Pid ! go,
            accept(L, Emu, Tab);
        {error, _} -> ok
    end.

serve_hook(S, Emu, Tab) ->
    case read_request(S, <<>>) of
        {ok, Req = #{path := Path}} ->
            Problems = problems(Emu, Req, erlang:system_time(second)),
            [{owner, Owner}] = ets:lookup(Tab, owner),
            Owner ! {webhook, Req, Problems},
            {Status, Body} =
                case Path of
                    <<"/status/", N/binary>> ->
                        {binary_to_integer(N), <<"{\"echo\":", N/binary, "}">>};
                    _ when Problems =/= [] ->
                        {401, json(#{error => iolist_to_binary(io_lib:format("~p", [Problems]))})};
                    <<"/plugin">> ->
                        {200, plugin_like(Emu, Req)};
                    _ ->
                        {200, <<"{\"ok\":true}">>}
                end,
            gen_tcp:send(S, ["HTTP/1.1 ", integer_to_list(Status), " X\r\n"
                             "content-type: application/json\r\ncontent-length: ",
                             integer_to_list(byte_size(Body)), "\r\nconnection: close\r\n\r\n",
                             Body]);
        _ -> ok
    end,
    gen_tcp:close(S).

plugin_like(Emu, #{body := Raw}) ->
    {ok, #{<<"id">> := OpId, <<"subscriptionId">> := Id}} = azmp_emulator_json:decode(Raw),
    Tok = token(Emu),
    OpUrl = sub_url(Emu, Id, "/operations/" ++ to_list(OpId)),
    {200, _, #{<<"status">> := <<"InProgress">>}} = req(get, OpUrl, auth(Tok), <<>>),
    {200, _, _} = req(patch, OpUrl, auth(Tok), <<"{\"status\":\"Success\"}">>),
    <<"{\"patched\":\"Success\"}">>.

read_request(S, Buf) ->
    case binary:split(Buf, <<"\r\n\r\n">>) of
        [Head, Rest] ->
            [ReqLine | Lines] = binary:split(Head, <<"\r\n">>, [global]),
            [Method, Path, _] = binary:split(ReqLine, <<" ">>, [global]),
            Headers = [{string:lowercase(K), string:trim(V)}
                       || L <- Lines, [K, V] <- [binary:split(L, <<":">>)]],
            Len = case lists:keyfind(<<"content-length">>, 1, Headers) of
                      {_, N} -> binary_to_integer(N);
                      false -> 0
                  end,
            Body = read_body(S, Rest, Len),
            {ok, #{method => Method, path => Path, headers => Headers, body => Body}};
        _ ->
            case gen_tcp:recv(S, 0, 10000) of
                {ok, D} -> read_request(S, <<Buf/binary, D/binary>>);
                Err -> Err
            end
    end.

read_body(_S, Buf, Len) when byte_size(Buf) >= Len -> binary:part(Buf, 0, Len);
read_body(S, Buf, Len) ->
    {ok, D} = gen_tcp:recv(S, 0, 10000),
    read_body(S, <<Buf/binary, D/binary>>, Len).

received() ->
    receive {webhook, Req, Problems} -> {Req, Problems}
    after 10000 -> error(no_webhook_received)
    end.

nothing_received() ->
    receive {webhook, Req, _} -> error({unexpected_webhook, Req})
    after 100 -> ok
    end.

hdr(Name, #{headers := H}) ->
    case lists:keyfind(Name, 1, H) of
        {_, V} -> V;
        false -> undefined
    end.

%% Header, claims, signing input and signature bytes of the bearer token.
jwt_parts(Req) ->
    <<"Bearer ", Jwt/binary>> = hdr(<<"authorization">>, Req),
    [H, P, S] = binary:split(Jwt, <<".">>, [global]),
    {ok, Header} = azmp_emulator_json:decode(b64(H)),
    {ok, Claims} = azmp_emulator_json:decode(b64(P)),
    #{header => Header, claims => Claims, input => <<H/binary, ".", P/binary>>,
      sig => b64(S)}.

%% Over its own connection (raw gen_tcp), not httpc's default profile: the
%% verifier runs while a control request may hold httpc's session to the
%% emulator, and httpc would queue behind it.
fetch_jwks(Emu) ->
    {200, Body} = raw_get(port_of(azmp_emulator:http_url(Emu)), "/tenant-1/discovery/v2.0/keys"),
    {ok, Jwks} = azmp_emulator_json:decode(Body),
    Jwks.

%% What a correct webhook endpoint checks, written independently of the
%% emulator's code: [] for a valid token, else every problem found.
problems(Emu, Req, Now) ->
    case hdr(<<"authorization">>, Req) of
        <<"Bearer ", _/binary>> ->
            #{header := H, claims := C, input := Input, sig := Sig} = jwt_parts(Req),
            SigProblems =
                case maps:get(<<"alg">>, H) of
                    <<"RS256">> ->
                        Kid = maps:get(<<"kid">>, H),
                        case [K || K = #{<<"kid">> := K1} <- maps:get(<<"keys">>, fetch_jwks(Emu)),
                                   K1 =:= Kid] of
                            [#{<<"n">> := N, <<"e">> := E, <<"kty">> := <<"RSA">>}] ->
                                Pub = #'RSAPublicKey'{
                                         modulus = binary:decode_unsigned(b64(N)),
                                         publicExponent = binary:decode_unsigned(b64(E))},
                                case public_key:verify(Input, sha256, Sig, Pub) of
                                    true -> [];
                                    false -> [bad_signature]
                                end;
                            [] -> [unknown_kid]
                        end;
                    Alg -> [{alg, Alg}]
                end,
            {AzpKey, Iss} = case maps:get(<<"ver">>, C) of
                                <<"1.0">> -> {<<"appid">>, <<"https://sts.windows.net/tenant-1/">>};
                                <<"2.0">> -> {<<"azp">>,
                                              <<"https://login.microsoftonline.com/tenant-1/v2.0">>}
                            end,
            Skew = 60,
            SigProblems
                ++ [bad_aud || maps:get(<<"aud">>, C) =/= <<"client-1">>]
                ++ [bad_tid || maps:get(<<"tid">>, C) =/= <<"tenant-1">>]
                ++ [bad_azp || maps:get(AzpKey, C, undefined) =/= ?APP]
                ++ [bad_iss || maps:get(<<"iss">>, C) =/= Iss]
                ++ [expired || maps:get(<<"exp">>, C) =< Now - Skew]
                ++ [not_yet_valid || maps:get(<<"nbf">>, C) > Now + Skew];
        _ ->
            [no_token]
    end.

to_bin(A) when is_atom(A) -> atom_to_binary(A, utf8);
to_bin(B) when is_binary(B) -> B.

%%% ================================================================ helpers

url(Emu, Path) -> <<(azmp_emulator:http_url(Emu))/binary, (list_to_binary(Path))/binary>>.

sub_url(Emu, Id, Suffix) ->
    url(Emu, "/api/saas/subscriptions/" ++ to_list(Id) ++ Suffix ++ ?V).

to_list(B) when is_binary(B) -> binary_to_list(B);
to_list(L) -> L.

auth(Tok) -> [{"authorization", "Bearer " ++ binary_to_list(Tok)}].

token(Emu) ->
    {200, _, #{<<"access_token">> := T}} =
        req(post, url(Emu, "/tenant-1/oauth2/v2.0/token"), [], v2_form()),
    T.

v1_form() ->
    form([{"grant_type", "client_credentials"}, {"client_id", "client-1"},
          {"client_secret", "secret-1"}, {"resource", binary_to_list(?APP)}]).

v2_form() ->
    form([{"grant_type", "client_credentials"}, {"client_id", "client-1"},
          {"client_secret", "secret-1"}, {"scope", binary_to_list(?APP) ++ "/.default"}]).

form(KVs) -> list_to_binary(uri_string:compose_query(KVs)).

json(T) -> azmp_emulator_json:encode(T).

uuid() -> binary_to_list(azmp_emulator_util:uuid()).

ssl_opts(Emu) ->
    [{verify, verify_peer}, {cacertfile, azmp_emulator:ca_file(Emu)}].

req(M, Url, H, Body) -> req(M, Url, H, Body, []).

%% -> {Status, Headers, DecodedJsonOrRawBody}
req(Method, Url, Headers, Body, Ssl) ->
    U = to_list(Url),
    Request = case Method of
                  M when M =:= get; M =:= delete -> {U, Headers};
                  _ -> {U, Headers, content_type(U), Body}
              end,
    HttpOpts = [{timeout, 10000}, {autoredirect, false}] ++
        case Ssl of [] -> []; _ -> [{ssl, Ssl}] end,
    {ok, {{_, Status, _}, RespHeaders, RespBody}} =
        httpc:request(Method, Request, HttpOpts, [{body_format, binary}]),
    Decoded = case azmp_emulator_json:decode(RespBody) of
                  {ok, J} -> J;
                  _ -> RespBody
              end,
    {Status, RespHeaders, Decoded}.

content_type(U) ->
    case string:find(U, "/oauth2/") of
        nomatch -> "application/json";
        _ -> "application/x-www-form-urlencoded"
    end.

catch_error(F) -> try F() catch error:E -> E end.

port_of(Url) ->
    [_, P] = string:split(binary_to_list(Url), ":", trailing),
    list_to_integer(P).

verify_with_jwks(#{<<"keys">> := [#{<<"kid">> := Kid, <<"n">> := N, <<"e">> := E,
                                    <<"kty">> := <<"RSA">>, <<"use">> := <<"sig">>}]}, Jwt) ->
    [H, P, S] = binary:split(Jwt, <<".">>, [global]),
    {ok, #{<<"alg">> := <<"RS256">>, <<"kid">> := Kid}} =
        azmp_emulator_json:decode(b64(H)),
    Pub = #'RSAPublicKey'{modulus = binary:decode_unsigned(b64(N)),
                          publicExponent = binary:decode_unsigned(b64(E))},
    case public_key:verify(<<H/binary, ".", P/binary>>, sha256, b64(S), Pub) of
        true -> azmp_emulator_json:decode(b64(P));
        false -> {error, bad_signature}
    end.

%% base64url without padding, decoded independently of the emulator's code
b64(B) ->
    S = << <<(case C of $- -> $+; $_ -> $/; _ -> C end)>> || <<C>> <= B >>,
    base64:decode(<<S/binary, (binary:copy(<<"=">>, (4 - byte_size(S) rem 4) rem 4))/binary>>).

%% Raw HTTP/1.1 on gen_tcp: {Status, Body} | {truncated, ContentLength, Got}
%% | {error, Reason}.
raw_get(Port, Path) ->
    raw(Port, ["GET ", Path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"]).

raw_post(Port, Path, Body) ->
    raw(Port, ["POST ", Path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ",
               integer_to_list(byte_size(Body)), "\r\n\r\n", Body]).

raw(Port, Data) ->
    case gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false},
                                                {show_econnreset, true}], 10000) of
        {ok, S} ->
            ok = gen_tcp:send(S, Data),
            R = case recv_all(S, <<>>) of
                    {ok, Resp} -> parse_raw(Resp);
                    Err -> Err
                end,
            gen_tcp:close(S),
            R;
        Err -> Err
    end.

recv_all(S, Acc) ->
    case gen_tcp:recv(S, 0, 20000) of
        {ok, D} -> recv_all(S, <<Acc/binary, D/binary>>);
        {error, closed} -> {ok, Acc};
        {error, _} = E -> E
    end.

parse_raw(Resp) ->
    [Head, Body] = binary:split(Resp, <<"\r\n\r\n">>),
    [<<"HTTP/1.1 ", Code:3/binary, _/binary>> | Lines] = binary:split(Head, <<"\r\n">>, [global]),
    Len = hd([binary_to_integer(V) || L <- Lines,
                                       [K, V] <- [binary:split(L, <<": ">>)],
                                       string:lowercase(K) =:= <<"content-length">>]),
    case byte_size(Body) of
        Len -> {binary_to_integer(Code), Body};
        Got -> {truncated, Len, Got}
    end.

%% Read exactly one response (by content-length) from a keep-alive socket;
%% returns the bytes after it.
read_response(S, Buf) ->
    case binary:split(Buf, <<"\r\n\r\n">>) of
        [Head, Rest] ->
            {match, [L]} = re:run(Head, "content-length: ([0-9]+)",
                                  [caseless, {capture, all_but_first, binary}]),
            Len = binary_to_integer(L),
            ?assertMatch(<<"HTTP/1.1 200", _/binary>>, Head),
            ?assertEqual(nomatch, binary:match(Head, <<"connection: close">>)),
            case Rest of
                <<_:Len/binary, After/binary>> -> {ok, After};
                _ -> more(S, Buf)
            end;
        _ -> more(S, Buf)
    end.

more(S, Buf) ->
    {ok, D} = gen_tcp:recv(S, 0, 5000),
    read_response(S, <<Buf/binary, D/binary>>).
