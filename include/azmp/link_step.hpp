// A linking job, step by step, each step one plan: Resolve's answer (or the answer resolved at
// landing), Get Subscription's before activating (a crash may have activated already), Activate's,
// and Get Subscription's after it (the term starts at the activation). Pure: the linker performs
// the calls and commits what each plan says; Azure's answers are read here and nowhere else.
// Whether the account may link the subscription is plan_link's rule (rules.hpp), decided inside
// the transaction that claims the subscription.
#pragma once

#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "azmp/azure_fields.hpp"
#include "azmp/call_result.hpp"
#include "azmp/rules.hpp"

namespace azmp::linking {

enum class Step {
    Resolved,   // `result`: Resolve's answer
    Checked,    // `result`: Get Subscription's, before activating
    Activated,  // `result`: Activate's
    Confirmed,  // `result`: Get Subscription's, after activating
};

struct StepFacts {
    Step step = Step::Resolved;
    CallReport result;
    const boost::json::value* resolved = nullptr;  // the job's Resolve answer (after Resolved)
    std::uint32_t attempts = 0;                    // the job's failed attempts so far
    std::int64_t retry_base_s = 1, retry_max_s = 60;
    std::int64_t now = 0;
    bool job_current = true;  // the job is still ours and still activating (after Activated)
};

enum class Next {
    Decide,    // may the account link `subscription_id`? (plan_link, in the claiming transaction)
    Activate,  // activate `plan_id` with `quantity` in Azure
    Confirm,   // read the subscription again (Get Subscription): its term starts now
    Linked,    // record the link (plan_id, quantity, term) and perform `effects`
    Refuse,    // linking gave up: record `refusal`, perform `effects`
    Retry,     // Azure unreachable: try again at `retry_at` (attempt `attempts`)
    Nothing,   // another node finished or failed the job meanwhile
};

struct StepPlan {
    Next next = Next::Nothing;
    std::string subscription_id;  // Decide
    std::string azure_status;     // Decide: saasSubscriptionStatus (PendingFulfillmentStart when absent)
    std::optional<std::string> plan_id;
    std::optional<std::int64_t> quantity;
    std::optional<TermFields> term;
    std::optional<LinkRefusal> refusal;
    Effects effects;
    std::int64_t retry_at = 0;
    std::uint32_t attempts = 0;
};

StepPlan plan_link_step(const StepFacts& facts);

// A landing (the customer's browser arriving from Azure with a token): Resolve's answer kept for the
// job, the token kept to be resolved later (Azure unreachable, or an answer without its
// subscription), or the token refused; and until when the landing is kept.
enum class LandingOutcome { Resolved, ResolveLater, InvalidToken };
struct LandingPlan {
    LandingOutcome outcome = LandingOutcome::ResolveLater;
    std::int64_t expires_at = 0;
};
LandingPlan plan_landing(const CallReport& resolve, std::int64_t now);

}  // namespace azmp::linking
