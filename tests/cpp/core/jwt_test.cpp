#include "azmp/jwt.hpp"

#include <gtest/gtest.h>

#include <cctype>

#include "../../../c_src/core/base64url.hpp"
#include "jwt_test_util.hpp"

namespace azmp {
namespace {

namespace json = boost::json;
using namespace jwt_test;

constexpr std::int64_t kNow = 1767225600;  // 2026-01-01T00:00:00Z

// Two keys made once per process (RSA key generation is the slow part of these tests).
const TestKey& key_a() {
    static const TestKey k = make_key("kid-A-nOo3ZDrODXEK1jKWhXslHR_KXEg");
    return k;
}
const TestKey& key_b() {
    static const TestKey k = make_key("kid-B-l3sQ-50cCH4xBVZLHTGwnSR7680");
    return k;
}

KeySet keys_ab() {
    auto ks = parse_jwks(jwks({&key_a(), &key_b()}));
    if (!ks) throw std::runtime_error("parse_jwks failed on a good JWKS");
    return *ks;
}

JwtExpectations expect(std::int64_t now = kNow) {
    JwtExpectations e;
    e.audience = std::string(kAudience);
    e.tenant_id = std::string(kTenant);
    e.login_url = std::string(kLoginUrl);
    e.authorized_apps = {std::string(kMarketplaceApp)};
    e.now = now;
    e.skew_s = 300;
    return e;
}

std::optional<JwtError> error_of(const std::variant<json::object, JwtError>& r) {
    if (const auto* e = std::get_if<JwtError>(&r)) return *e;
    return std::nullopt;
}

#define EXPECT_JWT_OK(r)                                                                               \
    EXPECT_TRUE(std::holds_alternative<json::object>(r))                                               \
        << "error: " << jwt_error_name(std::get<JwtError>(r))

TEST(Base64Url, RoundTripsEveryTailLength) {
    std::string bytes;
    for (int len = 0; len < 40; ++len) {
        std::string decoded;
        ASSERT_TRUE(detail::base64url_decode(b64url(bytes), decoded)) << len;
        EXPECT_EQ(decoded, bytes) << len;  // padding bytes are not counted as data
        bytes.push_back(static_cast<char>(0xf0 + len % 16));
    }
}

TEST(Base64Url, RejectsWhatIsNotBase64Url) {
    std::string out = "stale";
    EXPECT_FALSE(detail::base64url_decode("A", out));  // 6 bits
    EXPECT_TRUE(out.empty());
    for (std::string_view bad : {"AB==", "A+B/", "AB C", " ABC", "ABC\n", "AB.C", "ABCDE"})
        EXPECT_FALSE(detail::base64url_decode(bad, out)) << bad;
    EXPECT_TRUE(detail::base64url_decode("-_-_", out));
    EXPECT_EQ(out, "\xfb\xff\xbf");
}

// Canonical text only: the bits of the last character that carry no data must be zero, or one byte
// string has several encodings (4 for a 2-character tail, 16 for a 3-character one... per RFC 4648
// §3.5 a decoder may reject them, and for a signed token it must: the text is what gets signed).
TEST(Base64Url, OnlyCanonicalTextDecodes) {
    struct Row {
        std::string_view text;
        bool ok;
    };
    const Row rows[] = {
        {"AA", true},     {"AQ", true},    {"AR", false},   {"AB", false},   {"AP", false},  // 4 spare bits
        {"_w", true},     {"_x", false},   {"-_", false},                                    // 0xff: "_w"
        {"AAA", true},    {"AAE", true},   {"AAB", false},  {"AAF", false},  {"AAH", false},  // 2 spare bits
        {"__8", true},    {"__9", false},  {"___", false},                                   // 0xffff: "__8"
        {"AAAA", true},   {"____", true},                                                    // no spare bits
        {"AAAAAQ", true}, {"AAAAAR", false}, {"AAAAAAE", true}, {"AAAAAAF", false},
        {"AQ==", false},  {"AQ=", false},  {"AAE=", false}, {"A+", false},  {"A/", false},  {"AQ\n", false},
    };
    for (const auto& r : rows) {
        std::string out = "stale";
        EXPECT_EQ(detail::base64url_decode(r.text, out), r.ok) << r.text;
        if (!r.ok) {
            EXPECT_TRUE(out.empty()) << r.text;
        }
    }
}

// The decoder as it was (the standard alphabet, padded, through EVP_DecodeBlock), kept as the
// reference the one-pass decoder must agree with on every input.
bool reference_decode(std::string_view in, std::string& out) {
    out.clear();
    if (in.size() % 4 == 1) return false;
    if (in.empty()) return true;
    std::string b64;
    for (char c : in) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) b64.push_back(c);
        else if (c == '-') b64.push_back('+');
        else if (c == '_') b64.push_back('/');
        else return false;
    }
    auto sextet = [](char c) -> unsigned {
        if (c >= 'A' && c <= 'Z') return static_cast<unsigned>(c - 'A');
        if (c >= 'a' && c <= 'z') return static_cast<unsigned>(c - 'a') + 26;
        if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0') + 52;
        return c == '+' ? 62U : 63U;
    };
    if (const std::size_t tail = b64.size() % 4; tail != 0 && (sextet(b64.back()) & (tail == 2 ? 0x0fU : 0x03U)) != 0)
        return false;
    const std::size_t pad = (4 - b64.size() % 4) % 4;
    b64.append(pad, '=');
    out.resize(b64.size() / 4 * 3);
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
    if (n < 0 || static_cast<std::size_t>(n) < pad) {
        out.clear();
        return false;
    }
    out.resize(static_cast<std::size_t>(n) - pad);
    return true;
}

