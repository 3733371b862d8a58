// Azure's answers to the meter's calls, read once: every row is a rule of the money path.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "azmp/metering_answer.hpp"

namespace azmp::metering {
namespace {

namespace json = boost::json;
using O = ItemOutcome;
using S = LinkState;

constexpr std::int64_t kHour = 1764756000;  // 2025-12-03T10:00:00Z
constexpr std::int64_t kNow = kHour + 2 * kHourS;
const RetrySettings kRetry{60, 3600};

SentHour hour(Micros q = 7 * kUnit, bool unknown = false, S state = S::Linked, std::uint32_t attempts = 0) {
    return SentHour{"sub-1", "traffic_gb", kHour, q, "payg", attempts, unknown, state};
}

TEST(MeteringAnswer, AzuresTimesAsMicrosoftWritesThem) {
    struct Row {
        const char* text;
        std::optional<std::int64_t> unix_s;
    };
    const Row rows[] = {
        {"2025-12-03T10:00:00Z", kHour},
        {"2025-12-03T10:00:00", kHour},  // Microsoft's own samples: no offset, UTC
        {"2025-12-03T10:00:00.1234567Z", kHour},
        {"2025-12-03T10:00:00.5", kHour},
        {"2025-12-03T11:00:00+01:00", kHour},
        {"2025-12-03T04:30:00-05:30", kHour},
        {" 2025-12-03T10:00:00Z ", kHour},
        {"2025-12-03t10:00:00z", kHour},
        {"2024-02-29T00:00:00Z", 1709164800},
        {"2025-02-29T00:00:00Z", std::nullopt},
        {"2025-12-03T24:00:00Z", std::nullopt},
        {"2025-12-03T10:00:00.Z", std::nullopt},
        {"2025-12-03T10:00:00+0100", std::nullopt},
        {"2025-12-03", std::nullopt},
        {"", std::nullopt},
        {"not a time at all, really", std::nullopt},
    };
    for (const auto& r : rows) EXPECT_EQ(parse_azure_time(r.text), r.unix_s) << r.text;
}

// An answer with one item for hour() whose fields are `item`.
json::value answer_of(const std::string& item) {
    return json::parse(std::string(R"({"count":1,"result":[)") + item + "]}");
}

// An item of Azure's answer for hour()'s slot with this status and nothing else.
std::string slot(const char* status) {
    return std::string(R"({"status":")") + status +
           R"(","resourceId":"sub-1","dimension":"traffic_gb","effectiveStartTime":"2025-12-03T10:00:00Z"})";
}

