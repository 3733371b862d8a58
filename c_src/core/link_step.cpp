// The linking job's steps (link_step.hpp).
#include "azmp/link_step.hpp"

#include <string_view>

namespace azmp::linking {

namespace {

namespace json = boost::json;

// A failed call, as the failure rules take it: what Azure answered, or that we never sent it.
CallFailure failure_of(const CallReport& r) {
    CallFailure f;
    if (r.failure == Failure::Http && r.http_status > 0) f.http_status = r.http_status;
    f.bad_request = r.failure == Failure::Badarg;
    return f;
}

StepPlan refuse(LinkRefusal reason) {
    StepPlan p;
    p.next = Next::Refuse;
    p.refusal = reason;
    p.effects = plan_link_failed(reason);
    return p;
}

// `call` failed (or answered nothing usable): a refusal, or the job's next attempt after its back-off.
StepPlan failed(LinkStep step, const CallReport& call, const StepFacts& f) {
    if (const auto refusal = classify_link_failure(step, failure_of(call))) return refuse(*refusal);
    StepPlan p;
    p.next = Next::Retry;
    p.attempts = f.attempts + 1;
    p.retry_at = f.now + link_retry_delay_s(f.attempts, f.retry_base_s, f.retry_max_s);
    return p;
}

const json::value* answer(const CallReport& r) { return r.kind == CallKind::Answered ? r.body : nullptr; }

// Resolve's answer: {id, planId, quantity, subscription: {saasSubscriptionStatus, term}}.
const json::value* inner(const json::value* resolved) { return field(resolved, "subscription"); }

std::optional<std::string> status_of(const json::value* v) {
    const json::value* s = field(v, "saasSubscriptionStatus");
    if (!s || !s->is_string()) return std::nullopt;
    return std::string(s->get_string().data(), s->get_string().size());
}

// The link as Azure has it once active: plan and quantity as resolved, the term Azure gives after
// the activation (the resolved one, usually without dates, when it cannot say now).
StepPlan linked(const StepFacts& f, const json::value* current) {
    StepPlan p;
    p.next = Next::Linked;
    p.plan_id = read_id(field(f.resolved, "planId"));
    p.quantity = read_quantity(field(f.resolved, "quantity"));
    p.term = read_term(field(current, "term"));
    if (!p.term) p.term = read_term(field(inner(f.resolved), "term"));
    p.effects = plan_linked();
    return p;
}

}  // namespace

StepPlan plan_link_step(const StepFacts& f) {
    switch (f.step) {
        case Step::Resolved: {
            const json::value* sub = answer(f.result);
            if (f.result.kind != CallKind::Answered) return failed(LinkStep::Resolve, f.result, f);
            const auto id = read_id(field(sub, "id"));
            // An answer without the subscription it resolves to: Azure's fault, asked again later.
            if (!id) return failed(LinkStep::Resolve, CallReport{CallKind::Unknown}, f);
            StepPlan p;
            p.next = Next::Decide;
            p.subscription_id = *id;
            p.azure_status = status_of(inner(sub)).value_or("PendingFulfillmentStart");
            return p;
        }
        case Step::Checked: {
            const auto status = status_of(answer(f.result));
            switch (decide_activation(status ? std::optional<std::string_view>(*status) : std::nullopt)) {
                case ActivationVerdict::AlreadyActive: return linked(f, answer(f.result));
                case ActivationVerdict::Refuse: return refuse(LinkRefusal::SubscriptionUnsubscribed);
                case ActivationVerdict::Activate: break;
            }
            StepPlan p;
            p.next = Next::Activate;
            p.plan_id = read_id(field(f.resolved, "planId"));
            p.quantity = read_quantity(field(f.resolved, "quantity"));
            return p;
        }
        case Step::Activated:
            if (f.result.kind == CallKind::Answered) {
                StepPlan p;
                p.next = Next::Confirm;
                return p;
            }
            if (!f.job_current) return StepPlan{};  // Nothing: the job moved on meanwhile
            return failed(LinkStep::Activate, f.result, f);
        case Step::Confirmed: return linked(f, answer(f.result));
    }
    return StepPlan{};
}

LandingPlan plan_landing(const CallReport& resolve, std::int64_t now) {
    LandingPlan p{LandingOutcome::ResolveLater, landing_expires_at(now)};
    if (resolve.kind == CallKind::Answered) {
        if (read_id(field(answer(resolve), "id"))) p.outcome = LandingOutcome::Resolved;
    } else if (classify_link_failure(LinkStep::Resolve, failure_of(resolve))) {
        p.outcome = LandingOutcome::InvalidToken;
    }
    return p;
}

}  // namespace azmp::linking
