%% @doc Microsoft Entra (Azure AD) as the emulator plays it: the v1 and v2
%% client-credentials token endpoints, the JWKS and the OpenID configuration.
%% Pure functions of the immutable config and the request.
-module(azmp_emulator_entra).

-export([token/4, jwks/2, openid_configuration/3, marketplace_app_id/0]).

-define(APP_ID, <<"20e940b3-4c77-4b0b-9a53-9e16a1b010a7">>).

-type result() :: {Status :: integer(), Body :: map(),
                   Issued :: undefined | {Token :: binary(), Exp :: integer()}}.

-spec marketplace_app_id() -> binary().
marketplace_app_id() -> ?APP_ID.

%% @doc POST /{tenant}/oauth2/token (v1) or /{tenant}/oauth2/v2.0/token (v2).
%% Form is the decoded form body; Cfg holds tenant_id, client_id,
%% client_secret, token_ttl_s and key.
-spec token(v1 | v2, binary(), [{binary(), binary() | true}], map()) -> result().
token(Version, Tenant, Form, Cfg) ->
    #{tenant_id := TenantId, client_id := ClientId, client_secret := Secret} = Cfg,
    P = fun(K) -> case lists:keyfind(K, 1, Form) of
                      {_, V} when is_binary(V) -> V;
                      _ -> undefined
                  end
        end,
    if
        Tenant =/= TenantId ->
            err(400, <<"invalid_request">>, 90002,
                [<<"Tenant '">>, Tenant, <<"' not found. Check to make sure you have the correct "
                  "tenant ID and are signing into the correct cloud.">>]);
        true ->
            case {P(<<"grant_type">>), P(<<"client_id">>), P(<<"client_secret">>)} of
                {undefined, _, _} ->
                    err(400, <<"invalid_request">>, 900144,
                        <<"The request body must contain the following parameter: 'grant_type'.">>);
                {G, _, _} when G =/= <<"client_credentials">> ->
                    err(400, <<"unsupported_grant_type">>, 70003,
                        [<<"The app requested an unsupported grant type '">>, G, <<"'.">>]);
                {_, undefined, _} ->
                    err(400, <<"invalid_request">>, 900144,
                        <<"The request body must contain the following parameter: 'client_id'.">>);
                {_, C, _} when C =/= ClientId ->
                    err(400, <<"unauthorized_client">>, 700016,
                        [<<"Application with identifier '">>, C,
                         <<"' was not found in the directory '">>, TenantId,
                         <<"'. This can happen if the application has not been installed "
                           "by the administrator of the tenant.">>]);
                {_, _, undefined} ->
                    err(400, <<"invalid_request">>, 7000216,
                        <<"'client_assertion', 'client_secret' or 'request' is required for "
                          "the 'client_credentials' grant type.">>);
                {_, _, S} when S =/= Secret ->
                    err(401, <<"invalid_client">>, 7000215,
                        [<<"Invalid client secret provided. Ensure the secret being sent in the "
                           "request is the client secret value, not the client secret ID, for a "
                           "secret added to app '">>, ClientId, <<"'.">>]);
                _ ->
                    audience(Version, P, Cfg)
            end
    end.

audience(v1, P, Cfg) ->
    case P(<<"resource">>) of
        undefined ->
            err(400, <<"invalid_request">>, 900144,
                <<"The request body must contain the following parameter: 'resource'.">>);
        ?APP_ID -> issue(v1, Cfg);
        R -> invalid_resource(R, Cfg)
    end;
audience(v2, P, Cfg) ->
    case P(<<"scope">>) of
        undefined ->
            err(400, <<"invalid_request">>, 900144,
                <<"The request body must contain the following parameter: 'scope'.">>);
        <<"20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default">> -> issue(v2, Cfg);
        Scope ->
            case binary:split(Scope, <<"/.default">>) of
                [R, <<>>] when R =/= <<>> -> invalid_resource(R, Cfg);
                _ ->
                    err(400, <<"invalid_scope">>, 1002012,
                        [<<"The provided value for scope ">>, Scope,
                         <<" is not valid. Client credential flows must have a scope value "
                           "with /.default suffixed to the resource identifier "
                           "(application ID URI).">>])
            end
    end.