TEST(MeteringAnswer, EachItemOfABatchAnswer) {
    struct Row {
        const char* sentence;
        std::string item;
        SentHour sent;
        O outcome;
        Micros carry;
        bool alarm;
        bool unknown_after;
        std::int64_t next_at;  // 0: none
    };
    const char* accepted = R"({"status":"Accepted","resourceId":"sub-1","dimension":"traffic_gb",)"
                           R"("quantity":7,"effectiveStartTime":"2025-12-03T10:00:00Z","usageEventId":"e1"})";
    const Row rows[] = {
        {"Accepted: billed", accepted, hour(), O::Done, 0, false, false, 0},
        {"Accepted after an attempt whose outcome was unknown: known now", accepted, hour(7 * kUnit, true), O::Done, 0,
         false, false, 0},
        {"Accepted, ids in another case and the time without an offset: matched",
         R"({"status":"Accepted","resourceId":"SUB-1","dimension":"Traffic_GB","quantity":7,)"
         R"("effectiveStartTime":"2025-12-03T10:00:00"})",
         hour(), O::Done, 0, false, false, 0},
        {"Duplicate with our quantity: an earlier reply was lost, billed once",
         R"({"status":"Duplicate","resourceId":"sub-1","dimension":"traffic_gb","effectiveStartTime":"2025-12-03T10:00:00Z",)"
         R"("error":{"additionalInfo":{"acceptedMessage":{"quantity":7,"usageEventId":"e0"}}}})",
         hour(7 * kUnit, true), O::Done, 0, false, false, 0},
        {"Duplicate with less than ours: the difference carried, alarm",
         R"({"status":"Duplicate","resourceId":"sub-1","dimension":"traffic_gb","effectiveStartTime":"2025-12-03T10:00:00Z",)"
         R"("error":{"additionalInfo":{"acceptedMessage":{"quantity":5}}}})",
         hour(), O::Mismatch, 2 * kUnit, true, false, 0},
        {"Expired, never sent before with an unknown outcome: carried into the current hour",
         slot("Expired"),
         hour(), O::Carried, 7 * kUnit, true, false, 0},
        {"Expired after a lost reply: looked up in usageEvents first, never carried blindly",
         slot("Expired"),
         hour(7 * kUnit, true), O::Lookup, 0, false, true, kNow},
        {"ResourceNotActive while suspended: held",
         slot("ResourceNotActive"),
         hour(7 * kUnit, false, S::Suspended), O::Held, 0, false, false, 0},
        {"ResourceNotActive once unsubscribed: dropped",
         slot("ResourceNotActive"),
         hour(7 * kUnit, false, S::Unsubscribed), O::Dropped, 0, true, false, 0},
        {"ResourceNotActive while we think it active: the subscription read, with back-off and an alarm",
         slot("ResourceNotActive"),
         hour(7 * kUnit, false, S::Linked, 2), O::Check, 0, true, false, kNow + 240},
        {"ResourceNotFound: not final, the subscription read with back-off",
         slot("ResourceNotFound"),
         hour(), O::Check, 0, true, false, kNow + 60},
        {"ResourceNotAuthorized: not final, the subscription read with back-off",
         slot("ResourceNotAuthorized"),
         hour(), O::Check, 0, true, false, kNow + 60},
        {"BadArgument: our plan may lag Azure's, the subscription read at once",
         slot("BadArgument"),
         hour(), O::Check, 0, false, false, kNow},
        {"InvalidDimension: rejected",
         slot("InvalidDimension"),
         hour(), O::Rejected, 0, true, false, 0},
        {"Error: retried with back-off, the earlier doubt kept",
         slot("Error"),
         hour(7 * kUnit, true, S::Linked, 1), O::Retry, 0, false, true, kNow + 120},
        {"a status nobody documents: retried with an alarm",
         slot("Pondering"),
         hour(), O::Retry, 0, true, false, kNow + 60},
        {"an item for another hour: ours is unanswered, retried as possibly taken, alarm",
         R"({"status":"Accepted","resourceId":"sub-1","dimension":"traffic_gb","effectiveStartTime":"2025-12-03T11:00:00Z"})",
         hour(), O::Retry, 0, true, true, kNow + 60},
        {"an item whose time cannot be read: ours is unanswered, alarm (not a silent loop)",
         R"({"status":"Accepted","resourceId":"sub-1","dimension":"traffic_gb","effectiveStartTime":"yesterday"})",
         hour(), O::Retry, 0, true, true, kNow + 60},
    };
    for (const auto& r : rows) {
        const json::value body = answer_of(r.item);
        const BatchPlan p = plan_batch_answer({r.sent}, CallResult{CallKind::Answered, 200, &body}, kRetry, kNow);
        ASSERT_EQ(p.hours.size(), 1u) << r.sentence;
        const HourDecision& d = p.hours[0];
        EXPECT_EQ(d.outcome, r.outcome) << r.sentence;
        EXPECT_EQ(d.carry, r.carry) << r.sentence;
        EXPECT_EQ(d.alarm || p.unmatched > 0, r.alarm) << r.sentence;
        EXPECT_EQ(d.outcome_unknown, r.unknown_after) << r.sentence;
        EXPECT_EQ(d.next_attempt_at, r.next_at) << r.sentence;
    }
}

