// The webhook's bearer token (jwt_kid, verify_jwt). Input: [mode byte] then
//   mode even: the compact token as sent;
//   mode odd:  header JSON \n claims JSON, which the target encodes and signs with the key in the
//              key set, so that the checks after the signature (aud, tid, azp, exp, nbf) are reached.
#include <cstdint>
#include <string>

#include "azmp/jwt.hpp"
#include "fuzz_input.hpp"
#include "jwt_test_util.hpp"

using namespace azmp;

namespace {
struct Fixture {
    jwt_test::TestKey key = jwt_test::make_key("fuzz-kid");
    KeySet keys = *parse_jwks(jwt_test::jwks({&key}));
};
const Fixture& fixture() {
    static const Fixture f;  // one key for the whole run: generating one takes far longer than a check
    return f;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const Fixture& f = fixture();
    fuzz::Input in(data, size);
    const bool sign = in.byte() & 1;
    std::string token;
    if (sign) {
        const std::string header(in.line());
        const std::string input = jwt_test::b64url(header) + "." + jwt_test::b64url(in.rest());
        token = input + "." + jwt_test::b64url(jwt_test::sign_rs256(f.key.pkey.get(), input));
    } else {
        token = std::string(in.rest());
    }
    JwtExpectations expect;
    expect.audience = std::string(jwt_test::kAudience);
    expect.tenant_id = std::string(jwt_test::kTenant);
    expect.authorized_apps = {std::string(jwt_test::kMarketplaceApp)};
    expect.now = 1'700'000'000;
    (void)jwt_kid(token);
    (void)verify_jwt(token, f.keys, expect);
    return 0;
}
