#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <gtest/gtest.h>

#include "azmp/operations.hpp"

namespace azmp {
namespace {

namespace json = boost::json;

constexpr const char* kSub = "37f9dea2-4345-438f-b0bd-03d40d28c7e0";
constexpr const char* kOp = "74dfcfe9-8d5f-4a4a-ab33-9a1a1e8a5c2e";

Operation op(OpKind k) {
    Operation o;
    o.kind = k;
    o.subscription_id = kSub;
    o.operation_id = kOp;
    o.plan_id = "gold";
    o.quantity = 5;
    o.marketplace_token = "TOKEN";
    return o;
}

HttpResponse resp(long status, std::string body, Headers headers = {{"Content-Type", "application/json; charset=utf-8"}}) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    return r;
}

const OpValue& ok_value(const Interpretation& i) {
    static const OpValue none;
    if (const auto* e = std::get_if<Error>(&i.result)) {
        ADD_FAILURE() << "unexpected error kind " << static_cast<int>(e->kind) << " status " << e->status << ": "
                      << e->detail;
        return none;
    }
    return std::get<OpValue>(i.result);
}

const json::value& value_of(const Interpretation& i) {
    const OpValue& v = ok_value(i);
    EXPECT_EQ(v.kind, OpValue::Kind::Value);
    return v.value;
}

Error error_of(const Interpretation& i) {
    if (!std::holds_alternative<Error>(i.result)) {
        ADD_FAILURE() << "expected an error, got a value: " << json::serialize(std::get<OpValue>(i.result).value);
        return {};
    }
    return std::get<Error>(i.result);
}

// A subscription as the fulfillment API v2 documentation shows it, with its quirks parametrised.
std::string subscription_json(const std::string& status = "\"Subscribed\"", const std::string& quantity = "5") {
    return R"({
      "id": "37f9dea2-4345-438f-b0bd-03d40d28c7e0",
      "publisherId": "contoso",
      "offerId": "emqx-cloud",
      "name": "Contoso Cloud Solution",
      "saasSubscriptionStatus": )" + status + R"(,
      "beneficiary": {"emailId": "test@test.com", "objectId": "a1b2c3d4-0000-0000-0000-000000000000",
                      "tenantId": "b1b2c3d4-0000-0000-0000-000000000000", "puid": "1234567890"},
      "purchaser": {"emailId": "test@test.com", "objectId": "a1b2c3d4-0000-0000-0000-000000000000",
                    "tenantId": "b1b2c3d4-0000-0000-0000-000000000000", "puid": "1234567890"},
      "planId": "gold",
      "quantity": )" + quantity + R"(,
      "term": {"startDate": "2026-01-01T00:00:00Z", "endDate": "2027-01-01T00:00:00Z", "termUnit": "P1Y",
               "chargeDuration": null},
      "autoRenew": true,
      "isTest": false,
      "isFreeTrial": false,
      "allowedCustomerOperations": ["Read", "Update", "Delete"],
      "sandboxType": "None",
      "created": "2026-01-01T12:00:00.000Z",
      "sessionMode": "None"
    })";
}

std::string operation_json(const std::string& status = "\"InProgress\"", const std::string& quantity = "5") {
    return R"({
      "id": "74dfcfe9-8d5f-4a4a-ab33-9a1a1e8a5c2e",
      "activityId": "a1b2c3d4-1111-2222-3333-444455556666",
      "subscriptionId": "37f9dea2-4345-438f-b0bd-03d40d28c7e0",
      "offerId": "emqx-cloud",
      "publisherId": "contoso",
      "planId": "silver",
      "quantity": )" + quantity + R"(,
      "action": "ChangePlan",
      "timeStamp": "2026-11-26T06:12:00.1234567Z",
      "status": )" + status + R"(
    })";
}

// ---- status / error mapping shared by every operation ------------------------------------------

const OpKind kAllKinds[] = {OpKind::Resolve,         OpKind::Activate,          OpKind::GetSubscription,
                            OpKind::ListSubscriptions, OpKind::ListAvailablePlans, OpKind::ChangePlan,
                            OpKind::ChangeQuantity,  OpKind::DeleteSubscription, OpKind::ListOperations,
                            OpKind::GetOperation,    OpKind::UpdateOperation,   OpKind::PostUsage,
                            OpKind::PostUsageBatch,  OpKind::GetUsageEvents};

