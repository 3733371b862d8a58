// A linking job's steps on Azure's answers, and a landing's Resolve.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <optional>
#include <string>

#include "azmp/link_step.hpp"

namespace azmp::linking {
namespace {

std::string show(const StepPlan& p) {
    switch (p.next) {
        case Next::Decide: return "decide " + p.subscription_id + " " + p.azure_status;
        case Next::Activate:
            return "activate " + p.plan_id.value_or("-") + " " + (p.quantity ? std::to_string(*p.quantity) : "-");
        case Next::Confirm: return "confirm";
        case Next::Linked:
            return "linked " + p.plan_id.value_or("-") + " " + (p.quantity ? std::to_string(*p.quantity) : "-") + " " +
                   (p.term ? p.term->start_date : std::string("-")) + " effects=" + std::to_string(p.effects.size());
        case Next::Refuse: return "refuse " + std::string(refusal_name(*p.refusal)) + " effects=" + std::to_string(p.effects.size());
        case Next::Retry: return "retry at " + std::to_string(p.retry_at) + " attempt " + std::to_string(p.attempts);
        case Next::Nothing: return "nothing";
    }
    return "?";
}

constexpr const char* kResolved =
    R"({"id":"sub-1","planId":"basic","quantity":3,"subscription":{"saasSubscriptionStatus":"PendingFulfillmentStart",)"
    R"("term":{"startDate":"2026-01-01","endDate":"2026-01-31","termUnit":"P1M"}}})";

struct Call {
    CallKind kind;
    int status;
    Failure failure;
    const char* body;
};
constexpr Call answered(const char* body) { return Call{CallKind::Answered, 200, Failure::Other, body}; }
constexpr Call http(int status) {
    return Call{status >= 400 && status < 500 && status != 408 && status != 429 ? CallKind::Refused : CallKind::Unknown,
                status, Failure::Http, nullptr};
}
constexpr Call kTimeout{CallKind::Unknown, 0, Failure::Timeout, nullptr};
constexpr Call kBadArg{CallKind::NotSent, 0, Failure::Badarg, nullptr};
constexpr Call kOk{CallKind::Answered, 200, Failure::Other, nullptr};

TEST(LinkStep, EveryStep) {
    struct Row {
        const char* sentence;
        Step step;
        Call call;
        bool job_current;
        const char* plan;
    };
    const Row rows[] = {
        {"Resolve answered: decide on its subscription and status", Step::Resolved, answered(kResolved), true,
         "decide sub-1 PendingFulfillmentStart"},
        {"Resolve without a status: pending", Step::Resolved, answered(R"({"id":"sub-1"})"), true,
         "decide sub-1 PendingFulfillmentStart"},
        {"Resolve without the subscription's id: Azure's fault, asked again", Step::Resolved, answered(R"({"planId":"x"})"),
         true, "retry at 1004 attempt 3"},
        {"Resolve refuses the token (400): it is invalid or expired", Step::Resolved, http(400), true,
         "refuse invalid_token effects=1"},
        {"a malformed token never sent: invalid", Step::Resolved, kBadArg, true, "refuse invalid_token effects=1"},
        {"Resolve busy (429): retried with back-off (1 s * 2^2)", Step::Resolved, http(429), true,
         "retry at 1004 attempt 3"},
        {"Resolve timed out: retried", Step::Resolved, kTimeout, true, "retry at 1004 attempt 3"},
        {"Get Subscription says Subscribed: a crash after activating, linked with Azure's term", Step::Checked,
         answered(R"({"saasSubscriptionStatus":"Subscribed","term":{"startDate":"2026-02-03","endDate":"2026-03-02","termUnit":"P1M"}})"),
         true, "linked basic 3 2026-02-03 effects=3"},
        {"Get Subscription says Unsubscribed: cancelled before we activated", Step::Checked,
         answered(R"({"saasSubscriptionStatus":" unsubscribed "})"), true, "refuse subscription_unsubscribed effects=1"},
        {"still pending: activate the resolved plan and quantity", Step::Checked,
         answered(R"({"saasSubscriptionStatus":"PendingFulfillmentStart"})"), true, "activate basic 3"},
        {"Get Subscription failed: activating twice is harmless", Step::Checked, kTimeout, true, "activate basic 3"},
        {"activated: read the term Azure starts now", Step::Activated, kOk, true, "confirm"},
        {"Activate refused with 400: the subscription is no longer pending", Step::Activated, http(400), true,
         "refuse subscription_unsubscribed effects=1"},
        {"Activate failed otherwise: retried", Step::Activated, http(503), true, "retry at 1004 attempt 3"},
        {"Activate failed but the job moved on meanwhile: nothing", Step::Activated, http(400), false, "nothing"},
        {"confirmed: linked with the term after activation", Step::Confirmed,
         answered(R"({"term":{"startDate":"2026-02-04","endDate":"2026-03-03","termUnit":"P1M"}})"), true,
         "linked basic 3 2026-02-04 effects=3"},
        {"Azure cannot say now: linked with the resolved term", Step::Confirmed, kTimeout, true,
         "linked basic 3 2026-01-01 effects=3"},
        {"a term that is no term (month 13) is left out", Step::Confirmed,
         answered(R"({"term":{"startDate":"2026-13-01","endDate":"2026-03-03","termUnit":"P1M"}})"), true,
         "linked basic 3 2026-01-01 effects=3"},
    };
    const auto resolved = boost::json::parse(kResolved);
    for (const auto& r : rows) {
        std::optional<boost::json::value> body;
        if (r.call.body) body = boost::json::parse(r.call.body);
        StepFacts f;
        f.step = r.step;
        f.result = CallReport{r.call.kind, r.call.status, body ? &*body : nullptr, r.call.failure};
        f.resolved = r.step == Step::Resolved ? nullptr : &resolved;
        f.attempts = 2;
        f.retry_base_s = 1;
        f.retry_max_s = 60;
        f.now = 1000;
        f.job_current = r.job_current;
        EXPECT_EQ(show(plan_link_step(f)), r.plan) << r.sentence;
    }
}

TEST(LinkStep, Landing) {
    struct Row {
        const char* sentence;
        Call call;
        LandingOutcome outcome;
    };
    const Row rows[] = {
        {"resolved: the answer is kept for the job", answered(kResolved), LandingOutcome::Resolved},
        {"an answer without its subscription: the token is kept, resolved later", answered("{}"),
         LandingOutcome::ResolveLater},
        {"Azure down: the token is kept", http(503), LandingOutcome::ResolveLater},
        {"Azure refuses the token: the page says so", http(404), LandingOutcome::InvalidToken},
    };
    for (const auto& r : rows) {
        std::optional<boost::json::value> body;
        if (r.call.body) body = boost::json::parse(r.call.body);
        const LandingPlan p =
            plan_landing(CallReport{r.call.kind, r.call.status, body ? &*body : nullptr, r.call.failure}, 1000);
        EXPECT_EQ(p.outcome, r.outcome) << r.sentence;
        EXPECT_EQ(p.expires_at, landing_expires_at(1000)) << r.sentence;
    }
}

}  // namespace
}  // namespace azmp::linking