TEST(Base64Url, AgreesWithTheReferenceDecoder) {
    // Every text of up to 3 characters over an alphabet that includes the edges of each range and
    // bytes outside base64url, then random texts of every length up to 64.
    static constexpr char kChars[] = "AZaz09-_+/= .\x80\xff\x00" "Bb";
    const std::string chars(kChars, sizeof kChars - 1);
    auto check = [](const std::string& text) {
        std::string got = "stale", want;
        const bool ok = detail::base64url_decode(text, got);
        ASSERT_EQ(ok, reference_decode(text, want)) << text;
        ASSERT_EQ(got, want) << text;
    };
    std::string t;
    check(t);
    for (char a : chars) {
        check(std::string{a});
        for (char b : chars) {
            check(std::string{a, b});
            for (char c : chars) check(std::string{a, b, c});
        }
    }
    std::uint32_t x = 12345;
    auto next = [&x] { return x = x * 1103515245U + 12345U, (x >> 16) & 0x7fffU; };
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (int i = 0; i < 20000; ++i) {
        std::string text(next() % 65, 'A');
        for (char& c : text) c = alphabet[next() % alphabet.size()];
        if (!text.empty() && next() % 8 == 0) text[next() % text.size()] = chars[next() % chars.size()];
        check(text);
    }
}

TEST(Jwks, ParsesRsaSigningKeys) {
    auto ks = parse_jwks(jwks({&key_a(), &key_b()}));
    ASSERT_TRUE(ks);
    EXPECT_EQ(ks->size(), 2u);
    EXPECT_TRUE(ks->contains(key_a().kid));
    EXPECT_TRUE(ks->contains(key_b().kid));
}

