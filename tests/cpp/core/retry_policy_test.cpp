#include "azmp/retry_policy.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace azmp {
namespace {

HttpResponse with_retry_after(std::string v) {
    HttpResponse r;
    r.status = 429;
    r.headers = {{"Retry-After", std::move(v)}};
    return r;
}

// Sun, 06 Nov 1994 08:49:37 GMT (the RFC 9110 example)
constexpr std::int64_t kRfcExample = 784111777;

TEST(IsRetryableStatus, Classes) {
    EXPECT_TRUE(is_retryable_status(429));
    EXPECT_TRUE(is_retryable_status(500));
    EXPECT_TRUE(is_retryable_status(502));
    EXPECT_TRUE(is_retryable_status(503));
    EXPECT_TRUE(is_retryable_status(599));
    EXPECT_FALSE(is_retryable_status(200));
    EXPECT_FALSE(is_retryable_status(202));
    EXPECT_FALSE(is_retryable_status(400));
    EXPECT_FALSE(is_retryable_status(401));
    EXPECT_FALSE(is_retryable_status(403));
    EXPECT_FALSE(is_retryable_status(404));
    EXPECT_FALSE(is_retryable_status(409));
    EXPECT_FALSE(is_retryable_status(428));
    EXPECT_FALSE(is_retryable_status(430));
    EXPECT_FALSE(is_retryable_status(600));
    EXPECT_FALSE(is_retryable_status(0));
}

TEST(RetryAfter, Absent) {
    HttpResponse r;
    r.status = 503;
    EXPECT_FALSE(retry_after_ms(r, 0).has_value());
}

TEST(RetryAfter, Seconds) {
    EXPECT_EQ(retry_after_ms(with_retry_after("120"), 0), 120000);
    EXPECT_EQ(retry_after_ms(with_retry_after("0"), 0), 0);
    EXPECT_EQ(retry_after_ms(with_retry_after(" 7 "), 0), 7000);
}

TEST(RetryAfter, HugeSecondsDoNotOverflow) {
    auto v = retry_after_ms(with_retry_after("99999999999999999999999"), 0);
    ASSERT_TRUE(v.has_value());
    EXPECT_GT(*v, 0);
}

TEST(RetryAfter, HeaderNameCaseInsensitive) {
    HttpResponse r;
    r.headers = {{"retry-after", "3"}};
    EXPECT_EQ(retry_after_ms(r, 0), 3000);
}

TEST(RetryAfter, HttpDateRelativeToNow) {
    EXPECT_EQ(retry_after_ms(with_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), kRfcExample - 30), 30000);
    // obsolete RFC 850 and asctime forms are still HTTP-dates
    EXPECT_EQ(retry_after_ms(with_retry_after("Sunday, 06-Nov-94 08:49:37 GMT"), kRfcExample - 2), 2000);
    EXPECT_EQ(retry_after_ms(with_retry_after("Sun Nov  6 08:49:37 1994"), kRfcExample - 1), 1000);
}

TEST(RetryAfter, PastDateIsZero) {
    EXPECT_EQ(retry_after_ms(with_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), kRfcExample + 100), 0);
    EXPECT_EQ(retry_after_ms(with_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), kRfcExample), 0);
}

TEST(RetryAfter, Garbage) {
    EXPECT_FALSE(retry_after_ms(with_retry_after("soon"), 0).has_value());
    EXPECT_FALSE(retry_after_ms(with_retry_after(""), 0).has_value());
    EXPECT_FALSE(retry_after_ms(with_retry_after("   "), 0).has_value());
}

TEST(Backoff, ExponentialWithFullJitter) {
    RetryConfig cfg;  // base 100, cap 5000
    EXPECT_EQ(backoff_ms(cfg, 1, 0.5, std::nullopt), 50);
    EXPECT_EQ(backoff_ms(cfg, 2, 0.5, std::nullopt), 100);
    EXPECT_EQ(backoff_ms(cfg, 3, 0.5, std::nullopt), 200);
    EXPECT_EQ(backoff_ms(cfg, 4, 0.5, std::nullopt), 400);
    EXPECT_EQ(backoff_ms(cfg, 1, 0.0, std::nullopt), 0);
    EXPECT_EQ(backoff_ms(cfg, 3, 0.25, std::nullopt), 100);
}

TEST(Backoff, CappedAtMaxDelay) {
    RetryConfig cfg;
    EXPECT_EQ(backoff_ms(cfg, 7, 0.5, std::nullopt), 2500);   // 6400 capped to 5000
    EXPECT_EQ(backoff_ms(cfg, 60, 0.5, std::nullopt), 2500);  // no overflow from 2^59
    EXPECT_EQ(backoff_ms(cfg, 1000000, 0.5, std::nullopt), 2500);
    EXPECT_LT(backoff_ms(cfg, 60, 0.999999, std::nullopt), 5000);
    EXPECT_GE(backoff_ms(cfg, 60, 0.999999, std::nullopt), 4990);
}

TEST(Backoff, JitterOutOfRangeClamped) {
    RetryConfig cfg;
    EXPECT_EQ(backoff_ms(cfg, 2, -1.0, std::nullopt), 0);
    EXPECT_EQ(backoff_ms(cfg, 2, std::nan(""), std::nullopt), 0);
    EXPECT_LT(backoff_ms(cfg, 2, 1.0, std::nullopt), 200);
    EXPECT_LT(backoff_ms(cfg, 2, 7.0, std::nullopt), 200);
}

TEST(Backoff, RetryAfterWinsAndIsCapped) {
    RetryConfig cfg;
    EXPECT_EQ(backoff_ms(cfg, 1, 0.5, 2000), 2000);
    EXPECT_EQ(backoff_ms(cfg, 1, 0.5, 0), 0);
    EXPECT_EQ(backoff_ms(cfg, 1, 0.5, 10000), 10000);  // beyond max_delay but within max_retry_after
    EXPECT_EQ(backoff_ms(cfg, 1, 0.5, 3600000), 30000);
    EXPECT_EQ(backoff_ms(cfg, 1, 0.5, -5), 0);
}

TEST(Backoff, CustomConfig) {
    RetryConfig cfg;
    cfg.base_delay_ms = 1000;
    cfg.max_delay_ms = 3000;
    cfg.max_retry_after_ms = 1500;
    EXPECT_EQ(backoff_ms(cfg, 1, 0.5, std::nullopt), 500);
    EXPECT_EQ(backoff_ms(cfg, 2, 0.5, std::nullopt), 1000);
    EXPECT_EQ(backoff_ms(cfg, 3, 0.5, std::nullopt), 1500);  // 4000 capped to 3000
    EXPECT_EQ(backoff_ms(cfg, 1, 0.5, 60000), 1500);
}

TEST(Backoff, AttemptBelowOneTreatedAsFirst) {
    RetryConfig cfg;
    EXPECT_EQ(backoff_ms(cfg, 0, 0.5, std::nullopt), 50);
    EXPECT_EQ(backoff_ms(cfg, -3, 0.5, std::nullopt), 50);
}

}  // namespace
}  // namespace azmp
