// Metering rules: exact quantities, UTC hours, terms with included quantities, Azure's per-item
// answers. See azmp/metering.hpp.
#include "azmp/metering.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>
#include <vector>

#include "civil_time.hpp"
#include "text_util.hpp"

namespace azmp::metering {

using detail::all_digits;
using detail::civil_from_days;
using detail::Civil;
using detail::days_from_civil;
using detail::floor_to;
using detail::last_day;
using detail::number;
using detail::sat_sub;

namespace {

Micros excess(Micros used, Micros included) noexcept { return used > included ? used - included : 0; }

// More days than any time holds: keeps `days * kDayS` in range.
constexpr std::int64_t kMaxDays = std::numeric_limits<std::int64_t>::max() / kDayS;

// `start` moved `k` months on, same day of month (clamped) and time of day.
std::int64_t add_months(std::int64_t start, std::int64_t k) noexcept {
    const std::int64_t days = start >= 0 ? start / 86400 : (start - 86399) / 86400;
    const std::int64_t secs = start - days * 86400;
    const Civil c = civil_from_days(days);
    const std::int64_t months = c.y * 12 + (c.m - 1) + k;
    const std::int64_t y = months >= 0 ? months / 12 : (months - 11) / 12;
    const unsigned m = static_cast<unsigned>(months - y * 12) + 1;
    const unsigned d = std::min(c.d, last_day(y, m));
    return days_from_civil(y, m, d) * 86400 + secs;
}

}  // namespace

std::optional<Micros> parse_decimal(std::string_view text) noexcept {
    if (text.empty() || text.size() > 32) return std::nullopt;
    Micros whole = 0, frac = 0;
    std::size_t i = 0, digits = 0;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++digits) {
        whole = whole * 10 + (text[i] - '0');
        if (whole > kMaxSample / kUnit) return std::nullopt;
    }
    if (digits == 0) return std::nullopt;
    if (i < text.size()) {
        if (text[i] != '.' || i + 1 == text.size()) return std::nullopt;
        Micros scale = kUnit;
        for (++i; i < text.size(); ++i) {
            if (text[i] < '0' || text[i] > '9' || scale == 1) return std::nullopt;  // more than 6 decimals
            scale /= 10;
            frac += (text[i] - '0') * scale;
        }
    }
    return whole * kUnit + frac;
}

std::optional<Micros> from_double(double v) noexcept {
    if (!std::isfinite(v) || v < 0 || v > static_cast<double>(kMaxSample / kUnit)) return std::nullopt;
    return static_cast<Micros>(std::llround(v * static_cast<double>(kUnit)));
}

std::string format_decimal(Micros m) {
    const bool negative = m < 0;
    const std::uint64_t v = negative ? 0 - static_cast<std::uint64_t>(m) : static_cast<std::uint64_t>(m);
    char buf[48];
    int n = std::snprintf(buf, sizeof buf, "%s%llu.%06llu", negative ? "-" : "",
                          static_cast<unsigned long long>(v / kUnit), static_cast<unsigned long long>(v % kUnit));
    // Drop trailing zeros of the fraction, and the point when nothing is left of it.
    while (n > 0 && buf[n - 1] == '0') --n;
    if (n > 0 && buf[n - 1] == '.') --n;
    return std::string(buf, static_cast<std::size_t>(n));
}

std::int64_t hour_of(std::int64_t at_ms) noexcept {
    const std::int64_t s = at_ms >= 0 ? at_ms / 1000 : (at_ms - 999) / 1000;
    const std::int64_t r = ((s % kHourS) + kHourS) % kHourS;
    return s - r;
}

std::int64_t closes_at(std::int64_t hour, std::int64_t grace_s) noexcept { return hour + kHourS + std::max<std::int64_t>(grace_s, 0); }

bool expired(std::int64_t hour, std::int64_t now) noexcept { return now >= hour + kAzureWindowS - kExpiryMarginS; }

bool overdue(std::int64_t hour, std::int64_t grace_s, std::int64_t now) noexcept {
    return now >= closes_at(hour, grace_s) + kOverdueS;
}

