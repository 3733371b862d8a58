// The product's workflow rules, as pure functions: each takes the facts Erlang gathered (link state,
// the event, the account's deployments, the time, ...) and returns the decision plus the effects to
// perform. Erlang commits the decision and the effects in one transaction, then performs the
// effects (idempotently; a crash in between leaves them recorded, performed on restart).
//
// Effects are data. Erlang performs them in the order given; none of them decides anything.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "azmp/decisions.hpp"

namespace azmp {

// ---------------------------------------------------------------------------------------------
// Constants of the product (one each)

// A stopped deployment of a cancelled account is deleted this long after it stopped, and never
// earlier than this long after the cancellation ("The stopped deployment will be deleted after 3 days").
// (kDeleteAfterStopS, decisions.hpp)

// A landing (a resolved subscription kept for a customer who has not signed in) lasts as long as
// Azure's marketplace token: 24 hours.
inline constexpr std::int64_t kLandingTtlS = 24 * 3600;

// Account, subscription and operation ids: non-empty, at most this long. Longer is not an id.
inline constexpr std::size_t kMaxIdBytes = 1024;

// ---------------------------------------------------------------------------------------------
// Effects

enum class PaymentMethod { AzureMarketplaceSubscription, None };
enum class NoticeKind { Linked, LinkFailed, SubscriptionSuspended, SubscriptionReinstated, SubscriptionCancelled };
enum class DeadlineKind { Stop, Delete };

enum class EffectKind {
    Activate,           // activate the subscription in Azure
    AnswerOperation,    // PATCH the webhook operation: success (true) or failure (false)
    SetPaymentMethod,   // method
    Notify,             // notice (+ reason for LinkFailed)
    StopDeployment,     // deployment_id
    StartDeployment,    // deployment_id
    DeleteDeployment,   // deployment_id
    ScheduleDeadline,   // deployment_id, deadline, at: recorded in the same transaction (state, not I/O)
    CancelDeadlines,    // every pending deadline of the account: recorded in the same transaction
};

struct Effect {
    EffectKind kind = EffectKind::Notify;
    std::string deployment_id;
    PaymentMethod method = PaymentMethod::None;
    NoticeKind notice = NoticeKind::Linked;
    std::optional<LinkRefusal> reason;  // Notify LinkFailed
    // Notify: the notice names the subscription it is about (not a refused attempt, which has a reason).
    bool names_subscription = false;
    DeadlineKind deadline = DeadlineKind::Delete;
    std::int64_t at = 0;
    bool success = false;  // AnswerOperation

