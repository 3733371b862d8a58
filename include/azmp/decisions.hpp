// The marketplace decisions, as pure functions: may this account link this subscription, what link
// state follows an Azure event, and what a deployment may do. No I/O; Erlang stores the state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace azmp {

// ---------------------------------------------------------------------------------------------
// Linking

// What the control plane knows of the account that wants to link.
struct BillingProfile {
    bool credit_card = false;        // a credit card is set up
    bool available_credits = false;  // the account uses Available Credits
    // The account is linked to a marketplace EMQX product already (this offer with another
    // subscription, or another marketplace's product).
    bool other_marketplace_link = false;
};

// What we know of the subscription the customer arrived with (after resolve).
struct SubscriptionFacts {
    std::string azure_status;   // saasSubscriptionStatus, trimmed: PendingFulfillmentStart, Subscribed, Suspended, Unsubscribed
    std::string linked_account; // the EMQX account it is linked to, empty if none
};

enum class LinkRefusal {
    CreditCardOnFile,                  // credit_card_on_file
    UsesAvailableCredits,              // uses_available_credits
    AlreadyLinkedToMarketplace,        // already_linked_to_marketplace
    SubscriptionLinkedToOtherAccount,  // subscription_linked_to_other_account
    SubscriptionUnsubscribed,          // subscription_unsubscribed
    InvalidToken,                      // invalid_token: the marketplace token is invalid or expired
};

enum class LinkVerdict {
    Link,           // go on: activate in Azure and record the link
    AlreadyLinked,  // the same account landing again ("Manage account"): success, nothing to do
    Refuse,
};

struct LinkDecision {
    LinkVerdict verdict = LinkVerdict::Refuse;
    std::optional<LinkRefusal> refusal;  // set when verdict == Refuse
};

// Order of the checks: a cancelled subscription, then one linked elsewhere, then the same account
// landing again (success), then the account's own blockers as the product documentation lists them
// (credit card, available credits, another marketplace link).
LinkDecision decide_link(std::string_view account_id, const BillingProfile& profile, const SubscriptionFacts& sub);

std::string_view refusal_name(LinkRefusal r) noexcept;
std::optional<LinkRefusal> refusal_from_name(std::string_view name) noexcept;

// ---------------------------------------------------------------------------------------------
// Link lifecycle

enum class LinkState {
    None,          // no marketplace link (never linked)
    Pending,       // resolving or activating: not billed yet
    Linked,        // active: the marketplace is the payment method
    Suspended,     // Azure suspended it (payment problem): paid deployments stopped, kept
    Unsubscribed,  // cancelled in Azure or by support: final
};

enum class LinkEvent {
    Activated,    // Azure activation succeeded
    LinkFailed,   // linking gave up (refusal)
    ChangePlan,
    ChangeQuantity,
    Renew,
    Suspend,
    Reinstate,
    Unsubscribe,
};

// The state after `event`, or nothing when the event does not apply in `state` (it is then
// acknowledged and ignored: webhooks are redelivered and may arrive out of order).
// Unsubscribed is final.
std::optional<LinkState> next_link_state(LinkState state, LinkEvent event) noexcept;

// snake_case names ("none", "pending", ..., "activated", "link_failed", "change_plan", ...), and back.
// An out-of-range value names itself "unknown"; an unknown name parses to nothing.
std::string_view link_state_name(LinkState s) noexcept;
std::string_view link_event_name(LinkEvent e) noexcept;
std::optional<LinkState> link_state_from_name(std::string_view name) noexcept;
std::optional<LinkEvent> link_event_from_name(std::string_view name) noexcept;

// ---------------------------------------------------------------------------------------------
// Deployment gating

enum class CreateRefusal {
    LinkPending,             // link_pending: paid deployments wait for the link to finish
    SubscriptionSuspended,   // subscription_suspended
    SubscriptionCancelled,   // subscription_cancelled
};

// May the account create a deployment? Accounts without a marketplace link (None) are not ours to
// gate: allowed. A trial deployment is always allowed (it is free and ends with its trial).
std::optional<CreateRefusal> decide_create(LinkState state, bool trial) noexcept;

std::string_view create_refusal_name(CreateRefusal r) noexcept;

enum class DeploymentState { Running, Stopped };

struct Deployment {
    bool trial = false;
    std::optional<std::int64_t> trial_ends_at;  // unix seconds
    DeploymentState state = DeploymentState::Running;
    std::optional<std::int64_t> stopped_at;  // unix seconds, when state == Stopped
};

enum class ActionKind { Keep, Stop, Delete };

enum class StopReason { Suspended, Unsubscribed, TrialEnded };

struct DeploymentAction {
    ActionKind kind = ActionKind::Keep;
    std::optional<StopReason> stop_reason;  // Stop
    std::int64_t delete_at = 0;             // Delete: unix seconds (may be in the future: schedule it)
};

inline constexpr std::int64_t kDeleteAfterStopS = 3 * 24 * 3600;

// What to do with a deployment of an account in `state` at `now`:
//  Linked / None / Pending: keep.
//  Suspended: a running paid deployment stops (kept, restarted on reinstate); trials keep running
//    until their trial ends.
//  Unsubscribed: a running paid deployment stops; a trial keeps running until trial_ends_at, then
//    stops; a stopped deployment is deleted at deletion_at(stopped_at, cancelled_at, now)
//    (rules.hpp): kDeleteAfterStopS after it stopped, never sooner than that after the cancellation.
// Details: a trial has ended when now >= trial_ends_at; a trial without trial_ends_at counts as
// ended (in Suspended and Unsubscribed: nothing unbilled runs forever on missing data); a stopped
// deployment without stopped_at (Unsubscribed) counts from the cancellation (or `now` when that is
// not known either: it moves with `now`, so the caller records the first deadline it gets and keeps
// it). delete_at saturates instead of overflowing.
DeploymentAction decide_deployment(LinkState state, const Deployment& d, std::int64_t now,
                                   std::optional<std::int64_t> cancelled_at = std::nullopt) noexcept;

std::string_view stop_reason_name(StopReason r) noexcept;

}  // namespace azmp
