#include "azmp/decisions.hpp"

#include <gtest/gtest.h>

namespace azmp {
namespace {

constexpr std::string_view kMe = "acct-1";

SubscriptionFacts sub(std::string status, std::string linked = "") { return {std::move(status), std::move(linked)}; }

BillingProfile clean() { return {}; }
BillingProfile all_blockers() { return {true, true, true}; }

void expect_refused(const LinkDecision& d, LinkRefusal r) {
    EXPECT_EQ(d.verdict, LinkVerdict::Refuse);
    ASSERT_TRUE(d.refusal.has_value());
    EXPECT_EQ(*d.refusal, r) << refusal_name(*d.refusal);
}

TEST(DecideLink, CleanAccountLinksFreshSubscription) {
    for (const char* status : {"PendingFulfillmentStart", "Subscribed", "Suspended"}) {
        auto d = decide_link(kMe, clean(), sub(status));
        EXPECT_EQ(d.verdict, LinkVerdict::Link) << status;
        EXPECT_FALSE(d.refusal.has_value()) << status;
    }
}

TEST(DecideLink, RefusesCreditCardOnFile) {
    expect_refused(decide_link(kMe, {true, false, false}, sub("PendingFulfillmentStart")),
                   LinkRefusal::CreditCardOnFile);
}

TEST(DecideLink, RefusesAvailableCredits) {
    expect_refused(decide_link(kMe, {false, true, false}, sub("PendingFulfillmentStart")),
                   LinkRefusal::UsesAvailableCredits);
}

TEST(DecideLink, RefusesOtherMarketplaceLink) {
    expect_refused(decide_link(kMe, {false, false, true}, sub("PendingFulfillmentStart")),
                   LinkRefusal::AlreadyLinkedToMarketplace);
}

TEST(DecideLink, RefusesSubscriptionLinkedToOtherAccount) {
    expect_refused(decide_link(kMe, clean(), sub("Subscribed", "acct-2")),
                   LinkRefusal::SubscriptionLinkedToOtherAccount);
}

TEST(DecideLink, RefusesUnsubscribedSubscription) {
    expect_refused(decide_link(kMe, clean(), sub("Unsubscribed")), LinkRefusal::SubscriptionUnsubscribed);
}

TEST(DecideLink, UnsubscribedStatusToleratesWhitespaceAndCase) {
    expect_refused(decide_link(kMe, clean(), sub(" Unsubscribed\r\n")), LinkRefusal::SubscriptionUnsubscribed);
    expect_refused(decide_link(kMe, clean(), sub("unsubscribed")), LinkRefusal::SubscriptionUnsubscribed);
}

TEST(DecideLink, ReLandingSameAccountIsSuccess) {
    for (const char* status : {"PendingFulfillmentStart", "Subscribed", "Suspended"}) {
        auto d = decide_link(kMe, clean(), sub(status, std::string(kMe)));
        EXPECT_EQ(d.verdict, LinkVerdict::AlreadyLinked) << status;
        EXPECT_FALSE(d.refusal.has_value());
    }
}

TEST(DecideLinkOrder, ReLandingWinsOverAccountBlockers) {
    // The account's own link makes other_marketplace_link true: it must not refuse "Manage account".
    for (const auto& p : {BillingProfile{false, false, true}, BillingProfile{true, false, false},
                          BillingProfile{false, true, false}, all_blockers()}) {
        EXPECT_EQ(decide_link(kMe, p, sub("Subscribed", std::string(kMe))).verdict, LinkVerdict::AlreadyLinked);
    }
}

TEST(DecideLinkOrder, UnsubscribedWinsOverEverything) {
    expect_refused(decide_link(kMe, all_blockers(), sub("Unsubscribed")), LinkRefusal::SubscriptionUnsubscribed);
    expect_refused(decide_link(kMe, {true, false, false}, sub("Unsubscribed")),
                   LinkRefusal::SubscriptionUnsubscribed);
    expect_refused(decide_link(kMe, clean(), sub("Unsubscribed", "acct-2")), LinkRefusal::SubscriptionUnsubscribed);
    // Even for the same account: a cancelled subscription is not a successful re-landing.
    expect_refused(decide_link(kMe, clean(), sub("Unsubscribed", std::string(kMe))),
                   LinkRefusal::SubscriptionUnsubscribed);
}

TEST(DecideLinkOrder, OtherAccountWinsOverAccountBlockers) {
    expect_refused(decide_link(kMe, all_blockers(), sub("Subscribed", "acct-2")),
                   LinkRefusal::SubscriptionLinkedToOtherAccount);
}

TEST(DecideLinkOrder, CreditCardBeforeCreditsBeforeMarketplace) {
    expect_refused(decide_link(kMe, all_blockers(), sub("Subscribed")), LinkRefusal::CreditCardOnFile);
    expect_refused(decide_link(kMe, {false, true, true}, sub("Subscribed")), LinkRefusal::UsesAvailableCredits);
    expect_refused(decide_link(kMe, {true, false, true}, sub("Subscribed")), LinkRefusal::CreditCardOnFile);
    expect_refused(decide_link(kMe, {true, true, false}, sub("Subscribed")), LinkRefusal::CreditCardOnFile);
}

TEST(DecideLink, AccountIdComparisonIsExact) {
    expect_refused(decide_link("acct-1", clean(), sub("Subscribed", "ACCT-1")),
                   LinkRefusal::SubscriptionLinkedToOtherAccount);
    expect_refused(decide_link("acct-1", clean(), sub("Subscribed", "acct-10")),
                   LinkRefusal::SubscriptionLinkedToOtherAccount);
    expect_refused(decide_link("acct-10", clean(), sub("Subscribed", "acct-1")),
                   LinkRefusal::SubscriptionLinkedToOtherAccount);
}

TEST(RefusalName, AllNames) {
    EXPECT_EQ(refusal_name(LinkRefusal::CreditCardOnFile), "credit_card_on_file");
    EXPECT_EQ(refusal_name(LinkRefusal::UsesAvailableCredits), "uses_available_credits");
    EXPECT_EQ(refusal_name(LinkRefusal::AlreadyLinkedToMarketplace), "already_linked_to_marketplace");
    EXPECT_EQ(refusal_name(LinkRefusal::SubscriptionLinkedToOtherAccount), "subscription_linked_to_other_account");
    EXPECT_EQ(refusal_name(LinkRefusal::SubscriptionUnsubscribed), "subscription_unsubscribed");
    EXPECT_EQ(refusal_name(static_cast<LinkRefusal>(99)), "unknown");
}

}  // namespace
}  // namespace azmp
