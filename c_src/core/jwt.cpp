// Checking the bearer JWT of Azure's webhook calls: RS256 only, against the tenant's keys, then the
// claims Entra puts in a token for the marketplace (aud, tid, azp / appid, exp, nbf).
#include "azmp/jwt.hpp"

#include <boost/json/monotonic_resource.hpp>

#include <algorithm>
#include <cmath>

#include "base64url.hpp"
#include "json_util.hpp"
#include "text_util.hpp"

namespace azmp {
namespace {

namespace json = boost::json;

// Entra's app-only tokens are 1-2 KB; anything this large is not one and is not worth parsing.
constexpr std::size_t kMaxTokenSize = 64 * 1024;

struct Parts {
    std::string_view header_b64, payload_b64, signature_b64;
    std::string_view signing_input;  // header_b64 "." payload_b64
};

// Exactly three dot-separated parts (a compact JWS; the signature part may be empty).
std::optional<Parts> split(std::string_view token) {
    if (token.empty() || token.size() > kMaxTokenSize) return std::nullopt;
    const auto d1 = token.find('.');
    if (d1 == std::string_view::npos) return std::nullopt;
    const auto d2 = token.find('.', d1 + 1);
    if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos) return std::nullopt;
    Parts p;
    p.header_b64 = token.substr(0, d1);
    p.payload_b64 = token.substr(d1 + 1, d2 - d1 - 1);
    p.signature_b64 = token.substr(d2 + 1);
    p.signing_input = token.substr(0, d2);
    if (p.header_b64.empty() || p.payload_b64.empty()) return std::nullopt;
    return p;
}

// A base64url part holding a JSON object (its storage from `sp`).
std::optional<json::object> json_part(std::string_view b64, json::storage_ptr sp) {
    std::string text;
    if (!detail::base64url_decode(b64, text)) return std::nullopt;
    auto v = detail::parse_json(text, std::move(sp));
    if (!v || !v->is_object()) return std::nullopt;
    return std::move(v->get_object());
}

std::optional<std::string_view> string_member(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_string()) return std::nullopt;
    const auto& s = v->get_string();
    return std::string_view(s.data(), s.size());
}

// A NumericDate (RFC 7519): integer or fractional seconds.
std::optional<double> numeric_date(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr) return std::nullopt;
    if (v->is_int64()) return static_cast<double>(v->get_int64());
    if (v->is_uint64()) return static_cast<double>(v->get_uint64());
    if (v->is_double() && std::isfinite(v->get_double())) return v->get_double();
    return std::nullopt;
}

// GUIDs (client ids, tenant ids) compare without regard to case.
bool audience_ok(const json::object& claims, std::string_view audience) {
    const auto* aud = claims.if_contains("aud");
    if (aud == nullptr || audience.empty()) return false;
    auto matches = [&](const json::value& v) {
        return v.is_string() && detail::iequals(std::string_view(v.get_string().data(), v.get_string().size()), audience);
    };
    if (aud->is_array()) return std::any_of(aud->get_array().begin(), aud->get_array().end(), matches);
    return matches(*aud);
}

// Entra's two issuer forms for the tenant, exactly: v1 "https://sts.windows.net/{tenant}/" and v2
// "{login_url}/{tenant}/v2.0". Only the tenant compares without case (a GUID, as tid); a prefix or
// suffix that merely contains one of the forms does not pass.
bool issuer_ok(const json::object& claims, const JwtExpectations& expect) {
    const auto iss = string_member(claims, "iss");
    if (!iss || expect.tenant_id.empty()) return false;
    auto form = [&](std::string_view prefix, std::string_view suffix) {
        const std::size_t n = expect.tenant_id.size();
        return iss->size() == prefix.size() + n + suffix.size() && iss->starts_with(prefix) &&
               iss->ends_with(suffix) && detail::iequals(iss->substr(prefix.size(), n), expect.tenant_id);
    };
    if (form("https://sts.windows.net/", "/")) return true;
    if (expect.login_url.empty()) return false;  // no authority configured: no v2 form to compare with
    std::string_view login = expect.login_url;
    while (!login.empty() && login.back() == '/') login.remove_suffix(1);
    return form(std::string(login) + "/", "/v2.0");
}

bool app_ok(const json::object& claims, const std::vector<std::string>& authorized) {
    // v2 tokens name the calling app in azp, v1 tokens in appid; azp wins when both are present.
    auto app = string_member(claims, "azp");
    if (!app) app = string_member(claims, "appid");
    if (!app || app->empty()) return false;
    return std::any_of(authorized.begin(), authorized.end(),
                       [&](const std::string& a) { return detail::iequals(a, *app); });
}