TEST(Jwks, SkipsKeysThatAreNotRsaSigningKeys) {
    json::object enc = jwk(key_b());
    enc["use"] = "enc";
    enc["kid"] = "enc-key";
    json::object ec{{"kty", "EC"}, {"use", "sig"}, {"kid", "ec-key"}, {"crv", "P-256"},
                    {"x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"},
                    {"y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}};
    json::object rs384 = jwk(key_b());
    rs384["alg"] = "RS384";
    rs384["kid"] = "rs384-key";
    json::object no_kid = jwk(key_b());
    no_kid.erase("kid");
    json::object bad_n = jwk(key_b());
    bad_n["n"] = "not base64url!";
    bad_n["kid"] = "bad-n";
    json::object small = jwk(key_b());
    small["n"] = b64url(std::string(128, '\xff'));  // 1024 bits: too small
    small["kid"] = "small";
    json::object with_alg = jwk(key_a());
    with_alg["alg"] = "RS256";
    json::object doc{{"keys", json::array{enc, ec, rs384, no_kid, bad_n, small, 42, "x", with_alg}}};
    auto ks = parse_jwks(json::serialize(doc));
    ASSERT_TRUE(ks);
    EXPECT_EQ(ks->size(), 1u);
    EXPECT_TRUE(ks->contains(key_a().kid));
}

TEST(Jwks, MalformedDocumentsGiveNothing) {
    EXPECT_FALSE(parse_jwks(""));
    EXPECT_FALSE(parse_jwks("not json"));
    EXPECT_FALSE(parse_jwks("{\"keys\":"));
    EXPECT_FALSE(parse_jwks("[]"));
    EXPECT_FALSE(parse_jwks("{}"));
    EXPECT_FALSE(parse_jwks("{\"keys\":{}}"));
    EXPECT_FALSE(parse_jwks("{\"keys\":\"abc\"}"));
    auto empty = parse_jwks("{\"keys\":[]}");
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->empty());
}

TEST(Jwt, ValidV1TokenWithAppid) {
    const auto claims = entra_claims(kNow, false);
    auto r = verify_jwt(sign_token(key_a(), claims), keys_ab(), expect());
    EXPECT_JWT_OK(r);
    if (auto* c = std::get_if<json::object>(&r)) {
        EXPECT_EQ(c->at("appid").as_string(), kMarketplaceApp);
        EXPECT_EQ(c->at("ver").as_string(), "1.0");
    }
}

TEST(Jwt, ValidV2TokenWithAzp) {
    auto r = verify_jwt(sign_token(key_b(), entra_claims(kNow, true)), keys_ab(), expect());
    EXPECT_JWT_OK(r);
}

TEST(Jwt, AudienceMayBeAnArray) {
    auto claims = entra_claims(kNow);
    claims["aud"] = json::array{"api://something-else", kAudience};
    EXPECT_JWT_OK(verify_jwt(sign_token(key_a(), claims), keys_ab(), expect()));
    claims["aud"] = json::array{"api://something-else", 7};
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), claims), keys_ab(), expect())), JwtError::WrongAudience);
}

TEST(Jwt, FractionalTimesAreAccepted) {
    auto claims = entra_claims(kNow);
    claims["exp"] = static_cast<double>(kNow) + 100.5;
    claims["nbf"] = static_cast<double>(kNow) - 10.25;
    EXPECT_JWT_OK(verify_jwt(sign_token(key_a(), claims), keys_ab(), expect()));
}

