// One webhook delivery, step by step, each step one plan: the body Azure posted (read_delivery),
// Get Operation's answer (plan_operation), the answer to our PATCH of a ChangePlan or ChangeQuantity
// (plan_answered). Pure: the webhook module performs the calls and what each plan says; Azure's
// answers are read here and nowhere else.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "azmp/azure_fields.hpp"
#include "azmp/call_result.hpp"
#include "azmp/rules.hpp"

namespace azmp::webhook {

// What a webhook body names: the operation to confirm with Get Operation, and the subscription's
// term (which Get Operation does not give).
struct Delivery {
    std::string operation_id, subscription_id, action;
    std::optional<TermFields> term;
};

// Nothing when the body can never be acted on (not JSON, no valid id, subscriptionId or action):
// answered 400, since Azure would redeliver a 503 forever.
std::optional<Delivery> read_delivery(std::string_view body);

// The HTTP answer to the delivery: {status, {key, reason}} as JSON {"error": reason} or
// {"status": reason}.
struct Reply {
    int status = 200;
    std::string_view key;     // "error" or "status"
    std::string_view reason;
    bool operator==(const Reply&) const = default;
};
Reply bad_body();

// The link's fields as Azure has them now: plan and quantity from Get Operation, the term from the body.
struct LinkInfo {
    std::optional<std::string> plan_id;
    std::optional<std::int64_t> quantity;
    std::optional<TermFields> term;
};

struct StepPlan {
    // Ask the platform whether it sells this plan, then plan again with the answer.
    std::optional<std::string> need_plan_known;
    // PATCH the operation (Success: true, Failure: false) before anything is recorded.
    std::optional<bool> answer;
    // Apply this event to the subscription's link (the handled outcome is the link's).
    std::optional<LinkEvent> event;
    LinkInfo info;
    std::optional<std::int64_t> at_ms;  // Azure's time of the operation
    // Record the operation as handled with this outcome (refused, ignored).
    std::optional<WebhookOutcome> record;
    // Give the claim on the operation back: nothing is recorded, Azure delivers again.
    bool release = false;
    // Log that Azure could not be asked (with the call's reason).
    bool deferred = false;
    // The answer now; none: after the event is applied, 200 with its outcome.
    std::optional<Reply> reply;
};

// Get Operation's answer for a delivery. `plan_known`: the platform's answer for need_plan_known.
StepPlan plan_operation(const Delivery& delivery, const CallReport& get_operation, std::optional<bool> plan_known);

// Our PATCH's answer: nothing to change (go on with the plan) or give up for now (503, Azure
// delivers again). 409 means the operation is completed already: we answered before a crash.
// A Failure answer's own outcome does not matter: the change is refused either way.
std::optional<StepPlan> plan_answered(bool success, const CallReport& update_operation);

}  // namespace azmp::webhook
