// The meter's tick, closing hours and a day's reconciliation. See azmp/metering_tick.hpp.
#include "azmp/metering_tick.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <algorithm>
#include <limits>
#include <map>
#include <utility>

#include "azmp/operations.hpp"
#include "civil_time.hpp"
#include "metering_json.hpp"

namespace azmp::metering {

using detail::sat_add;

HeldRelease plan_held(const HeldHour& h, std::int64_t now) noexcept {
    // Links are never deleted, only cancelled: an hour whose link is gone waits for nothing.
    if (h.state == LinkState::None) return HeldRelease::Drop;
    if (!may_submit(h.state)) return HeldRelease::Keep;
    if (!expired(h.hour, now)) return HeldRelease::Send;
    // Too late for its own hour; an attempt before the hold may be billed already.
    return h.outcome_unknown ? HeldRelease::Lookup : HeldRelease::Carry;
}

TickPlan plan_tick(const TickFacts& f) {
    TickPlan p;
    const std::int64_t grace = std::clamp<std::int64_t>(f.grace_s, 0, kMaxGraceS);
    p.lease_until = sat_add(f.now, std::max<std::int64_t>(f.lease_s, 1));
    // The lease may lapse while a call is out: the call has ended at the latest a timeout after
    // the lease was last renewed, which a sender does before each call.
    p.in_flight_until =
        sat_add(p.lease_until, (std::clamp<std::int64_t>(f.call_timeout_ms, 1, 86'400'000) + 999) / 1000 *
                                   std::clamp<std::int64_t>(f.window_waves, 1, 1000));
    p.current_hour = hour_of(f.now * 1000);
    p.current_closes_at = closes_at(p.current_hour, grace);
    p.archive_last_hour = last_archivable_hour(f.now, grace);
    p.first_kept_day = first_kept_day(f.now, f.history_days);
    // overdue(hour) is now >= hour + 1 h + grace + kOverdueS, i.e. hour < this.
    p.overdue_before = sat_add(f.now, -(kHourS + grace + kOverdueS) + 1);
    p.reconcile_day = day_to_reconcile(DailyFacts{f.now, f.last_reconciled, f.reconcile_retry_after});
    p.reconcile_retry_at = reconcile_retry_at(f.now);
    p.releases.reserve(f.held.size());
    for (const auto& h : f.held) p.releases.push_back(plan_held(h, f.now));
    p.lookup_days.reserve(f.lookups.size());
    for (const std::int64_t hour : f.lookups) {
        const std::int64_t day = detail::floor_to(hour, kDayS);
        p.lookup_days.emplace_back(day, sat_add(day, kDayS - 1));
    }
    p.batch_size = kMaxBatchEvents;
    return p;
}

ClosePlan plan_close_hour(const CloseFacts& f) noexcept {
    // Azure's term; without one, monthly from the purchase (its activation); failing that, calendar months.
    const Term term = f.term ? *f.term : f.activated_at ? Term{*f.activated_at, 1} : Term{0, 1};
    const std::int64_t hour_term = term_start_for(f.hour, term.start, term.months);
    TermCounter c = f.counter;
    if (c.term_start < hour_term) {
        // The hour opens a new term: the one before is kept for its late samples.
        c.prev_term_start = c.term_start;
        c.prev_used = c.used;
        c.term_start = hour_term;
        c.used = 0;
    }
    // Late samples of the term before: billed against it. (Later terms than the hour's cannot be.)
    Micros prev_part = 0, prev_billable = 0;
    for (const LateSample& s : f.late) {
        if (s.quantity <= 0 || s.quantity > kMaxHourTotal) continue;
        const std::int64_t own_term = term_start_for(s.from_hour, term.start, term.months);
        if (own_term == hour_term || own_term != c.prev_term_start) continue;
        const Micros before = std::min(c.prev_used, kMaxTermUsed);
        const Micros after = std::min(before + s.quantity, kMaxTermUsed);
        prev_billable += std::max<Micros>(after - f.included, 0) - std::max<Micros>(before - f.included, 0);
        c.prev_used = after;
        prev_part += s.quantity;
    }
    const Micros own = f.recorded >= prev_part ? f.recorded - prev_part : 0;
    const Micros carried = f.carried_in > kMaxHourTotal - std::min(prev_billable, kMaxHourTotal)
                               ? kMaxHourTotal + 1  // too large: set apart by plan_close
                               : f.carried_in + prev_billable;
    ClosePlan p = plan_close(own, carried, f.included, c, hour_term);
    p.absorbed += prev_part - prev_billable;
    p.counter.prev_term_start = c.prev_term_start;
    p.counter.prev_used = c.prev_used;
    return p;
}

std::optional<std::vector<ReconDifference>> plan_reconcile(const std::vector<LedgerHour>& ours, const CallResult& rows) {
    using detail_json::lower;
    using detail_json::str;
    if (rows.kind != CallKind::Answered || rows.body == nullptr || !rows.body->is_array()) return std::nullopt;
    struct Pair {
        std::string resource_id, dimension;
        Micros billed = 0;
        std::optional<Micros> processed;
        std::string status;
    };
    std::map<std::pair<std::string, std::string>, Pair> pairs;
    for (const auto& o : ours) {
        Pair& p = pairs[{lower(o.resource_id), lower(o.dimension)}];
        if (p.resource_id.empty()) p.resource_id = o.resource_id, p.dimension = o.dimension;
        p.billed += known_taken(o);
    }
    for (const auto& v : rows.body->get_array()) {
        if (!v.is_object()) continue;
        const auto& row = v.get_object();
        const std::string_view rid = str(row, "usageResourceId"), dim = str(row, "dimension");
        if (rid.empty() || dim.empty() || rid.size() > 256 || dim.size() > 256) continue;
        Pair& p = pairs[{lower(rid), lower(dim)}];
        if (p.resource_id.empty()) p.resource_id = std::string(rid), p.dimension = std::string(dim);
        // An unreadable quantity counts as nothing: the pair then differs, and is reported.
        p.processed = p.processed.value_or(0) +
                      detail_json::quantity_of(row.if_contains("processedQuantity")).value_or(0);
        std::string_view status = azmp::detail::trim(str(row, "reconStatus"));
        if (status.size() > 64) status = "?";
        // Of a pair's statuses, the one that needs attention.
        if (p.status.empty() || reconcile_day(0, 0, status) == ReconVerdict::Alarm) p.status = std::string(status);
    }
    std::vector<ReconDifference> out;
    for (auto& [key, p] : pairs) {
        const ReconVerdict v = reconcile_day(p.billed, p.processed, p.status);
        if (v == ReconVerdict::Agree) continue;
        out.push_back(ReconDifference{std::move(p.resource_id), std::move(p.dimension), v, p.billed, p.processed,
                                      std::move(p.status)});
    }
    return out;
}

}  // namespace azmp::metering