invalid_resource(R, #{tenant_id := T}) ->
    err(400, <<"invalid_resource">>, 500011,
        [<<"The resource principal named ">>, R,
         <<" was not found in the tenant named ">>, T,
         <<". This can happen if the application has not been installed by the "
           "administrator of the tenant or consented to by any user in the tenant.">>]).

issue(Version, #{tenant_id := T, client_id := C, token_ttl_s := Ttl, key := Key}) ->
    Now = erlang:system_time(second),
    Exp = Now + Ttl,
    Common = #{<<"aud">> => ?APP_ID, <<"tid">> => T, <<"iat">> => Now,
               <<"nbf">> => Now, <<"exp">> => Exp, <<"oid">> => uuid(),
               <<"sub">> => uuid(), <<"rh">> => <<"0.emulator.">>,
               <<"uti">> => azmp_emulator_jwt:b64url(crypto:strong_rand_bytes(16))},
    case Version of
        v1 ->
            Claims = Common#{<<"iss">> => <<"https://sts.windows.net/", T/binary, "/">>,
                             <<"appid">> => C, <<"appidacr">> => <<"1">>,
                             <<"idp">> => <<"https://sts.windows.net/", T/binary, "/">>,
                             <<"ver">> => <<"1.0">>},
            Token = azmp_emulator_jwt:sign(Key, Claims),
            S = fun integer_to_binary/1,
            {200, #{<<"token_type">> => <<"Bearer">>,
                    <<"expires_in">> => S(Ttl), <<"ext_expires_in">> => S(Ttl),
                    <<"expires_on">> => S(Exp), <<"not_before">> => S(Now),
                    <<"resource">> => ?APP_ID, <<"access_token">> => Token},
             {Token, Exp}};
        v2 ->
            Claims = Common#{<<"iss">> => <<"https://login.microsoftonline.com/", T/binary,
                                            "/v2.0">>,
                             <<"azp">> => C, <<"azpacr">> => <<"1">>,
                             <<"ver">> => <<"2.0">>},
            Token = azmp_emulator_jwt:sign(Key, Claims),
            {200, #{<<"token_type">> => <<"Bearer">>, <<"expires_in">> => Ttl,
                    <<"ext_expires_in">> => Ttl, <<"access_token">> => Token},
             {Token, Exp}}
    end.

err(Status, Error, Code, Desc) ->
    Trace = uuid(),
    Corr = uuid(),
    Ts = iso_now(),
    CodeB = integer_to_binary(Code),
    Description = iolist_to_binary([<<"AADSTS">>, CodeB, <<": ">>, Desc,
                                    <<"\r\nTrace ID: ">>, Trace,
                                    <<"\r\nCorrelation ID: ">>, Corr,
                                    <<"\r\nTimestamp: ">>, Ts]),
    {Status, #{<<"error">> => Error, <<"error_description">> => Description,
               <<"error_codes">> => [Code], <<"timestamp">> => Ts,
               <<"trace_id">> => Trace, <<"correlation_id">> => Corr,
               <<"error_uri">> => <<"https://login.microsoftonline.com/error?code=", CodeB/binary>>},
     undefined}.

%% @doc GET /{tenant}/discovery/[v2.0/]keys; "common" is accepted as well.
%% Publishes every key in Cfg's `keys' (after a rotation the old key stays),
%% or just `key'.
-spec jwks(binary(), map()) -> result().
jwks(Tenant, #{tenant_id := T, key := Key} = Cfg) when Tenant =:= T; Tenant =:= <<"common">> ->
    {200, azmp_emulator_jwt:jwks(maps:get(keys, Cfg, [Key])), undefined};
jwks(Tenant, _Cfg) ->
    err(400, <<"invalid_tenant">>, 90002,
        [<<"Tenant '">>, Tenant, <<"' not found.">>]).

%% @doc GET /{tenant}/v2.0/.well-known/openid-configuration.
-spec openid_configuration(binary(), binary(), map()) -> result().
openid_configuration(Tenant, BaseUrl, #{tenant_id := T}) when Tenant =:= T; Tenant =:= <<"common">> ->
    {200, #{<<"issuer">> => <<"https://login.microsoftonline.com/", T/binary, "/v2.0">>,
            <<"token_endpoint">> => <<BaseUrl/binary, "/", Tenant/binary, "/oauth2/v2.0/token">>,
            <<"jwks_uri">> => <<BaseUrl/binary, "/", Tenant/binary, "/discovery/v2.0/keys">>,
            <<"id_token_signing_alg_values_supported">> => [<<"RS256">>],
            <<"token_endpoint_auth_methods_supported">> => [<<"client_secret_post">>]},
     undefined};
openid_configuration(Tenant, _BaseUrl, Cfg) ->
    jwks(Tenant, Cfg).

uuid() -> azmp_emulator_util:uuid().
iso_now() -> azmp_emulator_util:iso8601(erlang:system_time(second)).
