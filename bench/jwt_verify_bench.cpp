// Webhook signature checks per second (verify_jwt on one thread, a realistic Entra v1 app-only token)
// against `openssl speed -seconds 2 rsa2048` verify/s on the same machine, in the same run.
//
// The same clock on both sides: `openssl speed` divides by the user CPU time of its process (unless
// given -elapsed), so verify_jwt's rate is taken over this thread's user CPU time too (getrusage
// RUSAGE_THREAD). On this shared 2-core machine wall time runs up to twice the CPU time, and a wall
// rate against a CPU rate would measure the machine's load, not the code. The wall-clock rates
// (`openssl speed -elapsed`) are printed as well, for information, and so is the RSA step alone
// (EVP_PKEY_verify of a SHA-256 digest on a prepared context, the same key) in this process: what
// verify_jwt spends beyond it is parsing and checking.
// Target: at least 0.8 of OpenSSL's raw RSA-2048 verify rate. Exit status 0 when the target holds,
// 1 when it does not, 2 when it could not be measured.
#include "azmp/jwt.hpp"

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

#include "../tests/cpp/core/jwt_test_util.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace azmp::jwt_test;

constexpr double kTargetRatio = 0.8;

double user_cpu_s() {
    rusage ru{};
    ::getrusage(RUSAGE_THREAD, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) / 1e6;
}

struct Rate {
    double per_wall_s, per_cpu_s;
};

// Runs f for ~2 s on this thread (the clocks read every 64 calls): calls per wall second and per
// second of this thread's user CPU time. Nothing when f failed.
template <class F>
std::optional<Rate> rate(F f) {
    std::uint64_t ok = 0, n = 0;
    const double cpu0 = user_cpu_s();
    const auto start = Clock::now();
    const auto until = start + std::chrono::seconds(2);
    auto t = start;
    do {
        for (int i = 0; i < 64; ++i, ++n) ok += f() ? 1 : 0;
        t = Clock::now();
    } while (t < until);
    const double cpu = user_cpu_s() - cpu0;
    if (ok != n) {
        std::cerr << "verification failed " << (n - ok) << " times\n";
        return std::nullopt;
    }
    const double n_d = static_cast<double>(n);
    return Rate{n_d / std::chrono::duration<double>(t - start).count(), cpu > 0 ? n_d / cpu : 0};
}

// The verify/s column of `openssl speed rsa2048`'s summary line ("rsa 2048 bits <sign s> <verify s>
// <sign/s> <verify/s>").
std::optional<double> openssl_verify_per_s(bool elapsed) {
    FILE* p = ::popen(elapsed ? "openssl speed -elapsed -seconds 2 rsa2048 2>/dev/null" : "openssl speed -seconds 2 rsa2048 2>/dev/null", "r");
    if (p == nullptr) return std::nullopt;
    std::string out;
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    if (::pclose(p) != 0) return std::nullopt;
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind("rsa 2048 bits", 0) != 0) continue;
        std::istringstream fields(line.substr(13));
        std::string sign_s, verify_s;
        double sign_per_s = 0, verify_per_s = 0;
        if (fields >> sign_s >> verify_s >> sign_per_s >> verify_per_s && verify_per_s > 0) return verify_per_s;
    }
    return std::nullopt;
}

}  // namespace

int main() {
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    // Entra publishes a handful of keys; the token names one of them.
    const TestKey k1 = make_key("nOo3ZDrODXEK1jKWhXslHR_KXEg");
    const TestKey k2 = make_key("l3sQ-50cCH4xBVZLHTGwnSR7680");
    const TestKey k3 = make_key("KQ2tAcrE7lBaViGmMUj5Ds4e2IM");
    auto keys = azmp::parse_jwks(jwks({&k1, &k2, &k3}));
    if (!keys || keys->size() != 3) {
        std::cerr << "parse_jwks failed\n";
        return 2;
    }
    const std::string token = sign_token(k2, entra_claims(now, false));
    azmp::JwtExpectations expect;
    expect.audience = std::string(kAudience);
    expect.tenant_id = std::string(kTenant);
    expect.authorized_apps = {std::string(kMarketplaceApp)};
    expect.now = now;
    if (!std::holds_alternative<boost::json::object>(azmp::verify_jwt(token, *keys, expect))) {
        std::cerr << "the benchmark token does not verify\n";
        return 2;
    }

    const auto ours = rate([&] { return std::holds_alternative<boost::json::object>(azmp::verify_jwt(token, *keys, expect)); });
    if (!ours) return 2;

    // The RSA step alone, on the same key: a prepared context, the digest of the token's signed part.
    const std::string_view signed_part = std::string_view(token).substr(0, token.rfind('.'));
    std::string signature;
    {
        const std::string_view s64 = std::string_view(token).substr(token.rfind('.') + 1);
        std::string b64(s64);
        for (char& c : b64) c = c == '-' ? '+' : c == '_' ? '/' : c;
        b64.append((4 - b64.size() % 4) % 4, '=');
        signature.resize(b64.size() / 4 * 3);
        const int len = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(signature.data()),
                                        reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
        signature.resize(256);
        if (len < 256) return 2;
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    EVP_Digest(signed_part.data(), signed_part.size(), digest, &digest_len, EVP_sha256(), nullptr);
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> vctx(EVP_PKEY_CTX_new(k2.pkey.get(), nullptr), &EVP_PKEY_CTX_free);
    if (!vctx || EVP_PKEY_verify_init(vctx.get()) != 1 || EVP_PKEY_CTX_set_rsa_padding(vctx.get(), RSA_PKCS1_PADDING) != 1 ||
        EVP_PKEY_CTX_set_signature_md(vctx.get(), EVP_sha256()) != 1)
        return 2;
    const auto rsa_only = rate([&] {
        return EVP_PKEY_verify(vctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                               digest, digest_len) == 1;
    });
    if (!rsa_only) return 2;

    std::printf("verify_jwt (RS256, %zu-byte Entra token, 1 thread): %.0f/s of user CPU (%.1f us each), %.0f/s wall\n",
                token.size(), ours->per_cpu_s, 1e6 / ours->per_cpu_s, ours->per_wall_s);
    std::printf("the RSA step alone (EVP_PKEY_verify, same key): %.0f/s of user CPU (%.1f us each): verify_jwt spends "
                "%.1f us beyond it\n",
                rsa_only->per_cpu_s, 1e6 / rsa_only->per_cpu_s, 1e6 / ours->per_cpu_s - 1e6 / rsa_only->per_cpu_s);

    const auto raw = openssl_verify_per_s(false);
    const auto raw_wall = openssl_verify_per_s(true);
    if (!raw || !raw_wall) {
        std::printf("openssl speed rsa2048: not available\n");
        return 2;
    }
    const double ratio = ours->per_cpu_s / *raw;
    std::printf("openssl speed rsa2048 verify: %.0f/s of user CPU; -elapsed: %.0f/s wall (wall ratio %.2f, for "
                "information: the machine's load moves it)\n",
                *raw, *raw_wall, ours->per_wall_s / *raw_wall);
    std::printf("ratio: %.2f (target >= %.2f) %s\n", ratio, kTargetRatio, ratio >= kTargetRatio ? "OK" : "BELOW TARGET");
    return ratio >= kTargetRatio ? 0 : 1;
}
