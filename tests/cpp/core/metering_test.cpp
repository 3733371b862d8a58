// Metering rules, row by row (issue: pay-as-you-go metering; DESIGN.md section 6).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>

#include <limits>
#include <string_view>
#include <vector>

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
    // Cancelled at 10:20 (Azure's time); a late sample of 10:10 arrives at 10:40: its hour is still open.
    SampleFacts cancelled_late = facts(S::Unsubscribed, k10 + 600);
    cancelled_late.cancelled_at = k10 + 1200;
    cancelled_late.now = k10 + 2400;
    SampleFacts days_old = facts(S::Linked, now - 3 * 86400);  // a replay of days ago
    SampleFacts seconds_as_ms = facts(S::Linked, 0);
    seconds_as_ms.at_ms = now;  // seconds mistaken for milliseconds: 1970
    SampleFacts a_day_late = facts(S::Linked, now - 86400 + 300 - 1);  // default lateness: 24 h less the grace
    SampleFacts just_in_time = facts(S::Linked, now - 86400 + 300);
    SampleFacts configured_late = facts(S::Linked, now - 2 * kH);
    configured_late.lateness_s = 3600;
    SampleFacts future = facts(S::Linked, now + 301);
    SampleFacts skewed = facts(S::Linked, now + 300);
    SampleFacts before_link = facts(S::Linked, k10 - 60);
    before_link.activated_at = k10;
    SampleFacts at_link = facts(S::Linked, k10);
    at_link.activated_at = k10;
    SampleFacts huge = facts(S::Linked, now);
    huge.quantity = kMaxSample;
    huge.own_total = 3 * kMaxSample;  // three trillion units already this hour: a fourth still fits
    SampleFacts too_huge = huge;
    too_huge.own_total = 3 * kMaxSample + 1;
    SampleFacts late_into_full = facts(S::Linked, k10 - 2 * kH);
    late_into_full.quantity = kMaxSample;
    late_into_full.current_total = kMaxHourTotal;  // the current hour, where a late sample goes, is full
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
        {"usage before an Azure cancellation arriving after it, its hour still in its grace, is billed", cancelled_late,
         std::nullopt, k10, std::nullopt},
        {"a replay of days ago is refused: too late", days_old, RecordRefusal::TooLate, 0, std::nullopt},
        {"seconds mistaken for milliseconds (1970) are refused: too late", seconds_as_ms, RecordRefusal::TooLate, 0,
         std::nullopt},
        {"a second more than a day less the grace late is refused", a_day_late, RecordRefusal::TooLate, 0, std::nullopt},
        {"a day less the grace late: carried into the current hour", just_in_time, std::nullopt, k10, k10 - 24 * kH},
        {"lateness configured to an hour: two hours late is refused", configured_late, RecordRefusal::TooLate, 0,
         std::nullopt},
        {"more than 5 minutes in the future is refused", future, RecordRefusal::InFuture, 0, std::nullopt},
        {"5 minutes ahead (clock skew) goes into its own hour", skewed, std::nullopt, k10, std::nullopt},
        {"before the link was activated is refused", before_link, RecordRefusal::BeforeSubscription, 0, std::nullopt},
        {"at the activation is billed", at_link, std::nullopt, k10, std::nullopt},
        {"a fourth trillion-unit sample in one hour still fits", huge, std::nullopt, k10, std::nullopt},
        {"one more unit than the hour may total is refused", too_huge, RecordRefusal::HourTotalTooLarge, 0,
         std::nullopt},
        {"a late sample into a full current hour is refused", late_into_full, RecordRefusal::HourTotalTooLarge, 0,
         std::nullopt},
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
    EXPECT_EQ(plan_record(a_day_late).bound, (now - 86400 + 300) * 1000) << "the oldest time accepted, in ms";
    EXPECT_EQ(plan_record(future).bound, (now + 300) * 1000) << "the latest time accepted, in ms";
    EXPECT_EQ(plan_record(before_link).bound, k10 * 1000) << "the activation, in ms";
    EXPECT_EQ(plan_record(too_huge).bound, kMaxHourTotal);
    EXPECT_EQ(default_lateness_s(300), 86400 - 300);
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
        {"one large customer: three trillion-unit samples in an hour are reported exactly", 3 * kMaxSample, 0, 0,
         {1, 0}, 1, 3 * kMaxSample, 0, 3 * kMaxSample},
        {"a term's usage beyond any included quantity is counted up to a cap: no overflow", kMaxHourTotal, 0, 0,
         {1, kMaxTermUsed}, 1, kMaxHourTotal, 0, kMaxTermUsed},
    };
    for (const auto& r : rows) {
        const ClosePlan p = plan_close(r.recorded, r.carried, r.included, r.before, r.term);
        EXPECT_EQ(p.reported, r.reported) << r.sentence;
        EXPECT_EQ(p.absorbed, r.absorbed) << r.sentence;
        EXPECT_EQ(p.counter.used, r.used_after) << r.sentence;
        EXPECT_EQ(p.counter.term_start, r.term) << r.sentence;
    }
}

