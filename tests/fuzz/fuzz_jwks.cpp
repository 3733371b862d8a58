// The tenant's JWKS document (parse_jwks): whatever the keys endpoint answers.
#include <cstdint>
#include <string_view>

#include "azmp/jwt.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto keys = azmp::parse_jwks(std::string_view(reinterpret_cast<const char*>(data), size));
    // A parsed key must be usable without crashing, whatever it verifies.
    if (keys)
        for (const auto& [kid, key] : *keys) (void)key->verify_rs256("a.b", std::string_view("sig", 3));
    return 0;
}
