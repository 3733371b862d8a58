%% @doc RS256 JWT signing/verification and the JWKS document for the emulator
%% (plays the part of Microsoft Entra's signing keys). Only public_key/crypto.
-module(azmp_emulator_jwt).

-include_lib("public_key/include/public_key.hrl").

-export([new_key/0, kid/1, with_kid/2, sign/2, sign/3, verify/2, jwks/1,
         public/1, public_pem/1, public_der/1, b64url/1, b64url_decode/1]).

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

%% @doc The same private key under another key id (forged tokens: another
%% key announcing a known kid, or an unknown kid).
-spec with_kid(key(), binary()) -> key().
with_kid(Key, Kid) -> Key#{kid := Kid}.

%% @doc Compact RS256 JWS of the claims (a map encodable by azmp_emulator_json).
-spec sign(key(), map()) -> binary().
sign(Key, Claims) -> sign(Key, Claims, #{}).

%% @doc As sign/2 with extra or overriding header members (the signature is
%% always RS256 with the key, whatever `alg' the header then claims).
-spec sign(key(), map(), map()) -> binary().
sign(#{priv := Priv, kid := Kid}, Claims, HeaderExtra) ->
    Header = maps:merge(#{<<"alg">> => <<"RS256">>, <<"typ">> => <<"JWT">>,
                          <<"kid">> => Kid, <<"x5t">> => Kid}, HeaderExtra),
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

%% @doc The JWKS document ({"keys":[...]}) for the key, or for several keys
%% (in the order given).
-spec jwks(key() | [key()]) -> map().
jwks(Keys) when is_list(Keys) ->
    #{<<"keys">> => [jwk(K) || K <- Keys]};
jwks(Key) ->
    jwks([Key]).

jwk(#{priv := Priv, kid := Kid}) ->
    #'RSAPublicKey'{modulus = N, publicExponent = E} = public_key(Priv),
    #{<<"kty">> => <<"RSA">>, <<"use">> => <<"sig">>,
      <<"alg">> => <<"RS256">>,
      <<"kid">> => Kid, <<"x5t">> => Kid,
      <<"n">> => b64url(binary:encode_unsigned(N)),
      <<"e">> => b64url(binary:encode_unsigned(E))}.

%% @doc The public half of the key.
-spec public(key()) -> #'RSAPublicKey'{}.
public(#{priv := Priv}) -> public_key(Priv).

%% @doc The public key as a PEM "PUBLIC KEY" (SubjectPublicKeyInfo) block:
%% what an HS256 key-confusion forgery uses as its HMAC secret.
-spec public_pem(key()) -> binary().
public_pem(Key) ->
    Entry = public_key:pem_entry_encode('SubjectPublicKeyInfo', public(Key)),
    public_key:pem_encode([Entry]).

%% @doc The public key as DER (SubjectPublicKeyInfo).
-spec public_der(key()) -> binary().
public_der(Key) ->
    {'SubjectPublicKeyInfo', Der, not_encrypted} =
        public_key:pem_entry_encode('SubjectPublicKeyInfo', public(Key)),
    Der.

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
