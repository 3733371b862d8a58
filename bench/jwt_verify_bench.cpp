// Webhook signature checks per second (verify_jwt on one thread, a realistic Entra v1 app-only token)
// against `openssl speed -seconds 2 rsa2048` verify/s on the same machine, in the same run.
// Target: at least half of OpenSSL's raw RSA-2048 verify rate. Exit status 0 when the target holds,
// 1 when it does not, 2 when it could not be measured.
#include "azmp/jwt.hpp"

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

constexpr double kTargetRatio = 0.5;

// The verify/s column of `openssl speed rsa2048`'s summary line ("rsa 2048 bits <sign s> <verify s>
// <sign/s> <verify/s>").
std::optional<double> openssl_verify_per_s() {
    FILE* p = ::popen("openssl speed -seconds 2 rsa2048 2>/dev/null", "r");
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

    // ~2 s on this thread; the clock is read every 64 checks.
    std::uint64_t ok = 0, n = 0;
    const auto start = Clock::now();
    const auto until = start + std::chrono::seconds(2);
    auto t = start;
    do {
        for (int i = 0; i < 64; ++i, ++n)
            ok += std::holds_alternative<boost::json::object>(azmp::verify_jwt(token, *keys, expect)) ? 1 : 0;
        t = Clock::now();
    } while (t < until);
    const double secs = std::chrono::duration<double>(t - start).count();
    const double ours = static_cast<double>(n) / secs;
    if (ok != n) {
        std::cerr << "verification failed " << (n - ok) << " times\n";
        return 2;
    }
    std::printf("verify_jwt (RS256, %zu-byte Entra token, 1 thread): %.0f/s (%.1f us each)\n", token.size(), ours,
                1e6 / ours);

    const auto raw = openssl_verify_per_s();
    if (!raw) {
        std::printf("openssl speed rsa2048: not available\n");
        return 2;
    }
    const double ratio = ours / *raw;
    std::printf("openssl speed rsa2048 verify: %.0f/s\n", *raw);
    std::printf("ratio: %.2f (target >= %.2f) %s\n", ratio, kTargetRatio, ratio >= kTargetRatio ? "OK" : "BELOW TARGET");
    return ratio >= kTargetRatio ? 0 : 1;
}
