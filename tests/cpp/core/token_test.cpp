#include "azmp/token.hpp"

#include <gtest/gtest.h>

namespace azmp {
namespace {

Credentials creds(TokenEndpoint e) {
    Credentials c;
    c.login_url = "https://login.microsoftonline.com";
    c.tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    c.client_id = "b0a9a8d9-1111-2222-3333-444455556666";
    c.client_secret = "s3cr+t/=&x y";
    c.endpoint = e;
    return c;
}

HttpResponse resp(long status, std::string body) {
    HttpResponse r;
    r.status = status;
    r.headers = {{"Content-Type", "application/json; charset=utf-8"}};
    r.body = std::move(body);
    return r;
}

TEST(BuildTokenRequest, V2) {
    auto r = build_token_request(creds(TokenEndpoint::V2));
    EXPECT_EQ(r.method, Method::Post);
    EXPECT_EQ(r.url, "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token");
    EXPECT_EQ(r.body,
              "grant_type=client_credentials&client_id=b0a9a8d9-1111-2222-3333-444455556666"
              "&client_secret=s3cr%2Bt%2F%3D%26x%20y"
              "&scope=20e940b3-4c77-4b0b-9a53-9e16a1b010a7%2F.default");
    EXPECT_EQ(find_header(r.headers, "content-type"), "application/x-www-form-urlencoded");
    EXPECT_FALSE(find_header(r.headers, "Authorization"));
}

TEST(BuildTokenRequest, V1) {
    auto r = build_token_request(creds(TokenEndpoint::V1));
    EXPECT_EQ(r.method, Method::Post);
    EXPECT_EQ(r.url, "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/token");
    EXPECT_EQ(r.body,
              "grant_type=client_credentials&client_id=b0a9a8d9-1111-2222-3333-444455556666"
              "&client_secret=s3cr%2Bt%2F%3D%26x%20y"
              "&resource=20e940b3-4c77-4b0b-9a53-9e16a1b010a7");
    EXPECT_EQ(find_header(r.headers, "Content-Type"), "application/x-www-form-urlencoded");
}

TEST(BuildTokenRequest, TenantIsEncoded) {
    auto c = creds(TokenEndpoint::V2);
    c.tenant_id = "../evil?x";
    auto r = build_token_request(c);
    EXPECT_EQ(r.url, "https://login.microsoftonline.com/..%2Fevil%3Fx/oauth2/v2.0/token");
}

TEST(ParseTokenResponse, V2NumberExpiry) {
    auto r = parse_token_response(resp(200, R"({"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,)"
                                            R"("access_token":"eyJ0eXAiOiJKV1Qi.abc.def"})"));
    ASSERT_TRUE(std::holds_alternative<Token>(r));
    EXPECT_EQ(std::get<Token>(r).access_token, "eyJ0eXAiOiJKV1Qi.abc.def");
    EXPECT_EQ(std::get<Token>(r).expires_in_s, 3599);
}

TEST(ParseTokenResponse, V1StringExpiry) {
    auto r = parse_token_response(resp(200, R"({"token_type":"Bearer","expires_in":"3600","ext_expires_in":"3600",)"
                                            R"("expires_on":"1700003600","not_before":"1700000000",)"
                                            R"("resource":"20e940b3-4c77-4b0b-9a53-9e16a1b010a7",)"
                                            R"("access_token":"tok"})"));
    ASSERT_TRUE(std::holds_alternative<Token>(r));
    EXPECT_EQ(std::get<Token>(r).access_token, "tok");
    EXPECT_EQ(std::get<Token>(r).expires_in_s, 3600);
}

TEST(ParseTokenResponse, EntraErrorIsAuth) {
    auto r = parse_token_response(resp(401, R"({"error":"invalid_client",)"
                                            R"("error_description":"AADSTS7000215: Invalid client secret provided.",)"
                                            R"("error_codes":[7000215],"timestamp":"2024-01-01 00:00:00Z",)"
                                            R"("trace_id":"t","correlation_id":"c"})"));
    ASSERT_TRUE(std::holds_alternative<Error>(r));
    EXPECT_EQ(std::get<Error>(r).kind, ErrorKind::Auth);
    EXPECT_EQ(std::get<Error>(r).detail, "invalid_client");
}

TEST(ParseTokenResponse, UnknownTenantIsAuth) {
    auto r = parse_token_response(resp(400, R"({"error":"invalid_request","error_description":"AADSTS90002: Tenant not found.","error_codes":[90002]})"));
    ASSERT_TRUE(std::holds_alternative<Error>(r));
    EXPECT_EQ(std::get<Error>(r).kind, ErrorKind::Auth);
    EXPECT_EQ(std::get<Error>(r).detail, "invalid_request");
}

TEST(ParseTokenResponse, FourXxWithoutEntraBodyIsHttp) {
    auto r = parse_token_response(resp(404, "<html>not found</html>"));
    ASSERT_TRUE(std::holds_alternative<Error>(r));
    EXPECT_EQ(std::get<Error>(r).kind, ErrorKind::Http);
    EXPECT_EQ(std::get<Error>(r).status, 404);
    EXPECT_EQ(std::get<Error>(r).detail, "<html>not found</html>");
}

TEST(ParseTokenResponse, ServerErrorIsHttp) {
    auto r = parse_token_response(resp(503, R"({"error":"temporarily_unavailable"})"));
    ASSERT_TRUE(std::holds_alternative<Error>(r));
    EXPECT_EQ(std::get<Error>(r).kind, ErrorKind::Http);
    EXPECT_EQ(std::get<Error>(r).status, 503);
}

TEST(ParseTokenResponse, Malformed2xxIsBadResponseWithoutBody) {
    for (const char* body : {"", "{", R"({"access_token":"secret-tok")", "[]", R"("x")",
                             R"({"access_token":"secret-tok"})", R"({"access_token":"secret-tok","expires_in":"soon"})",
                             R"({"access_token":"","expires_in":3600})", R"({"access_token":42,"expires_in":3600})",
                             R"({"expires_in":3600})", R"({"access_token":"secret-tok","expires_in":0})"}) {
        auto r = parse_token_response(resp(200, body));
        ASSERT_TRUE(std::holds_alternative<Error>(r)) << body;
        EXPECT_EQ(std::get<Error>(r).kind, ErrorKind::BadResponse) << body;
        EXPECT_EQ(std::get<Error>(r).detail.find("secret-tok"), std::string::npos) << body;
    }
}

TEST(TokenNeedsRefresh, HourToken) {
    // 3600 s token: refresh 300 s before expiry
    EXPECT_FALSE(token_needs_refresh(1000, 3600, 1000));
    EXPECT_FALSE(token_needs_refresh(1000, 3600, 1000 + 3299));
    EXPECT_TRUE(token_needs_refresh(1000, 3600, 1000 + 3300));
    EXPECT_TRUE(token_needs_refresh(1000, 3600, 1000 + 3600));
    EXPECT_TRUE(token_needs_refresh(1000, 3600, 1000 + 100000));
}

TEST(TokenNeedsRefresh, ShortTokenRefreshedHalfway) {
    EXPECT_FALSE(token_needs_refresh(0, 60, 29));
    EXPECT_TRUE(token_needs_refresh(0, 60, 30));
    EXPECT_FALSE(token_needs_refresh(0, 600, 299));
    EXPECT_TRUE(token_needs_refresh(0, 600, 300));
}

TEST(TokenNeedsRefresh, NoLifetime) {
    EXPECT_TRUE(token_needs_refresh(100, 0, 100));
    EXPECT_TRUE(token_needs_refresh(100, -5, 50));
}

}  // namespace
}  // namespace azmp
