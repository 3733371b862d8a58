#include <boost/json/parse.hpp>

#include <gtest/gtest.h>

#include <limits>

#include "azmp/operations.hpp"

namespace azmp {
namespace {

namespace json = boost::json;

constexpr std::string_view kBase = "https://marketplaceapi.microsoft.com/api";
constexpr const char* kSub = "37f9dea2-4345-438f-b0bd-03d40d28c7e0";
constexpr const char* kOp = "74dfcfe9-8d5f-4a4a-ab33-9a1a1e8a5c2e";

Operation op(OpKind k) {
    Operation o;
    o.kind = k;
    o.subscription_id = kSub;
    return o;
}

UsageEvent event() {
    return UsageEvent{"37f9dea2-4345-438f-b0bd-03d40d28c7e0", "messages", 5, "2026-11-26T06:00:00Z", "pay-as-you-go"};
}

json::value body_of(const HttpRequest& r) { return json::parse(r.body); }

void expect_json_content_type(const HttpRequest& r) {
    EXPECT_EQ(find_header(r.headers, "Content-Type"), "application/json");
}

std::string badarg(const Operation& o) {
    auto e = validate(o);
    if (!e) return "";
    EXPECT_EQ(e->kind, ErrorKind::Badarg);
    return e->detail;
}

// ---- names -------------------------------------------------------------------------------------

TEST(OpName, SnakeCase) {
    EXPECT_EQ(op_name(OpKind::Resolve), "resolve");
    EXPECT_EQ(op_name(OpKind::Activate), "activate");
    EXPECT_EQ(op_name(OpKind::GetSubscription), "get_subscription");
    EXPECT_EQ(op_name(OpKind::ListSubscriptions), "list_subscriptions");
    EXPECT_EQ(op_name(OpKind::ListAvailablePlans), "list_available_plans");
    EXPECT_EQ(op_name(OpKind::ChangePlan), "change_plan");
    EXPECT_EQ(op_name(OpKind::ChangeQuantity), "change_quantity");
    EXPECT_EQ(op_name(OpKind::DeleteSubscription), "delete_subscription");
    EXPECT_EQ(op_name(OpKind::ListOperations), "list_operations");
    EXPECT_EQ(op_name(OpKind::GetOperation), "get_operation");
    EXPECT_EQ(op_name(OpKind::UpdateOperation), "update_operation");
    EXPECT_EQ(op_name(OpKind::PostUsage), "post_usage");
    EXPECT_EQ(op_name(OpKind::PostUsageBatch), "post_usage_batch");
    EXPECT_EQ(op_name(OpKind::GetUsageEvents), "get_usage_events");
}

// ---- build_request: fulfillment ----------------------------------------------------------------

TEST(BuildRequest, Resolve) {
    Operation o;
    o.kind = OpKind::Resolve;
    o.marketplace_token = "ab%2Bcd==";
    auto r = build_request(o, kBase);
    EXPECT_EQ(r.method, Method::Post);
    EXPECT_EQ(r.url, "https://marketplaceapi.microsoft.com/api/saas/subscriptions/resolve?api-version=2018-08-31");
    EXPECT_EQ(find_header(r.headers, "x-ms-marketplace-token"), "ab%2Bcd==");  // sent verbatim
    EXPECT_TRUE(r.body.empty());
    EXPECT_FALSE(find_header(r.headers, "Authorization"));
}

TEST(BuildRequest, ActivateWithQuantity) {
    auto o = op(OpKind::Activate);
    o.plan_id = "gold";
    o.quantity = 10;
    auto r = build_request(o, kBase);
    EXPECT_EQ(r.method, Method::Post);
    EXPECT_EQ(r.url, std::string(kBase) + "/saas/subscriptions/" + kSub + "/activate?api-version=2018-08-31");
    EXPECT_EQ(body_of(r), json::parse(R"({"planId":"gold","quantity":10})"));
    expect_json_content_type(r);
}

TEST(BuildRequest, ActivateWithoutQuantity) {
    auto o = op(OpKind::Activate);
    o.plan_id = "gold";
    auto r = build_request(o, kBase);
    EXPECT_EQ(body_of(r), json::parse(R"({"planId":"gold"})"));
    expect_json_content_type(r);
}

TEST(BuildRequest, GetSubscription) {
    auto r = build_request(op(OpKind::GetSubscription), kBase);
    EXPECT_EQ(r.method, Method::Get);
    EXPECT_EQ(r.url, std::string(kBase) + "/saas/subscriptions/" + kSub + "?api-version=2018-08-31");
    EXPECT_TRUE(r.body.empty());
    EXPECT_FALSE(find_header(r.headers, "Content-Type"));
}

TEST(BuildRequest, ListSubscriptions) {
    Operation o;
    o.kind = OpKind::ListSubscriptions;
    auto r = build_request(o, kBase);
    EXPECT_EQ(r.method, Method::Get);
    EXPECT_EQ(r.url, "https://marketplaceapi.microsoft.com/api/saas/subscriptions?api-version=2018-08-31");
}

TEST(BuildRequest, ListAvailablePlans) {
    auto r = build_request(op(OpKind::ListAvailablePlans), kBase);
    EXPECT_EQ(r.method, Method::Get);
    EXPECT_EQ(r.url, std::string(kBase) + "/saas/subscriptions/" + kSub + "/listAvailablePlans?api-version=2018-08-31");
}

TEST(BuildRequest, ChangePlan) {
    auto o = op(OpKind::ChangePlan);
    o.plan_id = "platinum";
    o.quantity = 7;  // ignored by ChangePlan
    auto r = build_request(o, kBase);
    EXPECT_EQ(r.method, Method::Patch);
    EXPECT_EQ(r.url, std::string(kBase) + "/saas/subscriptions/" + kSub + "?api-version=2018-08-31");
    EXPECT_EQ(body_of(r), json::parse(R"({"planId":"platinum"})"));
    expect_json_content_type(r);
}

TEST(BuildRequest, ChangeQuantity) {
    auto o = op(OpKind::ChangeQuantity);
    o.quantity = 25;
    o.plan_id = "ignored";
    auto r = build_request(o, kBase);
    EXPECT_EQ(r.method, Method::Patch);
    EXPECT_EQ(r.url, std::string(kBase) + "/saas/subscriptions/" + kSub + "?api-version=2018-08-31");
    EXPECT_EQ(body_of(r), json::parse(R"({"quantity":25})"));
    expect_json_content_type(r);
}

TEST(BuildRequest, DeleteSubscription) {
    auto r = build_request(op(OpKind::DeleteSubscription), kBase);
    EXPECT_EQ(r.method, Method::Delete);
    EXPECT_EQ(r.url, std::string(kBase) + "/saas/subscriptions/" + kSub + "?api-version=2018-08-31");
    EXPECT_TRUE(r.body.empty());
}

TEST(BuildRequest, ListOperations) {
    auto r = build_request(op(OpKind::ListOperations), kBase);
    EXPECT_EQ(r.method, Method::Get);
    EXPECT_EQ(r.url, std::string(kBase) + "/saas/subscriptions/" + kSub + "/operations?api-version=2018-08-31");
}

TEST(BuildRequest, GetOperation) {
    auto o = op(OpKind::GetOperation);
    o.operation_id = kOp;
    auto r = build_request(o, kBase);
    EXPECT_EQ(r.method, Method::Get);
    EXPECT_EQ(r.url,
              std::string(kBase) + "/saas/subscriptions/" + kSub + "/operations/" + kOp + "?api-version=2018-08-31");
}

TEST(BuildRequest, UpdateOperationSuccess) {
    auto o = op(OpKind::UpdateOperation);
    o.operation_id = kOp;
    auto r = build_request(o, kBase);
    EXPECT_EQ(r.method, Method::Patch);
    EXPECT_EQ(r.url,
              std::string(kBase) + "/saas/subscriptions/" + kSub + "/operations/" + kOp + "?api-version=2018-08-31");
    EXPECT_EQ(body_of(r), json::parse(R"({"status":"Success"})"));
    expect_json_content_type(r);
}

TEST(BuildRequest, UpdateOperationFailureWithPlanAndQuantity) {
    auto o = op(OpKind::UpdateOperation);
    o.operation_id = kOp;
    o.success = false;
    o.plan_id = "silver";
    o.quantity = 3;
    auto r = build_request(o, kBase);
    EXPECT_EQ(body_of(r), json::parse(R"({"status":"Failure","planId":"silver","quantity":3})"));
}

TEST(BuildRequest, PathSegmentsAreEncoded) {
    auto o = op(OpKind::GetOperation);
    o.subscription_id = "a/b?c#d e";
    o.operation_id = "../x";
    auto r = build_request(o, kBase);
    EXPECT_EQ(r.url, std::string(kBase) + "/saas/subscriptions/a%2Fb%3Fc%23d%20e/operations/..%2Fx?api-version=2018-08-31");
}

TEST(BuildRequest, OtherBase) {
    auto r = build_request(op(OpKind::GetSubscription), "http://127.0.0.1:8089/api");
    EXPECT_EQ(r.url, std::string("http://127.0.0.1:8089/api/saas/subscriptions/") + kSub + "?api-version=2018-08-31");
}

// ---- build_request: metering -------------------------------------------------------------------

TEST(BuildRequest, PostUsage) {
    Operation o;
    o.kind = OpKind::PostUsage;
    o.events = {event()};
    auto r = build_request(o, kBase);
    EXPECT_EQ(r.method, Method::Post);
    EXPECT_EQ(r.url, "https://marketplaceapi.microsoft.com/api/usageEvent?api-version=2018-08-31");
    EXPECT_EQ(body_of(r), json::parse(R"({"resourceId":"37f9dea2-4345-438f-b0bd-03d40d28c7e0","quantity":5,)"
                                      R"("dimension":"messages","effectiveStartTime":"2026-11-26T06:00:00Z",)"
                                      R"("planId":"pay-as-you-go"})"));
    EXPECT_NE(r.body.find("\"quantity\":5,"), std::string::npos) << r.body;  // not 5E0
    expect_json_content_type(r);
}

TEST(BuildRequest, PostUsageFractionalQuantity) {
    Operation o;
    o.kind = OpKind::PostUsage;
    o.events = {event()};
    o.events[0].quantity = 2.5;
    auto r = build_request(o, kBase);
    EXPECT_EQ(body_of(r).at("quantity").as_double(), 2.5);
}

TEST(BuildRequest, PostUsageBatch) {
    Operation o;
    o.kind = OpKind::PostUsageBatch;
    auto e2 = event();
    e2.dimension = "connections";
    e2.quantity = 0.75;
    e2.effective_start_time = "2026-11-26T07:00:00Z";
    o.events = {event(), e2};
    auto r = build_request(o, kBase);
    EXPECT_EQ(r.method, Method::Post);
    EXPECT_EQ(r.url, "https://marketplaceapi.microsoft.com/api/batchUsageEvent?api-version=2018-08-31");
    auto b = body_of(r);
    ASSERT_TRUE(b.is_object());
    const auto& items = b.at("request").as_array();
    ASSERT_EQ(items.size(), 2u);
    EXPECT_EQ(items[0], json::parse(R"({"resourceId":"37f9dea2-4345-438f-b0bd-03d40d28c7e0","quantity":5,)"
                                    R"("dimension":"messages","effectiveStartTime":"2026-11-26T06:00:00Z",)"
                                    R"("planId":"pay-as-you-go"})"));
    EXPECT_EQ(items[1].at("dimension"), "connections");
    EXPECT_EQ(items[1].at("quantity").as_double(), 0.75);
    EXPECT_EQ(items[1].at("effectiveStartTime"), "2026-11-26T07:00:00Z");
    expect_json_content_type(r);
}

TEST(BuildRequest, GetUsageEventsStartOnly) {
    Operation o;
    o.kind = OpKind::GetUsageEvents;
    o.filter.usage_start_date = "2026-11-01";
    auto r = build_request(o, kBase);
    EXPECT_EQ(r.method, Method::Get);
    EXPECT_EQ(r.url, "https://marketplaceapi.microsoft.com/api/usageEvents?api-version=2018-08-31&usageStartDate=2026-11-01");
    EXPECT_TRUE(r.body.empty());
}

TEST(BuildRequest, GetUsageEventsAllFilters) {
    Operation o;
    o.kind = OpKind::GetUsageEvents;
    o.filter.usage_start_date = "2026-11-01T00:00:00Z";
    o.filter.usage_end_date = "2026-11-26T15:00";
    o.filter.offer_id = "emqx cloud";
    o.filter.plan_id = "payg";
    o.filter.dimension = "msgs&more";
    o.filter.azure_subscription_id = "a1b2";
    o.filter.recon_status = "Accepted";
    auto r = build_request(o, kBase);
    EXPECT_EQ(r.url,
              "https://marketplaceapi.microsoft.com/api/usageEvents?api-version=2018-08-31"
              "&usageStartDate=2026-11-01T00%3A00%3A00Z&UsageEndDate=2026-11-26T15%3A00"
              "&offerId=emqx%20cloud&planId=payg&dimension=msgs%26more&azureSubscriptionId=a1b2"
              "&reconStatus=Accepted");
}

// ---- validate ----------------------------------------------------------------------------------

TEST(Validate, ValidOperationsPass) {
    Operation resolve;
    resolve.kind = OpKind::Resolve;
    resolve.marketplace_token = "tok";
    EXPECT_FALSE(validate(resolve));
    auto act = op(OpKind::Activate);
    act.plan_id = "gold";
    EXPECT_FALSE(validate(act));
    Operation list;
    list.kind = OpKind::ListSubscriptions;
    EXPECT_FALSE(validate(list));
    EXPECT_FALSE(validate(op(OpKind::GetSubscription)));
    EXPECT_FALSE(validate(op(OpKind::ListAvailablePlans)));
    EXPECT_FALSE(validate(op(OpKind::DeleteSubscription)));
    EXPECT_FALSE(validate(op(OpKind::ListOperations)));
    auto cp = op(OpKind::ChangePlan);
    cp.plan_id = "p";
    EXPECT_FALSE(validate(cp));
    auto cq = op(OpKind::ChangeQuantity);
    cq.quantity = 1;
    EXPECT_FALSE(validate(cq));
    auto go = op(OpKind::GetOperation);
    go.operation_id = kOp;
    EXPECT_FALSE(validate(go));
    auto uo = op(OpKind::UpdateOperation);
    uo.operation_id = kOp;
    EXPECT_FALSE(validate(uo));
    Operation pu;
    pu.kind = OpKind::PostUsage;
    pu.events = {event()};
    EXPECT_FALSE(validate(pu));
    Operation pb;
    pb.kind = OpKind::PostUsageBatch;
    pb.events.assign(kMaxBatchEvents, event());
    EXPECT_FALSE(validate(pb));
    Operation ge;
    ge.kind = OpKind::GetUsageEvents;
    ge.filter.usage_start_date = "2026-11-01";
    EXPECT_FALSE(validate(ge));
}

TEST(Validate, SubscriptionIdRequired) {
    for (auto k : {OpKind::Activate, OpKind::GetSubscription, OpKind::ListAvailablePlans, OpKind::ChangePlan,
                   OpKind::ChangeQuantity, OpKind::DeleteSubscription, OpKind::ListOperations, OpKind::GetOperation,
                   OpKind::UpdateOperation}) {
        auto o = op(k);
        o.subscription_id.clear();
        o.plan_id = "p";
        o.quantity = 1;
        o.operation_id = kOp;
        EXPECT_EQ(badarg(o), "subscription_id") << op_name(k);
    }
}

TEST(Validate, ResolveToken) {
    Operation o;
    o.kind = OpKind::Resolve;
    EXPECT_EQ(badarg(o), "token");
    o.marketplace_token = "abc\r\nX-Evil: 1";  // would split the header line
    EXPECT_EQ(badarg(o), "token");
}

TEST(Validate, PlanIdRequired) {
    auto act = op(OpKind::Activate);
    EXPECT_EQ(badarg(act), "plan_id");
    auto cp = op(OpKind::ChangePlan);
    EXPECT_EQ(badarg(cp), "plan_id");
}

TEST(Validate, Quantities) {
    auto cq = op(OpKind::ChangeQuantity);
    cq.quantity = 0;
    EXPECT_EQ(badarg(cq), "quantity");
    cq.quantity = -4;
    EXPECT_EQ(badarg(cq), "quantity");
    auto act = op(OpKind::Activate);
    act.plan_id = "p";
    act.quantity = -1;
    EXPECT_EQ(badarg(act), "quantity");
    auto uo = op(OpKind::UpdateOperation);
    uo.operation_id = kOp;
    uo.quantity = -1;
    EXPECT_EQ(badarg(uo), "quantity");
}

TEST(Validate, OperationIdRequired) {
    EXPECT_EQ(badarg(op(OpKind::GetOperation)), "operation_id");
    EXPECT_EQ(badarg(op(OpKind::UpdateOperation)), "operation_id");
}

TEST(Validate, BatchSize) {
    Operation pb;
    pb.kind = OpKind::PostUsageBatch;
    EXPECT_EQ(badarg(pb), "events");
    pb.events.assign(kMaxBatchEvents + 1, event());
    EXPECT_EQ(badarg(pb), "events");
    Operation pu;
    pu.kind = OpKind::PostUsage;
    EXPECT_EQ(badarg(pu), "events");
    pu.events = {event(), event()};
    EXPECT_EQ(badarg(pu), "events");
}

TEST(Validate, EventFields) {
    auto check = [](auto mutate, const char* field) {
        for (auto k : {OpKind::PostUsage, OpKind::PostUsageBatch}) {
            Operation o;
            o.kind = k;
            auto e = event();
            mutate(e);
            o.events = {event(), e};
            if (k == OpKind::PostUsage) o.events = {e};
            EXPECT_EQ(badarg(o), field) << op_name(k);
        }
    };
    check([](UsageEvent& e) { e.resource_id.clear(); }, "resource_id");
    check([](UsageEvent& e) { e.dimension.clear(); }, "dimension");
    check([](UsageEvent& e) { e.plan_id.clear(); }, "plan_id");
    check([](UsageEvent& e) { e.quantity = 0; }, "quantity");
    check([](UsageEvent& e) { e.quantity = -1; }, "quantity");
    check([](UsageEvent& e) { e.quantity = std::numeric_limits<double>::infinity(); }, "quantity");
    check([](UsageEvent& e) { e.quantity = std::numeric_limits<double>::quiet_NaN(); }, "quantity");
    check([](UsageEvent& e) { e.effective_start_time.clear(); }, "effective_start_time");
}

TEST(Validate, EffectiveStartTimeFormat) {
    auto valid = [](const char* t) {
        Operation o;
        o.kind = OpKind::PostUsage;
        o.events = {event()};
        o.events[0].effective_start_time = t;
        return !validate(o).has_value();
    };
    EXPECT_TRUE(valid("2026-11-26T06:00:00Z"));
    EXPECT_TRUE(valid("2026-11-26T06:00:00.123Z"));
    EXPECT_TRUE(valid("2026-11-26T06:00:00.1234567Z"));
    EXPECT_TRUE(valid("2026-11-26T06:00:00+01:00"));
    EXPECT_TRUE(valid("2026-11-26T06:00:00.5-05:30"));
    EXPECT_TRUE(valid("2026-11-26t06:00:00z"));
    EXPECT_FALSE(valid("2026-11-26"));
    EXPECT_FALSE(valid("2026-11-26T06:00"));
    EXPECT_FALSE(valid("2026-11-26T06:00:00"));       // no zone
    EXPECT_FALSE(valid("2026-11-26 06:00:00Z"));      // space separator
    EXPECT_FALSE(valid("2026-13-26T06:00:00Z"));      // month
    EXPECT_FALSE(valid("2026-11-32T06:00:00Z"));      // day
    EXPECT_FALSE(valid("2026-11-26T24:00:00Z"));      // hour
    EXPECT_FALSE(valid("2026-11-26T06:60:00Z"));      // minute
    EXPECT_FALSE(valid("2026-11-26T06:00:00.Z"));     // empty fraction
    EXPECT_FALSE(valid("2026-11-26T06:00:00+0100"));  // offset without colon
    EXPECT_FALSE(valid("2026-11-26T06:00:00Zjunk"));
    EXPECT_FALSE(valid("26-11-26T06:00:00Z"));
    EXPECT_FALSE(valid("yesterday"));
}

TEST(Validate, UsageStartDateRequired) {
    Operation o;
    o.kind = OpKind::GetUsageEvents;
    EXPECT_EQ(badarg(o), "usage_start_date");
}

}  // namespace
}  // namespace azmp