TEST(Jwt, MalformedTokens) {
    const auto ks = keys_ab();
    const std::string good = sign_token(key_a(), entra_claims(kNow));
    const auto d1 = good.find('.');
    const auto d2 = good.find('.', d1 + 1);
    for (std::string_view bad : {"", "abc", "a.b", "a.b.c.d", "..", ".a.b", "a..b", "***.***.***", "!!!!"}) {
        EXPECT_EQ(error_of(verify_jwt(bad, ks, expect())), JwtError::Malformed) << bad;
        EXPECT_FALSE(jwt_kid(bad)) << bad;
    }
    EXPECT_EQ(error_of(verify_jwt(good + ".", ks, expect())), JwtError::Malformed);
    // Bad base64url: standard alphabet, padding, whitespace, an impossible length.
    EXPECT_EQ(error_of(verify_jwt(good.substr(0, d1) + "=" + good.substr(d1), ks, expect())), JwtError::Malformed);
    EXPECT_EQ(error_of(verify_jwt(good.substr(0, d2 + 1) + "+/" + good.substr(d2 + 3), ks, expect())),
              JwtError::Malformed);
    EXPECT_EQ(error_of(verify_jwt(good.substr(0, d2 + 1) + "AAA" + good.substr(d2 + 1), ks, expect())),
              JwtError::Malformed);  // 342 + 3 characters: not a length base64 can have
    EXPECT_EQ(error_of(verify_jwt(" " + good, ks, expect())), JwtError::Malformed);
    // Header that is not JSON, or JSON but not an object.
    const std::string rest = good.substr(d1);
    EXPECT_EQ(error_of(verify_jwt(b64url("{\"alg\":\"RS256\"") + rest, ks, expect())), JwtError::Malformed);
    EXPECT_EQ(error_of(verify_jwt(b64url("[\"RS256\"]") + rest, ks, expect())), JwtError::Malformed);
    // A correctly signed payload that is not a JSON object.
    for (std::string_view payload : {"not json", "[1,2]", "\"str\""}) {
        const std::string input = b64url(json::serialize(rs256_header(key_a().kid))) + "." + b64url(payload);
        const std::string tok = input + "." + b64url(sign_rs256(key_a().pkey.get(), input));
        EXPECT_EQ(error_of(verify_jwt(tok, ks, expect())), JwtError::Malformed) << payload;
    }
}

// The same base64url text with the spare bits of its last character set: it decodes (leniently) to the
// same bytes, but it is not the canonical encoding. `b64` must end in 2 or 3 characters past a group.
std::string non_canonical(std::string b64) {
    static constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (b64.size() % 4 < 2) throw std::logic_error("no spare bits to set");
    const auto i = kAlphabet.find(b64.back());
    b64.back() = kAlphabet[i | 1];  // the lowest bit is always a spare one for such a tail
    return b64;
}

// `o` with a filler member grown until its base64url text ends in `tail` characters past a group.
json::object with_tail(json::object o, std::size_t tail) {
    std::string fill;
    o["fill"] = fill;
    while (b64url(json::serialize(o)).size() % 4 != tail) {
        fill.push_back('x');
        o["fill"] = fill;
    }
    return o;
}

// A part of a validly signed token written in a non-canonical base64url: Malformed, whichever part.
// (A header or payload re-encoded this way is signed as such: only the canonical check catches it.)
TEST(Jwt, NonCanonicalBase64UrlIsMalformed) {
    enum class Part { Header, Payload, Signature };
    struct Row {
        const char* name;
        Part part;
        std::size_t tail;  // characters past the last group of 4 in that part
    };
    const Row rows[] = {
        {"header, 2-character tail", Part::Header, 2},
        {"header, 3-character tail", Part::Header, 3},
        {"payload, 2-character tail", Part::Payload, 2},
        {"payload, 3-character tail", Part::Payload, 3},
        {"signature (256 bytes: 342 characters, a 2-character tail)", Part::Signature, 2},
    };
    const auto ks = keys_ab();
    for (const auto& r : rows) {
        json::object header = rs256_header(key_a().kid);
        json::object claims = entra_claims(kNow);
        if (r.part == Part::Header) header = with_tail(header, r.tail);
        if (r.part == Part::Payload) claims = with_tail(claims, r.tail);
        std::string h = b64url(json::serialize(header));
        std::string p = b64url(json::serialize(claims));
        if (r.part == Part::Header) h = non_canonical(h);
        if (r.part == Part::Payload) p = non_canonical(p);
        const std::string input = h + "." + p;
        std::string sig = b64url(sign_rs256(key_a().pkey.get(), input));
        ASSERT_EQ(sig.size() % 4, 2u);
        // The canonical form of the same token is accepted: only the encoding is at fault.
        const std::string canonical = b64url(json::serialize(header)) + "." + b64url(json::serialize(claims));
        EXPECT_JWT_OK(verify_jwt(canonical + "." + b64url(sign_rs256(key_a().pkey.get(), canonical)), ks, expect()))
            << r.name;
        if (r.part == Part::Signature) sig = non_canonical(sig);
        EXPECT_EQ(error_of(verify_jwt(input + "." + sig, ks, expect())), JwtError::Malformed) << r.name;
    }
}

