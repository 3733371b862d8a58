// Time arithmetic the metering core's translation units share (not part of the public API): civil
// (proleptic Gregorian, UTC) dates to and from days since 1970-01-01, rounding down to a unit, sums
// held at the ends of the range, and the digits of Azure's dates.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <string_view>

namespace azmp::detail {

// H. Hinnant's algorithms.
inline std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
    std::int64_t y;
    unsigned m, d;
};

inline Civil civil_from_days(std::int64_t z) noexcept {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    return {y + (m <= 2), m, d};
}

inline bool leap(std::int64_t y) noexcept { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

inline unsigned last_day(std::int64_t y, unsigned m) noexcept {
    constexpr std::array<unsigned, 12> kDays{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

// `t` rounded down to a multiple of `unit` (toward the past, before 1970 too); the earliest
// representable multiple when the exact one is not.
inline std::int64_t floor_to(std::int64_t t, std::int64_t unit) noexcept {
    const std::int64_t q = t >= 0 ? t / unit : -((-(t + 1)) / unit) - 1;
    return std::max(q, std::numeric_limits<std::int64_t>::min() / unit) * unit;
}

// a + b and a - b, held at the ends of the range rather than overflowing (times come from callers).
inline std::int64_t sat_add(std::int64_t a, std::int64_t b) noexcept {
    std::int64_t r;
    if (!__builtin_add_overflow(a, b, &r)) return r;
    return b > 0 ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
}
inline std::int64_t sat_sub(std::int64_t a, std::int64_t b) noexcept {
    std::int64_t r;
    if (!__builtin_sub_overflow(a, b, &r)) return r;
    return b > 0 ? std::numeric_limits<std::int64_t>::min() : std::numeric_limits<std::int64_t>::max();
}

// A date's field: one or more ASCII digits, and its value (fields are at most 4 digits).
inline bool all_digits(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}
inline unsigned number(std::string_view digits) noexcept {
    unsigned n = 0;
    for (char c : digits) n = n * 10 + static_cast<unsigned>(c - '0');
    return n;
}

}  // namespace azmp::detail