TEST(InterpretErrors, DocumentedErrorStatusesAreHttp) {
    // Every x-ms-error-response of saasapi.v2.json and meteringapi.v1.json (409 on PostUsage handled apart).
    const std::vector<std::pair<OpKind, std::vector<long>>> documented = {
        {OpKind::Resolve, {400, 403, 404, 500}},
        {OpKind::ListSubscriptions, {403, 500}},
        {OpKind::GetSubscription, {403, 404, 500}},
        {OpKind::ChangePlan, {400, 403, 404, 500}},
        {OpKind::ChangeQuantity, {400, 403, 404, 500}},
        {OpKind::DeleteSubscription, {400, 403, 404, 500}},
        {OpKind::ListAvailablePlans, {403, 404, 500}},
        {OpKind::Activate, {400, 403, 404, 500}},
        {OpKind::ListOperations, {400, 403, 404, 500}},
        {OpKind::GetOperation, {400, 403, 404, 500}},
        {OpKind::UpdateOperation, {400, 403, 404, 409, 500}},
        {OpKind::PostUsage, {400, 403}},
        {OpKind::PostUsageBatch, {400, 403}},
        {OpKind::GetUsageEvents, {400, 403}},
    };
    const std::string body = R"({"error":{"code":"InternalServerError","message":"Something went wrong."}})";
    for (const auto& [kind, statuses] : documented) {
        for (long s : statuses) {
            auto e = error_of(interpret_response(op(kind), resp(s, body)));
            EXPECT_EQ(e.kind, ErrorKind::Http) << op_name(kind) << " " << s;
            EXPECT_EQ(e.status, s) << op_name(kind);
            EXPECT_EQ(e.detail, body) << op_name(kind);
        }
    }
}

TEST(InterpretErrors, UndocumentedStatusesAreHttpToo) {
    for (auto k : kAllKinds) {
        for (long s : {301L, 401L, 429L, 502L, 503L, 504L}) {
            auto e = error_of(interpret_response(op(k), resp(s, "")));
            EXPECT_EQ(e.kind, ErrorKind::Http) << op_name(k) << " " << s;
            EXPECT_EQ(e.status, s);
            EXPECT_EQ(e.detail, "");
        }
    }
}

TEST(InterpretErrors, MeteringBadRequestBodyKept) {
    const std::string body = R"({"code":"BadArgument","message":"One or more errors have occurred.","target":"usageEventRequest",)"
                             R"("details":[{"code":"BadArgument","message":"The resourceId is required.","target":"ResourceId"}]})";
    auto e = error_of(interpret_response(op(OpKind::PostUsage), resp(400, body)));
    EXPECT_EQ(e.kind, ErrorKind::Http);
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.detail, body);
}

TEST(InterpretErrors, MalformedBodiesOnValueOpsAreBadResponse) {
    for (auto k : {OpKind::Resolve, OpKind::GetSubscription, OpKind::ListSubscriptions, OpKind::ListAvailablePlans,
                   OpKind::ListOperations, OpKind::GetOperation, OpKind::PostUsage, OpKind::PostUsageBatch,
                   OpKind::GetUsageEvents}) {
        for (const char* body : {"", "not json", "{\"id\": \"37f9", "{\"subscriptions\": [", "<html></html>",
                                 "{} trailing", "\"just a string\"", "42", "null"}) {
            auto e = error_of(interpret_response(op(k), resp(200, body)));
            EXPECT_EQ(e.kind, ErrorKind::BadResponse) << op_name(k) << " body " << body;
            EXPECT_EQ(e.detail.rfind(std::string(op_name(k)), 0), 0u) << e.detail;
        }
    }
}

// A number beyond a double's range reads as an infinity, which no Erlang float can hold (the NIF
// turned it into a badarg inside a term): such a body is not usable JSON (fuzz finding).
TEST(InterpretErrors, NumbersBeyondADoubleAreBadResponse) {
    for (auto k : {OpKind::GetSubscription, OpKind::ListSubscriptions, OpKind::PostUsage, OpKind::PostUsageBatch}) {
        for (const char* body : {"{\"id\":\"x\",\"quantity\":77e777}", "{\"subscriptions\":[{\"q\":-1e999}]}",
                                 "{\"result\":[],\"count\":1e400}"}) {
            auto e = error_of(interpret_response(op(k), resp(200, body)));
            EXPECT_EQ(e.kind, ErrorKind::BadResponse) << op_name(k) << " body " << body;
        }
    }
}

TEST(InterpretErrors, BadResponseDetailIsTruncated) {
    std::string body = "{\"subscriptions\": \"" + std::string(5000, 'x') + "\"}";
    auto e = error_of(interpret_response(op(OpKind::ListSubscriptions), resp(200, body)));
    EXPECT_EQ(e.kind, ErrorKind::BadResponse);
    EXPECT_LT(e.detail.size(), 300u);
    EXPECT_NE(e.detail.find("subscriptions"), std::string::npos);
}

// ---- Resolve -----------------------------------------------------------------------------------

TEST(InterpretResolve, Success) {
    const std::string body = R"({"id":"37f9dea2-4345-438f-b0bd-03d40d28c7e0","subscriptionName":"Contoso Cloud Solution",)"
                             R"("offerId":"emqx-cloud","planId":"gold","quantity":"20","subscription":)" +
                             subscription_json("\"PendingFulfillmentStart \"", "\"20\"") + "}";
    auto i = interpret_response(op(OpKind::Resolve), resp(200, body));
    const auto& v = value_of(i);
    ASSERT_TRUE(v.is_object());
    EXPECT_EQ(v.at("id"), kSub);
    EXPECT_EQ(v.at("subscriptionName"), "Contoso Cloud Solution");
    EXPECT_EQ(v.at("quantity"), 20);  // top level string normalised
    EXPECT_EQ(v.at("subscription").at("quantity"), 20);
    EXPECT_EQ(v.at("subscription").at("saasSubscriptionStatus"), "PendingFulfillmentStart");
    EXPECT_EQ(v.at("subscription").at("beneficiary").at("emailId"), "test@test.com");
    EXPECT_FALSE(i.next_link);
}

