// The words of the linking modal and of the landing page's errors (see azmp/status_text.hpp).
// The three refusals of the product documentation use its sentences and its closing advice.
#include "azmp/status_text.hpp"

namespace azmp {

namespace {

constexpr std::string_view kTicket = " If you still encounter a problem, please submit a ticket to get help.";

struct StatusRow {
    std::string_view status;
    std::string_view refusal;  // for `failed`; empty: any other status
    bool retrying;
    ShownText text;
};

#define AZMP_FAILED(refusal, message) \
    {"failed", refusal, false, {refusal, "Account linking failed", message}}

constexpr StatusRow kStatus[] = {
    {"none", "", false,
     {"not_linked", "Not linked", "This EMQX account is not linked to an Azure Billing Account."}},
    {"resolving", "", false,
     {"linking", "Linking to your Azure Billing Account",
      "Your EMQX account is being linked to your Azure Billing Account. Wait for the system to finish syncing."}},
    {"activating", "", false,
     {"linking", "Linking to your Azure Billing Account",
      "Your Azure Marketplace subscription is being activated. Wait for the system to finish syncing."}},
    {"resolving", "", true,
     {"azure_unavailable", "Waiting for Azure Marketplace",
      "Azure Marketplace is not answering at the moment. Linking goes on by itself once it answers: "
      "you may close this page and come back later."}},
    {"activating", "", true,
     {"azure_unavailable", "Waiting for Azure Marketplace",
      "Azure Marketplace is not answering at the moment. Linking goes on by itself once it answers: "
      "you may close this page and come back later."}},
    {"linked", "", false,
     {"linked", "Linked to your Azure Billing Account",
      "Your EMQX account is linked to your Azure Billing Account. The Payment Method of the Billing page "
      "is now Azure Marketplace Subscription."}},
    {"suspended", "", false,
     {"subscription_suspended", "Azure Marketplace subscription suspended",
      "Azure has suspended the subscription: paid deployments are stopped until it is reinstated in Azure."}},
    {"unsubscribed", "", false,
     {"subscription_cancelled", "Azure Marketplace subscription cancelled",
      "The subscription was cancelled in Azure: running deployments are stopped, except a trial deployment, "
      "which runs until the trial ends. A stopped deployment is deleted after 3 days."}},
    AZMP_FAILED("credit_card_on_file",
                "The EMQX account already has been set up a credit card. If you still encounter a problem, "
                "please submit a ticket to get help."),
    AZMP_FAILED("uses_available_credits",
                "The EMQX account uses Available Credits. If you still encounter a problem, please submit a "
                "ticket to get help."),
    AZMP_FAILED("already_linked_to_marketplace",
                "The EMQX account already has been linked to a Marketplace EMQX product. If you still encounter "
                "a problem, please submit a ticket to get help."),
    AZMP_FAILED("subscription_linked_to_other_account",
                "This Azure subscription is already linked to another EMQX account. Sign in to that account, or "
                "if you still encounter a problem, please submit a ticket to get help."),
    AZMP_FAILED("invalid_token",
                "The link from Azure Marketplace is invalid or has expired. Open the subscription in Azure and "
                "click Configure account now again. If you still encounter a problem, please submit a ticket to "
                "get help."),
    AZMP_FAILED("subscription_unsubscribed",
                "This Azure subscription has been cancelled and cannot be linked. Subscribe again in Azure "
                "Marketplace. If you still encounter a problem, please submit a ticket to get help."),
};

#undef AZMP_FAILED

struct LandingRow {
    std::string_view error;
    LandingErrorText text;
};

constexpr LandingRow kLanding[] = {
    {"missing_token",
     {400,
      {"missing_token", "This link is incomplete",
       "The link from Azure Marketplace has no token. Open the subscription in Azure (SaaS) and click Configure "
       "account now. If you still encounter a problem, please submit a ticket to get help."}}},
    {"invalid_token",
     {400,
      {"invalid_token", "This link is invalid or has expired",
       "Azure Marketplace did not accept this link: it is invalid or has expired. Open the subscription in Azure "
       "(SaaS) and click Configure account now again. If you still encounter a problem, please submit a ticket "
       "to get help."}}},
    {"too_many_landings",
     {429,
      {"too_many_landings", "Too many requests",
       "Too many customers are arriving from Azure Marketplace at this moment. Wait a few seconds and reload "
       "this page."}}},
    {"busy",
     {503,
      {"busy", "Service busy",
       "EMQX Platform cannot take your Azure Marketplace subscription at this moment. Reload this page in a few "
       "minutes. If you still encounter a problem, please submit a ticket to get help."}}},
};

}  // namespace

std::optional<ShownText> link_status_text(std::string_view status, std::string_view refusal, bool retrying) noexcept {
    const bool failed = status == "failed";
    for (const auto& row : kStatus) {
        if (row.status != status) continue;
        if (failed ? row.refusal == refusal : row.retrying == retrying) return row.text;
    }
    if (failed)  // a refusal this table does not know (a newer node's): still a failure, with the advice
        return ShownText{"link_failed", "Account linking failed", kTicket.substr(1)};
    return std::nullopt;
}

std::optional<LandingErrorText> landing_error_text(std::string_view error) noexcept {
    for (const auto& row : kLanding)
        if (row.error == error) return row.text;
    return std::nullopt;
}

}  // namespace azmp