std::variant<json::object, JwtError> verify(std::string_view token, const KeySet& keys, const JwtExpectations& expect) {
    auto parts = split(token);
    if (!parts) return JwtError::Malformed;
    // The header is read here and dropped with this frame: its tree in an arena on the stack (the
    // heap only if it is larger than Entra's).
    unsigned char arena[2048];
    json::monotonic_resource header_storage(arena, sizeof arena);
    auto header = json_part(parts->header_b64, json::storage_ptr(&header_storage));
    if (!header) return JwtError::Malformed;
    // Only RS256, exactly: "none", HS256 (with the public key as the secret), RS384, PS256... all fail
    // here, before any key is looked at.
    if (string_member(*header, "alg") != std::optional<std::string_view>("RS256")) return JwtError::BadAlgorithm;
    // RFC 7515 §4.1.11: crit lists extensions the recipient must understand, or reject the token. We
    // implement none (and Entra uses none), so any crit at all, well-formed or not, is a refusal.
    if (header->contains("crit")) return JwtError::UnsupportedCrit;
    std::string signature;
    if (!detail::base64url_decode(parts->signature_b64, signature)) return JwtError::Malformed;
    std::string payload;
    if (!detail::base64url_decode(parts->payload_b64, payload)) return JwtError::Malformed;
    const auto kid = string_member(*header, "kid");
    if (!kid) return JwtError::UnknownKey;
    const auto key = keys.find(*kid);
    if (key == keys.end()) return JwtError::UnknownKey;
    if (!key->second->verify_rs256(parts->signing_input, signature)) return JwtError::BadSignature;

    // Signed by the tenant: now the claims.
    auto parsed = detail::parse_json(payload);
    if (!parsed || !parsed->is_object()) return JwtError::Malformed;
    json::object& claims = parsed->get_object();
    if (!audience_ok(claims, expect.audience)) return JwtError::WrongAudience;
    const auto tid = string_member(claims, "tid");
    if (!tid || tid->empty() || !detail::iequals(*tid, expect.tenant_id)) return JwtError::WrongTenant;
    if (!issuer_ok(claims, expect)) return JwtError::WrongIssuer;
    if (!app_ok(claims, expect.authorized_apps)) return JwtError::WrongApp;
    const double now = static_cast<double>(expect.now);
    const double skew = static_cast<double>(std::max<std::int64_t>(expect.skew_s, 0));
    // exp is required: a token without a usable lifetime is treated as expired.
    const auto exp = numeric_date(claims, "exp");
    if (!exp || !(*exp > now - skew)) return JwtError::Expired;
    if (claims.contains("nbf")) {
        const auto nbf = numeric_date(claims, "nbf");
        if (!nbf || !(*nbf <= now + skew)) return JwtError::NotYetValid;
    }
    return std::move(claims);
}

}  // namespace

std::string_view jwt_error_name(JwtError e) noexcept {
    switch (e) {
        case JwtError::Malformed: return "malformed";
        case JwtError::BadAlgorithm: return "bad_algorithm";
        case JwtError::UnsupportedCrit: return "unsupported_crit";
        case JwtError::UnknownKey: return "unknown_key";
        case JwtError::BadSignature: return "bad_signature";
        case JwtError::WrongAudience: return "wrong_audience";
        case JwtError::WrongTenant: return "wrong_tenant";
        case JwtError::WrongIssuer: return "wrong_issuer";
        case JwtError::WrongApp: return "wrong_app";
        case JwtError::Expired: return "expired";
        case JwtError::NotYetValid: return "not_yet_valid";
    }
    return "malformed";
}

std::optional<std::string> jwt_kid(std::string_view token) {
    try {
        auto parts = split(token);
        if (!parts) return std::nullopt;
        auto header = json_part(parts->header_b64, json::make_shared_resource<json::monotonic_resource>());
        if (!header) return std::nullopt;
        auto kid = string_member(*header, "kid");
        if (!kid) return std::nullopt;
        return std::string(*kid);
    } catch (...) {
        return std::nullopt;
    }
}

std::variant<json::object, JwtError> verify_jwt(std::string_view token, const KeySet& keys,
                                                const JwtExpectations& expect) {
    try {
        return verify(token, keys, expect);
    } catch (...) {
        return JwtError::Malformed;
    }
}

}  // namespace azmp
