// Azure's reachability and the health alarms.
#include <gtest/gtest.h>

#include "azmp/health.hpp"

namespace azmp::health {
namespace {

TEST(Health, ReachabilityAndAlarms) {
    constexpr std::int64_t kNow = 1'000'000;
    struct Row {
        const char* sentence;
        Facts facts;
        Reachability state;
        std::int64_t failures;
        bool unreachable_alarm, signatures_alarm;
    };
    const Row rows[] = {
        {"no call yet: unknown, no alarm", {kNow, 0, {}, {}, {}}, Reachability::Unknown, 0, false, false},
        {"the last call got an answer: reachable", {kNow, 0, kNow - 5, {}, {}}, Reachability::Reachable, 0, false, false},
        {"two calls in a row unanswered: a blip, still reachable", {kNow, 2, kNow - 60, kNow - 1, {}},
         Reachability::Reachable, 0, false, false},
        {"three in a row: unreachable, alarmed", {kNow, 3, kNow - 60, kNow - 1, {}}, Reachability::Unreachable, 0, true,
         false},
        {"never reached, one failure: unreachable", {kNow, 1, {}, kNow - 1, {}}, Reachability::Unreachable, 0, true,
         false},
        {"10 signature failures within the minute: alarmed", {kNow, 0, kNow, {}, {{kNow - 59, 4}, {kNow, 6}}},
         Reachability::Reachable, 10, false, true},
        {"9 within the minute, more before it: not alarmed", {kNow, 0, kNow, {}, {{kNow - 61, 50}, {kNow - 10, 9}}},
         Reachability::Reachable, 9, false, false},
    };
    for (const auto& r : rows) {
        const Plan p = plan_health(r.facts);
        EXPECT_EQ(p.state, r.state) << r.sentence;
        EXPECT_EQ(p.signature_failures, r.failures) << r.sentence;
        EXPECT_EQ(p.unreachable_alarm, r.unreachable_alarm) << r.sentence;
        EXPECT_EQ(p.signatures_alarm, r.signatures_alarm) << r.sentence;
        EXPECT_EQ(p.forget_before, kNow - kSignatureWindowS) << r.sentence;
    }
}

}  // namespace
}  // namespace azmp::health
