// The webhook's steps (webhook_step.hpp). Get Operation is the truth: a body naming another
// operation, subscription or action is not acted on; what to do with a confirmed one is
// plan_webhook's rule (webhook_rules.cpp).
#include "azmp/webhook_step.hpp"

#include "json_util.hpp"

namespace azmp::webhook {

namespace {

constexpr Reply kUnknownOperation{400, "error", "unknown_operation"};
constexpr Reply kMismatch{400, "error", "operation_mismatch"};
constexpr Reply kUnavailable{503, "error", "azure_unavailable"};

StepPlan give_back(Reply reply, bool deferred) {
    StepPlan p;
    p.release = true;
    p.deferred = deferred;
    p.reply = reply;
    return p;
}

std::string_view outcome_name(WebhookOutcome o) {
    return o == WebhookOutcome::Refused ? "refused" : "ignored";
}

}  // namespace

Reply bad_body() { return Reply{400, "error", "bad_webhook_body"}; }

std::optional<Delivery> read_delivery(std::string_view body) {
    const auto v = detail::parse_json(body);
    if (!v || !v->is_object()) return std::nullopt;
    auto op = read_id(field(&*v, "id")), sub = read_id(field(&*v, "subscriptionId")),
         action = read_id(field(&*v, "action"));
    if (!op || !sub || !action) return std::nullopt;
    return Delivery{std::move(*op), std::move(*sub), std::move(*action),
                    read_term(field(field(&*v, "subscription"), "term"))};
}

StepPlan plan_operation(const Delivery& d, const CallReport& get_operation, std::optional<bool> plan_known) {
    if (get_operation.kind == CallKind::Refused && get_operation.http_status == 404)
        return give_back(kUnknownOperation, false);  // no such operation: a forged or stale body
    if (get_operation.kind != CallKind::Answered || !get_operation.body) return give_back(kUnavailable, true);

    const boost::json::value* op = get_operation.body;
    // Anything malformed reads as absent; a missing action or subscription as a mismatch.
    WebhookOperation facts{read_id(field(op, "action")).value_or(""), read_id(field(op, "subscriptionId")).value_or(""),
                           read_id(field(op, "planId")), read_quantity(field(op, "quantity"))};
    if (facts.plan_id && !plan_known && facts.action == "ChangePlan" && facts.action == d.action &&
        facts.subscription_id == d.subscription_id) {
        StepPlan ask;
        ask.need_plan_known = *facts.plan_id;
        return ask;
    }
    const WebhookPlan rule = plan_webhook(d.action, d.subscription_id, facts, plan_known.value_or(false));
    StepPlan p;
    for (const Effect& e : rule.effects)
        if (e.kind == EffectKind::AnswerOperation) p.answer = e.success;
    switch (rule.outcome) {
        case WebhookOutcome::Mismatch: return give_back(kMismatch, false);
        case WebhookOutcome::Act:
            p.event = rule.event;
            p.info = LinkInfo{facts.plan_id, facts.quantity, d.term};
            p.at_ms = read_time_ms(field(op, "timeStamp"));
            return p;
        case WebhookOutcome::Refused:
        case WebhookOutcome::Ignored:
            p.record = rule.outcome;
            p.reply = Reply{200, "status", outcome_name(rule.outcome)};
            return p;
    }
    return give_back(kUnavailable, true);
}

std::optional<StepPlan> plan_answered(bool success, const CallReport& update_operation) {
    if (!success || update_operation.kind == CallKind::Answered) return std::nullopt;
    if (update_operation.kind == CallKind::Refused && update_operation.http_status == 409) return std::nullopt;
    return give_back(kUnavailable, true);
}

}  // namespace azmp::webhook