TEST(MeteringAnswer, AWholeCallThatFailed) {
    struct Row {
        const char* sentence;
        CallResult call;
        bool unknown_after;
        bool alarm;
    };
    const json::value not_a_batch = json::parse(R"({"message":"hello"})");
    const Row rows[] = {
        {"a timeout or a 5xx: Azure may have taken it", {CallKind::Unknown, 503, nullptr}, true, false},
        {"a 2xx we cannot read: Azure may have taken it, alarm", {CallKind::Answered, 200, &not_a_batch}, true, true},
        {"never sent (overloaded, no token): nothing is in doubt", {CallKind::NotSent, 0, nullptr}, false, false},
        {"a 400 for the whole batch: Azure took none of it, alarm", {CallKind::Refused, 400, nullptr}, false, true},
    };
    for (const auto& r : rows) {
        const BatchPlan p = plan_batch_answer({hour(), hour(3 * kUnit)}, r.call, kRetry, kNow);
        ASSERT_EQ(p.hours.size(), 2u) << r.sentence;
        for (const auto& d : p.hours) {
            EXPECT_EQ(d.outcome, O::Retry) << r.sentence;
            EXPECT_EQ(d.outcome_unknown, r.unknown_after) << r.sentence;
            EXPECT_EQ(d.alarm, r.alarm) << r.sentence;
            EXPECT_EQ(d.next_attempt_at, kNow + 60) << r.sentence;
        }
    }
    // An hour once in doubt stays so whatever a later failure says, until Azure shows what it holds.
    const BatchPlan p = plan_batch_answer({hour(7 * kUnit, true)}, {CallKind::NotSent, 0, nullptr}, kRetry, kNow);
    EXPECT_TRUE(p.hours[0].outcome_unknown);
}

TEST(MeteringAnswer, WhatAFailedCallSaysOfAzureHavingIt) {
    struct Row {
        const char* sentence;
        Failure failure;
        int status;
        CallKind kind;
    };
    const Row rows[] = {
        {"a timeout: Azure may have it", Failure::Timeout, 0, CallKind::Unknown},
        {"a broken connection: Azure may have it", Failure::Transport, 0, CallKind::Unknown},
        {"a 503: Azure may have it", Failure::Http, 503, CallKind::Unknown},
        {"a 429: Azure may have it", Failure::Http, 429, CallKind::Unknown},
        {"a 408: Azure may have it", Failure::Http, 408, CallKind::Unknown},
        {"a 400 (26 events): refused whole", Failure::Http, 400, CallKind::Refused},
        {"a 404: refused whole", Failure::Http, 404, CallKind::Refused},
        {"an unreadable 2xx: Azure may have it", Failure::BadResponse, 0, CallKind::Unknown},
        {"overloaded: never sent", Failure::Overloaded, 0, CallKind::NotSent},
        {"no token: never sent", Failure::Auth, 0, CallKind::NotSent},
        {"a refused argument: never sent", Failure::Badarg, 0, CallKind::NotSent},
        {"anything else: may have been sent", Failure::Other, 0, CallKind::Unknown},
    };
    for (const auto& r : rows) EXPECT_EQ(call_kind(r.failure, r.status), r.kind) << r.sentence;
}

TEST(MeteringAnswer, ItemsMatchedWhateverTheirOrder) {
    const json::value body = json::parse(
        R"({"result":[{"status":"Expired","resourceId":"sub-2","dimension":"d","effectiveStartTime":"2025-12-03T10:00:00Z"},)"
        R"({"status":"Accepted","resourceId":"sub-1","dimension":"d","effectiveStartTime":"2025-12-03T10:00:00Z"},)"
        R"({"status":"Accepted","resourceId":"sub-9","dimension":"d","effectiveStartTime":"2025-12-03T10:00:00Z"}]})");
    const BatchPlan p = plan_batch_answer({SentHour{"sub-1", "d", kHour, kUnit, "p", 0, false, S::Linked},
                                           SentHour{"sub-2", "d", kHour, kUnit, "p", 0, false, S::Linked}},
                                          {CallKind::Answered, 200, &body}, kRetry, kNow);
    EXPECT_EQ(p.hours[0].outcome, O::Done);
    EXPECT_EQ(p.hours[1].outcome, O::Carried);
    EXPECT_EQ(p.unmatched, 1u) << "Azure's item for a resource we did not send is an alarm";
}

