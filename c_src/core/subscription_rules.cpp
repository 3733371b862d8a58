// What a subscription event does to a link and to the account's deployments: suspension stops the
// paid deployments (kept, restarted on reinstatement); cancellation stops them too, lets a trial run
// to its end, deletes what stopped 3 days later, and the marketplace stops being the payment method.
#include "azmp/rules.hpp"

#include <algorithm>
#include <limits>

#include "text_util.hpp"

namespace azmp {

namespace {

std::int64_t plus_saturating(std::int64_t a, std::int64_t b) noexcept {
    if (a > std::numeric_limits<std::int64_t>::max() - b) return std::numeric_limits<std::int64_t>::max();
    return a + b;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

// Suspended: the paid deployments stop and are remembered, to be started again on reinstatement.
// Trials are free and left alone (a trial that ended would otherwise be started again on
// reinstatement); only a cancellation ends them.
void enforce_suspended(const AccountFacts& facts, std::int64_t now, EventPlan& plan) {
    for (const auto& [id, d] : facts.deployments) {
        const DeploymentAction a = decide_deployment(LinkState::Suspended, d, now);
        if (a.kind != ActionKind::Stop || a.stop_reason != StopReason::Suspended) continue;
        plan.effects.push_back(stop_deployment(id));
        if (!contains(plan.suspended, id)) plan.suspended.push_back(id);
    }
}

// Unsubscribed: the marketplace no longer pays; running paid deployments stop now and are deleted
// 3 days later; a trial runs until its trial ends, then stops; a deployment stopped already is
// deleted 3 days after it stopped, never sooner than 3 days after the cancellation.
// Catching up (`catching_up'), a trial that has ended is left to its stop deadline (scheduled
// again, due at once, if it was lost): the deadline runner and the reconciliation never both stop it.
void enforce_unsubscribed(const AccountFacts& facts, std::int64_t now, EventPlan& plan, bool catching_up) {
    if (facts.marketplace_pays) plan.effects.push_back(set_payment_method(PaymentMethod::None));
    for (const auto& [id, d] : facts.deployments) {
        const DeploymentAction a = decide_deployment(LinkState::Unsubscribed, d, now, plan.cancelled_at);
        if (catching_up && a.kind == ActionKind::Stop && a.stop_reason == StopReason::TrialEnded) {
            plan.effects.push_back(schedule_deadline(id, DeadlineKind::Stop, d.trial_ends_at.value_or(now)));
            continue;
        }
        switch (a.kind) {
            case ActionKind::Stop:
                plan.effects.push_back(stop_deployment(id));
                plan.effects.push_back(
                    schedule_deadline(id, DeadlineKind::Delete, deletion_at(now, plan.cancelled_at, now)));
                break;
            case ActionKind::Delete: plan.effects.push_back(schedule_deadline(id, DeadlineKind::Delete, a.delete_at)); break;
            case ActionKind::Keep:
                // Only a trial still on is kept: it stops when its trial ends.
                plan.effects.push_back(schedule_deadline(id, DeadlineKind::Stop, d.trial_ends_at.value_or(now)));
                break;
        }
    }
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept { return a >= 0 ? a / b : -((-(a + 1)) / b) - 1; }

EventPlan carry(const AccountFacts& facts) {
    EventPlan plan;
    plan.state = facts.state;
    plan.suspended = facts.suspended;
    plan.cancelled_at = facts.cancelled_at;
    plan.last_op_at = facts.last_op_at;
    return plan;
}

}  // namespace

std::int64_t deletion_at(std::optional<std::int64_t> stopped_at, std::optional<std::int64_t> cancelled_at,
                         std::int64_t now) noexcept {
    std::int64_t from = stopped_at.value_or(cancelled_at.value_or(now));
    if (cancelled_at && *cancelled_at > from) from = *cancelled_at;
    return plus_saturating(from, kDeleteAfterStopS);
}

namespace {
EventPlan enforce(const AccountFacts& facts, std::int64_t now, bool catching_up) {
    EventPlan plan = carry(facts);
    plan.applies = true;
    switch (facts.state) {
        case LinkState::Suspended: enforce_suspended(facts, now, plan); break;
        case LinkState::Unsubscribed: enforce_unsubscribed(facts, now, plan, catching_up); break;
        case LinkState::None:
        case LinkState::Pending:
        case LinkState::Linked: break;
    }
    return plan;
}
}  // namespace

EventPlan plan_enforce(const AccountFacts& facts, std::int64_t now) { return enforce(facts, now, true); }

EventPlan plan_event(LinkEvent event, const AccountFacts& facts, std::int64_t now, std::optional<std::int64_t> op_at) {
    EventPlan plan = carry(facts);
    // An operation older than the latest one applied (a delayed Suspend after Azure's Reinstate)
    // must not undo it.
    if (op_at && facts.last_op_at && *op_at < *facts.last_op_at) {
        plan.stale = true;
        return plan;
    }
    const auto next = next_link_state(facts.state, event);
    if (!next) return plan;
    plan.applies = true;
    plan.state = *next;
    plan.claim_cancelled = *next == LinkState::Unsubscribed;
    if (op_at) plan.last_op_at = op_at;

    AccountFacts after = facts;
    after.state = *next;
    switch (event) {
        case LinkEvent::Suspend: {
            EventPlan e = enforce(after, now, false);
            plan.suspended = std::move(e.suspended);
            plan.effects = std::move(e.effects);
            plan.effects.push_back(notify(NoticeKind::SubscriptionSuspended));
            break;
        }
        case LinkEvent::Reinstate:
            for (const auto& id : facts.suspended) plan.effects.push_back(start_deployment(id));
            plan.suspended.clear();
            plan.effects.push_back(notify(NoticeKind::SubscriptionReinstated));
            break;
        case LinkEvent::Unsubscribe: {
            // The cancellation's time is Azure's (usage up to it is billed), never later than now.
            after.cancelled_at = op_at ? std::min(now, floor_div(*op_at, 1000)) : now;
            EventPlan e = enforce(after, now, false);
            plan.cancelled_at = after.cancelled_at;
            // Nothing suspended is started again: the cancellation's rules apply to it now.
            plan.suspended.clear();
            // The hour in progress closes after its grace like any other, so that usage up to the
            // cancellation reported late still counts; the meter sends it within Azure's window.
            plan.effects.insert(plan.effects.end(), e.effects.begin(), e.effects.end());
            plan.effects.push_back(notify(NoticeKind::SubscriptionCancelled));
            break;
        }
        case LinkEvent::Activated:
        case LinkEvent::LinkFailed:
        case LinkEvent::ChangePlan:
        case LinkEvent::ChangeQuantity:
        case LinkEvent::Renew: break;  // the link's fields change; nothing else
    }
    return plan;
}

std::optional<LinkEvent> repair_event(std::string_view azure_status, LinkState local) noexcept {
    const std::string_view s = detail::trim(azure_status);
    if (detail::iequals(s, "Unsubscribed") && local != LinkState::Unsubscribed) return LinkEvent::Unsubscribe;
    if (detail::iequals(s, "Suspended") && local == LinkState::Linked) return LinkEvent::Suspend;
    if (detail::iequals(s, "Subscribed") && local == LinkState::Suspended) return LinkEvent::Reinstate;
    return std::nullopt;
}

Effects plan_deadline(DeadlineKind kind, std::string_view deployment_id, LinkState state,
                      std::optional<std::int64_t> cancelled_at, std::int64_t now) {
    // Linked again since: the cancellation's deadlines no longer apply.
    if (state != LinkState::Unsubscribed) return {};
    const std::string id(deployment_id);
    switch (kind) {
        case DeadlineKind::Stop:
            return {stop_deployment(id), schedule_deadline(id, DeadlineKind::Delete, deletion_at(now, cancelled_at, now))};
        case DeadlineKind::Delete: return {delete_deployment(id)};
    }
    return {};
}

}  // namespace azmp
