%% @doc Webhooks as Azure sends them to the publisher's webhook endpoint: the
%% JSON payload (built by azmp_emulator_fulfillment:webhook_body/2), a bearer
%% JWT issued by "Entra" for the marketplace app (20e940b3-...) to the
%% publisher's app (aud = client id), RS256-signed with the emulator's
%% signing key, and the forgeries a webhook endpoint must refuse.
%%
%% The issuer is what Entra puts in such a token: v1 https://sts.windows.net/{tenant}/,
%% v2 {login_url}/{tenant}/v2.0, where login_url is the authority the publisher is
%% configured with (Entra's https://login.microsoftonline.com; here, the emulator).
%%
%% The HTTP request is made by the caller of azmp_emulator:send_webhook/5
%% (never by the emulator's gen_server), so a webhook handler can call back
%% into the emulator (Get Operation, PATCH) while the webhook is in flight.
-module(azmp_emulator_webhook).

-export([actions/0, forge_kinds/0, action/1, forge_kind/1, token/3, post/5]).

-define(APP_ID, <<"20e940b3-4c77-4b0b-9a53-9e16a1b010a7">>).
-define(LIFETIME, 3600).

-type forge() :: no_token | bad_signature | other_key | alg_none | hs256_public_key
               | wrong_aud | wrong_tid | wrong_azp | expired | not_yet_valid
               | unknown_kid | wrong_iss | crit.
-export_type([forge/0]).

-spec actions() -> [binary()].
actions() ->
    [<<"ChangePlan">>, <<"ChangeQuantity">>, <<"Renew">>, <<"Suspend">>,
     <<"Unsubscribe">>, <<"Reinstate">>].

-spec forge_kinds() -> [forge()].
forge_kinds() ->
    [no_token, bad_signature, other_key, alg_none, hs256_public_key, wrong_aud,
     wrong_tid, wrong_azp, expired, not_yet_valid, unknown_kid, wrong_iss, crit].

%% @doc Action as an atom or binary -> the binary Azure sends.
-spec action(atom() | binary() | string()) -> {ok, binary()} | {error, term()}.
action(A) when is_atom(A) -> action(atom_to_binary(A, utf8));
action(A) when is_list(A) -> action(unicode:characters_to_binary(A));
action(A) when is_binary(A) ->
    case lists:member(A, actions()) of
        true -> {ok, A};
        false -> {error, {bad_action, A}}
    end;
action(A) -> {error, {bad_action, A}}.

%% @doc Forge kind as an atom or binary (undefined/none/null = a valid token).
-spec forge_kind(term()) -> {ok, none | forge()} | {error, term()}.
forge_kind(F) when F =:= undefined; F =:= none; F =:= null; F =:= <<"none">> -> {ok, none};
forge_kind(F) when is_binary(F) ->
    case [K || K <- forge_kinds(), atom_to_binary(K, utf8) =:= F] of
        [K] -> {ok, K};
        [] -> {error, {bad_forge, F}}
    end;
forge_kind(F) when is_atom(F) ->
    case lists:member(F, forge_kinds()) of
        true -> {ok, F};
        false -> {error, {bad_forge, F}}
    end;
forge_kind(F) -> {error, {bad_forge, F}}.

%% @doc The Authorization bearer token for a webhook, or undefined (no_token).
%% Ctx: key (the signing key, published in the JWKS), forge_key (a second
%% RSA key, not published), tenant_id, client_id, oid (the marketplace
%% app's service principal), version (v1 | v2), login_url (the v2 issuer's
%% authority, no trailing slash), hs256_secret (pem | der).
%% Forgeries signed with the published key: wrong_iss (iss names another
%% tenant, in the same form; tid is still ours) and crit (the header lists an
%% extension as critical, RFC 7515 §4.1.11, that no verifier implements).
-spec token(none | forge(), map(), integer()) -> binary() | undefined.
token(no_token, _Ctx, _Now) ->
    undefined;
token(Forge, Ctx = #{key := Key}, Now) ->
    Claims = forge_claims(Forge, claims(Ctx, Now), Ctx, Now),
    case Forge of
        bad_signature ->
            flip_signature(azmp_emulator_jwt:sign(Key, Claims));
        other_key ->
            %% another private key announcing the published kid
            Other = azmp_emulator_jwt:with_kid(maps:get(forge_key, Ctx),
                                               azmp_emulator_jwt:kid(Key)),
            azmp_emulator_jwt:sign(Other, Claims);
        unknown_kid ->
            Kid = azmp_emulator_jwt:b64url(crypto:strong_rand_bytes(20)),
            azmp_emulator_jwt:sign(azmp_emulator_jwt:with_kid(maps:get(forge_key, Ctx), Kid),
                                   Claims);
        alg_none ->
            Kid = azmp_emulator_jwt:kid(Key),
            Header = #{<<"alg">> => <<"none">>, <<"typ">> => <<"JWT">>,
                       <<"kid">> => Kid, <<"x5t">> => Kid},
            <<(input(Header, Claims))/binary, $.>>;
        crit ->
            azmp_emulator_jwt:sign(Key, Claims,
                                   #{<<"crit">> => [<<"urn:emulator:must-understand">>],
                                     <<"urn:emulator:must-understand">> => true});
        hs256_public_key ->
            Kid = azmp_emulator_jwt:kid(Key),
            Header = #{<<"alg">> => <<"HS256">>, <<"typ">> => <<"JWT">>,
                       <<"kid">> => Kid, <<"x5t">> => Kid},
            Secret = case maps:get(hs256_secret, Ctx, pem) of
                         der -> azmp_emulator_jwt:public_der(Key);
                         _ -> azmp_emulator_jwt:public_pem(Key)
                     end,
            Input = input(Header, Claims),
            Mac = crypto:mac(hmac, sha256, Secret, Input),
            <<Input/binary, $., (azmp_emulator_jwt:b64url(Mac))/binary>>;
        _ ->
            azmp_emulator_jwt:sign(Key, Claims)
    end.