TEST(InterpretResolve, MinimalBody) {
    auto v = value_of(interpret_response(op(OpKind::Resolve), resp(200, R"({"id":"abc"})")));
    EXPECT_EQ(v, json::parse(R"({"id":"abc"})"));
}

TEST(InterpretResolve, MissingIdIsBadResponseWithoutBody) {
    for (const char* body : {R"({"subscriptionName":"SECRETNAME","offerId":"o"})", R"({"id":42,"x":"SECRETNAME"})",
                             R"({"id":"","x":"SECRETNAME"})", R"(["SECRETNAME"])", R"({"id":"SECRETNAME")"}) {
        auto e = error_of(interpret_response(op(OpKind::Resolve), resp(200, body)));
        EXPECT_EQ(e.kind, ErrorKind::BadResponse) << body;
        EXPECT_EQ(e.detail.find("SECRETNAME"), std::string::npos) << e.detail;
    }
}

// ---- Activate / UpdateOperation ----------------------------------------------------------------

TEST(InterpretActivate, OkWithAnyBody) {
    for (const char* body : {"", "{}", "not json"}) {
        auto i = interpret_response(op(OpKind::Activate), resp(200, body));
        EXPECT_EQ(ok_value(i).kind, OpValue::Kind::Ok) << body;
    }
}

TEST(InterpretUpdateOperation, Ok) {
    auto i = interpret_response(op(OpKind::UpdateOperation), resp(200, ""));
    EXPECT_EQ(ok_value(i).kind, OpValue::Kind::Ok);
}

// ---- GetSubscription ---------------------------------------------------------------------------

TEST(InterpretGetSubscription, FullSubscription) {
    auto v = value_of(interpret_response(op(OpKind::GetSubscription), resp(200, subscription_json())));
    EXPECT_EQ(v, json::parse(subscription_json()));
    EXPECT_EQ(v.at("saasSubscriptionStatus"), "Subscribed");
    EXPECT_EQ(v.at("quantity"), 5);
    EXPECT_EQ(v.at("term").at("termUnit"), "P1Y");
}

TEST(InterpretGetSubscription, PaddedStatusTrimmed) {
    for (const char* s : {"\"  Subscribed\"", "\"Subscribed  \"", "\" Subscribed \"", "\"\\tSubscribed\\n\""}) {
        auto v = value_of(interpret_response(op(OpKind::GetSubscription), resp(200, subscription_json(s))));
        EXPECT_EQ(v.at("saasSubscriptionStatus"), "Subscribed") << s;
    }
}

TEST(InterpretGetSubscription, EveryStatusValue) {
    for (const char* s : {"NotStarted", "PendingFulfillmentStart", "Subscribed", "Suspended", "Unsubscribed"}) {
        auto v = value_of(interpret_response(op(OpKind::GetSubscription),
                                             resp(200, subscription_json("\"" + std::string(s) + " \""))));
        EXPECT_EQ(v.at("saasSubscriptionStatus"), s);
    }
}

TEST(InterpretGetSubscription, QuantityStringOrNumber) {
    auto as_string = value_of(interpret_response(op(OpKind::GetSubscription), resp(200, subscription_json("\"Subscribed\"", "\"5\""))));
    auto as_number = value_of(interpret_response(op(OpKind::GetSubscription), resp(200, subscription_json("\"Subscribed\"", "5"))));
    ASSERT_TRUE(as_string.at("quantity").is_int64());
    EXPECT_EQ(as_string.at("quantity").as_int64(), 5);
    EXPECT_EQ(as_string, as_number);
    auto padded = value_of(interpret_response(op(OpKind::GetSubscription), resp(200, subscription_json("\"Subscribed\"", "\" 12 \""))));
    EXPECT_EQ(padded.at("quantity"), 12);
    auto blank = value_of(interpret_response(op(OpKind::GetSubscription), resp(200, subscription_json("\"Subscribed\"", "\"\""))));
    EXPECT_TRUE(blank.at("quantity").is_null());
    auto null = value_of(interpret_response(op(OpKind::GetSubscription), resp(200, subscription_json("\"Subscribed\"", "null"))));
    EXPECT_TRUE(null.at("quantity").is_null());
}

TEST(InterpretGetSubscription, NonNumericQuantityIsBadResponse) {
    auto e = error_of(interpret_response(op(OpKind::GetSubscription), resp(200, subscription_json("\"Subscribed\"", "\"five\""))));
    EXPECT_EQ(e.kind, ErrorKind::BadResponse);
    EXPECT_NE(e.detail.find("quantity"), std::string::npos);
}

