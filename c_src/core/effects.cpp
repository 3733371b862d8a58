// Effects as data: the constructors the rules read with, and the names Erlang sees.
#include "azmp/rules.hpp"

#include <utility>

namespace azmp {

namespace {
Effect of(EffectKind k) {
    Effect e;
    e.kind = k;
    return e;
}
Effect on_deployment(EffectKind k, std::string id) {
    Effect e = of(k);
    e.deployment_id = std::move(id);
    return e;
}
}  // namespace

Effect activate() { return of(EffectKind::Activate); }

Effect answer_operation(bool success) {
    Effect e = of(EffectKind::AnswerOperation);
    e.success = success;
    return e;
}

Effect set_payment_method(PaymentMethod m) {
    Effect e = of(EffectKind::SetPaymentMethod);
    e.method = m;
    return e;
}

Effect notify(NoticeKind k, std::optional<LinkRefusal> reason) {
    Effect e = of(EffectKind::Notify);
    e.notice = k;
    e.reason = reason;
    // A notice about a subscription names it; one about a refused attempt does not (the account
    // may not hold that subscription).
    e.names_subscription = !reason;
    return e;
}

Effect stop_deployment(std::string id) { return on_deployment(EffectKind::StopDeployment, std::move(id)); }
Effect start_deployment(std::string id) { return on_deployment(EffectKind::StartDeployment, std::move(id)); }
Effect delete_deployment(std::string id) { return on_deployment(EffectKind::DeleteDeployment, std::move(id)); }

Effect schedule_deadline(std::string id, DeadlineKind k, std::int64_t at) {
    Effect e = on_deployment(EffectKind::ScheduleDeadline, std::move(id));
    e.deadline = k;
    e.at = at;
    return e;
}

Effect cancel_deadlines() { return of(EffectKind::CancelDeadlines); }


std::string_view payment_method_name(PaymentMethod m) noexcept {
    switch (m) {
        case PaymentMethod::AzureMarketplaceSubscription: return "azure_marketplace_subscription";
        case PaymentMethod::None: return "none";
    }
    return "unknown";
}

std::string_view notice_kind_name(NoticeKind k) noexcept {
    switch (k) {
        case NoticeKind::Linked: return "linked";
        case NoticeKind::LinkFailed: return "link_failed";
        case NoticeKind::SubscriptionSuspended: return "subscription_suspended";
        case NoticeKind::SubscriptionReinstated: return "subscription_reinstated";
        case NoticeKind::SubscriptionCancelled: return "subscription_cancelled";
    }
    return "unknown";
}

std::string_view deadline_kind_name(DeadlineKind k) noexcept {
    switch (k) {
        case DeadlineKind::Stop: return "stop";
        case DeadlineKind::Delete: return "delete";
    }
    return "unknown";
}

std::optional<DeadlineKind> deadline_kind_from_name(std::string_view name) noexcept {
    if (name == "stop") return DeadlineKind::Stop;
    if (name == "delete") return DeadlineKind::Delete;
    return std::nullopt;
}

}  // namespace azmp
