// Which endpoints a configuration may name: https anywhere; plain http only to loopback, and only
// when the configuration says it is a test endpoint (allow_insecure_loopback).
#include "azmp/url_policy.hpp"

#include <gtest/gtest.h>

#include <string_view>

namespace azmp {
namespace {

using V = EndpointVerdict;

struct EndpointCase {
    std::string_view url;
    V without_flag, with_flag;
};

TEST(UrlPolicy, Table) {
    const EndpointCase cases[] = {
        {"https://marketplaceapi.microsoft.com/api", V::Allowed, V::Allowed},
        {"https://login.microsoftonline.com", V::Allowed, V::Allowed},
        {"https://127.0.0.1:8481", V::Allowed, V::Allowed},
        // plain http to loopback: a test endpoint, only when the config says so
        {"http://127.0.0.1:8480/api", V::NeedsInsecureFlag, V::Allowed},
        {"http://127.8.9.10:8480", V::NeedsInsecureFlag, V::Allowed},
        {"http://localhost:8480", V::NeedsInsecureFlag, V::Allowed},
        {"http://[::1]:8480", V::NeedsInsecureFlag, V::Allowed},
        // plain http anywhere else: never
        {"http://marketplaceapi.microsoft.com/api", V::Refused, V::Refused},
        {"http://128.0.0.1", V::Refused, V::Refused},
        {"http://localhost.example.com", V::Refused, V::Refused},
        {"http://127.0.0.1.example.com", V::Refused, V::Refused},
        // not an endpoint
        {"ftp://127.0.0.1", V::Refused, V::Refused},
        {"127.0.0.1:8480", V::Refused, V::Refused},
        {"", V::Refused, V::Refused},
        {"https://", V::Refused, V::Refused},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(check_endpoint(c.url, false), c.without_flag) << c.url;
        EXPECT_EQ(check_endpoint(c.url, true), c.with_flag) << c.url;
    }
}

TEST(UrlPolicy, ErrorNamesTheFieldAndWhatIsMissing) {
    EXPECT_FALSE(endpoint_error("login_url", "https://login.microsoftonline.com", false));
    EXPECT_FALSE(endpoint_error("login_url", "http://127.0.0.1:8480", true));
    auto insecure = endpoint_error("login_url", "http://127.0.0.1:8480", false);
    ASSERT_TRUE(insecure);
    EXPECT_EQ(insecure->kind, ErrorKind::InsecureEndpoint);
    EXPECT_EQ(insecure->detail, "login_url");
    EXPECT_NE(std::string_view(Error::kInsecureEndpointHint).find("allow_insecure_loopback"), std::string_view::npos);
    auto refused = endpoint_error("marketplace_url", "http://example.com", true);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->kind, ErrorKind::Badarg);
    EXPECT_EQ(refused->detail, "marketplace_url");
}

}  // namespace
}  // namespace azmp
