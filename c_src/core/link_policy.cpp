// May this account link this subscription? The refusals the product documentation lists, plus the
// ones it implies (a cancelled subscription, a subscription that belongs to another account).
#include "azmp/decisions.hpp"

#include "text_util.hpp"

namespace azmp {

namespace {
LinkDecision refuse(LinkRefusal r) { return LinkDecision{LinkVerdict::Refuse, r}; }
}  // namespace

LinkDecision decide_link(std::string_view account_id, const BillingProfile& profile, const SubscriptionFacts& sub) {
    // 1. A cancelled subscription can never be linked (Unsubscribed is final in Azure too).
    if (detail::iequals(detail::trim(sub.azure_status), "Unsubscribed"))
        return refuse(LinkRefusal::SubscriptionUnsubscribed);
    // 2. One account per subscription.
    if (!sub.linked_account.empty() && sub.linked_account != account_id)
        return refuse(LinkRefusal::SubscriptionLinkedToOtherAccount);
    // 3. The same account landing again ("Manage account" in Azure): success. Checked before the
    //    account's blockers, which its own link would otherwise trip (other_marketplace_link).
    if (!sub.linked_account.empty()) return LinkDecision{LinkVerdict::AlreadyLinked, std::nullopt};
    // 4. The account's blockers, in the documentation's order.
    if (profile.credit_card) return refuse(LinkRefusal::CreditCardOnFile);
    if (profile.available_credits) return refuse(LinkRefusal::UsesAvailableCredits);
    if (profile.other_marketplace_link) return refuse(LinkRefusal::AlreadyLinkedToMarketplace);
    return LinkDecision{LinkVerdict::Link, std::nullopt};
}

std::string_view refusal_name(LinkRefusal r) noexcept {
    switch (r) {
        case LinkRefusal::CreditCardOnFile: return "credit_card_on_file";
        case LinkRefusal::UsesAvailableCredits: return "uses_available_credits";
        case LinkRefusal::AlreadyLinkedToMarketplace: return "already_linked_to_marketplace";
        case LinkRefusal::SubscriptionLinkedToOtherAccount: return "subscription_linked_to_other_account";
        case LinkRefusal::SubscriptionUnsubscribed: return "subscription_unsubscribed";
        case LinkRefusal::InvalidToken: return "invalid_token";
    }
    return "unknown";
}

std::optional<LinkRefusal> refusal_from_name(std::string_view name) noexcept {
    for (auto r : {LinkRefusal::CreditCardOnFile, LinkRefusal::UsesAvailableCredits, LinkRefusal::AlreadyLinkedToMarketplace,
                   LinkRefusal::SubscriptionLinkedToOtherAccount, LinkRefusal::SubscriptionUnsubscribed,
                   LinkRefusal::InvalidToken})
        if (refusal_name(r) == name) return r;
    return std::nullopt;
}

}  // namespace azmp
