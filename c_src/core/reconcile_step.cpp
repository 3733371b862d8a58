// The fulfillment reconciliation's step (reconcile_step.hpp).
#include "azmp/reconcile_step.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <algorithm>
#include <cmath>

#include "azmp/azure_fields.hpp"
#include "azmp/operations.hpp"
#include "azmp/rules.hpp"

namespace azmp::reconcile {

namespace {

std::optional<std::string> status_of(const boost::json::value* sub) {
    const boost::json::value* s = field(sub, "saasSubscriptionStatus");
    if (!s || !s->is_string() || s->get_string().size() > kMaxIdBytes) return std::nullopt;
    return std::string(s->get_string().data(), s->get_string().size());
}

}  // namespace

std::optional<std::vector<Seen>> read_subscriptions(const CallReport& answer, const std::string& one_id) {
    if (answer.kind != CallKind::Answered || !answer.body) return std::nullopt;
    std::vector<Seen> seen;
    if (!one_id.empty()) {
        auto status = status_of(answer.body);
        if (!status) return std::nullopt;
        seen.push_back(Seen{one_id, std::move(*status)});
        return seen;
    }
    if (!answer.body->is_array()) return std::nullopt;
    seen.reserve(answer.body->get_array().size());
    for (const boost::json::value& sub : answer.body->get_array()) {
        auto id = read_id(field(&sub, "id"));
        auto status = status_of(&sub);
        if (id && status) seen.push_back(Seen{std::move(*id), std::move(*status)});
    }
    return seen;
}

std::vector<Repair> plan_repairs(const std::vector<Seen>& seen, const std::unordered_map<std::string, Local>& links) {
    std::vector<Repair> repairs;
    for (const Seen& s : seen) {
        const auto it = links.find(s.subscription_id);
        if (it == links.end()) continue;
        if (const auto event = repair_event(s.status, it->second.state))
            repairs.push_back(Repair{it->second.account_id, s.subscription_id, *event});
    }
    return repairs;
}

std::int64_t enforce_changed_since(std::int64_t now, std::optional<std::int64_t> window_s) noexcept {
    const std::int64_t w = window_s && *window_s >= 0 ? *window_s : kDefaultEnforceWindowS;
    return now - w;
}

PageReading read_page(const CallReport& answer, std::string_view marketplace_base) {
    PageReading out;
    if (answer.kind != CallKind::Answered || !answer.body || !answer.body->is_object()) {
        out.fault = PageFault::Unreadable;
        return out;
    }
    const boost::json::object& obj = answer.body->get_object();
    const boost::json::value* subs = obj.if_contains("subscriptions");
    if (subs && !subs->is_null()) {
        if (!subs->is_array()) {
            out.fault = PageFault::Unreadable;
            return out;
        }
        out.page.seen.reserve(subs->get_array().size());
        for (const boost::json::value& sub : subs->get_array()) {
            auto id = read_id(field(&sub, "id"));
            auto status = status_of(&sub);
            if (id && status) out.page.seen.push_back(Seen{std::move(*id), std::move(*status)});
        }
    }
    const boost::json::value* next = obj.if_contains("@nextLink");
    if (next && !next->is_null() && !(next->is_string() && next->get_string().empty())) {
        if (!next->is_string() || next->get_string().size() > kMaxContinuationBytes ||
            !same_origin(std::string_view(next->get_string().data(), next->get_string().size()), marketplace_base)) {
            out.fault = PageFault::ForeignContinuation;
            out.page = {};
            return out;
        }
        out.page.continuation = std::string(next->get_string().data(), next->get_string().size());
    }
    return out;
}

namespace {

// Facts come from outside: an interval past a month is a month; the rest is computed in doubles and
// clamped, so that no time given (however far off) overflows.
constexpr std::int64_t kMaxIntervalMs = 30LL * 24 * 3600 * 1000;

std::int64_t interval_of(const Pace& p) noexcept { return std::clamp<std::int64_t>(p.interval_ms, 1, kMaxIntervalMs); }

std::int64_t clamped(double v, std::int64_t lo, std::int64_t hi) noexcept {
    if (!(v >= static_cast<double>(lo))) return lo;  // NaN too
    if (v >= static_cast<double>(hi)) return hi;
    return static_cast<std::int64_t>(v);
}

// This step's calls' time: none when negative, and at most a month (nothing overflows).
std::int64_t took_of(const Pace& p) noexcept { return std::clamp<std::int64_t>(p.took_ms, 0, kMaxIntervalMs); }

// The wait from now for a call `gap_ms` after this step's first call started.
std::int64_t after_start(std::int64_t gap_ms, const Pace& p) noexcept { return std::max<std::int64_t>(0, gap_ms - took_of(p)); }

}  // namespace

std::int64_t min_gap_ms(double max_calls_per_s) noexcept {
    const double rate = std::isfinite(max_calls_per_s) && max_calls_per_s > 0 ? max_calls_per_s : kDefaultMaxCallsPerS;
    return clamped(std::ceil(1000.0 / rate), 1, kMaxGapMs);
}

std::int64_t step_gap_ms(const Pace& p) noexcept {
    // At most a batch of doubts and a page a step; the product stays far inside 64 bits.
    const std::int64_t calls = std::clamp<std::int64_t>(p.calls, 1, 1'000);
    return std::min<std::int64_t>(min_gap_ms(p.max_calls_per_s) * calls, kMaxIntervalMs);
}

std::int64_t next_page_in_ms(const Pace& p) noexcept {
    const std::int64_t floor_gap = step_gap_ms(p);
    if (p.pages_last_pass <= 0 || p.pages_done >= p.pages_last_pass) return after_start(floor_gap, p);
    const double target_end = static_cast<double>(p.started_ms) + static_cast<double>(interval_of(p)) * kPassShare;
    const double step_start = static_cast<double>(p.now_ms) - static_cast<double>(took_of(p));
    const double pages_left = static_cast<double>(p.pages_last_pass) - static_cast<double>(p.pages_done);
    const std::int64_t gap =
        clamped(std::floor((target_end - step_start) / pages_left), floor_gap, std::max(floor_gap, kMaxGapMs));
    return after_start(gap, p);
}

std::int64_t next_pass_in_ms(const Pace& p) noexcept {
    const std::int64_t soonest = after_start(step_gap_ms(p), p);
    const double left = static_cast<double>(p.started_ms) + static_cast<double>(interval_of(p)) - static_cast<double>(p.now_ms);
    return clamped(left, soonest, std::max(soonest, interval_of(p)));
}

std::int64_t retry_page_in_ms(const Pace& p) noexcept {
    const std::int64_t soonest = after_start(step_gap_ms(p), p);
    return std::clamp<std::int64_t>(kRetryPageMs, soonest, std::max(soonest, interval_of(p)));
}

}  // namespace azmp::reconcile
