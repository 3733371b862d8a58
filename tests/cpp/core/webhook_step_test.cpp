// The webhook's steps: the body read, Get Operation's answer planned, our PATCH's answer planned.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <optional>
#include <string>

#include "azmp/webhook_step.hpp"

namespace azmp::webhook {
namespace {

std::string show(const StepPlan& p) {
    std::string s;
    auto add = [&](const std::string& part) { s += (s.empty() ? "" : " ") + part; };
    if (p.need_plan_known) add("need_plan_known=" + *p.need_plan_known);
    if (p.answer) add(*p.answer ? "answer=success" : "answer=failure");
    if (p.event) {
        add("apply=" + std::string(link_event_name(*p.event)));
        add("plan=" + p.info.plan_id.value_or("-"));
        add("quantity=" + (p.info.quantity ? std::to_string(*p.info.quantity) : std::string("-")));
        add("term=" + (p.info.term ? p.info.term->term_unit : std::string("-")));
        add("at=" + (p.at_ms ? std::to_string(*p.at_ms) : std::string("-")));
    }
    if (p.record) add(std::string("record=") + (*p.record == WebhookOutcome::Refused ? "refused" : "ignored"));
    if (p.release) add("release");
    if (p.deferred) add("deferred");
    if (p.reply) add("reply=" + std::to_string(p.reply->status) + "/" + std::string(p.reply->reason));
    return s;
}

const Delivery kChangePlan{"op-1", "sub-1", "ChangePlan", TermFields{"2026-01-01", "2026-12-31", "P1Y"}};

TEST(WebhookStep, ReadDelivery) {
    struct Row {
        const char* sentence;
        const char* body;
        bool read;
        const char* term_unit;  // "" for none
    };
    const Row rows[] = {
        {"a body with its operation, subscription and action", R"({"id":"op-1","subscriptionId":"s","action":"Renew"})",
         true, ""},
        {"the term is kept when it reads as one",
         R"({"id":"o","subscriptionId":"s","action":"Renew","subscription":{"term":{"startDate":"2026-01-01","endDate":"2026-12-31","termUnit":"P1Y"}}})",
         true, "P1Y"},
        {"a term that is not one (30 February) is left out",
         R"({"id":"o","subscriptionId":"s","action":"Renew","subscription":{"term":{"startDate":"2026-02-30","endDate":"2026-12-31","termUnit":"P1Y"}}})",
         true, ""},
        {"no operation id", R"({"subscriptionId":"s","action":"Renew"})", false, ""},
        {"an empty subscription id", R"({"id":"o","subscriptionId":"","action":"Renew"})", false, ""},
        {"an action that is a number", R"({"id":"o","subscriptionId":"s","action":7})", false, ""},
        {"not JSON", "{id:", false, ""},
        {"JSON but not an object", "[1,2]", false, ""},
    };
    for (const auto& r : rows) {
        const auto d = read_delivery(r.body);
        ASSERT_EQ(d.has_value(), r.read) << r.sentence;
        if (d) {
            EXPECT_EQ(d->term ? d->term->term_unit : std::string(), r.term_unit) << r.sentence;
        }
    }
    EXPECT_EQ(bad_body(), (Reply{400, "error", "bad_webhook_body"}));
}

TEST(WebhookStep, PlanOperation) {
    struct Row {
        const char* sentence;
        Delivery delivery;
        CallKind kind;
        int status;
        const char* answer;  // Get Operation's body (Answered)
        std::optional<bool> plan_known;
        const char* plan;
    };
    const Delivery suspend{"op-1", "sub-1", "Suspend", std::nullopt};
    const Delivery quantity{"op-1", "sub-1", "ChangeQuantity", std::nullopt};
    const Row rows[] = {
        {"a new plan: the platform is asked whether it sells it", kChangePlan, CallKind::Answered, 200,
         R"({"action":"ChangePlan","subscriptionId":"sub-1","planId":"gold"})", std::nullopt, "need_plan_known=gold"},
        {"a plan the platform sells: answered Success, applied with Azure's time in ms and the body's term",
         kChangePlan, CallKind::Answered, 200,
         R"({"action":"ChangePlan","subscriptionId":"sub-1","planId":"gold","timeStamp":"2026-03-01T10:00:00.250Z"})",
         true, "answer=success apply=change_plan plan=gold quantity=- term=P1Y at=1772359200250"},
        {"a plan the platform does not sell: answered Failure, recorded as refused", kChangePlan, CallKind::Answered,
         200, R"({"action":"ChangePlan","subscriptionId":"sub-1","planId":"gold"})", false,
         "answer=failure record=refused reply=200/refused"},
        {"a plan change without a plan: refused without asking the platform", kChangePlan, CallKind::Answered, 200,
         R"({"action":"ChangePlan","subscriptionId":"sub-1"})", std::nullopt,
         "answer=failure record=refused reply=200/refused"},
        {"a quantity given as text is read once, here", quantity, CallKind::Answered, 200,
         R"({"action":"ChangeQuantity","subscriptionId":"sub-1","quantity":" 12 "})", std::nullopt,
         "answer=success apply=change_quantity plan=- quantity=12 term=- at=-"},
        {"a fractional quantity is no quantity: refused", quantity, CallKind::Answered, 200,
         R"({"action":"ChangeQuantity","subscriptionId":"sub-1","quantity":2.5})", std::nullopt,
         "answer=failure record=refused reply=200/refused"},
        {"a suspension is applied; a time without an offset is UTC", suspend, CallKind::Answered, 200,
         R"({"action":"Suspend","subscriptionId":"sub-1","timeStamp":"2026-03-01T10:00:00"})", std::nullopt,
         "apply=suspend plan=- quantity=- term=- at=1772359200000"},
        {"an action we do not know: acknowledged and recorded as ignored", Delivery{"op-1", "sub-1", "Transfer", {}},
         CallKind::Answered, 200, R"({"action":"Transfer","subscriptionId":"sub-1"})", std::nullopt,
         "record=ignored reply=200/ignored"},
        {"Get Operation names another subscription: not acted on, 400", suspend, CallKind::Answered, 200,
         R"({"action":"Suspend","subscriptionId":"sub-2"})", std::nullopt, "release reply=400/operation_mismatch"},
        {"Get Operation without an action reads as a mismatch", suspend, CallKind::Answered, 200,
         R"({"subscriptionId":"sub-1"})", std::nullopt, "release reply=400/operation_mismatch"},
        {"an answer that is not an object reads as a mismatch", suspend, CallKind::Answered, 200, "[]", std::nullopt,
         "release reply=400/operation_mismatch"},
        {"no such operation (404): a forged or stale body, 400", suspend, CallKind::Refused, 404, nullptr, std::nullopt,
         "release reply=400/unknown_operation"},
        {"Azure refuses otherwise (403): given back, Azure delivers again", suspend, CallKind::Refused, 403, nullptr,
         std::nullopt, "release deferred reply=503/azure_unavailable"},
        {"Azure unreachable: given back", suspend, CallKind::Unknown, 0, nullptr, std::nullopt,
         "release deferred reply=503/azure_unavailable"},
        {"an answer too large to read: given back", suspend, CallKind::Answered, 200, nullptr, std::nullopt,
         "release deferred reply=503/azure_unavailable"},
    };
    for (const auto& r : rows) {
        std::optional<boost::json::value> body;
        if (r.answer) body = boost::json::parse(r.answer);
        const CallReport report{r.kind, r.status, body ? &*body : nullptr};
        EXPECT_EQ(show(plan_operation(r.delivery, report, r.plan_known)), r.plan) << r.sentence;
    }
}

TEST(WebhookStep, PlanAnswered) {
    struct Row {
        const char* sentence;
        bool success;
        CallKind kind;
        int status;
        const char* plan;  // "" for: go on
    };
    const Row rows[] = {
        {"Success taken: go on", true, CallKind::Answered, 200, ""},
        {"409: completed already (we answered before a crash): go on", true, CallKind::Refused, 409, ""},
        {"Success not taken (Azure down): given back, nothing recorded", true, CallKind::Unknown, 0,
         "release deferred reply=503/azure_unavailable"},
        {"Success refused otherwise: given back", true, CallKind::Refused, 400,
         "release deferred reply=503/azure_unavailable"},
        {"a Failure answer's outcome does not matter: the change is refused either way", false, CallKind::Unknown, 0,
         ""},
    };
    for (const auto& r : rows) {
        const auto p = plan_answered(r.success, CallReport{r.kind, r.status, nullptr});
        EXPECT_EQ(p ? show(*p) : std::string(), r.plan) << r.sentence;
    }
}

TEST(AzureFields, Quantity) {
    struct Row {
        const char* json;
        std::optional<std::int64_t> q;
    };
    const Row rows[] = {{"5", 5},          {"\"7\"", 7},         {"\" 8 \"", 8},       {"5.0", 5},
                        {"5.5", {}},       {"0", {}},            {"-3", {}},           {"\"\"", {}},
                        {"\"1e3\"", {}},   {"true", {}},         {"9007199254740993", {}}, {"18446744073709551615", {}}};
    for (const auto& r : rows) {
        const auto v = boost::json::parse(r.json);
        EXPECT_EQ(read_quantity(&v), r.q) << r.json;
    }
    EXPECT_EQ(read_quantity(nullptr), std::nullopt);
}

}  // namespace
}  // namespace azmp::webhook
