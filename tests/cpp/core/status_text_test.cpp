#include "azmp/status_text.hpp"

#include <gtest/gtest.h>

#include <string>

#include "azmp/decisions.hpp"

namespace azmp {
namespace {

constexpr std::string_view kTicket = "please submit a ticket to get help.";

struct StatusCase {
    std::string_view status, refusal;
    bool retrying;
    std::string_view reason, says;  // the reason, and words the message must hold
};

TEST(LinkStatusText, Table) {
    const StatusCase cases[] = {
        {"none", "", false, "not_linked", "not linked"},
        {"resolving", "", false, "linking", "finish syncing"},
        {"activating", "", false, "linking", "finish syncing"},
        {"resolving", "", true, "azure_unavailable", "not answering"},
        {"activating", "", true, "azure_unavailable", "not answering"},
        {"linked", "", false, "linked", "Azure Marketplace Subscription"},
        {"suspended", "", false, "subscription_suspended", "suspended"},
        {"unsubscribed", "", false, "subscription_cancelled", "deleted after 3 days"},
        // the product documentation's three refusals, in its words
        {"failed", "credit_card_on_file", false, "credit_card_on_file", "already has been set up a credit card"},
        {"failed", "uses_available_credits", false, "uses_available_credits", "uses Available Credits"},
        {"failed", "already_linked_to_marketplace", false, "already_linked_to_marketplace",
         "already has been linked to a Marketplace EMQX product"},
        {"failed", "subscription_linked_to_other_account", false, "subscription_linked_to_other_account",
         "another EMQX account"},
        {"failed", "invalid_token", false, "invalid_token", "invalid or has expired"},
        {"failed", "subscription_unsubscribed", false, "subscription_unsubscribed", "cancelled"},
        // retrying says nothing about a refusal
        {"failed", "credit_card_on_file", true, "credit_card_on_file", "credit card"},
        {"failed", "from_a_newer_version", false, "link_failed", kTicket},
    };
    for (const auto& c : cases) {
        auto t = link_status_text(c.status, c.refusal, c.retrying);
        ASSERT_TRUE(t.has_value()) << c.status << " " << c.refusal;
        EXPECT_EQ(t->reason, c.reason) << c.status << " " << c.refusal;
        EXPECT_NE(t->message.find(c.says), std::string_view::npos) << t->message;
        EXPECT_FALSE(t->title.empty());
        if (c.status == "failed") {
            EXPECT_NE(t->message.find(kTicket), std::string_view::npos) << t->message;
        }
    }
}

TEST(LinkStatusText, EveryRefusalHasItsOwnWords) {
    for (auto r : {LinkRefusal::CreditCardOnFile, LinkRefusal::UsesAvailableCredits,
                   LinkRefusal::AlreadyLinkedToMarketplace, LinkRefusal::SubscriptionLinkedToOtherAccount,
                   LinkRefusal::SubscriptionUnsubscribed, LinkRefusal::InvalidToken}) {
        auto t = link_status_text("failed", refusal_name(r), false);
        ASSERT_TRUE(t.has_value());
        EXPECT_EQ(t->reason, refusal_name(r));
    }
}

TEST(LinkStatusText, UnknownStatusIsNothing) {
    EXPECT_FALSE(link_status_text("", "", false).has_value());
    EXPECT_FALSE(link_status_text("Linked", "", false).has_value());
    EXPECT_FALSE(link_status_text("linked", "", true).has_value());  // no retrying once linked
}

TEST(LandingErrorText, Table) {
    const struct {
        std::string_view error;
        int status;
        std::string_view says;
    } cases[] = {
        {"missing_token", 400, "Configure account now"},
        {"invalid_token", 400, "invalid or has expired"},
        {"too_many_landings", 429, "reload this page"},
        {"busy", 503, "Reload this page"},
    };
    for (const auto& c : cases) {
        auto t = landing_error_text(c.error);
        ASSERT_TRUE(t.has_value()) << c.error;
        EXPECT_EQ(t->http_status, c.status) << c.error;
        EXPECT_EQ(t->text.reason, c.error);
        EXPECT_NE(t->text.message.find(c.says), std::string_view::npos) << t->text.message;
    }
    EXPECT_FALSE(landing_error_text("unknown").has_value());
    EXPECT_FALSE(landing_error_text("").has_value());
}

}  // namespace
}  // namespace azmp