TEST(InterpretGetSubscription, UnknownFieldsKept) {
    auto v = value_of(interpret_response(
        op(OpKind::GetSubscription),
        resp(200, R"({"id":"x","saasSubscriptionStatus":"Subscribed","futureField":{"a":[1,2]},"storeFront":"AzurePortal"})")));
    EXPECT_EQ(v.at("futureField"), json::parse(R"({"a":[1,2]})"));
    EXPECT_EQ(v.at("storeFront"), "AzurePortal");
}

TEST(InterpretGetSubscription, MissingOptionalFieldsFine) {
    auto v = value_of(interpret_response(op(OpKind::GetSubscription), resp(200, R"({"id":"x"})")));
    EXPECT_EQ(v, json::parse(R"({"id":"x"})"));
    auto empty = value_of(interpret_response(op(OpKind::GetSubscription), resp(200, "{}")));
    EXPECT_TRUE(empty.as_object().empty());
}

TEST(InterpretGetSubscription, WrongShape) {
    auto e = error_of(interpret_response(op(OpKind::GetSubscription), resp(200, "[" + subscription_json() + "]")));
    EXPECT_EQ(e.kind, ErrorKind::BadResponse);
}

// ---- ListSubscriptions -------------------------------------------------------------------------

TEST(InterpretListSubscriptions, PageWithNextLink) {
    const std::string next =
        "https://marketplaceapi.microsoft.com/api/saas/subscriptions/?continuationToken=%5b%7b%22token%22%3a%22abc%22%7d%5d&api-version=2018-08-31";
    const std::string body = R"({"subscriptions":[)" + subscription_json("\"Subscribed \"", "\"3\"") + "," +
                             subscription_json("\"Suspended\"", "7") + R"(],"@nextLink":")" + next + "\"}";
    auto i = interpret_response(op(OpKind::ListSubscriptions), resp(200, body));
    const auto& v = value_of(i);
    ASSERT_TRUE(v.is_array());
    ASSERT_EQ(v.as_array().size(), 2u);
    EXPECT_EQ(v.as_array()[0].at("saasSubscriptionStatus"), "Subscribed");
    EXPECT_EQ(v.as_array()[0].at("quantity"), 3);
    EXPECT_EQ(v.as_array()[1].at("saasSubscriptionStatus"), "Suspended");
    EXPECT_EQ(v.as_array()[1].at("quantity"), 7);
    EXPECT_EQ(i.next_link, next);
}

TEST(InterpretListSubscriptions, LastPage) {
    for (const char* tail : {"", R"(,"@nextLink":"")", R"(,"@nextLink":null)"}) {
        auto i = interpret_response(op(OpKind::ListSubscriptions),
                                    resp(200, R"({"subscriptions":[{"id":"a"}])" + std::string(tail) + "}"));
        EXPECT_EQ(value_of(i).as_array().size(), 1u);
        EXPECT_FALSE(i.next_link) << tail;
    }
}

TEST(InterpretListSubscriptions, EmptyOrMissingListIsEmpty) {
    for (const char* body : {R"({"subscriptions":[]})", "{}", R"({"subscriptions":null})"}) {
        auto i = interpret_response(op(OpKind::ListSubscriptions), resp(200, body));
        const auto& v = value_of(i);
        ASSERT_TRUE(v.is_array()) << body;
        EXPECT_TRUE(v.as_array().empty());
        EXPECT_FALSE(i.next_link);
    }
}

TEST(InterpretListSubscriptions, WrongShape) {
    for (const char* body : {R"({"subscriptions":{"id":"a"}})", R"({"subscriptions":["a"]})", R"([{"id":"a"}])",
                             R"({"subscriptions":"none"})"}) {
        auto i = interpret_response(op(OpKind::ListSubscriptions), resp(200, body));
        EXPECT_EQ(error_of(i).kind, ErrorKind::BadResponse) << body;
        EXPECT_FALSE(i.next_link);
    }
}

TEST(AppendPage, Accumulates) {
    json::array acc;
    auto p1 = interpret_response(op(OpKind::ListSubscriptions), resp(200, R"({"subscriptions":[{"id":"a"},{"id":"b"}]})"));
    auto p2 = interpret_response(op(OpKind::ListSubscriptions), resp(200, R"({"subscriptions":[{"id":"c"}]})"));
    append_page(acc, std::move(std::get<OpValue>(p1.result).value));
    append_page(acc, std::move(std::get<OpValue>(p2.result).value));
    append_page(acc, json::value(json::array{}));
    append_page(acc, json::value("not a page"));
    EXPECT_EQ(json::value(acc), json::parse(R"([{"id":"a"},{"id":"b"},{"id":"c"}])"));
}

// ---- same_origin -------------------------------------------------------------------------------

