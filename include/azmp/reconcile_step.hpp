// The fulfillment reconciliation's step: Azure's list of subscriptions (or one subscription, for an
// operator's resync) against our links; the events that bring each link to Azure's state (a lost
// webhook repaired). Pure: the reconciler gathers the links the answer names, applies the events.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "azmp/call_result.hpp"
#include "azmp/decisions.hpp"

namespace azmp::reconcile {

// A subscription as Azure lists it: its id and saasSubscriptionStatus.
struct Seen {
    std::string subscription_id;
    std::string status;
};

// The subscriptions in a List Subscriptions answer (those with an id and a status), or in a Get
// Subscription answer for `one_id` (non-empty). Nothing when the answer cannot be read, or a
// single subscription has no status.
std::optional<std::vector<Seen>> read_subscriptions(const CallReport& answer, const std::string& one_id);

// Our link to a subscription.
struct Local {
    std::string account_id;
    LinkState state = LinkState::None;
};

struct Repair {
    std::string account_id, subscription_id;
    LinkEvent event;
};

// Each linked subscription whose state Azure says otherwise, with the event that repairs it
// (repair_event's rule), in Azure's order. Subscriptions we hold no link to are not ours.
std::vector<Repair> plan_repairs(const std::vector<Seen>& seen, const std::unordered_map<std::string, Local>& links);

// After a pass, the effects of every link whose state changed since this time are planned again
// (plan_enforce): what a crash or an operator undid is redone. A week unless configured.
inline constexpr std::int64_t kDefaultEnforceWindowS = 7 * 24 * 3600;
std::int64_t enforce_changed_since(std::int64_t now, std::optional<std::int64_t> window_s) noexcept;

}  // namespace azmp::reconcile
