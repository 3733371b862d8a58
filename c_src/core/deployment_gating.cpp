// What a deployment may do, given its account's link state: be created, keep running, stop, or be
// deleted 3 days after it stopped (the product documentation's unlinking rules).
#include "azmp/decisions.hpp"
#include "azmp/rules.hpp"

namespace azmp {

namespace {

// A trial runs while now < trial_ends_at; without an end it counts as ended.
bool trial_over(const Deployment& d, std::int64_t now) noexcept { return !d.trial_ends_at || now >= *d.trial_ends_at; }

DeploymentAction keep() noexcept { return DeploymentAction{}; }
DeploymentAction stop(StopReason r) noexcept { return DeploymentAction{ActionKind::Stop, r, 0}; }
DeploymentAction remove_at(std::int64_t at) noexcept { return DeploymentAction{ActionKind::Delete, std::nullopt, at}; }

}  // namespace

std::optional<CreateRefusal> decide_create(LinkState state, bool trial) noexcept {
    if (trial) return std::nullopt;  // free, and it ends with its trial
    switch (state) {
        case LinkState::None:
        case LinkState::Linked: return std::nullopt;
        case LinkState::Pending: return CreateRefusal::LinkPending;
        case LinkState::Suspended: return CreateRefusal::SubscriptionSuspended;
        case LinkState::Unsubscribed: return CreateRefusal::SubscriptionCancelled;
    }
    return CreateRefusal::SubscriptionCancelled;  // out-of-range state: refuse rather than bill nobody
}

std::string_view create_refusal_name(CreateRefusal r) noexcept {
    switch (r) {
        case CreateRefusal::LinkPending: return "link_pending";
        case CreateRefusal::SubscriptionSuspended: return "subscription_suspended";
        case CreateRefusal::SubscriptionCancelled: return "subscription_cancelled";
    }
    return "unknown";
}

DeploymentAction decide_deployment(LinkState state, const Deployment& d, std::int64_t now,
                                   std::optional<std::int64_t> cancelled_at) noexcept {
    switch (state) {
        case LinkState::None:
        case LinkState::Pending:
        case LinkState::Linked: return keep();
        case LinkState::Suspended:
            // Stopped deployments are kept (restarted on reinstate), never deleted.
            if (d.state == DeploymentState::Stopped) return keep();
            if (!d.trial) return stop(StopReason::Suspended);
            return trial_over(d, now) ? stop(StopReason::TrialEnded) : keep();
        case LinkState::Unsubscribed:
            if (d.state == DeploymentState::Stopped)
                return remove_at(deletion_at(d.stopped_at, cancelled_at, now));
            if (!d.trial) return stop(StopReason::Unsubscribed);
            return trial_over(d, now) ? stop(StopReason::TrialEnded) : keep();
    }
    return keep();
}

Gate gate_create(LinkState state, bool trial, std::optional<bool> pays_otherwise) noexcept {
    const auto refusal = decide_create(state, trial);
    if (!refusal) return Gate{GateVerdict::Allow, std::nullopt};
    // After a cancellation the account may pay another way: then it is not ours to gate.
    if (*refusal == CreateRefusal::SubscriptionCancelled) {
        if (!pays_otherwise) return Gate{GateVerdict::NeedPaymentMethod, std::nullopt};
        if (*pays_otherwise) return Gate{GateVerdict::Allow, std::nullopt};
    }
    return Gate{GateVerdict::Refuse, refusal};
}

DeploymentGate gate_deployment(LinkState state, const Deployment& d, std::int64_t now,
                               std::optional<std::int64_t> cancelled_at, std::optional<bool> pays_otherwise) noexcept {
    DeploymentGate g{false, decide_deployment(state, d, now, cancelled_at)};
    if (g.action.kind == ActionKind::Stop && g.action.stop_reason == StopReason::Unsubscribed) {
        // Paid through another method since the cancellation: its deployments keep running.
        if (!pays_otherwise) g.need_payment_method = true;
        else if (*pays_otherwise) g.action = keep();
    }
    return g;
}

std::string_view stop_reason_name(StopReason r) noexcept {
    switch (r) {
        case StopReason::Suspended: return "suspended";
        case StopReason::Unsubscribed: return "unsubscribed";
        case StopReason::TrialEnded: return "trial_ended";
    }
    return "unknown";
}

}  // namespace azmp
