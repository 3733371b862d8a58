// What a confirmed webhook operation does. Azure waits for our answer to ChangePlan and
// ChangeQuantity (it applies them after 10 s unless we answer Failure); the other actions have
// happened in Azure already and only change our link.
#include "azmp/rules.hpp"

namespace azmp {

namespace {

std::optional<LinkEvent> event_of(std::string_view action) noexcept {
    if (action == "ChangePlan") return LinkEvent::ChangePlan;
    if (action == "ChangeQuantity") return LinkEvent::ChangeQuantity;
    if (action == "Renew") return LinkEvent::Renew;
    if (action == "Suspend") return LinkEvent::Suspend;
    if (action == "Reinstate") return LinkEvent::Reinstate;
    if (action == "Unsubscribe") return LinkEvent::Unsubscribe;
    return std::nullopt;
}

WebhookPlan accept(LinkEvent e, bool answer) {
    WebhookPlan p{WebhookOutcome::Act, e, {}};
    if (answer) p.effects.push_back(answer_operation(true));
    return p;
}

WebhookPlan refuse() { return WebhookPlan{WebhookOutcome::Refused, std::nullopt, {answer_operation(false)}}; }

}  // namespace

WebhookPlan plan_webhook(std::string_view hook_action, std::string_view hook_subscription, const WebhookOperation& op,
                         bool plan_known) {
    // Get Operation is the truth: a webhook naming something else is not acted on.
    if (op.action != hook_action || op.subscription_id != hook_subscription)
        return WebhookPlan{WebhookOutcome::Mismatch, std::nullopt, {}};
    const auto event = event_of(op.action);
    if (!event) return WebhookPlan{WebhookOutcome::Ignored, std::nullopt, {}};
    switch (*event) {
        case LinkEvent::ChangePlan:
            // Only a plan the platform sells.
            return op.plan_id && !op.plan_id->empty() && plan_known ? accept(*event, true) : refuse();
        case LinkEvent::ChangeQuantity: return op.quantity && *op.quantity > 0 ? accept(*event, true) : refuse();
        default: return accept(*event, false);
    }
}

}  // namespace azmp