TEST(SameOrigin, Cases) {
    const std::string base = "https://marketplaceapi.microsoft.com/api";
    EXPECT_TRUE(same_origin("https://marketplaceapi.microsoft.com/api/saas/subscriptions/?continuationToken=x", base));
    EXPECT_TRUE(same_origin("https://MarketplaceAPI.microsoft.com/other", base));
    EXPECT_TRUE(same_origin("HTTPS://marketplaceapi.microsoft.com/api", base));
    EXPECT_TRUE(same_origin("https://marketplaceapi.microsoft.com:443/api", base));
    EXPECT_FALSE(same_origin("http://marketplaceapi.microsoft.com/api", base));
    EXPECT_FALSE(same_origin("https://marketplaceapi.microsoft.com:8443/api", base));
    EXPECT_FALSE(same_origin("https://evil.example.com/api", base));
    EXPECT_FALSE(same_origin("https://marketplaceapi.microsoft.com.evil.example.com/api", base));
    EXPECT_FALSE(same_origin("https://marketplaceapi.microsoft.com@evil.example.com/api", base));
    EXPECT_FALSE(same_origin("/api/saas/subscriptions", base));
    EXPECT_FALSE(same_origin("marketplaceapi.microsoft.com/api", base));
    EXPECT_FALSE(same_origin("", base));
    EXPECT_FALSE(same_origin("ftp://marketplaceapi.microsoft.com/api", "ftp://marketplaceapi.microsoft.com/api"));
    EXPECT_TRUE(same_origin("http://127.0.0.1:8089/api/saas/subscriptions?x=1", "http://127.0.0.1:8089/api"));
    EXPECT_FALSE(same_origin("http://127.0.0.1:8090/api/saas/subscriptions", "http://127.0.0.1:8089/api"));
    EXPECT_FALSE(same_origin("http://localhost:8089/api", "http://127.0.0.1:8089/api"));
}

// ---- ListAvailablePlans ------------------------------------------------------------------------

TEST(InterpretListAvailablePlans, Plans) {
    const std::string body = R"({"plans":[{
        "planId":"gold","displayName":"Gold","isPrivate":false,"description":"Gold plan","minQuantity":1,
        "maxQuantity":100,"hasFreeTrials":false,"isPricePerSeat":true,"isStopSell":false,"market":"US",
        "planComponents":{"recurrentBillingTerms":[{"currency":"USD","price":10.5,"termUnit":"P1M",
            "termDescription":"1 month","meteredQuantityIncluded":[{"dimensionId":"msgs","units":"1000"}]}],
          "meteringDimensions":[{"id":"msgs","currency":"USD","pricePerUnit":0.01,"unitOfMeasure":"1M messages",
            "displayName":"Messages"}]},
        "sourceOffers":[{"externalId":"a1b2c3d4-0000-0000-0000-000000000000"}]},
      {"planId":"silver","displayName":"Silver","isPrivate":true,"newThing":1}]})";
    auto i = interpret_response(op(OpKind::ListAvailablePlans), resp(200, body));
    const auto& v = value_of(i);
    ASSERT_TRUE(v.is_array());
    ASSERT_EQ(v.as_array().size(), 2u);
    EXPECT_EQ(v.as_array()[0].at("planId"), "gold");
    EXPECT_EQ(v.as_array()[0].at("planComponents").at("meteringDimensions").as_array()[0].at("id"), "msgs");
    EXPECT_EQ(v.as_array()[0].at("planComponents").at("recurrentBillingTerms").as_array()[0].at("price"), 10.5);
    EXPECT_EQ(v.as_array()[1].at("newThing"), 1);
    EXPECT_FALSE(i.next_link);
}

TEST(InterpretListAvailablePlans, EmptyAndWrongShape) {
    EXPECT_TRUE(value_of(interpret_response(op(OpKind::ListAvailablePlans), resp(200, "{}"))).as_array().empty());
    EXPECT_EQ(error_of(interpret_response(op(OpKind::ListAvailablePlans), resp(200, R"({"plans":"gold"})"))).kind,
              ErrorKind::BadResponse);
    EXPECT_EQ(error_of(interpret_response(op(OpKind::ListAvailablePlans), resp(200, R"([{"planId":"gold"}])"))).kind,
              ErrorKind::BadResponse);
}

// ---- ChangePlan / ChangeQuantity / Delete: Operation-Location ----------------------------------

Headers location(std::string v) { return {{"Operation-Location", std::move(v)}}; }

TEST(InterpretOperationLocation, AbsoluteUrl) {
    const std::string loc = std::string("https://marketplaceapi.microsoft.com/api/saas/subscriptions/") + kSub +
                            "/operations/" + kOp + "?api-version=2018-08-31";
    for (auto k : {OpKind::ChangePlan, OpKind::ChangeQuantity, OpKind::DeleteSubscription}) {
        auto i = interpret_response(op(k), resp(202, "", location(loc)));
        const OpValue& v = ok_value(i);
        EXPECT_EQ(v.kind, OpValue::Kind::OperationId) << op_name(k);
        EXPECT_EQ(v.operation_id, kOp);
    }
}

