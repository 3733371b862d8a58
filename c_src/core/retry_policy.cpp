#include "azmp/retry_policy.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <string>

#include "text_util.hpp"

namespace azmp {

namespace {
constexpr std::int64_t kMaxSeconds = std::numeric_limits<std::int64_t>::max() / 1000;
}

bool is_retryable_status(long status) noexcept { return status == 429 || (status >= 500 && status <= 599); }

std::optional<std::int64_t> retry_after_ms(const HttpResponse& resp, std::int64_t now_unix_s) {
    try {
        auto h = resp.header("Retry-After");
        if (!h) return std::nullopt;
        const std::string_view v = detail::trim(*h);
        if (v.empty()) return std::nullopt;
        if (v.find_first_not_of("0123456789") == std::string_view::npos) {
            std::int64_t s = 0;
            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
            if (ec == std::errc::result_out_of_range) return kMaxSeconds * 1000;  // absurd: capped by the caller
            if (ec != std::errc() || p != v.data() + v.size()) return std::nullopt;
            return std::min(s, kMaxSeconds) * 1000;
        }
        // HTTP-date (RFC 9110 IMF-fixdate and the obsolete forms): libcurl's parser knows them all.
        const std::string date(v);
        const time_t t = curl_getdate(date.c_str(), nullptr);
        if (t == static_cast<time_t>(-1)) return std::nullopt;
        const std::int64_t delta = static_cast<std::int64_t>(t) - now_unix_s;
        if (delta <= 0) return 0;  // a date in the past means "now"
        return std::min(delta, kMaxSeconds) * 1000;
    } catch (...) {
        return std::nullopt;
    }
}

std::int64_t backoff_ms(const RetryConfig& cfg, int attempt, double jitter01,
                        std::optional<std::int64_t> retry_after) noexcept {
    if (retry_after) return std::clamp<std::int64_t>(*retry_after, 0, std::max<std::int64_t>(cfg.max_retry_after_ms, 0));
    const std::int64_t cap = std::max<std::int64_t>(cfg.max_delay_ms, 0);
    const std::int64_t base = std::clamp<std::int64_t>(cfg.base_delay_ms, 0, cap);
    // base * 2^(attempt-1), saturating at the cap without overflowing.
    std::int64_t step = base;
    for (int i = 1; i < attempt && step < cap; ++i) step = (step > cap / 2) ? cap : step * 2;
    step = std::min(step, cap);
    if (!(jitter01 >= 0.0)) jitter01 = 0.0;  // also catches NaN
    if (jitter01 >= 1.0) jitter01 = std::nextafter(1.0, 0.0);
    return static_cast<std::int64_t>(std::floor(static_cast<double>(step) * jitter01));
}

}  // namespace azmp
