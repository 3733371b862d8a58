// Verifying the Entra-issued bearer token on Azure's webhook calls: RS256 against the tenant's JWKS.
// Pure (OpenSSL for the cryptography, no I/O).
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace azmp {

// An RSA public key from a JWKS, ready to verify with.
class PublicKey {
public:
    virtual ~PublicKey() = default;
    // RS256: RSASSA-PKCS1-v1_5 with SHA-256 over `signing_input`.
    virtual bool verify_rs256(std::string_view signing_input, std::string_view signature) const = 0;
};

// kid -> key. Keys that are not RSA signing keys (kty != RSA, use != sig or alg != RS256 when present)
// are skipped, and so are keys whose n / e do not make a usable key (modulus under 2048 bits, ...).
using KeySet = std::map<std::string, std::shared_ptr<const PublicKey>, std::less<>>;

// Parses a JWKS document ({"keys":[{"kty":"RSA","kid":..,"n":..,"e":..}, ...]}). Nothing when it is not
// such a document (not JSON, no "keys" array); an empty set when it holds no usable key. Never throws.
std::optional<KeySet> parse_jwks(std::string_view json);

struct JwtExpectations {
    std::string audience;                    // aud: our client (app) id
    std::string tenant_id;                   // tid, and the tenant named in iss
    // iss must be Entra's v1 form https://sts.windows.net/{tenant_id}/ or its v2 form
    // {login_url}/{tenant_id}/v2.0 (login_url without its trailing slashes; e.g.
    // https://login.microsoftonline.com). Empty: only the v1 form is accepted.
    std::string login_url;
    std::vector<std::string> authorized_apps;  // azp (v2) or appid (v1) must be one of these
    std::int64_t now = 0;                    // unix seconds
    std::int64_t skew_s = 300;               // tolerance on exp / nbf
};

enum class JwtError {
    Malformed,      // not three canonical base64url parts, bad JSON (header or, once signed, payload)
    BadAlgorithm,   // alg is not exactly RS256 (none, HS256, RS384, ...)
    UnsupportedCrit,  // the header has crit: it names extensions we must understand, and we know none
    UnknownKey,     // kid missing or not in the key set
    BadSignature,
    WrongAudience,
    WrongTenant,
    WrongIssuer,    // iss missing or not one of the two forms for our tenant (see JwtExpectations)
    WrongApp,       // azp / appid
    Expired,        // exp missing, not a number, or not after now - skew
    NotYetValid,    // nbf (optional) present and not a number or after now + skew
};

std::string_view jwt_error_name(JwtError e) noexcept;

// The header's kid (to decide whether the JWKS must be refreshed first). Nothing if unreadable.
std::optional<std::string> jwt_kid(std::string_view token);

// Verifies a compact JWS (the bearer token, without "Bearer "). On success, the claims. Checks, in this
// order: shape (each part canonical base64url), alg, crit (absent), kid, signature, aud (a string or an
// array holding it), tid, iss, azp (else appid), exp, nbf; ids (and the tenant in iss) compare
// case-insensitively. Never throws (any failure to parse is Malformed).
std::variant<boost::json::object, JwtError> verify_jwt(std::string_view token, const KeySet& keys,
                                                       const JwtExpectations& expect);

}  // namespace azmp