// RFC 7515 §4.1.11: a crit header names extensions the recipient must understand or reject the token.
// We implement none, and Entra sends no crit: any crit at all is refused (before any key is used).
TEST(Jwt, CritHeaderIsRefused) {
    struct Row {
        const char* name;
        json::value crit;
        json::object extra;  // other header members
    };
    const Row rows[] = {
        {"an extension we do not know, present", json::array{"urn:example:ext"}, {{"urn:example:ext", true}}},
        {"a registered name (exp) listed as critical", json::array{"exp"}, {{"exp", kNow + 60}}},
        {"b64 (RFC 7797): unencoded payload", json::array{"b64"}, {{"b64", false}}},
        {"an empty list (RFC 7515: must not be)", json::array{}, {}},
        {"not a list", "exp", {}},
        {"null", nullptr, {}},
    };
    for (const auto& r : rows) {
        json::object header = rs256_header(key_a().kid);
        for (const auto& [k, v] : r.extra) header[k] = v;
        header["crit"] = r.crit;
        const std::string input = signing_input(header, entra_claims(kNow));
        const std::string tok = input + "." + b64url(sign_rs256(key_a().pkey.get(), input));
        EXPECT_EQ(error_of(verify_jwt(tok, keys_ab(), expect())), JwtError::UnsupportedCrit) << r.name;
        // Refused before the key set is consulted: an empty one gives the same answer.
        EXPECT_EQ(error_of(verify_jwt(tok, KeySet{}, expect())), JwtError::UnsupportedCrit) << r.name;
    }
}

// iss: Entra's v1 form https://sts.windows.net/{tenant}/ or the v2 form {login_url}/{tenant}/v2.0,
// exactly; the tenant compares without case (it is a GUID), nothing else does.
TEST(Jwt, IssuerMustBeEntraForOurTenant) {
    const std::string t(kTenant);
    std::string upper = t;
    for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    const std::string other = "00000000-0000-0000-0000-000000000009";
    struct Row {
        const char* name;
        std::optional<json::value> iss;  // nothing: no iss claim
        bool ok;
    };
    const Row rows[] = {
        {"v1", json::value("https://sts.windows.net/" + t + "/"), true},
        {"v2", json::value("https://login.microsoftonline.com/" + t + "/v2.0"), true},
        {"v1, tenant in upper case", json::value("https://sts.windows.net/" + upper + "/"), true},
        {"v2, tenant in upper case", json::value("https://login.microsoftonline.com/" + upper + "/v2.0"), true},
        {"v1, other tenant", json::value("https://sts.windows.net/" + other + "/"), false},
        {"v2, other tenant", json::value("https://login.microsoftonline.com/" + other + "/v2.0"), false},
        {"v1, other host", json::value("https://sts.windows.example/" + t + "/"), false},
        {"v2, other host", json::value("https://login.example.com/" + t + "/v2.0"), false},
        {"v1 host as a prefix of another", json::value("https://sts.windows.net.example.com/" + t + "/"), false},
        {"http, not https", json::value("http://sts.windows.net/" + t + "/"), false},
        {"v1 without its trailing slash", json::value("https://sts.windows.net/" + t), false},
        {"v1 with more after it", json::value("https://sts.windows.net/" + t + "/x"), false},
        {"v2 without /v2.0", json::value("https://login.microsoftonline.com/" + t + "/"), false},
        {"v2 with a trailing slash", json::value("https://login.microsoftonline.com/" + t + "/v2.0/"), false},
        {"v2 path on the v1 host", json::value("https://sts.windows.net/" + t + "/v2.0"), false},
        {"tenant as a prefix", json::value("https://sts.windows.net/" + t + "0/"), false},
        {"common", json::value("https://login.microsoftonline.com/common/v2.0"), false},
        {"empty", json::value(""), false},
        {"not a string", json::value(42), false},
        {"missing", std::nullopt, false},
    };
    for (const auto& r : rows) {
        for (bool v2 : {false, true}) {
            auto c = entra_claims(kNow, v2);
            if (r.iss) c["iss"] = *r.iss;
            else c.erase("iss");
            const auto res = verify_jwt(sign_token(key_a(), c), keys_ab(), expect());
            if (r.ok) {
                EXPECT_JWT_OK(res) << r.name << (v2 ? " (v2 token)" : " (v1 token)");
            } else {
                EXPECT_EQ(error_of(res), JwtError::WrongIssuer) << r.name << (v2 ? " (v2 token)" : " (v1 token)");
            }
        }
    }
}

