// The fulfillment reconciliation's step: Azure's list of subscriptions (or one subscription, for an
// operator's resync) against our links; the events that bring each link to Azure's state (a lost
// webhook repaired). Pure: the reconciler gathers the links the answer names, applies the events.
#pragma once

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

}  // namespace azmp::reconcile
