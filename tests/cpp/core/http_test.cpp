#include "azmp/http.hpp"

#include <gtest/gtest.h>

namespace azmp {
namespace {

TEST(MethodName, AllMethods) {
    EXPECT_EQ(method_name(Method::Get), "GET");
    EXPECT_EQ(method_name(Method::Post), "POST");
    EXPECT_EQ(method_name(Method::Patch), "PATCH");
    EXPECT_EQ(method_name(Method::Delete), "DELETE");
}

TEST(FindHeader, CaseInsensitive) {
    Headers h{{"Content-Type", "application/json"}, {"operation-location", "https://x/operations/1"}};
    EXPECT_EQ(find_header(h, "content-type"), "application/json");
    EXPECT_EQ(find_header(h, "CONTENT-TYPE"), "application/json");
    EXPECT_EQ(find_header(h, "Operation-Location"), "https://x/operations/1");
}

TEST(FindHeader, MissingIsNothing) {
    Headers h{{"Content-Type", "application/json"}};
    EXPECT_FALSE(find_header(h, "Retry-After").has_value());
    EXPECT_FALSE(find_header({}, "Retry-After").has_value());
    EXPECT_FALSE(find_header(h, "Content-Typ").has_value());
}

TEST(FindHeader, FirstMatchWinsAndValueTrimmed) {
    Headers h{{"Retry-After", "  5\r\n"}, {"retry-after", "9"}};
    EXPECT_EQ(find_header(h, "retry-after"), "5");
}

TEST(HttpResponse, HeaderMember) {
    HttpResponse r;
    r.headers = {{"X-Ms-RequestId", "abc"}};
    EXPECT_EQ(r.header("x-ms-requestid"), "abc");
    EXPECT_FALSE(r.header("x-ms-correlationid"));
}

}  // namespace
}  // namespace azmp