// The v2 issuer follows the configured authority (a national cloud, or the emulator), trailing
// slashes aside; with no authority configured only the v1 form is accepted.
TEST(Jwt, IssuerV2FollowsTheConfiguredLoginUrl) {
    const std::string t(kTenant);
    struct Row {
        const char* name;
        std::string login_url;
        std::string iss;
        bool ok;
    };
    const Row rows[] = {
        {"national cloud", "https://login.microsoftonline.us", "https://login.microsoftonline.us/" + t + "/v2.0", true},
        {"loopback emulator", "https://127.0.0.1:8481", "https://127.0.0.1:8481/" + t + "/v2.0", true},
        {"login_url with trailing slashes", "https://127.0.0.1:8481//", "https://127.0.0.1:8481/" + t + "/v2.0", true},
        {"public cloud token, emulator configured", "https://127.0.0.1:8481",
         "https://login.microsoftonline.com/" + t + "/v2.0", false},
        {"no login_url: v1 still accepted", "", "https://sts.windows.net/" + t + "/", true},
        {"no login_url: no v2 form", "", "/" + t + "/v2.0", false},
    };
    for (const auto& r : rows) {
        auto c = entra_claims(kNow, true);
        c["iss"] = r.iss;
        auto e = expect();
        e.login_url = r.login_url;
        const auto res = verify_jwt(sign_token(key_a(), c), keys_ab(), e);
        if (r.ok) {
            EXPECT_JWT_OK(res) << r.name;
        } else {
            EXPECT_EQ(error_of(res), JwtError::WrongIssuer) << r.name;
        }
    }
}

TEST(Jwt, KidIsReadFromTheHeader) {
    EXPECT_EQ(jwt_kid(sign_token(key_a(), entra_claims(kNow))), key_a().kid);
    EXPECT_EQ(jwt_kid(sign_token(key_a(), entra_claims(kNow), "other")), "other");
    const std::string no_kid = b64url("{\"alg\":\"RS256\"}") + ".e30.";
    EXPECT_FALSE(jwt_kid(no_kid));
}

TEST(Jwt, AlgNoneIsRefused) {
    json::object header{{"typ", "JWT"}, {"alg", "none"}, {"kid", key_a().kid}};
    const std::string tok = signing_input(header, entra_claims(kNow)) + ".";
    EXPECT_EQ(error_of(verify_jwt(tok, keys_ab(), expect())), JwtError::BadAlgorithm);
    header["alg"] = "None";
    EXPECT_EQ(error_of(verify_jwt(signing_input(header, entra_claims(kNow)) + ".", keys_ab(), expect())),
              JwtError::BadAlgorithm);
    header.erase("alg");
    EXPECT_EQ(error_of(verify_jwt(signing_input(header, entra_claims(kNow)) + ".", keys_ab(), expect())),
              JwtError::BadAlgorithm);
}