std::int64_t default_lateness_s(std::int64_t grace_s) noexcept {
    return std::clamp<std::int64_t>(kAzureWindowS - grace_s, 0, kMaxLatenessS);
}

RecordPlan plan_record(const SampleFacts& f) noexcept {
    RecordPlan p;
    auto refuse = [&p](RecordRefusal r, std::int64_t bound = 0) {
        p.refusal = r;
        p.bound = bound;
        return p;
    };
    if (!f.dimension_known) return refuse(RecordRefusal::UnknownDimension);
    if (f.quantity <= 0 || f.quantity > kMaxSample) return refuse(RecordRefusal::BadQuantity);
    if (f.state == LinkState::None || f.state == LinkState::Pending) return refuse(RecordRefusal::NotLinked);
    // Times in ms; `now` and the limits come from us, `at` from the caller (bounded to 2^50 by it).
    const std::int64_t now_ms = f.now * 1000;
    if (f.at_ms > now_ms + kFutureSkewS * 1000) return refuse(RecordRefusal::InFuture, now_ms + kFutureSkewS * 1000);
    const std::int64_t oldest_ms = now_ms - std::clamp<std::int64_t>(f.lateness_s, 0, kMaxLatenessS) * 1000;
    if (f.at_ms < oldest_ms) return refuse(RecordRefusal::TooLate, oldest_ms);
    if (f.activated_at && f.at_ms < *f.activated_at * 1000)
        return refuse(RecordRefusal::BeforeSubscription, *f.activated_at * 1000);
    const std::int64_t hour = hour_of(f.at_ms);
    Micros total = f.own_total;
    switch (f.state) {
        case LinkState::None:
        case LinkState::Pending: return refuse(RecordRefusal::NotLinked);
        case LinkState::Unsubscribed:
            // Usage up to the cancellation is billed; from it on, nothing is.
            if (!f.cancelled_at || f.at_ms >= *f.cancelled_at * 1000) return refuse(RecordRefusal::AfterCancellation);
            // Its hour closes after the grace like any other; a sample after that has nowhere to go.
            if (!f.bucket_open || f.now >= closes_at(hour, f.grace_s)) return refuse(RecordRefusal::HourClosed);
            p.hour = hour;
            break;
        case LinkState::Linked:
        case LinkState::Suspended: {
            const std::int64_t current = hour_of(now_ms);
            if (hour < current && (!f.bucket_open || f.now >= closes_at(hour, f.grace_s))) {
                p.hour = current;
                p.carried_from = hour;
                total = f.current_total;
            } else {
                p.hour = hour;
            }
            break;
        }
    }
    if (total < 0 || total > kMaxHourTotal - f.quantity) return refuse(RecordRefusal::HourTotalTooLarge, kMaxHourTotal);
    p.closes_at = closes_at(p.hour, f.grace_s);
    return p;
}

std::string_view record_refusal_name(RecordRefusal r) noexcept {
    switch (r) {
        case RecordRefusal::UnknownDimension: return "unknown_dimension";
        case RecordRefusal::BadQuantity: return "bad_quantity";
        case RecordRefusal::NotLinked: return "not_linked";
        case RecordRefusal::AfterCancellation: return "after_cancellation";
        case RecordRefusal::HourClosed: return "hour_closed";
        case RecordRefusal::TooLate: return "too_late";
        case RecordRefusal::InFuture: return "in_future";
        case RecordRefusal::BeforeSubscription: return "before_subscription";
        case RecordRefusal::HourTotalTooLarge: return "hour_total_too_large";
    }
    return "unknown";
}

std::int64_t term_start_for(std::int64_t hour, std::int64_t start, int months) noexcept {
    if (months <= 0 || hour < start) return start;
    // Estimate the number of whole terms, then step to the exact anniversary.
    std::int64_t k = (hour - start) / (static_cast<std::int64_t>(months) * 31 * 86400);
    while (add_months(start, (k + 1) * months) <= hour) ++k;
    while (k > 0 && add_months(start, k * months) > hour) --k;
    return add_months(start, k * months);
}

