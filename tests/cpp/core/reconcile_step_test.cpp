// The fulfillment reconciliation's step: Azure's list (or one subscription) against our links.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

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

}  // namespace
}  // namespace azmp::reconcile