TEST(Jwt, Hs256WithThePublicKeyAsSecretIsRefused) {
    json::object header{{"typ", "JWT"}, {"alg", "HS256"}, {"kid", key_a().kid}};
    const std::string input = signing_input(header, entra_claims(kNow));
    const std::string pem = public_key_pem(key_a().pkey.get());
    ASSERT_NE(pem.find("BEGIN PUBLIC KEY"), std::string::npos);
    const std::string tok = input + "." + b64url(hmac_sha256(pem, input));
    EXPECT_EQ(error_of(verify_jwt(tok, keys_ab(), expect())), JwtError::BadAlgorithm);
    // Also with the JWK's raw modulus as the secret, and other algorithms.
    const std::string tok2 = input + "." + b64url(hmac_sha256(jwk(key_a()).at("n").as_string(), input));
    EXPECT_EQ(error_of(verify_jwt(tok2, keys_ab(), expect())), JwtError::BadAlgorithm);
    for (const char* alg : {"HS384", "HS512", "RS384", "RS512", "PS256", "ES256", "rs256", "RS256 "}) {
        header["alg"] = alg;
        const std::string in = signing_input(header, entra_claims(kNow));
        EXPECT_EQ(error_of(verify_jwt(in + "." + b64url(sign_rs256(key_a().pkey.get(), in)), keys_ab(), expect())),
                  JwtError::BadAlgorithm)
            << alg;
    }
}

TEST(Jwt, TypIsIgnored) {
    json::object header{{"alg", "RS256"}, {"kid", key_a().kid}, {"typ", "at+jwt"}};
    const std::string input = signing_input(header, entra_claims(kNow));
    EXPECT_JWT_OK(verify_jwt(input + "." + b64url(sign_rs256(key_a().pkey.get(), input)), keys_ab(), expect()));
}

TEST(Jwt, SignatureByAnotherKeyWithTheSameKidIsRefused) {
    const TestKey mallory = make_key(key_a().kid);
    EXPECT_EQ(error_of(verify_jwt(sign_token(mallory, entra_claims(kNow)), keys_ab(), expect())),
              JwtError::BadSignature);
    // And key B's signature presented under key A's kid.
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_b(), entra_claims(kNow), key_a().kid), keys_ab(), expect())),
              JwtError::BadSignature);
}

TEST(Jwt, UnknownKidIsUnknownKey) {
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), entra_claims(kNow), "rotated"), keys_ab(), expect())),
              JwtError::UnknownKey);
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), entra_claims(kNow)), KeySet{}, expect())),
              JwtError::UnknownKey);
    const std::string input = b64url("{\"alg\":\"RS256\"}") + "." + b64url(json::serialize(entra_claims(kNow)));
    EXPECT_EQ(error_of(verify_jwt(input + "." + b64url(sign_rs256(key_a().pkey.get(), input)), keys_ab(), expect())),
              JwtError::UnknownKey);
}

TEST(Jwt, TamperedTokensAreRefused) {
    const std::string good = sign_token(key_a(), entra_claims(kNow));
    const auto d1 = good.find('.');
    const auto d2 = good.find('.', d1 + 1);
    auto claims = entra_claims(kNow);
    claims["oid"] = "00000000-0000-0000-0000-000000000000";
    const std::string tampered = good.substr(0, d1 + 1) + b64url(json::serialize(claims)) + good.substr(d2);
    EXPECT_EQ(error_of(verify_jwt(tampered, keys_ab(), expect())), JwtError::BadSignature);
    // One flipped signature bit.
    std::string flipped = good;
    flipped[d2 + 10] = flipped[d2 + 10] == 'A' ? 'B' : 'A';
    EXPECT_EQ(error_of(verify_jwt(flipped, keys_ab(), expect())), JwtError::BadSignature);
    // A truncated or empty signature. 336 characters are 252 whole bytes (canonical text, too short a
    // signature); cut anywhere else, the last character's spare bits are most likely not zero.
    EXPECT_EQ(error_of(verify_jwt(good.substr(0, good.size() - 6), keys_ab(), expect())), JwtError::BadSignature);
    EXPECT_TRUE(error_of(verify_jwt(good.substr(0, good.size() - 4), keys_ab(), expect())));
    EXPECT_EQ(error_of(verify_jwt(good.substr(0, d2 + 1), keys_ab(), expect())), JwtError::BadSignature);
}