namespace {

// Azure's dates: "2026-03-15" or "2026-03-15T10:30:00Z" (the time as Azure writes it: digits and
// ":.Z+-"); unix seconds of its UTC day and hour:minute.
std::optional<std::int64_t> parse_date(std::string_view s) noexcept {
    if (s.size() < 10 || s.size() > 40 || s[4] != '-' || s[7] != '-') return std::nullopt;
    const auto y = s.substr(0, 4), m = s.substr(5, 2), d = s.substr(8, 2);
    if (!all_digits(y) || !all_digits(m) || !all_digits(d)) return std::nullopt;
    const unsigned yy = number(y), mm = number(m), dd = number(d);
    if (mm < 1 || mm > 12 || dd < 1 || dd > last_day(yy, mm)) return std::nullopt;
    std::int64_t secs = 0;
    if (s.size() > 10) {
        const auto time = s.substr(11);
        if (s[10] != 'T' || time.empty() ||
            !std::all_of(time.begin(), time.end(), [](char c) {
                return (c >= '0' && c <= '9') || c == ':' || c == '.' || c == 'Z' || c == '+' || c == '-';
            }))
            return std::nullopt;
        if (time.size() >= 5 && time[2] == ':' && all_digits(time.substr(0, 2)) && all_digits(time.substr(3, 2))) {
            const unsigned h = number(time.substr(0, 2)), mi = number(time.substr(3, 2));
            if (h > 23 || mi > 59) return std::nullopt;
            secs = h * 3600 + mi * 60;
        }
    }
    return days_from_civil(yy, mm, dd) * kDayS + secs;
}

}  // namespace

std::optional<Term> parse_term(std::string_view start_date, std::string_view end_date,
                               std::string_view term_unit) noexcept {
    const auto start = parse_date(start_date);
    if (!start || !parse_date(end_date)) return std::nullopt;
    if (term_unit.size() < 3 || term_unit.size() > 4 || term_unit.front() != 'P') return std::nullopt;
    const auto n = term_unit.substr(1, term_unit.size() - 2);
    const char unit = term_unit.back();
    if (!all_digits(n) || number(n) == 0 || (unit != 'M' && unit != 'Y')) return std::nullopt;
    return Term{*start, static_cast<int>(number(n) * (unit == 'Y' ? 12 : 1))};
}

ClosePlan plan_close(Micros recorded, Micros carried_in, Micros included, const TermCounter& before,
                     std::int64_t hour_term_start) noexcept {
    ClosePlan p;
    if (recorded < 0 || recorded > kMaxHourTotal || carried_in < 0 || carried_in > kMaxHourTotal) {
        p.too_large = true;
        p.counter = before;
        return p;
    }
    // A new term starts from nothing used: the included quantity is there again. The term's usage
    // is kept up to kMaxTermUsed (far beyond any included quantity): every sum stays within 64 bits.
    const Micros used_before = before.term_start == hour_term_start ? std::clamp<Micros>(before.used, 0, kMaxTermUsed) : 0;
    const Micros used_after = used_before + recorded;
    const Micros billable = excess(used_after, included) - excess(used_before, included);
    p.absorbed = recorded - billable;
    p.counter = TermCounter{hour_term_start, std::min(used_after, kMaxTermUsed)};
    if (billable + carried_in > kMaxHourTotal) {
        p.too_large = true;
        return p;
    }
    p.reported = billable + carried_in;
    return p;
}

bool may_submit(LinkState state) noexcept { return state == LinkState::Linked || state == LinkState::Unsubscribed; }

