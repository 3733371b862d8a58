// Test helpers (header-only, no GoogleTest): RSA keys made with OpenSSL, their JWKS, and compact JWS
// tokens signed the way Entra signs the bearer token of Azure's webhook calls. Used by the core and
// azure test suites and by the JWT benchmark.
#pragma once

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace azmp::jwt_test {

inline constexpr std::string_view kTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
inline constexpr std::string_view kAudience = "b0a9a8d9-1111-2222-3333-444455556666";
inline constexpr std::string_view kMarketplaceApp = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";
inline constexpr std::string_view kLoginUrl = "https://login.microsoftonline.com";

struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

struct TestKey {
    Pkey pkey;
    std::string kid;
};

// Standard base64 by EVP_EncodeBlock, then to the URL alphabet without padding.
inline std::string b64url(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (auto& c : out) {
        if (c == '+') c = '-';
        else if (c == '/') c = '_';
    }
    return out;
}

inline Pkey generate_rsa(unsigned bits = 2048) {
    EVP_PKEY* k = EVP_RSA_gen(bits);
    if (k == nullptr) throw std::runtime_error("EVP_RSA_gen failed");
    return Pkey(k);
}

inline TestKey make_key(std::string kid, unsigned bits = 2048) { return TestKey{generate_rsa(bits), std::move(kid)}; }

inline std::string bn_param_b64url(const EVP_PKEY* k, const char* name) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(k, name, &bn) != 1) throw std::runtime_error("EVP_PKEY_get_bn_param failed");
    std::string bytes(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(bytes.data()));
    BN_free(bn);
    return b64url(bytes);
}

// The key's JWK as Entra publishes it (kty, use, kid, x5t, n, e).
inline boost::json::object jwk(const TestKey& k) {
    return boost::json::object{{"kty", "RSA"},
                               {"use", "sig"},
                               {"kid", k.kid},
                               {"x5t", k.kid},
                               {"n", bn_param_b64url(k.pkey.get(), OSSL_PKEY_PARAM_RSA_N)},
                               {"e", bn_param_b64url(k.pkey.get(), OSSL_PKEY_PARAM_RSA_E)}};
}

inline std::string jwks(const std::vector<const TestKey*>& keys) {
    boost::json::array arr;
    for (const auto* k : keys) arr.push_back(jwk(*k));
    return boost::json::serialize(boost::json::object{{"keys", std::move(arr)}});
}

inline std::string sign_rs256(EVP_PKEY* k, std::string_view input) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    std::size_t len = 0;
    std::string sig;
    bool ok = ctx != nullptr && EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, k) == 1 &&
              EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                             input.size()) == 1;
    if (ok) {
        sig.resize(len);
        ok = EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                            reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
        sig.resize(len);
    }
    EVP_MD_CTX_free(ctx);
    if (!ok) throw std::runtime_error("EVP_DigestSign failed");
    return sig;
}

inline std::string hmac_sha256(std::string_view key, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
             data.size(), out, &len) == nullptr)
        throw std::runtime_error("HMAC failed");
    return std::string(reinterpret_cast<const char*>(out), len);
}

// The public key as PEM (SubjectPublicKeyInfo): what an HS256 key-confusion attack uses as the secret.
inline std::string public_key_pem(EVP_PKEY* k) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (bio == nullptr || PEM_write_bio_PUBKEY(bio, k) != 1) {
        BIO_free(bio);
        throw std::runtime_error("PEM_write_bio_PUBKEY failed");
    }
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return pem;
}

inline std::string signing_input(const boost::json::object& header, const boost::json::object& claims) {
    return b64url(boost::json::serialize(header)) + "." + b64url(boost::json::serialize(claims));
}

inline boost::json::object rs256_header(std::string_view kid) {
    return boost::json::object{{"typ", "JWT"}, {"alg", "RS256"}, {"x5t", kid}, {"kid", kid}};
}

// header.claims signed with `signer` (RS256), the header naming `kid`.
inline std::string sign_token(const TestKey& signer, const boost::json::object& claims, std::string_view kid) {
    const std::string input = signing_input(rs256_header(kid), claims);
    return input + "." + b64url(sign_rs256(signer.pkey.get(), input));
}

inline std::string sign_token(const TestKey& signer, const boost::json::object& claims) {
    return sign_token(signer, claims, signer.kid);
}

// Claims of an app-only token Entra issues to the marketplace (v1: appid, v2: azp) for our app.
// A v2 token's iss is {login_url}/{tenant}/v2.0: login_url is the authority the verifier is configured
// with (a loopback server in the azure tests).
inline boost::json::object entra_claims(std::int64_t now, bool v2 = false,
                                        std::string_view login_url = kLoginUrl) {
    const std::string tenant(kTenant);
    boost::json::object c{
        {"aud", kAudience},
        {"iss", v2 ? std::string(login_url) + "/" + tenant + "/v2.0" : "https://sts.windows.net/" + tenant + "/"},
        {"iat", now - 60},
        {"nbf", now - 60},
        {"exp", now + 3540},
        {"aio", "E2RgYJjP/Rn5uLmEn2ZGxnXfX4R7AQA="},
        {"idp", "https://sts.windows.net/" + tenant + "/"},
        {"oid", "5b27c6a2-7d55-4a79-a0f8-c3c4a6d5a6b1"},
        {"rh", "0.AXkAv4j5cvGGr0GRqy180BHbR9mo1bARESIzM0RERFVVZmZ5AAA."},
        {"sub", "5b27c6a2-7d55-4a79-a0f8-c3c4a6d5a6b1"},
        {"tid", kTenant},
        {"uti", "pIz2mBx4WkS0xDm2h4RjAA"},
        {"ver", v2 ? "2.0" : "1.0"}};
    if (v2) {
        c["azp"] = kMarketplaceApp;
        c["azpacr"] = "2";
    } else {
        c["appid"] = kMarketplaceApp;
        c["appidacr"] = "2";
    }
    return c;
}

}  // namespace azmp::jwt_test