TEST(Jwt, WrongAudienceTenantOrApp) {
    auto c = entra_claims(kNow);
    c["aud"] = "00000000-0000-0000-0000-000000000001";
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), c), keys_ab(), expect())), JwtError::WrongAudience);
    c.erase("aud");
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), c), keys_ab(), expect())), JwtError::WrongAudience);

    c = entra_claims(kNow);
    c["tid"] = "00000000-0000-0000-0000-000000000002";
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), c), keys_ab(), expect())), JwtError::WrongTenant);
    c.erase("tid");
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), c), keys_ab(), expect())), JwtError::WrongTenant);

    c = entra_claims(kNow, false);
    c["appid"] = "00000000-0000-0000-0000-000000000003";
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), c), keys_ab(), expect())), JwtError::WrongApp);
    c.erase("appid");
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), c), keys_ab(), expect())), JwtError::WrongApp);

    c = entra_claims(kNow, true);
    c["azp"] = "00000000-0000-0000-0000-000000000003";
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), c), keys_ab(), expect())), JwtError::WrongApp);
    // azp names the caller when present: a right appid beside a wrong azp does not help.
    c["appid"] = kMarketplaceApp;
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), c), keys_ab(), expect())), JwtError::WrongApp);
}

TEST(Jwt, IdsCompareWithoutCase) {
    auto c = entra_claims(kNow, true);
    std::string upper(kMarketplaceApp);
    for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    c["azp"] = upper;
    EXPECT_JWT_OK(verify_jwt(sign_token(key_a(), c), keys_ab(), expect()));
}

TEST(Jwt, Expiry) {
    auto c = entra_claims(kNow);
    c["exp"] = kNow - 301;  // beyond the 300 s skew
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), c), keys_ab(), expect())), JwtError::Expired);
    c["exp"] = kNow - 300;  // exp must be after now - skew
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), c), keys_ab(), expect())), JwtError::Expired);
    c["exp"] = kNow - 299;  // expired, but within the skew
    EXPECT_JWT_OK(verify_jwt(sign_token(key_a(), c), keys_ab(), expect()));
    c["exp"] = "9999999999";  // not a number
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), c), keys_ab(), expect())), JwtError::Expired);
    c.erase("exp");  // required
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), c), keys_ab(), expect())), JwtError::Expired);
}

TEST(Jwt, NotBefore) {
    auto c = entra_claims(kNow);
    c["nbf"] = kNow + 301;
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), c), keys_ab(), expect())), JwtError::NotYetValid);
    c["nbf"] = kNow + 300;  // within the skew
    EXPECT_JWT_OK(verify_jwt(sign_token(key_a(), c), keys_ab(), expect()));
    c["nbf"] = nullptr;
    EXPECT_EQ(error_of(verify_jwt(sign_token(key_a(), c), keys_ab(), expect())), JwtError::NotYetValid);
    c.erase("nbf");  // optional
    EXPECT_JWT_OK(verify_jwt(sign_token(key_a(), c), keys_ab(), expect()));
}

TEST(Jwt, ErrorNames) {
    EXPECT_EQ(jwt_error_name(JwtError::Malformed), "malformed");
    EXPECT_EQ(jwt_error_name(JwtError::BadAlgorithm), "bad_algorithm");
    EXPECT_EQ(jwt_error_name(JwtError::UnsupportedCrit), "unsupported_crit");
    EXPECT_EQ(jwt_error_name(JwtError::UnknownKey), "unknown_key");
    EXPECT_EQ(jwt_error_name(JwtError::BadSignature), "bad_signature");
    EXPECT_EQ(jwt_error_name(JwtError::WrongAudience), "wrong_audience");
    EXPECT_EQ(jwt_error_name(JwtError::WrongTenant), "wrong_tenant");
    EXPECT_EQ(jwt_error_name(JwtError::WrongIssuer), "wrong_issuer");
    EXPECT_EQ(jwt_error_name(JwtError::WrongApp), "wrong_app");
    EXPECT_EQ(jwt_error_name(JwtError::Expired), "expired");
    EXPECT_EQ(jwt_error_name(JwtError::NotYetValid), "not_yet_valid");
}

}  // namespace
}  // namespace azmp