TEST(InterpretOperationLocation, Variants) {
    auto id = [](Headers h) {
        auto i = interpret_response(op(OpKind::ChangePlan), resp(202, "", std::move(h)));
        return ok_value(i).operation_id;
    };
    EXPECT_EQ(id({{"operation-location", std::string("https://h/api/saas/subscriptions/s/operations/") + kOp}}), kOp);
    EXPECT_EQ(id(location(std::string("/api/saas/subscriptions/s/operations/") + kOp + "?api-version=2018-08-31")), kOp);
    EXPECT_EQ(id(location(std::string(" https://h/api/saas/subscriptions/s/operations/") + kOp + "/ ")), kOp);
    EXPECT_EQ(id(location("https://h/api/saas/subscriptions/s/operations/op%2D1#frag")), "op-1");
}

TEST(InterpretOperationLocation, MissingOrGarbled) {
    for (Headers h : {Headers{}, location(""), location("https://h/api/saas/subscriptions/s"),
                      location("https://h/api/saas/subscriptions/s/operations/"),
                      location("https://h/api/saas/subscriptions/s/operations/?api-version=2018-08-31"),
                      location("https://h/api/saas/subscriptions/s/operations/a/b"),
                      location("https://h/operations/a%2Fb"), location("https://h/operations/a%20b"),
                      location("garbage")}) {
        auto e = error_of(interpret_response(op(OpKind::DeleteSubscription), resp(202, "", h)));
        EXPECT_EQ(e.kind, ErrorKind::BadResponse) << (h.empty() ? "(none)" : h[0].second);
    }
}

// ---- ListOperations / GetOperation -------------------------------------------------------------

TEST(InterpretListOperations, Operations) {
    const std::string body = R"({"operations":[)" + operation_json("\"InProgress \"", "\"5\"") + "," +
                             operation_json("\"Succeeded\"", "2") + "]}";
    auto v = value_of(interpret_response(op(OpKind::ListOperations), resp(200, body)));
    ASSERT_EQ(v.as_array().size(), 2u);
    EXPECT_EQ(v.as_array()[0].at("status"), "InProgress");
    EXPECT_EQ(v.as_array()[0].at("quantity"), 5);
    EXPECT_EQ(v.as_array()[0].at("action"), "ChangePlan");
    EXPECT_EQ(v.as_array()[1].at("status"), "Succeeded");
    EXPECT_EQ(v.as_array()[1].at("quantity"), 2);
}

TEST(InterpretListOperations, BareArrayAsMicrosoftsEmulatorAnswers) {
    const std::string body = "[" + operation_json("\"InProgress \"", "\"5\"") + "]";
    auto v = value_of(interpret_response(op(OpKind::ListOperations), resp(200, body)));
    ASSERT_EQ(v.as_array().size(), 1u);
    EXPECT_EQ(v.as_array()[0].at("status"), "InProgress");
    EXPECT_EQ(v.as_array()[0].at("quantity"), 5);
    EXPECT_EQ(error_of(interpret_response(op(OpKind::ListOperations), resp(200, "[1]"))).kind, ErrorKind::BadResponse);
    EXPECT_EQ(error_of(interpret_response(op(OpKind::ListSubscriptions), resp(200, "[]"))).kind,
              ErrorKind::BadResponse)
        << "only List Operations is known to come as a bare array";
}

TEST(InterpretListOperations, EmptyAndWrongShape) {
    EXPECT_TRUE(value_of(interpret_response(op(OpKind::ListOperations), resp(200, R"({"operations":[]})"))).as_array().empty());
    EXPECT_EQ(error_of(interpret_response(op(OpKind::ListOperations), resp(200, R"({"operations":[1,2]})"))).kind,
              ErrorKind::BadResponse);
}

TEST(InterpretGetOperation, EveryStatusPaddedAndQuantityString) {
    for (const char* s : {"NotStarted", "InProgress", "Succeeded", "Failed", "Conflict"}) {
        auto v = value_of(interpret_response(op(OpKind::GetOperation),
                                             resp(200, operation_json("\"  " + std::string(s) + "  \"", "\"10\""))));
        EXPECT_EQ(v.at("status"), s);
        EXPECT_EQ(v.at("quantity"), 10);
        EXPECT_EQ(v.at("id"), kOp);
        EXPECT_EQ(v.at("subscriptionId"), kSub);
    }
}

TEST(InterpretGetOperation, UnknownAndMissingFields) {
    auto v = value_of(interpret_response(op(OpKind::GetOperation),
                                         resp(200, R"({"id":"x","action":"Unsubscribe","status":"Succeeded","extra":true})")));
    EXPECT_EQ(v, json::parse(R"({"id":"x","action":"Unsubscribe","status":"Succeeded","extra":true})"));
    EXPECT_EQ(error_of(interpret_response(op(OpKind::GetOperation), resp(200, R"([])"))).kind, ErrorKind::BadResponse);
}

// ---- PostUsage ---------------------------------------------------------------------------------