std::optional<ItemStatus> item_status_from_name(std::string_view name) noexcept {
    static constexpr std::array<std::pair<ItemStatus, std::string_view>, 10> kNames{{
        {ItemStatus::Accepted, "Accepted"},
        {ItemStatus::Duplicate, "Duplicate"},
        {ItemStatus::Expired, "Expired"},
        {ItemStatus::ResourceNotFound, "ResourceNotFound"},
        {ItemStatus::ResourceNotActive, "ResourceNotActive"},
        {ItemStatus::InvalidDimension, "InvalidDimension"},
        {ItemStatus::InvalidQuantity, "InvalidQuantity"},
        {ItemStatus::BadArgument, "BadArgument"},
        {ItemStatus::ResourceNotAuthorized, "ResourceNotAuthorized"},
        {ItemStatus::Error, "Error"},
    }};
    const std::string_view t = detail::trim(name);
    for (const auto& [s, n] : kNames)
        if (detail::iequals(t, n)) return s;
    return std::nullopt;
}


std::string_view item_outcome_name(ItemOutcome o) noexcept {
    switch (o) {
        case ItemOutcome::Done: return "done";
        case ItemOutcome::Mismatch: return "mismatch";
        case ItemOutcome::Carried: return "carried";
        case ItemOutcome::Held: return "held";
        case ItemOutcome::Dropped: return "dropped";
        case ItemOutcome::Rejected: return "rejected";
        case ItemOutcome::Retry: return "retry";
        case ItemOutcome::Lookup: return "lookup";
        case ItemOutcome::Check: return "check";
    }
    return "unknown";
}

bool settled(ItemOutcome o) noexcept {
    switch (o) {
        case ItemOutcome::Done:
        case ItemOutcome::Mismatch:
        case ItemOutcome::Carried:
        case ItemOutcome::Dropped:
        case ItemOutcome::Rejected: return true;
        case ItemOutcome::Held:
        case ItemOutcome::Retry:
        case ItemOutcome::Lookup:
        case ItemOutcome::Check: return false;
    }
    return false;
}

std::int64_t last_archivable_hour(std::int64_t now, std::int64_t grace_s) noexcept {
    // hour <= now - kHourS - grace is closes_at(hour, grace) <= now; rounded down to an hour start.
    return floor_to(sat_sub(sat_sub(now, kHourS), std::max<std::int64_t>(grace_s, 0)), kHourS);
}

std::int64_t first_kept_day(std::int64_t now, std::int64_t history_days) noexcept {
    const std::int64_t back = std::clamp<std::int64_t>(history_days, 1, kMaxDays) - 1;
    return floor_to(sat_sub(floor_to(now, kDayS), back * kDayS), kDayS);
}

std::int64_t dedupe_cutoff(std::int64_t now, std::int64_t window_s) noexcept { return sat_sub(now, window_s); }

std::int64_t sweep_interval_ms(std::int64_t window_s) noexcept {
    return 1000 * std::clamp<std::int64_t>(window_s / 10, 1, 60);
}

namespace {
std::optional<SettingVerdict> at_least(std::optional<std::int64_t> value, std::int64_t minimum) noexcept {
    if (!value || *value <= 0) return SettingVerdict{SettingProblem::NotAPositiveInteger, 1};
    if (*value < minimum) return SettingVerdict{SettingProblem::BelowMinimum, minimum};
    return std::nullopt;
}
}  // namespace

std::optional<SettingVerdict> check_history_days(std::optional<std::int64_t> value) noexcept {
    return at_least(value, kMinHistoryDays);
}

std::optional<SettingVerdict> check_dedupe_window_s(std::optional<std::int64_t> value) noexcept { return at_least(value, 1); }

std::optional<SettingVerdict> check_grace_s(std::optional<std::int64_t> value) noexcept {
    if (!value || *value < 0) return SettingVerdict{SettingProblem::NotANonNegativeInteger, 0};
    if (*value > kMaxGraceS) return SettingVerdict{SettingProblem::AboveMaximum, kMaxGraceS};
    return std::nullopt;
}

std::optional<SettingVerdict> check_lateness_s(std::optional<std::int64_t> value) noexcept {
    if (!value || *value < 0) return SettingVerdict{SettingProblem::NotANonNegativeInteger, 0};
    if (*value > kMaxLatenessS) return SettingVerdict{SettingProblem::AboveMaximum, kMaxLatenessS};
    return std::nullopt;
}