// usageEvents rows for the hour's day (2025-12-03) with these processed quantities.
json::value rows_of(std::initializer_list<const char*> quantities) {
    json::array a;
    for (const char* q : quantities) {
        json::object row;
        row["usageDate"] = "2025-12-03T00:00:00";
        row["usageResourceId"] = "SUB-1";
        row["dimension"] = "traffic_gb";
        row["processedQuantity"] = json::parse(q);
        a.push_back(std::move(row));
    }
    json::object other;  // another day: never counted
    other["usageDate"] = "2025-12-02T00:00:00Z";
    other["usageResourceId"] = "sub-1";
    other["dimension"] = "traffic_gb";
    other["processedQuantity"] = 1000;
    a.push_back(std::move(other));
    return a;
}

TEST(MeteringAnswer, WhatAzureHoldsOfAnHourInDoubt) {
    using L = LedgerStatus;
    // The day's other hours of sub-1 / traffic_gb in our ledger.
    const LedgerHour done5{"sub-1", "traffic_gb", kHour - 3 * kHourS, L::Done, 5 * kUnit, std::nullopt, false};
    const LedgerHour mismatch2{"sub-1", "traffic_gb", kHour - 2 * kHourS, L::Mismatch, 3 * kUnit, 2 * kUnit, false};
    const LedgerHour doubt3{"SUB-1", "traffic_gb", kHour + kHourS, L::Pending, 3 * kUnit, std::nullopt, true};
    const LedgerHour other_sub{"sub-2", "traffic_gb", kHour, L::Done, 50 * kUnit, std::nullopt, false};
    const LedgerHour other_day{"sub-1", "traffic_gb", kHour - 24 * kHourS, L::Done, 50 * kUnit, std::nullopt, false};
    const LedgerHour itself{"sub-1", "traffic_gb", kHour, L::Lookup, 7 * kUnit, std::nullopt, true};
    struct Row {
        const char* sentence;
        json::value rows;
        std::vector<LedgerHour> day;
        O outcome;
        Micros carry;
        bool alarm;
    };
    const Row rows[] = {
        {"Azure holds exactly the hour: billed once, nothing carried", rows_of({"7"}), {itself}, O::Done, 0, false},
        {"Azure holds the day's other hours and this one (two plans' rows summed)", rows_of({"10", "\"4\""}),
         {itself, done5, mismatch2, other_sub, other_day}, O::Done, 0, false},
        {"Azure holds nothing for the day: carried, alarm", rows_of({}), {}, O::Carried, 7 * kUnit, true},
        {"Azure holds only the day's other hours: carried", rows_of({"5"}), {done5}, O::Carried, 7 * kUnit, true},
        {"Azure holds part of it: only the rest carried", rows_of({"4.5"}), {}, O::Mismatch, 2500000, true},
        {"another hour of the day is still in doubt, its send retried: the lookup waits for it", rows_of({"10"}),
         {doubt3}, O::Lookup, 0, false},
    };
    for (const auto& r : rows) {
        const auto d = plan_lookups({hour(7 * kUnit, true)}, r.day, {CallKind::Answered, 200, &r.rows}, kRetry, kNow);
        ASSERT_EQ(d.size(), 1u) << r.sentence;
        EXPECT_EQ(d[0].outcome, r.outcome) << r.sentence;
        EXPECT_EQ(d[0].carry, r.carry) << r.sentence;
        EXPECT_EQ(d[0].alarm, r.alarm) << r.sentence;
    }
    const auto failed = plan_lookups({hour(7 * kUnit, true, S::Linked, 3)}, {}, {CallKind::Unknown, 503, nullptr}, kRetry, kNow);
    EXPECT_EQ(failed[0].outcome, O::Lookup) << "a failed lookup holds the hour: never billed twice";
    EXPECT_TRUE(failed[0].alarm);
    EXPECT_EQ(failed[0].next_attempt_at, kNow + 480);
    const json::value unreadable = rows_of({"\"lots\""});
    EXPECT_EQ(plan_lookups({hour(7 * kUnit, true)}, {}, {CallKind::Answered, 200, &unreadable}, kRetry, kNow)[0].outcome,
              O::Lookup);
}