const char* kUsageOk = R"({
  "usageEventId": "b5c1a8e6-6f5e-4e9c-9a34-3c2b1a0f9e8d",
  "status": "Accepted",
  "messageTime": "2026-11-26T06:15:00.1234567Z",
  "resourceId": "37f9dea2-4345-438f-b0bd-03d40d28c7e0",
  "quantity": 5.0,
  "dimension": "messages",
  "effectiveStartTime": "2026-11-26T06:00:00Z",
  "planId": "pay-as-you-go"
})";

TEST(InterpretPostUsage, Accepted) {
    auto v = value_of(interpret_response(op(OpKind::PostUsage), resp(200, kUsageOk)));
    EXPECT_EQ(v.at("status"), "Accepted");
    EXPECT_EQ(v.at("usageEventId"), "b5c1a8e6-6f5e-4e9c-9a34-3c2b1a0f9e8d");
    EXPECT_EQ(v.at("quantity").to_number<double>(), 5.0);
}

TEST(InterpretPostUsage, QuantityStringAndPaddedStatus) {
    auto v = value_of(interpret_response(
        op(OpKind::PostUsage),
        resp(200, R"({"usageEventId":"u","status":" Accepted ","quantity":"2.5","resourceUri":"/subscriptions/x"})")));
    EXPECT_EQ(v.at("status"), "Accepted");
    ASSERT_TRUE(v.at("quantity").is_double());
    EXPECT_EQ(v.at("quantity").as_double(), 2.5);
    EXPECT_EQ(v.at("resourceUri"), "/subscriptions/x");
}

TEST(InterpretPostUsage, ConflictReturnsAcceptedMessage) {
    const std::string body = R"({
      "additionalInfo": {"acceptedMessage": {
          "usageEventId": "b5c1a8e6-6f5e-4e9c-9a34-3c2b1a0f9e8d", "status": "Duplicate ",
          "messageTime": "2026-11-26T06:15:00Z", "resourceId": "37f9dea2-4345-438f-b0bd-03d40d28c7e0",
          "quantity": "5", "dimension": "messages", "effectiveStartTime": "2026-11-26T06:00:00Z",
          "planId": "pay-as-you-go"}},
      "message": "This usage event already exist.",
      "code": "Conflict"
    })";
    auto v = value_of(interpret_response(op(OpKind::PostUsage), resp(409, body)));
    EXPECT_EQ(v.at("usageEventId"), "b5c1a8e6-6f5e-4e9c-9a34-3c2b1a0f9e8d");
    EXPECT_EQ(v.at("status"), "Duplicate");
    EXPECT_EQ(v.at("quantity"), 5);
    EXPECT_FALSE(v.as_object().contains("additionalInfo"));
}

TEST(InterpretPostUsage, ConflictWithoutAcceptedMessageIsHttp) {
    for (const char* body : {R"({"message":"This usage event already exist.","code":"Conflict"})",
                             R"({"additionalInfo":{}})", R"({"additionalInfo":{"acceptedMessage":"x"}})", "", "{"}) {
        auto e = error_of(interpret_response(op(OpKind::PostUsage), resp(409, body)));
        EXPECT_EQ(e.kind, ErrorKind::Http) << body;
        EXPECT_EQ(e.status, 409);
        EXPECT_EQ(e.detail, body);
    }
}

TEST(InterpretUpdateOperation, ConflictIsHttp) {
    // 409 means something else for the other operations: a plain error.
    auto e = error_of(interpret_response(op(OpKind::UpdateOperation), resp(409, R"({"additionalInfo":{"acceptedMessage":{}}})")));
    EXPECT_EQ(e.kind, ErrorKind::Http);
    EXPECT_EQ(e.status, 409);
}

// ---- PostUsageBatch ----------------------------------------------------------------------------

TEST(InterpretPostUsageBatch, MixedStatuses) {
    const std::string body = R"({
      "count": 4,
      "result": [
        {"usageEventId": "e1", "status": "Accepted", "messageTime": "2026-11-26T06:15:00Z",
         "resourceId": "r1", "quantity": 5.0, "dimension": "messages", "effectiveStartTime": "2026-11-26T06:00:00Z",
         "planId": "payg"},
        {"usageEventId": "e2", "status": "Duplicate  ", "resourceId": "r1", "quantity": "3", "dimension": "connections",
         "effectiveStartTime": "2026-11-26T06:00:00Z", "planId": "payg",
         "error": {"additionalInfo": {"acceptedMessage": {"usageEventId": "e0", "status": " Accepted",
                   "quantity": "3", "resourceId": "r1"}},
                   "message": "This usage event already exist.", "code": "Conflict"}},
        {"status": "Expired", "resourceId": "r1", "quantity": 1, "dimension": "messages",
         "effectiveStartTime": "2026-11-20T06:00:00Z", "planId": "payg",
         "error": {"message": "The usage event is too old.", "code": "BadArgument"}},
        {"status": " InvalidDimension", "resourceId": "r1", "quantity": 1, "dimension": "nope",
         "effectiveStartTime": "2026-11-26T06:00:00Z", "planId": "payg"}
      ]
    })";
    auto v = value_of(interpret_response(op(OpKind::PostUsageBatch), resp(200, body)));
    ASSERT_TRUE(v.is_object());
    EXPECT_EQ(v.at("count"), 4);
    const auto& r = v.at("result").as_array();
    ASSERT_EQ(r.size(), 4u);
    EXPECT_EQ(r[0].at("status"), "Accepted");
    EXPECT_EQ(r[1].at("status"), "Duplicate");
    EXPECT_EQ(r[1].at("quantity"), 3);
    EXPECT_EQ(r[1].at("error").at("additionalInfo").at("acceptedMessage").at("status"), "Accepted");
    EXPECT_EQ(r[1].at("error").at("additionalInfo").at("acceptedMessage").at("quantity"), 3);
    EXPECT_EQ(r[2].at("status"), "Expired");
    EXPECT_EQ(r[2].at("error").at("code"), "BadArgument");
    EXPECT_EQ(r[3].at("status"), "InvalidDimension");
}

