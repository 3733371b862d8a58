// The meter's tick, closing hours and reconciliation: each row is a rule of the money path.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "azmp/metering_tick.hpp"

namespace azmp::metering {
namespace {

namespace json = boost::json;
using S = LinkState;
using R = HeldRelease;

constexpr std::int64_t k10 = 1764756000;  // 2025-12-03T10:00:00Z
constexpr std::int64_t kH = kHourS;

TEST(MeteringTick, WhatATickDoesWhen) {
    TickFacts f;
    f.now = k10 + 30 * 60;
    f.grace_s = 300;
    f.lease_s = 30;
    f.call_timeout_ms = 44500;  // a call's at most 45 s, counted in whole seconds
    f.history_days = 40;
    f.window_waves = 5;
    f.lookups = {k10 - 3 * kH};
    const TickPlan p = plan_tick(f);
    EXPECT_EQ(p.lease_until, f.now + 30);
    EXPECT_EQ(p.in_flight_until, f.now + 30 + 5 * 45)
        << "an hour in flight is not taken over before the calls of its window ended";
    EXPECT_EQ(p.batch_size, 25u);
    ASSERT_EQ(p.lookup_days.size(), 1u);
    EXPECT_EQ(p.lookup_days[0], std::make_pair(k10 - 10 * kH, k10 - 10 * kH + 86399)) << "07:00's UTC day";
    EXPECT_EQ(p.current_hour, k10);
    EXPECT_EQ(p.current_closes_at, k10 + kH + 300);
    EXPECT_EQ(p.archive_last_hour, k10 - kH) << "09:00 closed at 10:05: settled, it may leave RAM";
    EXPECT_EQ(p.first_kept_day, k10 - 10 * kH - 39 * 86400);
    // 10:30 now: an hour is overdue when it closed 12 h ago, i.e. began before 21:25 the day before.
    EXPECT_EQ(p.overdue_before, f.now - kH - 300 - 12 * kH + 1);
    EXPECT_EQ(p.reconcile_day, k10 - 10 * kH - 86400) << "yesterday, once after 01:00";
    EXPECT_EQ(p.reconcile_retry_at, f.now + kH);
    f.last_reconciled = k10 - 10 * kH - 86400;
    EXPECT_FALSE(plan_tick(f).reconcile_day) << "yesterday is done";
}

TEST(MeteringTick, HeldHoursReleased) {
    struct Row {
        const char* sentence;
        HeldHour held;
        std::int64_t now;
        HeldRelease release;
    };
    const Row rows[] = {
        {"still suspended: kept", {k10, S::Suspended, false}, k10 + 2 * kH, R::Keep},
        {"reinstated within Azure's window: sent as it is", {k10, S::Linked, false}, k10 + 2 * kH, R::Send},
        {"reinstated too late for its hour: carried", {k10, S::Linked, false}, k10 + 24 * kH, R::Carry},
        {"reinstated too late, an attempt before the hold may be billed: looked up first, never carried blindly",
         {k10, S::Linked, true}, k10 + 24 * kH, R::Lookup},
        {"cancelled while held: usage up to the cancellation is still billed", {k10, S::Unsubscribed, false},
         k10 + 2 * kH, R::Send},
        {"its link is gone: dropped (alarmed), not held forever", {k10, S::None, false}, k10 + 2 * kH, R::Drop},
        {"still linking: kept", {k10, S::Pending, false}, k10 + 2 * kH, R::Keep},
    };
    for (const auto& r : rows) EXPECT_EQ(plan_held(r.held, r.now), r.release) << r.sentence;
    TickFacts f;
    f.now = k10 + 24 * kH;
    f.held = {rows[0].held, rows[3].held};
    EXPECT_EQ(plan_tick(f).releases, (std::vector<R>{R::Keep, R::Lookup}));
}

TEST(MeteringTick, TheTermAnHourCountsIn) {
    constexpr std::int64_t kMar15 = 1773532800;  // 2026-03-15T00:00:00Z
    struct Row {
        const char* sentence;
        std::optional<Term> term;
        std::optional<std::int64_t> activated_at;
        TermCounter before;
        std::int64_t hour;
        Micros reported;
    };
    const Micros U = kUnit;
    const Row rows[] = {
        {"Azure's term: its anniversary renews the included quantity", Term{kMar15, 1}, std::nullopt,
         {kMar15, 100 * U}, kMar15 + 31 * 86400, 0},
        {"Azure's term: before the anniversary the quantity is used up", Term{kMar15, 1}, std::nullopt,
         {kMar15, 100 * U}, kMar15 + 30 * 86400, 10 * U},
        {"no term: monthly from the activation, not the 1st of the month", std::nullopt, kMar15,
         {kMar15, 100 * U}, kMar15 + 17 * 86400 + 3600, 10 * U},
        {"no term, no activation: calendar months", std::nullopt, std::nullopt, {kMar15 - 14 * 86400, 100 * U},
         kMar15 + 17 * 86400, 0},
    };
    for (const auto& r : rows) {
        CloseFacts f;
        f.recorded = 10 * U;
        f.included = 100 * U;
        f.counter = r.before;
        f.hour = r.hour;
        f.term = r.term;
        f.activated_at = r.activated_at;
        EXPECT_EQ(plan_close_hour(f).reported, r.reported) << r.sentence;
    }
}

TEST(MeteringTick, ALateSampleCountsInItsOwnHoursTerm) {
    // Monthly terms renewing at kT; 10 units included per term.
    constexpr std::int64_t kT = 1773532800;  // 2026-03-15T00:00:00Z
    const Micros U = kUnit;
    struct Row {
        const char* sentence;
        TermCounter before;
        Micros recorded;
        std::vector<LateSample> late;
        Micros reported, absorbed;
        TermCounter after;
    };
    const std::int64_t prev = kT - 28 * 86400;  // 2026-02-15: the term before
    const Row rows[] = {
        {"the first hour of a new term: a late sample of the old term's last hour (its allowance used up) is "
         "billed, not absorbed by the new allowance",
         {prev, 12 * U, 0, 0}, 7 * U, {{kT - kHourS, 5 * U}}, 5 * U, 2 * U, {kT, 2 * U, prev, 17 * U}},
        {"the old term had room: the late sample uses it, the new term's allowance stays whole",
         {prev, 4 * U, 0, 0}, 5 * U, {{kT - kHourS, 5 * U}}, 0, 5 * U, {kT, 0, prev, 9 * U}},
        {"a later hour of the new term: the old term's counter is still there for a late sample",
         {kT, 3 * U, prev, 10 * U}, 1 * U, {{kT - kHourS, 1 * U}}, 1 * U, 0, {kT, 3 * U, prev, 11 * U}},
        {"a late sample of the same term counts as the hour's own", {kT, 8 * U, prev, 10 * U}, 4 * U,
         {{kT + kHourS, 4 * U}}, 2 * U, 2 * U, {kT, 12 * U, prev, 10 * U}},
    };
    for (const auto& r : rows) {
        CloseFacts f;
        f.recorded = r.recorded;
        f.included = 10 * U;
        f.counter = r.before;
        f.hour = kT + 2 * kHourS;
        f.term = Term{prev, 1};
        f.late = r.late;
        const ClosePlan p = plan_close_hour(f);
        EXPECT_EQ(p.reported, r.reported) << r.sentence;
        EXPECT_EQ(p.absorbed, r.absorbed) << r.sentence;
        EXPECT_EQ(p.counter.term_start, r.after.term_start) << r.sentence;
        EXPECT_EQ(p.counter.used, r.after.used) << r.sentence;
        EXPECT_EQ(p.counter.prev_term_start, r.after.prev_term_start) << r.sentence;
        EXPECT_EQ(p.counter.prev_used, r.after.prev_used) << r.sentence;
    }
}

TEST(MeteringTick, ADaysReconciliation) {
    const json::value rows = json::parse(R"([
        {"usageResourceId":"SUB-1","dimension":"gb","processedQuantity":5,"reconStatus":"Accepted"},
        {"usageResourceId":"sub-1","dimension":"GB","processedQuantity":"2.5","reconStatus":"Accepted"},
        {"usageResourceId":"sub-2","dimension":"gb","processedQuantity":3,"reconStatus":"Accepted"},
        {"usageResourceId":"sub-3","dimension":"gb","processedQuantity":4,"reconStatus":"Mismatch"},
        {"usageResourceId":"sub-4","dimension":"gb","processedQuantity":1,"reconStatus":"Accepted"}])");
    using L = LedgerStatus;
    const std::vector<LedgerHour> ours = {
        {"sub-1", "gb", k10, L::Done, 5 * kUnit, std::nullopt, false},
        {"sub-1", "gb", k10 + kH, L::Mismatch, 3 * kUnit, 2500000, false},  // Azure holds 2.5 of it
        {"sub-1", "gb", k10 + 2 * kH, L::Rejected, 9 * kUnit, std::nullopt, false},  // Azure took none
        {"sub-2", "gb", k10, L::Done, 4 * kUnit, std::nullopt, false},
        {"sub-3", "gb", k10, L::Done, 4 * kUnit, std::nullopt, false},
        {"sub-5", "gb", k10, L::Done, kUnit, std::nullopt, false}};
    const auto diffs = plan_reconcile(ours, {CallKind::Answered, 200, &rows});
    ASSERT_TRUE(diffs);
    struct Want {
        const char* rid;
        ReconVerdict verdict;
    };
    const Want want[] = {{"sub-2", ReconVerdict::Differ},
                         {"sub-3", ReconVerdict::Alarm},
                         {"sub-4", ReconVerdict::Differ},
                         {"sub-5", ReconVerdict::Differ}};
    ASSERT_EQ(diffs->size(), 4u) << "sub-1 agrees: its two rows (any case, a quantity as text) sum to what our "
                                    "ledger says Azure took";
    for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_EQ((*diffs)[i].resource_id, want[i].rid);
        EXPECT_EQ((*diffs)[i].verdict, want[i].verdict) << want[i].rid;
    }
    EXPECT_FALSE((*diffs)[3].processed) << "Azure has nothing for sub-5";
    EXPECT_FALSE(plan_reconcile(ours, {CallKind::Unknown, 503, nullptr})) << "a failed call: try again later";
}

}  // namespace
}  // namespace azmp::metering