    bool operator==(const Effect&) const = default;
};

using Effects = std::vector<Effect>;

// Constructors that read like the rules.
Effect activate();
Effect answer_operation(bool success);
Effect set_payment_method(PaymentMethod m);
Effect notify(NoticeKind k, std::optional<LinkRefusal> reason = std::nullopt);
Effect stop_deployment(std::string id);
Effect start_deployment(std::string id);
Effect delete_deployment(std::string id);
Effect schedule_deadline(std::string id, DeadlineKind k, std::int64_t at);
Effect cancel_deadlines();

std::string_view payment_method_name(PaymentMethod m) noexcept;
std::string_view notice_kind_name(NoticeKind k) noexcept;
std::string_view deadline_kind_name(DeadlineKind k) noexcept;
std::optional<DeadlineKind> deadline_kind_from_name(std::string_view name) noexcept;

// ---------------------------------------------------------------------------------------------
// Ids

// An account, subscription or operation id we accept: non-empty and at most kMaxIdBytes.
bool valid_id(std::string_view id) noexcept;

// ---------------------------------------------------------------------------------------------
// Linking

// What the store knows of the subscription, beyond Azure's answer.
struct LinkFacts {
    std::string azure_status;     // saasSubscriptionStatus from resolve (may be padded)
    std::string holder;           // the account holding a claim on the subscription, empty if none
    bool seen_cancelled = false;  // we saw this subscription cancelled once: final, whatever Azure says now
    bool account_holds_other = false;  // the account holds a live claim on another subscription
};

struct LinkPlan {
    LinkDecision decision;
    Effects effects;  // Link: [Activate]; AlreadyLinked: [Notify Linked]; Refuse: [Notify LinkFailed]
};

// Whether `account` may link the subscription; the claim on the subscription is what makes it
// one account per subscription (Erlang records the claim with the Link verdict, atomically).
LinkPlan plan_link(std::string_view account, const BillingProfile& profile, const LinkFacts& facts);

// The link is activated in Azure: what follows. The former cancellation's deadlines are called off,
// the marketplace becomes the payment method, the account hears of it.
Effects plan_linked();

// An Azure call of a linking job failed. Which failures are final (a refusal the page can show)
// and which are retried.
enum class LinkStep { Resolve, Activate };
struct CallFailure {
    std::optional<int> http_status;  // the HTTP status Azure answered, if it answered
    bool bad_request = false;        // our request was refused before sending (e.g. a malformed token)
};
// The refusal when the failure is final; nothing when it is retried.
std::optional<LinkRefusal> classify_link_failure(LinkStep step, const CallFailure& f) noexcept;

// Linking gave up with `reason`: the account is told why.
Effects plan_link_failed(LinkRefusal reason);

// Before activating (again, after a crash): what Get Subscription says decides.
enum class ActivationVerdict { Activate, AlreadyActive, Refuse };
ActivationVerdict decide_activation(std::optional<std::string_view> azure_status) noexcept;

// The marketplace is the account's payment method while its link is live (linked or suspended).
bool marketplace_pays(LinkState state) noexcept;

// Back-off of a linking job while Azure is unreachable: base * 2^attempts, at most max.
std::int64_t link_retry_delay_s(std::uint32_t attempts, std::int64_t base_s, std::int64_t max_s) noexcept;

// A landing kept at `now` expires at this time; usable while now < expires_at.
std::int64_t landing_expires_at(std::int64_t now) noexcept;
bool landing_usable(std::int64_t expires_at, std::int64_t now) noexcept;

// ---------------------------------------------------------------------------------------------
// Subscription events (webhooks, support unlink, reconciliation) and their effects

struct DeploymentFact {
    std::string id;
    Deployment d;
};

// What the store and the platform say of a linked account.
struct AccountFacts {
    LinkState state = LinkState::Linked;
    std::vector<std::string> suspended;       // deployments we stopped for a suspension
    std::optional<std::int64_t> cancelled_at;  // when the link became Unsubscribed
    std::optional<std::int64_t> last_op_at;    // ms: Azure's time of the latest applied operation
    bool marketplace_pays = false;  // the platform's payment method is the marketplace now
    std::vector<DeploymentFact> deployments;
};

struct EventPlan {
    bool applies = false;                      // false: ignored (redelivered, out of order, stale)
    bool stale = false;                        // ignored because a newer operation was applied
    LinkState state = LinkState::Linked;       // the new state
    std::vector<std::string> suspended;        // the new list
    std::optional<std::int64_t> cancelled_at;  // the new value
    std::optional<std::int64_t> last_op_at;    // the new value
    // The claim on the subscription records its cancellation: a cancelled subscription stays
    // cancelled for linking's sake (plan_link's seen_cancelled), whatever Azure answers later.
    bool claim_cancelled = false;
    Effects effects;
};

// `op_at`: Azure's timeStamp (ms) of the operation behind the event, when it comes from one; an
// operation older than the latest applied one is stale and must not undo it.
EventPlan plan_event(LinkEvent event, const AccountFacts& facts, std::int64_t now,
                     std::optional<std::int64_t> op_at);

// What being in `facts.state` means for the deployments and the payment method, done again
// (idempotent given the facts): reconciliation's catch-up after effects were lost. Effects only for
// what is not so yet; deadlines already pending are kept by Erlang (schedule is one per key).
EventPlan plan_enforce(const AccountFacts& facts, std::int64_t now);

// Reconciliation: the event that brings our state to Azure's (nothing if they agree).
std::optional<LinkEvent> repair_event(std::string_view azure_status, LinkState local) noexcept;

// A due deadline. Linked again since: called off (no effects). Otherwise: a trial stops at its end
// (and its deletion is scheduled), a stopped deployment is deleted.
Effects plan_deadline(DeadlineKind kind, std::string_view deployment_id, LinkState state,
                      std::optional<std::int64_t> cancelled_at, std::int64_t now);

// When a deployment of a cancelled account is deleted: 3 days after it stopped, and not before
// 3 days after the cancellation (a deployment stopped earlier still gets the 3 days the customer is told).
std::int64_t deletion_at(std::optional<std::int64_t> stopped_at, std::optional<std::int64_t> cancelled_at,
                         std::int64_t now) noexcept;

// ---------------------------------------------------------------------------------------------
// Webhooks

struct WebhookOperation {
    std::string action;           // from Get Operation
    std::string subscription_id;  // from Get Operation
    std::optional<std::string> plan_id;
    std::optional<std::int64_t> quantity;
};

enum class WebhookOutcome { Mismatch, Act, Refused, Ignored };

struct WebhookPlan {
    WebhookOutcome outcome = WebhookOutcome::Ignored;
    std::optional<LinkEvent> event;  // Act: the event to apply to the link
    Effects effects;                 // AnswerOperation first, when Azure waits for an answer
};

// The webhook names (action, subscription); Get Operation is the truth. `plan_known`: does the
// platform sell op.plan_id (asked only when there is one).
WebhookPlan plan_webhook(std::string_view hook_action, std::string_view hook_subscription, const WebhookOperation& op,
                         bool plan_known);

// ---------------------------------------------------------------------------------------------
// Gating with the account's other payment method

// After a cancellation the account may pay another way: then it is not ours to gate. `pays_otherwise`
// is asked of the platform only when it matters: nothing given and it matters -> NeedPaymentMethod.
enum class GateVerdict { Allow, Refuse, NeedPaymentMethod };
struct Gate {
    GateVerdict verdict = GateVerdict::Allow;
    std::optional<CreateRefusal> refusal;
};
Gate gate_create(LinkState state, bool trial, std::optional<bool> pays_otherwise) noexcept;

struct DeploymentGate {
    bool need_payment_method = false;
    DeploymentAction action;
};
DeploymentGate gate_deployment(LinkState state, const Deployment& d, std::int64_t now,
                               std::optional<std::int64_t> cancelled_at, std::optional<bool> pays_otherwise) noexcept;

}  // namespace azmp
