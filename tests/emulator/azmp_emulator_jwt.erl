%% @doc RS256 JWT signing/verification and the JWKS document for the emulator
%% (plays the part of Microsoft Entra's signing keys). Only public_key/crypto.
-module(azmp_emulator_jwt).

-include_lib("public_key/include/public_key.hrl").

-export([new_key/0, kid/1, sign/2, verify/2, jwks/1,
         b64url/1, b64url_decode/1]).

-opaque key() :: #{priv := #'RSAPrivateKey'{}, kid := binary()}.
-export_type([key/0]).

%% @doc A fresh RSA 2048 signing key with a key id (thumbprint-like, as Entra).
-spec new_key() -> key().
new_key() ->
    Priv = public_key:generate_key({rsa, 2048, 65537}),
    #'RSAPrivateKey'{modulus = N} = Priv,
    Kid = b64url(crypto:hash(sha, binary:encode_unsigned(N))),
    #{priv => Priv, kid => Kid}.

-spec kid(key()) -> binary().
kid(#{kid := Kid}) -> Kid.

%% @doc Compact RS256 JWS of the claims (a map encodable by azmp_emulator_json).
-spec sign(key(), map()) -> binary().
sign(#{priv := Priv, kid := Kid}, Claims) ->
    Header = #{<<"alg">> => <<"RS256">>, <<"typ">> => <<"JWT">>,
               <<"kid">> => Kid, <<"x5t">> => Kid},
    Input = <<(b64url(azmp_emulator_json:encode(Header)))/binary, $.,
              (b64url(azmp_emulator_json:encode(Claims)))/binary>>,
    Sig = public_key:sign(Input, sha256, Priv),
    <<Input/binary, $., (b64url(Sig))/binary>>.

%% @doc Verify signature (only; no claim checks) and return the claims.
-spec verify(key(), binary()) -> {ok, map()} | {error, term()}.
verify(#{priv := Priv, kid := Kid}, Jwt) ->
    try binary:split(Jwt, <<".">>, [global]) of
        [H, P, S] ->
            {ok, Header} = azmp_emulator_json:decode(b64url_decode(H)),
            #{<<"alg">> := <<"RS256">>, <<"kid">> := Kid} = Header,
            Pub = public_key(Priv),
            case public_key:verify(<<H/binary, $., P/binary>>, sha256,
                                   b64url_decode(S), Pub) of
                true -> azmp_emulator_json:decode(b64url_decode(P));
                false -> {error, bad_signature}
            end;
        _ -> {error, malformed}
    catch _:_ -> {error, malformed}
    end.

%% @doc The JWKS document ({"keys":[...]}) for the key.
-spec jwks(key()) -> map().
jwks(#{priv := Priv, kid := Kid}) ->
    #'RSAPublicKey'{modulus = N, publicExponent = E} = public_key(Priv),
    #{<<"keys">> =>
          [#{<<"kty">> => <<"RSA">>, <<"use">> => <<"sig">>,
             <<"alg">> => <<"RS256">>,
             <<"kid">> => Kid, <<"x5t">> => Kid,
             <<"n">> => b64url(binary:encode_unsigned(N)),
             <<"e">> => b64url(binary:encode_unsigned(E))}]}.

public_key(#'RSAPrivateKey'{modulus = N, publicExponent = E}) ->
    #'RSAPublicKey'{modulus = N, publicExponent = E}.

-spec b64url(binary()) -> binary().
b64url(Bin) ->
    B = base64:encode(Bin),
    B1 = binary:replace(binary:replace(B, <<"+">>, <<"-">>, [global]),
                        <<"/">>, <<"_">>, [global]),
    binary:replace(B1, <<"=">>, <<>>, [global]).

-spec b64url_decode(binary()) -> binary().
b64url_decode(B) ->
    B1 = binary:replace(binary:replace(B, <<"-">>, <<"+">>, [global]),
                        <<"_">>, <<"/">>, [global]),
    Pad = case byte_size(B1) rem 4 of
              0 -> <<>>;
              2 -> <<"==">>;
              3 -> <<"=">>
          end,
    base64:decode(<<B1/binary, Pad/binary>>).
