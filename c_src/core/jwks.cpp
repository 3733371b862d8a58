// The tenant's signing keys: a JWKS document to RSA public keys (OpenSSL 3 EVP_PKEY_fromdata).
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <climits>
#include <memory>

#include "azmp/jwt.hpp"
#include "base64url.hpp"
#include "json_util.hpp"

namespace azmp {
namespace {

namespace json = boost::json;

// Entra signs with RSA-2048; smaller moduli are not accepted, absurd ones are not worth the work.
constexpr int kMinModulusBits = 2048;
constexpr int kMaxModulusBits = 16384;

struct BnFree {
    void operator()(BIGNUM* p) const { BN_free(p); }
};
struct BldFree {
    void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
    void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct PkeyCtxFree {
    void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct MdCtxFree {
    void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};

// SHA-256 fetched once: the implicit fetch behind EVP_sha256() costs on every verification.
const EVP_MD* sha256() {
    static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
    return md != nullptr ? md : EVP_sha256();
}

// SHA-256 of `in` with a context kept per thread (EVP_Digest allocates and sets up one per call).
bool digest_sha256(const unsigned char* in, std::size_t len, unsigned char* out, unsigned int* out_len) {
    thread_local const std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    if (!ctx) return EVP_Digest(in, len, out, out_len, sha256(), nullptr) == 1;
    return EVP_DigestInit_ex(ctx.get(), sha256(), nullptr) == 1 && EVP_DigestUpdate(ctx.get(), in, len) == 1 &&
           EVP_DigestFinal_ex(ctx.get(), out, out_len) == 1;
}

class RsaPublicKey final : public PublicKey {
public:
    // Takes ownership of `pkey`.
    explicit RsaPublicKey(EVP_PKEY* pkey) : pkey_(pkey), verify_template_(make_template(pkey)) {}
    ~RsaPublicKey() override {
        EVP_PKEY_CTX_free(verify_template_);
        EVP_PKEY_free(pkey_);
    }
    RsaPublicKey(const RsaPublicKey&) = delete;
    RsaPublicKey& operator=(const RsaPublicKey&) = delete;

    // Safe to call from several threads at once: the key and the template are only read.
    bool verify_rs256(std::string_view signing_input, std::string_view signature) const override {
        const auto* sig = reinterpret_cast<const unsigned char*>(signature.data());
        const auto* in = reinterpret_cast<const unsigned char*>(signing_input.data());
        bool ok = false;
        if (verify_template_ != nullptr) {
            // SHA-256 here, then RSASSA-PKCS1-v1_5 over the digest (DigestInfo for SHA-256 checked) with
            // a copy of the context prepared once: OpenSSL 3's per-call EVP_DigestVerifyInit costs
            // about as much again as the RSA operation's setup.
            unsigned char digest[EVP_MAX_MD_SIZE];
            unsigned int digest_len = 0;
            if (digest_sha256(in, signing_input.size(), digest, &digest_len)) {
                std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_dup(verify_template_));
                ok = ctx && EVP_PKEY_verify(ctx.get(), sig, signature.size(), digest, digest_len) == 1;
            }
        } else {
            std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
            // An RSA key verifies with PKCS#1 v1.5 padding unless told otherwise.
            ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, sha256(), nullptr, pkey_) == 1 &&
                 EVP_DigestVerify(ctx.get(), sig, signature.size(), in, signing_input.size()) == 1;
        }
        // A failed check leaves reasons on this thread's error queue; the engine thread's TLS must
        // not find them there later.
        if (!ok) ERR_clear_error();
        return ok;
    }

private:
    // A verification context for RS256 with this key, never used itself, only copied. Null when it
    // cannot be made (verify_rs256 then takes the one-shot EVP_DigestVerify path).
    static EVP_PKEY_CTX* make_template(EVP_PKEY* pkey) {
        EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr);
        if (ctx != nullptr && EVP_PKEY_verify_init(ctx) == 1 &&
            EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
            EVP_PKEY_CTX_set_signature_md(ctx, sha256()) == 1)
            return ctx;
        EVP_PKEY_CTX_free(ctx);
        ERR_clear_error();
        return nullptr;
    }

    EVP_PKEY* const pkey_;
    EVP_PKEY_CTX* const verify_template_;
};

std::unique_ptr<BIGNUM, BnFree> bignum(std::string_view b64url) {
    std::string bytes;
    if (!detail::base64url_decode(b64url, bytes) || bytes.empty() || bytes.size() > static_cast<std::size_t>(INT_MAX))
        return nullptr;
    return std::unique_ptr<BIGNUM, BnFree>(
        BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()), nullptr));
}

// The public key (n, e), or nothing when they do not make a usable RSA verification key.
std::shared_ptr<const PublicKey> rsa_key(std::string_view n_b64, std::string_view e_b64) {
    auto n = bignum(n_b64);
    auto e = bignum(e_b64);
    if (!n || !e) return nullptr;
    const int bits = BN_num_bits(n.get());
    if (bits < kMinModulusBits || bits > kMaxModulusBits || !BN_is_odd(n.get())) return nullptr;
    // e must be odd, at least 3, and far smaller than n (Entra uses 65537).
    if (!BN_is_odd(e.get()) || BN_num_bits(e.get()) < 2 || BN_num_bits(e.get()) > 64) return nullptr;

    std::unique_ptr<OSSL_PARAM_BLD, BldFree> bld(OSSL_PARAM_BLD_new());
    if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1)
        return nullptr;
    std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
    EVP_PKEY* pkey = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1 || pkey == nullptr) {
        ERR_clear_error();
        return nullptr;
    }
    try {
        return std::make_shared<const RsaPublicKey>(pkey);
    } catch (...) {
        EVP_PKEY_free(pkey);
        throw;
    }
}

std::string_view str(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_string()) return {};
    const auto& s = v->get_string();
    return {s.data(), s.size()};
}

std::optional<KeySet> parse(std::string_view text) {
    auto doc = detail::parse_json(text);
    if (!doc || !doc->is_object()) return std::nullopt;
    const auto* keys = doc->get_object().if_contains("keys");
    if (keys == nullptr || !keys->is_array()) return std::nullopt;
    KeySet out;
    for (const auto& item : keys->get_array()) {
        if (!item.is_object()) continue;
        const auto& k = item.get_object();
        if (str(k, "kty") != "RSA") continue;
        // `use` and `alg` are optional; when present they must say RSA signing with RS256.
        if (const auto* use = k.if_contains("use"); use != nullptr && str(k, "use") != "sig") continue;
        if (const auto* alg = k.if_contains("alg"); alg != nullptr && str(k, "alg") != "RS256") continue;
        const auto kid = str(k, "kid");
        if (kid.empty() || out.contains(kid)) continue;  // the first key with a kid wins
        auto key = rsa_key(str(k, "n"), str(k, "e"));
        if (!key) continue;  // one unusable key does not spoil the others
        out.emplace(std::string(kid), std::move(key));
    }
    return out;
}

}  // namespace

std::optional<KeySet> parse_jwks(std::string_view json) {
    try {
        return parse(json);
    } catch (...) {
        return std::nullopt;
    }
}

}  // namespace azmp