TEST(InterpretPostUsageBatch, EveryItemStatus) {
    for (const char* s : {"Accepted", "Expired", "Duplicate", "Error", "ResourceNotFound", "ResourceNotAuthorized",
                          "ResourceNotActive", "InvalidDimension", "InvalidQuantity", "BadArgument"}) {
        auto v = value_of(interpret_response(
            op(OpKind::PostUsageBatch), resp(200, R"({"count":1,"result":[{"status":" )" + std::string(s) + R"( "}]})")));
        EXPECT_EQ(v.at("result").as_array()[0].at("status"), s);
    }
}

TEST(InterpretPostUsageBatch, CountMissingOrString) {
    auto v = value_of(interpret_response(op(OpKind::PostUsageBatch), resp(200, R"({"result":[{"status":"Accepted"},{"status":"Expired"}]})")));
    EXPECT_EQ(v.at("count"), 2);
    auto s = value_of(interpret_response(op(OpKind::PostUsageBatch), resp(200, R"({"count":"2","result":[{},{}]})")));
    EXPECT_EQ(s.at("count"), 2);
}

TEST(InterpretPostUsageBatch, WrongShape) {
    for (const char* body : {R"({"count":0})", R"({"result":{}})", R"({"result":["Accepted"]})", R"([{"status":"Accepted"}])",
                             R"({"count":1,"result":[{"status":"Accepted"})"}) {
        auto e = error_of(interpret_response(op(OpKind::PostUsageBatch), resp(200, body)));
        EXPECT_EQ(e.kind, ErrorKind::BadResponse) << body;
    }
}

// ---- GetUsageEvents ----------------------------------------------------------------------------

TEST(InterpretGetUsageEvents, Events) {
    const std::string body = R"([
      {"usageDate": "2026-11-26T00:00:00", "usageResourceId": "37f9dea2-4345-438f-b0bd-03d40d28c7e0",
       "dimension": "messages", "planId": "payg", "planName": "Pay as you go", "offerId": "emqx-cloud",
       "offerName": "EMQX Cloud", "offerType": "SaaS", "azureSubscriptionId": "a1b2c3d4-0000-0000-0000-000000000000",
       "reconStatus": "Accepted ", "submittedQuantity": 17.0, "processedQuantity": 17.0, "submittedCount": 3},
      {"usageDate": "2026-11-25T00:00:00", "reconStatus": "Mismatch", "submittedQuantity": 2.5}
    ])";
    auto v = value_of(interpret_response(op(OpKind::GetUsageEvents), resp(200, body)));
    ASSERT_TRUE(v.is_array());
    ASSERT_EQ(v.as_array().size(), 2u);
    EXPECT_EQ(v.as_array()[0].at("reconStatus"), "Accepted");
    EXPECT_EQ(v.as_array()[0].at("submittedQuantity").to_number<double>(), 17.0);
    EXPECT_EQ(v.as_array()[0].at("offerType"), "SaaS");
    EXPECT_EQ(v.as_array()[1].at("reconStatus"), "Mismatch");
}

TEST(InterpretGetUsageEvents, EmptyAndWrongShape) {
    EXPECT_TRUE(value_of(interpret_response(op(OpKind::GetUsageEvents), resp(200, "[]"))).as_array().empty());
    EXPECT_EQ(error_of(interpret_response(op(OpKind::GetUsageEvents), resp(200, R"({"usageDate":"x"})"))).kind,
              ErrorKind::BadResponse);
    EXPECT_EQ(error_of(interpret_response(op(OpKind::GetUsageEvents), resp(200, R"([1])"))).kind, ErrorKind::BadResponse);
}

TEST(InterpretDeep, NestingDoesNotCrash) {
    std::string deep(100000, '[');
    for (auto k : kAllKinds) {
        auto i = interpret_response(op(k), resp(200, deep));
        (void)i;  // must simply return
    }
    auto e = error_of(interpret_response(op(OpKind::GetUsageEvents), resp(200, deep)));
    EXPECT_EQ(e.kind, ErrorKind::BadResponse);
}

}  // namespace
}  // namespace azmp
