// How linking goes: who may link (the claim on a subscription makes it one account per
// subscription), what follows an activation, which Azure failures are final, the back-off, landings.
#include "azmp/rules.hpp"

#include "text_util.hpp"

namespace azmp {

bool valid_id(std::string_view id) noexcept { return !id.empty() && id.size() <= kMaxIdBytes; }

LinkPlan plan_link(std::string_view account, const BillingProfile& profile, const LinkFacts& facts) {
    SubscriptionFacts sub;
    // Unsubscribed is final: once we saw this subscription cancelled, it is, whatever a later answer
    // from Azure says.
    sub.azure_status = facts.seen_cancelled ? std::string("Unsubscribed") : facts.azure_status;
    sub.linked_account = facts.holder;
    BillingProfile p = profile;
    // The account's own live link to another subscription is a marketplace link too.
    p.other_marketplace_link = p.other_marketplace_link || facts.account_holds_other;

    LinkPlan plan{decide_link(account, p, sub), {}};
    switch (plan.decision.verdict) {
        case LinkVerdict::Link: plan.effects.push_back(activate()); break;
        case LinkVerdict::AlreadyLinked: plan.effects.push_back(notify(NoticeKind::Linked)); break;
        case LinkVerdict::Refuse: plan.effects.push_back(notify(NoticeKind::LinkFailed, plan.decision.refusal)); break;
    }
    return plan;
}

Effects plan_linked() {
    return {cancel_deadlines(), set_payment_method(PaymentMethod::AzureMarketplaceSubscription),
            notify(NoticeKind::Linked)};
}

std::optional<LinkRefusal> classify_link_failure(LinkStep step, const CallFailure& f) noexcept {
    const bool client_error = f.http_status && *f.http_status >= 400 && *f.http_status < 500 && *f.http_status != 429;
    switch (step) {
        case LinkStep::Resolve:
            // Azure refuses the token itself (400/403/404...): it is invalid or expired, and the
            // customer must come back from Azure. 429, 5xx and no answer: Azure is busy or down.
            if (client_error || f.bad_request) return LinkRefusal::InvalidToken;
            break;
        case LinkStep::Activate:
            // Azure answers 400 ("validation failures") to an activation it will never accept: the
            // subscription is no longer pending (cancelled before we activated). Retrying cannot
            // help; the customer is told the subscription is cancelled.
            if (f.http_status == 400) return LinkRefusal::SubscriptionUnsubscribed;
            break;
    }
    return std::nullopt;
}

Effects plan_link_failed(LinkRefusal reason) { return {notify(NoticeKind::LinkFailed, reason)}; }

bool marketplace_pays(LinkState state) noexcept { return state == LinkState::Linked || state == LinkState::Suspended; }

ActivationVerdict decide_activation(std::optional<std::string_view> azure_status) noexcept {
    if (!azure_status) return ActivationVerdict::Activate;  // unknown: activating twice is harmless to Azure
    const std::string_view s = detail::trim(*azure_status);
    if (detail::iequals(s, "Subscribed")) return ActivationVerdict::AlreadyActive;  // a crash after activating
    if (detail::iequals(s, "Unsubscribed")) return ActivationVerdict::Refuse;
    return ActivationVerdict::Activate;
}

std::int64_t link_retry_delay_s(std::uint32_t attempts, std::int64_t base_s, std::int64_t max_s) noexcept {
    if (base_s < 1) base_s = 1;
    if (max_s < base_s) max_s = base_s;
    std::int64_t d = base_s;
    for (std::uint32_t i = 0; i < attempts && i < 6 && d < max_s; ++i) d *= 2;  // d < max_s: no overflow
    return d < max_s ? d : max_s;
}

std::int64_t landing_expires_at(std::int64_t now) noexcept { return now + kLandingTtlS; }

bool landing_usable(std::int64_t expires_at, std::int64_t now) noexcept { return now < expires_at; }

}  // namespace azmp
