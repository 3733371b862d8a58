// What a deployment may do, given its account's link state: be created, keep running, stop, or be
// deleted 3 days after it stopped (the product documentation's unlinking rules).
#include "azmp/decisions.hpp"

#include <limits>

namespace azmp {

namespace {

// A trial runs while now < trial_ends_at; without an end it counts as ended.
bool trial_over(const Deployment& d, std::int64_t now) noexcept { return !d.trial_ends_at || now >= *d.trial_ends_at; }

std::int64_t plus_saturating(std::int64_t a, std::int64_t b) noexcept {
    // b >= 0 here (kDeleteAfterStopS).
    if (a > std::numeric_limits<std::int64_t>::max() - b) return std::numeric_limits<std::int64_t>::max();
    return a + b;
}

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

DeploymentAction decide_deployment(LinkState state, const Deployment& d, std::int64_t now) noexcept {
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
                return remove_at(plus_saturating(d.stopped_at.value_or(now), kDeleteAfterStopS));
            if (!d.trial) return stop(StopReason::Unsubscribed);
            return trial_over(d, now) ? stop(StopReason::TrialEnded) : keep();
    }
    return keep();
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
