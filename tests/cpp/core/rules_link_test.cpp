// Linking rules, row by row as the product documentation says them.
#include <gtest/gtest.h>

#include "azmp/rules.hpp"
#include "rules_test_util.hpp"

namespace azmp {
namespace {

using test::show;

struct LinkRow {
    const char* sentence;
    BillingProfile profile;
    LinkFacts facts;
    LinkVerdict verdict;
    std::optional<LinkRefusal> refusal;
    std::string effects;
};

const BillingProfile kClean{};

TEST(RulesPlanLink, EveryVerdictAndItsEffects) {
    const LinkRow rows[] = {
        {"a signed-in account with nothing in the way links: the subscription is activated", kClean,
         {"PendingFulfillmentStart", "", false, false}, LinkVerdict::Link, std::nullopt, "[activate]"},
        {"landing again with a subscription already linked to the account is not an error", kClean,
         {"Subscribed", "acct-1", false, false}, LinkVerdict::AlreadyLinked, std::nullopt, "[notify(linked)]"},
        {"linking fails when the account already has a credit card", {true, false, false},
         {"PendingFulfillmentStart", "", false, false}, LinkVerdict::Refuse, LinkRefusal::CreditCardOnFile,
         "[notify(link_failed,credit_card_on_file)]"},
        {"linking fails when the account uses available credits", {false, true, false},
         {"PendingFulfillmentStart", "", false, false}, LinkVerdict::Refuse, LinkRefusal::UsesAvailableCredits,
         "[notify(link_failed,uses_available_credits)]"},
        {"linking fails when the account is already linked to a marketplace EMQX product", {false, false, true},
         {"PendingFulfillmentStart", "", false, false}, LinkVerdict::Refuse, LinkRefusal::AlreadyLinkedToMarketplace,
         "[notify(link_failed,already_linked_to_marketplace)]"},
        {"an account holding another subscription counts as linked to a marketplace product", kClean,
         {"PendingFulfillmentStart", "", false, true}, LinkVerdict::Refuse, LinkRefusal::AlreadyLinkedToMarketplace,
         "[notify(link_failed,already_linked_to_marketplace)]"},
        {"a subscription claimed by another account (linked or linking) is refused", kClean,
         {"PendingFulfillmentStart", "acct-2", false, false}, LinkVerdict::Refuse,
         LinkRefusal::SubscriptionLinkedToOtherAccount, "[notify(link_failed,subscription_linked_to_other_account)]"},
        {"a cancelled subscription cannot be linked", kClean, {"Unsubscribed", "", false, false}, LinkVerdict::Refuse,
         LinkRefusal::SubscriptionUnsubscribed, "[notify(link_failed,subscription_unsubscribed)]"},
        {"a subscription once seen cancelled stays cancelled whatever Azure answers later", kClean,
         {"Subscribed", "", true, false}, LinkVerdict::Refuse, LinkRefusal::SubscriptionUnsubscribed,
         "[notify(link_failed,subscription_unsubscribed)]"},
        {"a padded status is read as Azure means it", kClean, {"  Unsubscribed ", "", false, false}, LinkVerdict::Refuse,
         LinkRefusal::SubscriptionUnsubscribed, "[notify(link_failed,subscription_unsubscribed)]"},
    };
    for (const auto& r : rows) {
        const LinkPlan p = plan_link("acct-1", r.profile, r.facts);
        EXPECT_EQ(p.decision.verdict, r.verdict) << r.sentence;
        EXPECT_EQ(p.decision.refusal, r.refusal) << r.sentence;
        EXPECT_EQ(show(p.effects), r.effects) << r.sentence;
    }
}

TEST(RulesPlanLinked, ActivationCallsOffDeadlinesSetsPaymentMethodAndTells) {
    EXPECT_EQ(show(plan_linked()), "[cancel_deadlines payment(azure_marketplace_subscription) notify(linked)]");
}

TEST(RulesClassifyLinkFailure, FinalOrRetried) {
    struct Row {
        const char* sentence;
        LinkStep step;
        CallFailure f;
        std::optional<LinkRefusal> refusal;  // final; nothing: retried
    };
    const Row rows[] = {
        {"Azure refuses the token (400): invalid or expired", LinkStep::Resolve, {400, false}, LinkRefusal::InvalidToken},
        {"Azure does not know the token (404): invalid", LinkStep::Resolve, {404, false}, LinkRefusal::InvalidToken},
        {"a token we cannot even send is invalid", LinkStep::Resolve, {std::nullopt, true}, LinkRefusal::InvalidToken},
        {"Azure throttling on resolve is retried", LinkStep::Resolve, {429, false}, std::nullopt},
        {"Azure down on resolve (503) is retried", LinkStep::Resolve, {503, false}, std::nullopt},
        {"no answer on resolve is retried", LinkStep::Resolve, {std::nullopt, false}, std::nullopt},
        {"Azure refusing an activation (400) means the subscription is no longer pending",
         LinkStep::Activate, {400, false}, LinkRefusal::SubscriptionUnsubscribed},
        {"Azure down on activate is retried", LinkStep::Activate, {500, false}, std::nullopt},
        {"throttling on activate is retried", LinkStep::Activate, {429, false}, std::nullopt},
        {"no answer on activate is retried", LinkStep::Activate, {std::nullopt, false}, std::nullopt},
    };
    for (const auto& r : rows) {
        EXPECT_EQ(classify_link_failure(r.step, r.f), r.refusal) << r.sentence;
    }
}

TEST(RulesPlanLinkFailed, TheAccountIsToldWhy) {
    EXPECT_EQ(show(plan_link_failed(LinkRefusal::InvalidToken)), "[notify(link_failed,invalid_token)]");
    for (auto name : {"credit_card_on_file", "uses_available_credits", "already_linked_to_marketplace",
                      "subscription_linked_to_other_account", "subscription_unsubscribed", "invalid_token"})
        EXPECT_EQ(refusal_name(*refusal_from_name(name)), name);
    EXPECT_FALSE(refusal_from_name("nope"));
}

TEST(RulesMarketplacePays, WhileTheLinkIsLive) {
    EXPECT_FALSE(marketplace_pays(LinkState::None));
    EXPECT_FALSE(marketplace_pays(LinkState::Pending));
    EXPECT_TRUE(marketplace_pays(LinkState::Linked));
    EXPECT_TRUE(marketplace_pays(LinkState::Suspended)) << "suspended: still the payment method, paid deployments stopped";
    EXPECT_FALSE(marketplace_pays(LinkState::Unsubscribed));
}

TEST(RulesDecideActivation, GetSubscriptionFirst) {
    struct Row {
        const char* sentence;
        std::optional<std::string_view> status;
        ActivationVerdict verdict;
    };
    const Row rows[] = {
        {"a pending subscription is activated", "PendingFulfillmentStart", ActivationVerdict::Activate},
        {"a subscription already Subscribed was activated before a crash: not again", "Subscribed",
         ActivationVerdict::AlreadyActive},
        {"padded, any case", " subscribed ", ActivationVerdict::AlreadyActive},
        {"a subscription cancelled meanwhile is refused", "Unsubscribed", ActivationVerdict::Refuse},
        {"unknown (Get Subscription failed): activate", std::nullopt, ActivationVerdict::Activate},
    };
    for (const auto& r : rows) EXPECT_EQ(decide_activation(r.status), r.verdict) << r.sentence;
}

TEST(RulesLinkRetry, DoublesUpToTheMaximum) {
    struct Row {
        std::uint32_t attempts;
        std::int64_t base, max, expected;
    };
    const Row rows[] = {{0, 1, 60, 1},   {1, 1, 60, 2},    {5, 1, 60, 32},          {6, 1, 60, 60},
                        {100, 1, 60, 60}, {3, 0, 60, 8},   {2, 10, 5, 10},          {60, 1LL << 60, 1LL << 62, 1LL << 62}};
    for (const auto& r : rows)
        EXPECT_EQ(link_retry_delay_s(r.attempts, r.base, r.max), r.expected) << r.attempts << " " << r.base << " " << r.max;
}

TEST(RulesLanding, LastsAsLongAsTheMarketplaceToken) {
    EXPECT_EQ(landing_expires_at(1000), 1000 + 24 * 3600);
    EXPECT_TRUE(landing_usable(landing_expires_at(1000), 1000 + 24 * 3600 - 1));
    EXPECT_FALSE(landing_usable(landing_expires_at(1000), 1000 + 24 * 3600));
}

TEST(RulesIds, NonEmptyAndBounded) {
    EXPECT_FALSE(valid_id(""));
    EXPECT_TRUE(valid_id("a"));
    EXPECT_TRUE(valid_id(std::string(kMaxIdBytes, 'x')));
    EXPECT_FALSE(valid_id(std::string(kMaxIdBytes + 1, 'x')));
}

}  // namespace
}  // namespace azmp
