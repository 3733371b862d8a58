// The fulfillment reconciliation's step: Azure's list (or one subscription) against our links.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "azmp/reconcile_step.hpp"

namespace azmp::reconcile {
namespace {

std::string show(const std::vector<Repair>& rs) {
    std::string s;
    for (const auto& r : rs) s += (s.empty() ? "" : " ") + r.account_id + ":" + std::string(link_event_name(r.event));
    return s;
}

TEST(ReconcileStep, RepairsFromTheList) {
    const std::unordered_map<std::string, Local> links{{"s-linked", {"a1", LinkState::Linked}},
                                                       {"s-suspended", {"a2", LinkState::Suspended}},
                                                       {"s-cancelled", {"a3", LinkState::Unsubscribed}}};
    struct Row {
        const char* sentence;
        const char* answer;
        std::string one;
        const char* repairs;  // nullptr: unreadable
    };
    const Row rows[] = {
        {"a lost suspension is repaired", R"([{"id":"s-linked","saasSubscriptionStatus":"Suspended"}])", "", "a1:suspend"},
        {"a lost reinstatement is repaired", R"([{"id":"s-suspended","saasSubscriptionStatus":" Subscribed "}])", "",
         "a2:reinstate"},
        {"a lost cancellation is repaired, in Azure's order",
         R"([{"id":"s-suspended","saasSubscriptionStatus":"Unsubscribed"},{"id":"s-linked","saasSubscriptionStatus":"unsubscribed"}])",
         "", "a2:unsubscribe a1:unsubscribe"},
        {"cancelled stays cancelled: Subscribed again repairs nothing",
         R"([{"id":"s-cancelled","saasSubscriptionStatus":"Subscribed"}])", "", ""},
        {"a subscription we hold no link to is not ours", R"([{"id":"s-other","saasSubscriptionStatus":"Suspended"}])",
         "", ""},
        {"an entry without an id or a status is passed over",
         R"([{"saasSubscriptionStatus":"Suspended"},{"id":"s-linked"},{"id":"s-linked","saasSubscriptionStatus":7},"x"])",
         "", ""},
        {"a list that is not a list is unreadable", R"({"subscriptions":[]})", "", nullptr},
        {"one subscription, for a resync", R"({"id":"ignored","saasSubscriptionStatus":"Suspended"})", "s-linked",
         "a1:suspend"},
        {"one subscription without a status is unreadable", R"({"id":"s-linked"})", "s-linked", nullptr},
    };
    for (const auto& r : rows) {
        const auto body = boost::json::parse(r.answer);
        const auto seen = read_subscriptions(CallReport{CallKind::Answered, 200, &body}, r.one);
        ASSERT_EQ(seen.has_value(), r.repairs != nullptr) << r.sentence;
        if (seen) {
            EXPECT_EQ(show(plan_repairs(*seen, links)), r.repairs) << r.sentence;
        }
    }
    EXPECT_FALSE(read_subscriptions(CallReport{CallKind::Unknown, 503, nullptr}, ""))
        << "a failed call reads as nothing";
}

TEST(ReconcileStep, EnforceWindow) {
    EXPECT_EQ(enforce_changed_since(1'000'000, std::nullopt), 1'000'000 - 7 * 86400) << "a week unless configured";
    EXPECT_EQ(enforce_changed_since(1'000'000, 3600), 1'000'000 - 3600) << "the operator's window";
    EXPECT_EQ(enforce_changed_since(1'000'000, 0), 1'000'000) << "0: only what changes from now on";
    EXPECT_EQ(enforce_changed_since(1'000'000, -5), 1'000'000 - 7 * 86400) << "a negative window is no window";
}

TEST(ReconcileStep, ReadsAPage) {
    const std::string base = "https://marketplaceapi.microsoft.com/api";
    struct Row {
        const char* sentence;
        const char* answer;
        PageFault fault;
        const char* ids;           // the subscriptions read, in Azure's order
        const char* continuation;  // nullptr: the last page
    };
    const Row rows[] = {
        {"a page and the link to the next one",
         R"({"subscriptions":[{"id":"s1","saasSubscriptionStatus":"Subscribed"},{"id":"s2","saasSubscriptionStatus":"Suspended"}],
             "@nextLink":"https://marketplaceapi.microsoft.com/api/saas/subscriptions/?continuationToken=abc&api-version=2018-08-31"})",
         PageFault::None, "s1 s2",
         "https://marketplaceapi.microsoft.com/api/saas/subscriptions/?continuationToken=abc&api-version=2018-08-31"},
        {"the last page has no link (absent, null or empty)",
         R"({"subscriptions":[{"id":"s1","saasSubscriptionStatus":"Subscribed"}],"@nextLink":null})", PageFault::None, "s1",
         nullptr},
        {"an empty link is the last page too", R"({"subscriptions":[],"@nextLink":""})", PageFault::None, "", nullptr},
        {"an empty offer: no subscriptions member at all", R"({})", PageFault::None, "", nullptr},
        {"the same origin in other case and with the default port is the marketplace",
         R"({"subscriptions":[],"@nextLink":"HTTPS://MarketplaceAPI.microsoft.com:443/api/x"})", PageFault::None, "",
         "HTTPS://MarketplaceAPI.microsoft.com:443/api/x"},
        {"an entry without an id or a status is passed over",
         R"({"subscriptions":[{"id":"s1"},{"saasSubscriptionStatus":"Suspended"},{"id":"s3","saasSubscriptionStatus":"Unsubscribed"}]})",
         PageFault::None, "s3", nullptr},
        {"a link to another host is never followed (our token goes with it)",
         R"({"subscriptions":[{"id":"s1","saasSubscriptionStatus":"Subscribed"}],"@nextLink":"https://evil.example/api/saas/subscriptions"})",
         PageFault::ForeignContinuation, "", nullptr},
        {"nor to another port", R"({"subscriptions":[],"@nextLink":"https://marketplaceapi.microsoft.com:8443/api"})",
         PageFault::ForeignContinuation, "", nullptr},
        {"nor plain http to the same host", R"({"subscriptions":[],"@nextLink":"http://marketplaceapi.microsoft.com/api"})",
         PageFault::ForeignContinuation, "", nullptr},
        {"nor a relative link", R"({"subscriptions":[],"@nextLink":"/api/saas/subscriptions?continuationToken=x"})",
         PageFault::ForeignContinuation, "", nullptr},
        {"nor a link that is not a string", R"({"subscriptions":[],"@nextLink":42})", PageFault::ForeignContinuation, "",
         nullptr},
        {"subscriptions that are not a list: unreadable", R"({"subscriptions":{"id":"s1"}})", PageFault::Unreadable, "",
         nullptr},
        {"a page that is not an object: unreadable", R"([{"id":"s1","saasSubscriptionStatus":"Subscribed"}])",
         PageFault::Unreadable, "", nullptr},
    };
    for (const auto& r : rows) {
        const auto body = boost::json::parse(r.answer);
        const auto got = read_page(CallReport{CallKind::Answered, 200, &body}, base);
        EXPECT_EQ(got.fault, r.fault) << r.sentence;
        std::string ids;
        for (const auto& s : got.page.seen) ids += (ids.empty() ? "" : " ") + s.subscription_id;
        EXPECT_EQ(ids, r.ids) << r.sentence;
        EXPECT_EQ(got.page.continuation.has_value(), r.continuation != nullptr) << r.sentence;
        if (got.page.continuation && r.continuation) {
            EXPECT_EQ(*got.page.continuation, r.continuation) << r.sentence;
        }
    }
    const std::string too_long = R"({"@nextLink":"https://marketplaceapi.microsoft.com/api/)" + std::string(5000, 'x') + R"("})";
    const auto long_body = boost::json::parse(too_long);
    EXPECT_EQ(read_page(CallReport{CallKind::Answered, 200, &long_body}, base).fault, PageFault::ForeignContinuation)
        << "a continuation over 4 KiB is none Azure gives";
    EXPECT_EQ(read_page(CallReport{CallKind::Unknown, 503, nullptr}, base).fault, PageFault::Unreadable)
        << "a failed call reads as no page";
    const auto local = boost::json::parse(R"({"@nextLink":"http://127.0.0.1:8080/api/saas/subscriptions?c=2"})");
    EXPECT_TRUE(read_page(CallReport{CallKind::Answered, 200, &local}, "http://127.0.0.1:8080/api").page.continuation)
        << "an emulator's link at the configured origin is followed";
}

TEST(ReconcileStep, PacesAPassOverItsInterval) {
    struct Row {
        const char* sentence;
        Pace pace;
        std::int64_t next_page, next_pass, retry;
    };
    // now_ms, started_ms, interval_ms, pages_done, pages_last_pass, max_calls_per_s, took_ms (0 when not
    // given), calls (1 when not given)
    const Row rows[] = {
        {"the first pass (no count yet) goes at the ceiling: 10 calls/s", {1'000, 0, 300'000, 1, 0, 10.0}, 100, 299'000,
         5'000},
        {"1,000 pages over 80% of 300 s: one every 240 ms", {0, 0, 300'000, 0, 1'000, 10.0}, 240, 300'000, 5'000},
        {"half-way and on time: the same gap", {120'000, 0, 300'000, 500, 1'000, 10.0}, 240, 180'000, 5'000},
        {"behind: faster, but never above the ceiling", {230'000, 0, 300'000, 500, 1'000, 10.0}, 100, 70'000, 5'000},
        {"ahead: slower", {60'000, 0, 300'000, 500, 1'000, 10.0}, 360, 240'000, 5'000},
        {"more pages than last pass (the list grew): at the ceiling", {200'000, 0, 300'000, 1'200, 1'000, 10.0}, 100,
         100'000, 5'000},
        {"a few pages over a long interval: never slower than one a minute", {0, 0, 3'600'000, 0, 2, 10.0}, 60'000,
         3'600'000, 5'000},
        {"a pass that outran its interval: the next starts at once, within the ceiling",
         {400'000, 0, 300'000, 1'000, 1'000, 10.0}, 100, 100, 5'000},
        {"a higher ceiling: 100 calls/s", {0, 0, 10'000, 0, 0, 100.0}, 10, 10'000, 5'000},
        {"a failed page is asked again after 5 s, not later than the interval", {0, 0, 2'000, 0, 0, 100.0}, 10, 2'000,
         2'000},
        {"no ceiling given (0, negative): the default", {0, 0, 300'000, 0, 0, 0.0}, 100, 300'000, 5'000},
        {"a ceiling under one call a minute: one a minute", {0, 0, 300'000, 0, 0, 0.001}, 60'000, 300'000, 60'000},
        // The call's own time counts: gaps are from call start to call start.
        {"on time, a call of 200 ms: the next starts 240 ms after this one started (40 ms after it ended)",
         {120'000, 0, 300'000, 500, 1'000, 10.0, 200}, 40, 180'000, 5'000},
        {"calls slower than the pace: the next at once, the pass still ends at 80 % (one call at a time)",
         {120'000, 0, 300'000, 500, 1'000, 10.0, 300}, 0, 180'000, 5'000},
        {"at the ceiling, a call of 60 ms: the next 40 ms after it (10 call starts a second)",
         {1'000, 0, 300'000, 1, 0, 10.0, 60}, 40, 299'000, 5'000},
        {"at the ceiling, a call slower than 1/ceiling: at once", {1'000, 0, 300'000, 1, 0, 10.0, 150}, 0, 299'000, 5'000},
        {"a few pages over a long interval, a call of 5 s: one a minute from start to start",
         {0, 0, 3'600'000, 0, 2, 10.0, 5'000}, 55'000, 3'600'000, 5'000},
        {"a pass that outran its interval, its last call slow: the next pass at once",
         {400'000, 0, 300'000, 1'000, 1'000, 10.0, 500}, 0, 0, 5'000},
        {"a page that failed after its whole timeout (30 s): asked again 5 s after the failure",
         {30'000, 0, 300'000, 1, 0, 10.0, 30'000}, 0, 270'000, 5'000},
        {"a ceiling under one call a minute, a failed call of 30 s: again a minute after it started",
         {0, 0, 300'000, 0, 0, 0.001, 30'000}, 30'000, 300'000, 30'000},
        {"a clock that stepped back (a negative duration): as if the call took no time",
         {120'000, 0, 300'000, 500, 1'000, 10.0, -5'000}, 240, 180'000, 5'000},
        {"a duration past any interval: at once, nothing overflows",
         {120'000, 0, 300'000, 500, 1'000, 10.0, std::numeric_limits<std::int64_t>::max()}, 0, 180'000, 5'000},
        // The ceiling holds over a step's calls (the subscriptions in doubt read before the page).
        {"at the ceiling, 10 doubts and the page in 300 ms: the next 11 gaps (1.1 s) after the step's start",
         {1'000, 0, 300'000, 1, 0, 10.0, 300, 11}, 800, 299'000, 5'000},
        {"on time, 3 calls in 100 ms: the pass's gap (240 ms) is under 3 x 100 ms: 200 ms after them",
         {120'000, 0, 300'000, 500, 1'000, 10.0, 100, 3}, 200, 180'000, 5'000},
        {"ahead of time, 2 calls: the pass's gap (360 ms) is over 2 x 100 ms: kept",
         {60'000, 0, 300'000, 500, 1'000, 10.0, 0, 2}, 360, 240'000, 5'000},
        {"a pass that outran its interval, 5 calls: the next pass 500 ms after the step's start",
         {400'000, 0, 300'000, 1'000, 1'000, 10.0, 100, 5}, 400, 400, 5'000},
        {"0 or fewer calls count as 1", {1'000, 0, 300'000, 1, 0, 10.0, 0, -3}, 100, 299'000, 5'000},
        {"calls past any count: 1,000 at most (a minute each at this ceiling), nothing overflows",
         {0, 0, 300'000, 0, 0, 0.001, 0, std::numeric_limits<std::int64_t>::max()}, 60'000'000, 60'000'000,
         60'000'000},
    };
    for (const auto& r : rows) {
        EXPECT_EQ(next_page_in_ms(r.pace), r.next_page) << r.sentence;
        EXPECT_EQ(next_pass_in_ms(r.pace), r.next_pass) << r.sentence;
        EXPECT_EQ(retry_page_in_ms(r.pace), r.retry) << r.sentence;
    }
}

}  // namespace
}  // namespace azmp::reconcile
