%% An independent check of the JWTs the emulator issues and signs: a webhook verifier written
%% without the emulator's code, the JWKS fetched over HTTP, and base64url decoding.
-module(azmp_test_jwt).

-export([jwt_parts/1, fetch_jwks/1, problems/3, verify_with_jwks/2, b64/1, login_url/1]).

-include_lib("public_key/include/public_key.hrl").
-include("azmp_emulator_tests.hrl").

-import(azmp_test_http, [hdr/2, port_of/1, raw_get/2]).

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
            %% v2: the issuer is the authority the publisher is configured with (the emulator)
            {AzpKey, Iss} = case maps:get(<<"ver">>, C) of
                                <<"1.0">> -> {<<"appid">>, <<"https://sts.windows.net/tenant-1/">>};
                                <<"2.0">> -> {<<"azp">>,
                                              <<(login_url(Emu))/binary, "/tenant-1/v2.0">>}
                            end,
            %% RFC 7515 §4.1.11: a verifier implementing no extension refuses any crit
            CritProblems = [{crit, maps:get(<<"crit">>, H)} || maps:is_key(<<"crit">>, H)],
            Skew = 60,
            SigProblems
                ++ CritProblems
                ++ [bad_aud || maps:get(<<"aud">>, C) =/= <<"client-1">>]
                ++ [bad_tid || maps:get(<<"tid">>, C) =/= <<"tenant-1">>]
                ++ [bad_azp || maps:get(AzpKey, C, undefined) =/= ?APP]
                ++ [bad_iss || maps:get(<<"iss">>, C, undefined) =/= Iss]
                ++ [expired || maps:get(<<"exp">>, C) =< Now - Skew]
                ++ [not_yet_valid || maps:get(<<"nbf">>, C) > Now + Skew];
        _ ->
            [no_token]
    end.

%% The authority a publisher configured against the emulator uses (its HTTPS URL, or its HTTP URL
%% when HTTPS is off): what a v2 webhook token must name as its issuer.
login_url(Emu) ->
    case azmp_emulator:info(Emu) of
        #{https_url := Https} when is_binary(Https) -> Https;
        #{http_url := Http} -> Http
    end.

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
