// Metering rules, row by row (issue: pay-as-you-go metering; DESIGN.md section 6).
#include <gtest/gtest.h>

#include "azmp/metering.hpp"

namespace azmp::metering {
namespace {

constexpr std::int64_t kH = kHourS;
// 2026-03-10T10:00:00Z
constexpr std::int64_t k10 = 1'773'136'800;

TEST(MeteringDecimal, ExactBothWays) {
    struct Row {
        const char* text;
        std::optional<Micros> micros;
    };
    const Row rows[] = {
        {"12", 12'000'000}, {"0.5", 500'000}, {"3.141592", 3'141'592}, {"0.000001", 1}, {"0", 0},
        {"1.0000001", std::nullopt}, {"-1", std::nullopt}, {"1e3", std::nullopt}, {"", std::nullopt},
        {".5", std::nullopt}, {"5.", std::nullopt}, {"1000000000001", std::nullopt}, {"1000000000000", kMaxSample},
    };
    for (const auto& r : rows) EXPECT_EQ(parse_decimal(r.text), r.micros) << r.text;
    EXPECT_EQ(format_decimal(12'500'000), "12.5");
    EXPECT_EQ(format_decimal(3'000'000), "3");
    EXPECT_EQ(format_decimal(10'000'000), "10");
    EXPECT_EQ(format_decimal(1), "0.000001");
    EXPECT_EQ(format_decimal(0), "0");
    EXPECT_EQ(format_decimal(-1'500'000), "-1.5");
    EXPECT_EQ(from_double(0.1), 100'000);
    EXPECT_EQ(from_double(2.0000004), 2'000'000);
    EXPECT_FALSE(from_double(-0.5));
    EXPECT_FALSE(from_double(1.0 / 0.0));
}

TEST(MeteringDecimal, NoDriftOverAMillionAdditions) {
    Micros sum = 0;
    for (int i = 0; i < 1'000'000; ++i) sum += *from_double(0.1);
    EXPECT_EQ(format_decimal(sum), "100000");
}

TEST(MeteringHours, SamplesLandInTheirUtcHour) {
    struct Row {
        const char* sentence;
        std::int64_t at_ms;
        std::int64_t hour;
    };
    const Row rows[] = {
        {"10:00:00.000 is in the 10:00 hour", k10 * 1000, k10},
        {"10:59:59.999 is in the 10:00 hour", (k10 + kH) * 1000 - 1, k10},
        {"11:00:00.000 is in the 11:00 hour", (k10 + kH) * 1000, k10 + kH},
        {"before 1970 still rounds down", -1, -kH},
    };
    for (const auto& r : rows) EXPECT_EQ(hour_of(r.at_ms), r.hour) << r.sentence;
    EXPECT_EQ(closes_at(k10, 300), k10 + kH + 300) << "an hour closes a grace after it ends";
    EXPECT_FALSE(expired(k10, k10 + 23 * kH));
    EXPECT_TRUE(expired(k10, k10 + 24 * kH)) << "Azure takes 24 h; we carry forward a little before";
    EXPECT_FALSE(overdue(k10, 300, k10 + kH + 300 + 12 * kH - 1));
    EXPECT_TRUE(overdue(k10, 300, k10 + kH + 300 + 12 * kH)) << "12 h after it closed";
}

TEST(MeteringRecord, WhatASampleDoes) {
    using S = LinkState;
    const std::int64_t now = k10 + 30 * 60;  // 10:30
    auto facts = [&](S state, std::int64_t at_s, bool open = true) {
        SampleFacts f;
        f.dimension_known = true;
        f.quantity = kUnit;
        f.at_ms = at_s * 1000;
        f.state = state;
        f.bucket_open = open;
        f.now = now;
        return f;
    };
    struct Row {
        const char* sentence;
        SampleFacts f;
        std::optional<RecordRefusal> refusal;
        std::int64_t hour;
        std::optional<std::int64_t> carried_from;
    };
    SampleFacts unknown_dim = facts(S::Linked, now);
    unknown_dim.dimension_known = false;
    SampleFacts zero = facts(S::Linked, now);
    zero.quantity = 0;
    SampleFacts cancelled_before = facts(S::Unsubscribed, k10 + 600);
    cancelled_before.cancelled_at = k10 + 1200;
    SampleFacts cancelled_after = facts(S::Unsubscribed, k10 + 1200);
    cancelled_after.cancelled_at = k10 + 1200;
    SampleFacts within_grace = facts(S::Linked, k10 - 600);
    within_grace.now = k10 + 120;  // 10:02: the 09:00 hour closes at 10:05
    SampleFacts cancelled_closed = cancelled_before;
    cancelled_closed.bucket_open = false;
    const Row rows[] = {
        {"usage of a linked account goes into its hour", facts(S::Linked, now), std::nullopt, k10, std::nullopt},
        {"usage while suspended is recorded (submission is held)", facts(S::Suspended, now), std::nullopt, k10,
         std::nullopt},
        {"an unknown dimension is refused", unknown_dim, RecordRefusal::UnknownDimension, 0, std::nullopt},
        {"a quantity of zero is refused", zero, RecordRefusal::BadQuantity, 0, std::nullopt},
        {"an account that is not linked is refused", facts(S::None, now), RecordRefusal::NotLinked, 0, std::nullopt},
        {"an account still linking is refused", facts(S::Pending, now), RecordRefusal::NotLinked, 0, std::nullopt},
        {"usage before the cancellation is billed", cancelled_before, std::nullopt, k10, std::nullopt},
        {"usage at or after the cancellation is refused", cancelled_after, RecordRefusal::AfterCancellation, 0,
         std::nullopt},
        {"a cancelled account's hour closed by the cancellation takes nothing more", cancelled_closed,
         RecordRefusal::HourClosed, 0, std::nullopt},
        {"usage for the last hour within its grace still goes into it", within_grace, std::nullopt, k10 - kH,
         std::nullopt},
        {"usage for an hour already closed is carried into the current hour", facts(S::Linked, k10 - 600, false),
         std::nullopt, k10, k10 - kH},
        {"usage for an hour past its grace is carried into the current hour", facts(S::Linked, k10 - 2 * kH),
         std::nullopt, k10, k10 - 2 * kH},
    };
    for (const auto& r : rows) {
        const RecordPlan p = plan_record(r.f);
        EXPECT_EQ(p.refusal, r.refusal) << r.sentence;
        if (!r.refusal) {
            EXPECT_EQ(p.hour, r.hour) << r.sentence;
            EXPECT_EQ(p.carried_from, r.carried_from) << r.sentence;
            EXPECT_EQ(p.closes_at, r.hour + kH + 300) << r.sentence << ": its hour closes a grace after it ends";
        }
    }
    EXPECT_EQ(record_refusal_name(RecordRefusal::AfterCancellation), "after_cancellation");
}

TEST(MeteringTerms, IncludedQuantitiesResetAtTheAnniversary) {
    // Term started 2026-01-31T08:00:00Z, monthly: Feb 28, Mar 31, Apr 30 (end-of-month clamped).
    constexpr std::int64_t kJan31 = 1'769'846'400;
    constexpr std::int64_t kDay = 86400;
    EXPECT_EQ(term_start_for(kJan31 + 3 * kDay, kJan31, 1), kJan31);
    EXPECT_EQ(term_start_for(kJan31 + 28 * kDay - 1, kJan31, 1), kJan31) << "the hour before Feb 28, 08:00";
    EXPECT_EQ(term_start_for(kJan31 + 28 * kDay, kJan31, 1), kJan31 + 28 * kDay) << "Feb 28, 08:00";
    EXPECT_EQ(term_start_for(kJan31 + 59 * kDay, kJan31, 1), kJan31 + 59 * kDay) << "Mar 31, 08:00";
    EXPECT_EQ(term_start_for(kJan31 + 365 * kDay, kJan31, 12), kJan31 + 365 * kDay) << "yearly";
    EXPECT_EQ(term_start_for(kJan31 - kDay, kJan31, 1), kJan31) << "before the first term: the first term";
}

TEST(MeteringClose, OnlyTheExcessOverTheIncludedQuantityIsReported) {
    const Micros U = kUnit;
    struct Row {
        const char* sentence;
        Micros recorded, carried, included;
        TermCounter before;
        std::int64_t term;
        Micros reported, absorbed, used_after;
    };
    const Row rows[] = {
        {"no included quantity: everything is reported", 5 * U, 0, 0, {1, 0}, 1, 5 * U, 0, 5 * U},
        {"entirely within the included quantity: nothing is sent", 5 * U, 0, 100 * U, {1, 10 * U}, 1, 0, 5 * U, 15 * U},
        {"the hour that crosses the threshold reports only the excess", 10 * U, 0, 100 * U, {1, 95 * U}, 1, 5 * U,
         5 * U, 105 * U},
        {"past the threshold: all of it", 10 * U, 0, 100 * U, {1, 120 * U}, 1, 10 * U, 0, 130 * U},
        {"a new term: the included quantity is there again", 10 * U, 0, 100 * U, {1, 120 * U}, 2, 0, 10 * U, 10 * U},
        {"carried quantities are reported as they are", 0, 3 * U, 100 * U, {1, 0}, 1, 3 * U, 0, 0},
        {"exact decimals", 333'333, 0, 1 * U, {1, 900'000}, 1, 233'333, 100'000, 1'233'333},
    };
    for (const auto& r : rows) {
        const ClosePlan p = plan_close(r.recorded, r.carried, r.included, r.before, r.term);
        EXPECT_EQ(p.reported, r.reported) << r.sentence;
        EXPECT_EQ(p.absorbed, r.absorbed) << r.sentence;
        EXPECT_EQ(p.counter.used, r.used_after) << r.sentence;
        EXPECT_EQ(p.counter.term_start, r.term) << r.sentence;
    }
}

TEST(MeteringItems, WhatEachAnswerMeans) {
    using S = LinkState;
    using O = ItemOutcome;
    const Micros q = 7 * kUnit;
    struct Row {
        const char* sentence;
        const char* status;
        std::optional<Micros> azure;
        S state;
        O outcome;
        Micros carry;
        bool alarm;
    };
    const Row rows[] = {
        {"Accepted: done", "Accepted", std::nullopt, S::Linked, O::Done, 0, false},
        {"Duplicate with our quantity proves an earlier reply was lost: done", "Duplicate", q, S::Linked, O::Done, 0,
         false},
        {"Duplicate with less than ours: alarm, the difference carried forward", "Duplicate", 5 * kUnit, S::Linked,
         O::Mismatch, 2 * kUnit, true},
        {"Duplicate with more than ours: alarm, nothing carried", "Duplicate", 9 * kUnit, S::Linked, O::Mismatch, 0, true},
        {"Expired: carried into the current hour, alarm", "Expired", std::nullopt, S::Linked, O::Carried, q, true},
        {"ResourceNotActive while suspended: held", "ResourceNotActive", std::nullopt, S::Suspended, O::Held, 0, false},
        {"ResourceNotActive once unsubscribed: dropped, with a ledger entry", "ResourceNotActive", std::nullopt,
         S::Unsubscribed, O::Dropped, 0, true},
        {"ResourceNotFound: rejected, never retried as is", "ResourceNotFound", std::nullopt, S::Linked, O::Rejected, 0,
         true},
        {"ResourceNotAuthorized: rejected", "ResourceNotAuthorized", std::nullopt, S::Linked, O::Rejected, 0, true},
        {"InvalidDimension: rejected", "InvalidDimension", std::nullopt, S::Linked, O::Rejected, 0, true},
        {"InvalidQuantity: rejected", "InvalidQuantity", std::nullopt, S::Linked, O::Rejected, 0, true},
        {"BadArgument: rejected", "BadArgument", std::nullopt, S::Linked, O::Rejected, 0, true},
        {"Error: retried", "Error", std::nullopt, S::Linked, O::Retry, 0, false},
        {"a padded status is read as Azure means it", " accepted ", std::nullopt, S::Linked, O::Done, 0, false},
    };
    for (const auto& r : rows) {
        const auto status = item_status_from_name(r.status);
        ASSERT_TRUE(status.has_value()) << r.sentence;
        const ItemPlan p = plan_item(*status, q, r.azure, r.state);
        EXPECT_EQ(p.outcome, r.outcome) << r.sentence;
        EXPECT_EQ(p.carry, r.carry) << r.sentence;
        EXPECT_EQ(p.alarm, r.alarm) << r.sentence;
    }
    EXPECT_FALSE(item_status_from_name("Whatever")) << "an unknown status is retried (ItemStatus::Unknown)";
    EXPECT_EQ(plan_item(ItemStatus::Unknown, q, std::nullopt, S::Linked).outcome, O::Retry);
}

TEST(MeteringSubmission, SuspensionHoldsReinstatementReleases) {
    EXPECT_TRUE(may_submit(LinkState::Linked));
    EXPECT_FALSE(may_submit(LinkState::Suspended));
    EXPECT_TRUE(may_submit(LinkState::Unsubscribed)) << "usage up to the cancellation still goes out";
    EXPECT_FALSE(may_submit(LinkState::Pending));
    EXPECT_EQ(plan_release(k10, k10 + 2 * kH), Release::Send);
    EXPECT_EQ(plan_release(k10, k10 + 30 * kH), Release::Carry) << "held past Azure's 24 h: carried forward";
}

TEST(MeteringReconcile, EveryDifferenceIsReported) {
    using V = ReconVerdict;
    const Micros q = 7 * kUnit;
    struct Row {
        const char* sentence;
        Micros billed;
        std::optional<Micros> processed;
        const char* status;
        V verdict;
    };
    const Row rows[] = {
        {"Azure processed what we billed", q, q, "Accepted", V::Agree},
        {"still being processed, same quantity", q, q, "Submitted", V::Agree},
        {"Azure processed less", q, 5 * kUnit, "Accepted", V::Differ},
        {"Azure has nothing for a day we billed", q, std::nullopt, "", V::Differ},
        {"nothing on either side", 0, std::nullopt, "", V::Agree},
        {"Azure holds usage we have no record of", 0, q, "Accepted", V::Differ},
        {"Rejected raises an alarm", q, q, "Rejected", V::Alarm},
        {"Mismatch raises an alarm", q, q, " mismatch ", V::Alarm},
    };
    for (const auto& r : rows) EXPECT_EQ(reconcile_day(r.billed, r.processed, r.status), r.verdict) << r.sentence;
}

}  // namespace
}  // namespace azmp::metering