%% Claims of a genuine webhook token (what Entra issues to the marketplace
%% app for the publisher's app).
claims(#{tenant_id := T, client_id := C, oid := Oid} = Ctx, Now) ->
    Common = #{<<"aud">> => C, <<"tid">> => T, <<"iat">> => Now, <<"nbf">> => Now,
               <<"exp">> => Now + ?LIFETIME, <<"oid">> => Oid, <<"sub">> => Oid,
               <<"idtyp">> => <<"app">>, <<"rh">> => <<"0.emulator-webhook.">>,
               <<"uti">> => azmp_emulator_jwt:b64url(crypto:strong_rand_bytes(16))},
    case maps:get(version, Ctx, v2) of
        v1 ->
            Common#{<<"iss">> => issuer(v1, T, Ctx),
                    <<"idp">> => <<"https://sts.windows.net/", T/binary, "/">>,
                    <<"appid">> => ?APP_ID, <<"appidacr">> => <<"2">>,
                    <<"ver">> => <<"1.0">>};
        v2 ->
            Common#{<<"iss">> => issuer(v2, T, Ctx),
                    <<"azp">> => ?APP_ID, <<"azpacr">> => <<"2">>,
                    <<"ver">> => <<"2.0">>}
    end.

%% Entra's issuer forms: v1 names its STS, v2 the authority the token was asked of.
issuer(v1, Tenant, _Ctx) ->
    <<"https://sts.windows.net/", Tenant/binary, "/">>;
issuer(v2, Tenant, Ctx) ->
    <<(maps:get(login_url, Ctx, <<"https://login.microsoftonline.com">>))/binary, "/",
      Tenant/binary, "/v2.0">>.

%% Only the one property named by the forgery differs from a genuine token.
forge_claims(wrong_iss, C, Ctx, _Now) ->
    C#{<<"iss">> => issuer(maps:get(version, Ctx, v2), azmp_emulator_util:uuid(), Ctx)};
forge_claims(wrong_aud, C, _Ctx, _Now) ->
    C#{<<"aud">> => azmp_emulator_util:uuid()};
forge_claims(wrong_tid, C, _Ctx, _Now) ->
    C#{<<"tid">> => azmp_emulator_util:uuid()};
forge_claims(wrong_azp, C, Ctx, _Now) ->
    case maps:get(version, Ctx, v2) of
        v1 -> C#{<<"appid">> => azmp_emulator_util:uuid()};
        v2 -> C#{<<"azp">> => azmp_emulator_util:uuid()}
    end;
forge_claims(expired, C, _Ctx, Now) ->
    C#{<<"iat">> => Now - 2 * ?LIFETIME, <<"nbf">> => Now - 2 * ?LIFETIME,
       <<"exp">> => Now - ?LIFETIME};
forge_claims(not_yet_valid, C, _Ctx, Now) ->
    C#{<<"nbf">> => Now + ?LIFETIME, <<"exp">> => Now + 2 * ?LIFETIME};
forge_claims(_, C, _Ctx, _Now) ->
    C.

input(Header, Claims) ->
    <<(azmp_emulator_jwt:b64url(azmp_emulator_json:encode(Header)))/binary, $.,
      (azmp_emulator_jwt:b64url(azmp_emulator_json:encode(Claims)))/binary>>.

%% A well-formed token whose signature bytes are flipped (same length).
flip_signature(Jwt) ->
    [H, P, S] = binary:split(Jwt, <<".">>, [global]),
    Sig = azmp_emulator_jwt:b64url_decode(S),
    Bad = << <<(B bxor 16#5a)>> || <<B>> <= binary:part(Sig, 0, 8) >>,
    Flipped = <<Bad/binary, (binary:part(Sig, 8, byte_size(Sig) - 8))/binary>>,
    <<H/binary, $., P/binary, $., (azmp_emulator_jwt:b64url(Flipped))/binary>>.

%% @doc POST the encoded body to Url with the token (if any), on the httpc
%% profile (a stand-alone httpc pid). Opts: timeout_ms (15000), ssl (options
%% for an https target), headers (extra [{Name, Value}]).
-spec post(pid(), binary(), binary(), binary() | undefined, map()) ->
          {ok, integer(), binary()} | {error, term()}.
post(Httpc, Url, Body, Token, Opts) ->
    Auth = case Token of
               undefined -> [];
               _ -> [{"authorization", "Bearer " ++ binary_to_list(Token)}]
           end,
    Extra = [{to_list(K), to_list(V)} || {K, V} <- maps:get(headers, Opts, [])],
    Headers = Auth ++ [{"user-agent", "AzureMarketplace-Webhook/emulator"} | Extra],
    Timeout = maps:get(timeout_ms, Opts, 15000),
    HttpOpts = [{timeout, Timeout}, {connect_timeout, min(Timeout, 5000)},
                {autoredirect, false}]
        ++ case maps:get(ssl, Opts, undefined) of
               undefined -> [];
               Ssl -> [{ssl, Ssl}]
           end,
    Request = {to_list(Url), Headers, "application/json", Body},
    try httpc:request(post, Request, HttpOpts, [{body_format, binary}], Httpc) of
        {ok, {{_, Status, _}, _RespHeaders, RespBody}} -> {ok, Status, RespBody};
        {error, Reason} -> {error, Reason}
    catch
        C:E -> {error, {C, E}}
    end.

to_list(B) when is_binary(B) -> binary_to_list(B);
to_list(A) when is_atom(A) -> atom_to_list(A);
to_list(L) when is_list(L) -> L.
