%% EUnit tests of the Azure Marketplace emulator: the Entra token endpoints (v1, v2,
%% errors, expiry), the JWKS, sign_jwt/2, and HTTPS with the generated CA.
-module(azmp_emulator_entra_tests).

-include_lib("eunit/include/eunit.hrl").
-include("azmp_emulator_tests.hrl").

-import(azmp_test_http, [auth/1, emulator_tests/1, form/1, port_of/1, req/4, req/5, ssl_opts/1,
                         token/1, url/2, v1_form/0, v2_form/0]).
-import(azmp_test_jwt, [verify_with_jwks/2]).

emulator_test_() ->
    emulator_tests(
      [{"entra v1 token", fun entra_v1/1},
       {"entra v2 token", fun entra_v2/1},
       {"entra errors", fun entra_errors/1},
       {"access token is a JWT verifiable with the JWKS", fun token_jwt_verifies/1},
       {"https with the CA, by IP and by localhost", fun https_ok/1},
       {"https with an unrelated CA fails closed", fun https_wrong_ca/1},
       {"expire_tokens invalidates issued tokens", fun expire_tokens/1},
       {"sign_jwt verifies with the served JWKS", fun sign_jwt/1}]).

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

expire_tokens(Emu) ->
    Tok = token(Emu),
    U = url(Emu, "/api/saas/subscriptions/" ?V),
    {200, _, _} = req(get, U, auth(Tok), <<>>),
    ok = azmp_emulator:expire_tokens(Emu),
    {401, _, _} = req(get, U, auth(Tok), <<>>),
    {200, _, _} = req(get, U, auth(token(Emu)), <<>>).

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