TEST(MeteringClose, AnHourBeyondWhatMayBeSentIsSetApartNotARaise) {
    const ClosePlan over = plan_close(kMaxHourTotal + 1, 0, 0, {1, 0}, 1);
    EXPECT_TRUE(over.too_large);
    EXPECT_EQ(over.reported, 0);
    const ClosePlan carried = plan_close(kMaxHourTotal, 1, 0, {1, 0}, 1);
    EXPECT_TRUE(carried.too_large) << "the hour with what was carried into it";
    EXPECT_FALSE(plan_close(kMaxHourTotal, 0, 0, {1, 0}, 1).too_large);
    EXPECT_TRUE(plan_close(0, -1, 0, {1, 0}, 1).too_large) << "a negative quantity is no quantity";
}

TEST(MeteringItems, AzuresStatusNames) {
    EXPECT_EQ(item_status_from_name(" accepted "), ItemStatus::Accepted) << "padded, any case";
    EXPECT_EQ(item_status_from_name("ResourceNotAuthorized"), ItemStatus::ResourceNotAuthorized);
    EXPECT_FALSE(item_status_from_name("Whatever")) << "an unknown status is retried (ItemStatus::Unknown)";
}

TEST(MeteringSubmission, SuspensionHoldsReinstatementReleases) {
    EXPECT_TRUE(may_submit(LinkState::Linked));
    EXPECT_FALSE(may_submit(LinkState::Suspended));
    EXPECT_TRUE(may_submit(LinkState::Unsubscribed)) << "usage up to the cancellation still goes out";
    EXPECT_FALSE(may_submit(LinkState::Pending));
    // What a held hour does once it may be billed again: MeteringTick.HeldHoursReleased.
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

TEST(MeteringReconcile, YesterdayOnceAfterOneInTheMorning) {
    constexpr std::int64_t kD = kDayS;
    const std::int64_t today = k10 - 10 * kH;  // 2026-03-10T00:00:00Z
    const std::int64_t yesterday = today - kD;
    struct Row {
        const char* sentence;
        std::int64_t now, last, retry_after;
        std::optional<std::int64_t> day;
    };
    const Row rows[] = {
        {"00:59: yesterday's last hour may still be going out", today + kH - 1, 0, 0, std::nullopt},
        {"01:00: yesterday is reconciled", today + kH, 0, 0, yesterday},
        {"10:00, never reconciled yet", k10, 0, 0, yesterday},
        {"yesterday done already: wait for tomorrow", k10, yesterday, 0, std::nullopt},
        {"the day before yesterday done: yesterday is next", k10, yesterday - kD, 0, yesterday},
        {"a failure at 01:00: not again before 02:00", today + kH + 1800, 0, today + 2 * kH, std::nullopt},
        {"a failure at 01:00: again at 02:00", today + 2 * kH, 0, today + 2 * kH, yesterday},
        {"a failure's retry time from an earlier day does not hold today back", today + kH, 0, today - kH, yesterday},
        {"23:59: still yesterday's turn", today + kD - 1, 0, 0, yesterday},
        {"midnight: the next day is not due before 01:00", today + kD, yesterday, 0, std::nullopt},
        {"before 1970: days still round down", -kD + kH, -3 * kD, std::numeric_limits<std::int64_t>::min(), -2 * kD},
    };
    for (const auto& r : rows)
        EXPECT_EQ(day_to_reconcile(DailyFacts{r.now, r.last, r.retry_after}), r.day) << r.sentence;
    EXPECT_EQ(reconcile_retry_at(today + kH), today + 2 * kH) << "an hour after the failure";
}

TEST(MeteringHistory, WhichHoursMayLeaveTheHoursInPlay) {
    struct Row {
        const char* sentence;
        std::int64_t now, grace_s, last;
    };
    const Row rows[] = {
        {"10:00 closes at 11:05: not before", k10 + kH + 300 - 1, 300, k10 - kH},
        {"10:00 closes at 11:05: from then on", k10 + kH + 300, 300, k10},
        {"11:59: 10:00 has closed for good, 11:00 not", k10 + 2 * kH - 1, 300, k10},
        {"no grace: at the hour's end", k10 + kH, 0, k10},
        {"a negative grace counts as none (as closes_at)", k10 + kH, -50, k10},
        {"a long grace holds hours longer", k10 + 3 * kH, 2 * kH, k10},
        {"before 1970: rounded down", 0, 300, -2 * kH},
    };
    for (const auto& r : rows) {
        EXPECT_EQ(last_archivable_hour(r.now, r.grace_s), r.last) << r.sentence;
        EXPECT_LE(closes_at(r.last, r.grace_s), r.now) << r.sentence << ": it has closed";
        EXPECT_GT(closes_at(r.last + kH, r.grace_s), r.now) << r.sentence << ": the next has not";
    }
    EXPECT_EQ(last_archivable_hour(std::numeric_limits<std::int64_t>::min(), 300) % kH, 0) << "no overflow";

    using O = ItemOutcome;
    const std::pair<O, bool> outcomes[] = {{O::Done, true},     {O::Mismatch, true}, {O::Carried, true},
                                           {O::Dropped, true},  {O::Rejected, true}, {O::Held, false},
                                           {O::Retry, false}};
    for (const auto& [o, s] : outcomes) EXPECT_EQ(settled(o), s) << item_outcome_name(o);
}

TEST(MeteringHistory, TheDaysKept) {
    constexpr std::int64_t kD = kDayS;
    const std::int64_t today = k10 - 10 * kH;  // 2026-03-10T00:00:00Z
    struct Row {
        const char* sentence;
        std::int64_t now, days, first;
    };
    const Row rows[] = {
        {"40 days: today and the 39 before it", k10, 40, today - 39 * kD},
        {"at midnight the oldest day goes", today, 40, today - 39 * kD},
        {"a second before midnight it is still kept", today - 1, 40, today - 40 * kD},
        {"35 days", k10, 35, today - 34 * kD},
        {"1 day: today only", k10, 1, today},
        {"0 or less: today is always kept", k10, 0, today},
        {"before 1970: days round down", -1, 2, -2 * kD},
    };
    for (const auto& r : rows) EXPECT_EQ(first_kept_day(r.now, r.days), r.first) << r.sentence;
    const std::int64_t all = first_kept_day(k10, std::numeric_limits<std::int64_t>::max());
    EXPECT_LT(all, today - 1'000'000'000 * kD) << "more days than time holds: everything kept, no overflow";
    EXPECT_EQ(all % kD, 0);
}

TEST(MeteringTerms, AzuresTermRead) {
    struct Row {
        const char* sentence;
        const char* start;
        const char* end;
        const char* unit;
        std::optional<Term> term;
    };
    const std::int64_t mar15 = 1773532800;  // 2026-03-15T00:00:00Z
    const Row rows[] = {
        {"a monthly term from a date", "2026-03-15", "2026-04-14", "P1M", Term{mar15, 1}},
        {"a yearly term", "2026-03-15", "2027-03-14", "P1Y", Term{mar15, 12}},
        {"two years", "2026-03-15", "2028-03-14", "P2Y", Term{mar15, 24}},
        {"a date-time: its hour and minute count", "2026-03-15T10:30:00Z", "2026-04-14T10:30:00Z", "P1M",
         Term{mar15 + 10 * 3600 + 30 * 60, 1}},
        {"fractional seconds and an offset are Azure's forms too", "2026-03-15T10:30:00.1234567+00:00",
         "2026-04-14", "P1M", Term{mar15 + 10 * 3600 + 30 * 60, 1}},
        {"two-digit counts", "2026-03-15", "2027-03-14", "P12M", Term{mar15, 12}},
        {"29 February of a leap year", "2028-02-29", "2028-03-28", "P1M", Term{1835395200, 1}},
        {"29 February of another year is no date", "2026-02-29", "2026-03-28", "P1M", std::nullopt},
        {"month 13", "2026-13-01", "2027-01-01", "P1M", std::nullopt},
        {"day 0", "2026-03-00", "2026-04-01", "P1M", std::nullopt},
        {"not a date", "15/03/2026", "2026-04-14", "P1M", std::nullopt},
        {"an end that is not a date", "2026-03-15", "soon", "P1M", std::nullopt},
        {"a time without its T", "2026-03-15 10:30", "2026-04-14", "P1M", std::nullopt},
        {"hour 24", "2026-03-15T24:00:00Z", "2026-04-14", "P1M", std::nullopt},
        {"letters in the time", "2026-03-15T10:30:00<script>", "2026-04-14", "P1M", std::nullopt},
        {"a unit of days", "2026-03-15", "2026-03-16", "P1D", std::nullopt},
        {"zero months", "2026-03-15", "2026-03-15", "P0M", std::nullopt},
        {"three digits", "2026-03-15", "2126-03-15", "P100Y", std::nullopt},
        {"no count", "2026-03-15", "2026-04-14", "PM", std::nullopt},
        {"empty", "", "", "", std::nullopt},
    };
    for (const auto& r : rows) EXPECT_EQ(parse_term(r.start, r.end, r.unit), r.term) << r.sentence;
}

TEST(MeteringDedupe, WindowCutoffAndSweep) {
    struct Row {
        const char* sentence;
        std::int64_t window_s;
        std::int64_t cutoff;  // at k10
        std::int64_t sweep_ms;
    };
    const Row rows[] = {
        {"an hour: ids recorded before 09:00 expire; swept every minute", 3600, k10 - 3600, 60'000},
        {"10 minutes: every minute", 600, k10 - 600, 60'000},
        {"5 minutes: every 30 s (a tenth)", 300, k10 - 300, 30'000},
        {"15 s: every second", 15, k10 - 15, 1000},
        {"1 s: every second, never less", 1, k10 - 1, 1000},
        {"a day: every minute, never more", 86400, k10 - 86400, 60'000},
    };
    for (const auto& r : rows) {
        EXPECT_EQ(dedupe_cutoff(k10, r.window_s), r.cutoff) << r.sentence;
        EXPECT_EQ(sweep_interval_ms(r.window_s), r.sweep_ms) << r.sentence;
    }
    EXPECT_EQ(dedupe_cutoff(std::numeric_limits<std::int64_t>::min(), 10), std::numeric_limits<std::int64_t>::min())
        << "no overflow";
}

TEST(MeteringSettings, WhatAnOperatorMaySet) {
    using P = SettingProblem;
    struct Row {
        const char* sentence;
        std::optional<std::int64_t> value;
        std::optional<P> history_days;
        std::optional<P> dedupe_window_s;
    };
    const Row rows[] = {
        {"the defaults", kDefaultHistoryDays, std::nullopt, std::nullopt},
        {"35 days: the least the product keeps", 35, std::nullopt, std::nullopt},
        {"34 days: too few; a window of 34 s is fine", 34, P::BelowMinimum, std::nullopt},
        {"1", 1, P::BelowMinimum, std::nullopt},
        {"0", 0, P::NotAPositiveInteger, P::NotAPositiveInteger},
        {"negative", -3600, P::NotAPositiveInteger, P::NotAPositiveInteger},
        {"not an integer", std::nullopt, P::NotAPositiveInteger, P::NotAPositiveInteger},
    };
    auto problem = [](const std::optional<SettingVerdict>& v) { return v ? std::optional<P>(v->problem) : std::nullopt; };
    for (const auto& r : rows) {
        EXPECT_EQ(problem(check_history_days(r.value)), r.history_days) << r.sentence;
        EXPECT_EQ(problem(check_dedupe_window_s(r.value)), r.dedupe_window_s) << r.sentence;
    }
    EXPECT_EQ(check_history_days(34)->bound, kMinHistoryDays) << "the refusal says the least accepted";
    EXPECT_FALSE(check_dedupe_window_s(kDefaultDedupeWindowS));
}

TEST(MeteringSettings, GraceAnOperatorMaySet) {
    using P = SettingProblem;
    struct Row {
        const char* sentence;
        std::optional<std::int64_t> value;
        std::optional<P> problem;
        std::int64_t bound;
    };
    const Row rows[] = {
        {"the default", kDefaultGraceS, std::nullopt, 0},
        {"0: an hour closes when it ends", 0, std::nullopt, 0},
        {"a day: the most", 86400, std::nullopt, 0},
        {"a day and a second: Azure no longer takes the hour", 86401, P::AboveMaximum, kMaxGraceS},
        {"negative", -1, P::NotANonNegativeInteger, 0},
        {"not an integer", std::nullopt, P::NotANonNegativeInteger, 0},
    };
    for (const auto& r : rows) {
        const auto v = check_grace_s(r.value);
        EXPECT_EQ(v ? std::optional<P>(v->problem) : std::nullopt, r.problem) << r.sentence;
        if (v) {
            EXPECT_EQ(v->bound, r.bound) << r.sentence;
        }
    }
}

TEST(MeteringSettings, EachDimensionOnce) {
    struct Row {
        const char* sentence;
        std::vector<std::string_view> ids;
        std::optional<std::size_t> repeated;
    };
    const Row rows[] = {
        {"none", {}, std::nullopt},
        {"the demo's three", {"session_minutes", "traffic_gb", "rule_actions"}, std::nullopt},
        {"the second repeats the first", {"a", "a"}, 1},
        {"the third repeats the first", {"a", "b", "a"}, 2},
        {"the first repeat in the configured order is named", {"b", "a", "a", "b"}, 2},
        {"ids are compared exactly (case counts)", {"A", "a"}, std::nullopt},
        {"a prefix is another id", {"gb", "gb2"}, std::nullopt},
    };
    for (const auto& r : rows) EXPECT_EQ(repeated_dimension(r.ids), r.repeated) << r.sentence;
}

TEST(MeteringSettings, ResolvedWithTheDefaultsInOnePlace) {
    using S = Setting;
    auto given = [](std::initializer_list<std::pair<S, std::optional<std::int64_t>>> set) {
        std::array<SettingValue, std::size(kSettings)> g{};
        for (const auto& [s, v] : set) g[static_cast<std::size_t>(s)] = SettingValue{v, true};
        return g;
    };
    auto resolve = [](const std::array<SettingValue, std::size(kSettings)>& g) {
        SettingValue in[std::size(kSettings)];
        std::copy(g.begin(), g.end(), in);
        return resolve_settings(in);
    };
    struct Row {
        const char* sentence;
        std::array<SettingValue, std::size(kSettings)> given;
        std::vector<std::pair<S, std::int64_t>> expect;
        std::vector<S> refused;
    };
    const Row rows[] = {
        {"nothing given: every default",
         given({}),
         {{S::GraceS, 300}, {S::LatenessS, 86100}, {S::LeaseS, 30}, {S::TickMs, 5000}, {S::RetryBaseS, 60},
          {S::RetryMaxS, 3600}, {S::HistoryDays, 40}, {S::DedupeWindowS, 3600}},
         {}},
        {"the lateness' default follows the grace given", given({{S::GraceS, 600}}),
         {{S::GraceS, 600}, {S::LatenessS, 85800}}, {}},
        {"a lateness given is kept", given({{S::GraceS, 600}, {S::LatenessS, 3600}}), {{S::LatenessS, 3600}}, {}},
        {"a timing that is not a positive integer is refused, its default used",
         given({{S::TickMs, 0}, {S::LeaseS, std::nullopt}}), {{S::TickMs, 5000}, {S::LeaseS, 30}},
         {S::LeaseS, S::TickMs}},
        {"a history under 35 days is refused (the config says so), but kept once in the env",
         given({{S::HistoryDays, 20}}), {{S::HistoryDays, 20}}, {S::HistoryDays}},
        {"a negative grace is refused, its default used, and the lateness follows it", given({{S::GraceS, -1}}),
         {{S::GraceS, 300}, {S::LatenessS, 86100}}, {S::GraceS}},
        {"an operator's retry back-off is kept", given({{S::RetryBaseS, 5}, {S::RetryMaxS, 50}}),
         {{S::RetryBaseS, 5}, {S::RetryMaxS, 50}}, {}},
    };
    for (const auto& r : rows) {
        const ResolvedSettings got = resolve(r.given);
        for (const auto& [s, v] : r.expect) EXPECT_EQ(got[s], v) << r.sentence << ": " << setting_name(s);
        std::vector<S> refused;
        for (const auto& [s, verdict] : got.refused) refused.push_back(s);
        EXPECT_EQ(refused, r.refused) << r.sentence;
    }
}

}  // namespace
}  // namespace azmp::metering
