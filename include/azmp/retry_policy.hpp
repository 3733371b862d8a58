// When and how long to wait before retrying an Azure call. Pure: the caller supplies time and randomness.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "azmp/http.hpp"

namespace azmp {

struct RetryConfig {
    int max_attempts = 4;            // total attempts, first one included
    std::int64_t base_delay_ms = 100;  // first backoff step
    std::int64_t max_delay_ms = 5000;  // cap of one backoff
    std::int64_t max_retry_after_ms = 30000;  // a Retry-After beyond this is capped to it
};

// 429 and 5xx are retryable; every other status is final. (Transport failures are retryable too;
// the executor decides that without a response.)
bool is_retryable_status(long status) noexcept;

// Parses Retry-After: delta-seconds or an HTTP-date (relative to `now_unix_s`; a past date gives 0).
// Nothing when absent or unparseable.
std::optional<std::int64_t> retry_after_ms(const HttpResponse& resp, std::int64_t now_unix_s);

// Delay before attempt `attempt + 1` (attempt counts from 1; lower values count as 1): full-jitter exponential backoff,
// base * 2^(attempt-1) capped at max_delay, scaled by `jitter01` in [0,1); a Retry-After, when
// given, is honoured (capped at max_retry_after_ms) and wins over the computed value.
std::int64_t backoff_ms(const RetryConfig& cfg, int attempt, double jitter01,
                        std::optional<std::int64_t> retry_after) noexcept;

}  // namespace azmp