std::string_view setting_name(Setting s) noexcept {
    switch (s) {
        case Setting::GraceS: return "grace_s";
        case Setting::LatenessS: return "lateness_s";
        case Setting::LeaseS: return "lease_s";
        case Setting::TickMs: return "tick_ms";
        case Setting::RetryBaseS: return "retry_base_s";
        case Setting::RetryMaxS: return "retry_max_s";
        case Setting::HistoryDays: return "history_days";
        case Setting::DedupeWindowS: return "dedupe_window_s";
    }
    return "";
}

ResolvedSettings resolve_settings(const SettingValue (&given)[std::size(kSettings)]) noexcept {
    // Defaults: hours close 5 min after they end; the emitter's lease lasts 30 s and the meter
    // looks for work every 5 s; a refused hour is retried after 1 min, backing off to 1 h.
    constexpr std::int64_t kDefaults[] = {kDefaultGraceS, -1, 30, 5000, 60, 3600, kDefaultHistoryDays,
                                          kDefaultDedupeWindowS};
    static_assert(std::size(kDefaults) == std::size(kSettings));
    ResolvedSettings r;
    for (Setting s : kSettings) {
        const auto i = static_cast<std::size_t>(s);
        std::int64_t v = kDefaults[i];
        if (s == Setting::LatenessS) v = default_lateness_s(r[Setting::GraceS]);
        if (given[i].given) {
            std::optional<SettingVerdict> verdict;
            switch (s) {
                case Setting::GraceS: verdict = check_grace_s(given[i].value); break;
                case Setting::LatenessS: verdict = check_lateness_s(given[i].value); break;
                case Setting::HistoryDays: verdict = check_history_days(given[i].value); break;
                default: verdict = at_least(given[i].value, 1); break;
            }
            if (verdict) r.refused.emplace_back(s, *verdict);
            // A value of the right kind beyond its bounds is refused by the config (start,
            // config change); once in the env behind that check it is used as given.
            const bool right_kind = !verdict || verdict->problem == SettingProblem::BelowMinimum ||
                                    verdict->problem == SettingProblem::AboveMaximum;
            if (right_kind) v = *given[i].value;
        }
        r.values[i] = v;
    }
    return r;
}

std::optional<std::size_t> repeated_dimension(const std::vector<std::string_view>& ids) {
    // Sorted by (id, position): a repeat is the later of two equal neighbours; the first in the
    // configured order is the smallest such position.
    std::vector<std::pair<std::string_view, std::size_t>> sorted;
    sorted.reserve(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) sorted.emplace_back(ids[i], i);
    std::sort(sorted.begin(), sorted.end());
    std::optional<std::size_t> first;
    for (std::size_t i = 1; i < sorted.size(); ++i) {
        if (sorted[i].first == sorted[i - 1].first && (!first || sorted[i].second < *first)) first = sorted[i].second;
    }
    return first;
}

ReconVerdict reconcile_day(Micros billed, std::optional<Micros> processed, std::string_view recon_status) noexcept {
    const std::string_view st = detail::trim(recon_status);
    if (detail::iequals(st, "Rejected") || detail::iequals(st, "Mismatch")) return ReconVerdict::Alarm;
    if (!processed) return billed == 0 ? ReconVerdict::Agree : ReconVerdict::Differ;
    return *processed == billed ? ReconVerdict::Agree : ReconVerdict::Differ;
}

std::optional<std::int64_t> day_to_reconcile(const DailyFacts& f) noexcept {
    const std::int64_t today = floor_to(f.now, kDayS);
    const std::int64_t yesterday = sat_sub(today, kDayS);
    if (yesterday <= f.last_reconciled) return std::nullopt;
    if (f.now < sat_sub(today, -kReconcileAfterS) || f.now < f.retry_after) return std::nullopt;
    return yesterday;
}

std::int64_t reconcile_retry_at(std::int64_t now) noexcept { return sat_sub(now, -kReconcileRetryS); }

}  // namespace azmp::metering