TEST(MeteringAnswer, SeveralHoursInDoubtSettledByTheDaysTotal) {
    // Three hours of sub-1 / traffic_gb in doubt, 7, 3 and 4 units; Azure's day holds 8 of them
    // (the replies of 10:00 were lost; 11:00 only half?): given in hour order, exactly 6 are carried.
    auto at = [](std::int64_t h, Micros q) { return SentHour{"sub-1", "traffic_gb", h, q, "payg", 3, true, S::Linked}; };
    const std::vector<SentHour> hours = {at(kHour + kHourS, 3 * kUnit), at(kHour, 7 * kUnit),
                                         at(kHour + 2 * kHourS, 4 * kUnit)};
    const json::value rows = rows_of({"8"});
    const auto d = plan_lookups(hours, {}, {CallKind::Answered, 200, &rows}, kRetry, kNow);
    ASSERT_EQ(d.size(), 3u);
    EXPECT_EQ(d[1].outcome, O::Done) << "10:00 (7): covered";
    EXPECT_EQ(d[0].outcome, O::Mismatch) << "11:00 (3): 1 covered, 2 carried";
    EXPECT_EQ(d[0].carry, 2 * kUnit);
    EXPECT_EQ(d[2].outcome, O::Carried) << "12:00 (4): carried whole";
    EXPECT_EQ(d[2].carry, 4 * kUnit);
    EXPECT_EQ(d[0].carry + d[1].carry + d[2].carry, (7 + 3 + 4 - 8) * kUnit) << "exactly what Azure does not hold";
    const json::value more = rows_of({"20"});
    const auto over = plan_lookups(hours, {}, {CallKind::Answered, 200, &more}, kRetry, kNow);
    for (const auto& x : over) EXPECT_EQ(x.outcome, O::Done);
    EXPECT_TRUE(over[2].alarm) << "Azure holds more than every hour in doubt sent: reported";
}

TEST(MeteringAnswer, TheSubscriptionReadAfterARefusal) {
    struct Row {
        const char* sentence;
        const char* refused_as;
        CallResult call;
        const char* body;
        O outcome;
        const char* reason;
        std::optional<std::string> plan;
    };
    const Row rows[] = {
        {"our plan lagged Azure's: sent again at once with Azure's plan", "BadArgument", {CallKind::Answered, 200, nullptr},
         R"({"id":"sub-1","planId":"gold","saasSubscriptionStatus":"Subscribed"})", O::Retry, "plan_changed", "gold"},
        {"the same plan: the BadArgument stands", "BadArgument", {CallKind::Answered, 200, nullptr},
         R"({"id":"sub-1","planId":"PAYG","saasSubscriptionStatus":"Subscribed"})", O::Rejected, "BadArgument",
         std::nullopt},
        {"Azure knows the subscription: ResourceNotFound was passing, retried with an alarm", "ResourceNotFound",
         {CallKind::Answered, 200, nullptr}, R"({"id":"sub-1","planId":"payg","saasSubscriptionStatus":"Subscribed"})",
         O::Retry, "ResourceNotFound", std::nullopt},
        {"Azure says it is gone (404): dropped", "ResourceNotFound", {CallKind::Refused, 404, nullptr}, nullptr, O::Dropped,
         "subscription_not_found", std::nullopt},
        {"Azure says Unsubscribed: dropped", "ResourceNotAuthorized", {CallKind::Answered, 200, nullptr},
         R"({"id":"sub-1","planId":"payg","saasSubscriptionStatus":" Unsubscribed "})", O::Dropped,
         "subscription_unsubscribed", std::nullopt},
        {"the read failed: read again later", "ResourceNotActive", {CallKind::Unknown, 0, nullptr}, nullptr, O::Check,
         "ResourceNotActive", std::nullopt},
    };
    for (const auto& r : rows) {
        json::value body;
        CallResult call = r.call;
        if (r.body != nullptr) {
            body = json::parse(r.body);
            call.body = &body;
        }
        const HourDecision d = plan_subscription_check(hour(), r.refused_as, call, kRetry, kNow);
        EXPECT_EQ(d.outcome, r.outcome) << r.sentence;
        EXPECT_EQ(d.reason, r.reason) << r.sentence;
        EXPECT_EQ(d.plan_id, r.plan) << r.sentence;
    }
}

}  // namespace
}  // namespace azmp::metering
