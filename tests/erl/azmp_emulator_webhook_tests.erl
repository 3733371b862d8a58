%% EUnit tests of the Azure Marketplace emulator: the webhooks it sends: every
%% action, token versions, answers, callbacks, redelivery, errors, every forgery, the control API,
%% and signing key rotation.
-module(azmp_emulator_webhook_tests).

-include_lib("eunit/include/eunit.hrl").
-include_lib("public_key/include/public_key.hrl").
-include("azmp_emulator_tests.hrl").

-import(azmp_test_hook_receiver, [hook_url/2, nothing_received/0, received/0, receiver_start/1,
                                  receiver_stop/1]).
-import(azmp_test_http, [auth/1, hdr/2, json/1, req/4, req/5, sub_url/3, to_list/1, token/1,
                         url/2]).
-import(azmp_test_jwt, [b64/1, fetch_jwks/1, jwt_parts/1, problems/3]).

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
              %% v2: the issuer is the authority the publisher is configured with (here, us)
              Iss = <<(azmp_test_jwt:login_url(Emu))/binary, "/tenant-1/v2.0">>,
              ?assertMatch(#{<<"aud">> := <<"client-1">>, <<"tid">> := <<"tenant-1">>,
                             <<"azp">> := ?APP, <<"ver">> := <<"2.0">>, <<"iss">> := Iss},
                           C),
              ?assertEqual(false, maps:is_key(<<"crit">>, H)),
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
             {unknown_kid, v2, [unknown_kid]},
             {wrong_iss, v2, [bad_iss]},
             {wrong_iss, v1, [bad_iss]},
             {crit, v2, [{crit, [<<"urn:emulator:must-understand">>]}]}],
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
forge_property(wrong_iss, v1, Req, _Kid, _Now, _Emu) ->
    %% the v1 form, another tenant in it; tid is still ours
    #{claims := #{<<"iss">> := Iss, <<"tid">> := <<"tenant-1">>}} = jwt_parts(Req),
    ?assertMatch(<<"https://sts.windows.net/", _/binary>>, Iss),
    ?assertNotEqual(<<"https://sts.windows.net/tenant-1/">>, Iss);
forge_property(wrong_iss, v2, Req, _Kid, _Now, Emu) ->
    #{claims := #{<<"iss">> := Iss, <<"tid">> := <<"tenant-1">>}} = jwt_parts(Req),
    Base = azmp_test_jwt:login_url(Emu),
    ?assertMatch(<<Base:(byte_size(Base))/binary, "/", _/binary>>, Iss),
    ?assertNotEqual(<<Base/binary, "/tenant-1/v2.0">>, Iss);
forge_property(crit, _, Req, Kid, _Now, _Emu) ->
    %% signed with the published key: only the crit header is wrong
    #{header := H, sig := Sig} = jwt_parts(Req),
    ?assertMatch(#{<<"alg">> := <<"RS256">>, <<"kid">> := Kid,
                   <<"urn:emulator:must-understand">> := true}, H),
    ?assertEqual(256, byte_size(Sig));
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

to_bin(A) when is_atom(A) -> atom_to_binary(A, utf8);
to_bin(B) when is_binary(B) -> B.
