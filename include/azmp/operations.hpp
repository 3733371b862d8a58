// Azure Marketplace operations (SaaS Fulfillment v2 + Metering) as pure data:
// what to send for each one, and what an answer means. No I/O here.
#pragma once

#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "azmp/error.hpp"
#include "azmp/http.hpp"

namespace azmp {

inline constexpr std::string_view kApiVersion = "2018-08-31";
inline constexpr std::size_t kMaxBatchEvents = 25;

enum class OpKind {
    Resolve,
    Activate,
    GetSubscription,
    ListSubscriptions,
    ListAvailablePlans,
    ChangePlan,
    ChangeQuantity,
    DeleteSubscription,
    ListOperations,
    GetOperation,
    UpdateOperation,
    PostUsage,
    PostUsageBatch,
    GetUsageEvents,
    // One page of List Subscriptions (the first, or the one `continuation` names): the page as Azure
    // answered it, its @nextLink not followed (the reconciliation reads a pass page by page).
    ListSubscriptionsPage,
};

std::string_view op_name(OpKind k) noexcept;

struct UsageEvent {
    std::string resource_id;
    std::string dimension;
    double quantity = 0;
    std::string effective_start_time;  // RFC 3339, e.g. 2026-11-26T06:00:00Z
    std::string plan_id;
};

// Query of GET /usageEvents; usage_start_date is required by Azure.
struct UsageFilter {
    std::string usage_start_date;
    std::optional<std::string> usage_end_date, offer_id, plan_id, dimension, azure_subscription_id,
        recon_status;
};

// One call the caller asked for. Fields not used by `kind` are ignored.
struct Operation {
    OpKind kind = OpKind::GetSubscription;
    std::string subscription_id;
    std::string plan_id;
    std::string operation_id;
    std::string marketplace_token;  // Resolve only; a secret: never log it
    long quantity = 0;              // Activate (0 = none sent), ChangeQuantity
    bool success = true;            // UpdateOperation
    std::vector<UsageEvent> events; // PostUsage (exactly one), PostUsageBatch (1..25)
    UsageFilter filter;             // GetUsageEvents
    std::string continuation;       // ListSubscriptionsPage: the @nextLink of the page before (empty: the first)
};

// Checks what Azure would refuse anyway (empty ids, batch size, time format) before sending.
// Returns Error::badarg naming the offending field (as the Erlang API names it: subscription_id, plan_id,
// operation_id, token, quantity, events, resource_id, dimension, effective_start_time, usage_start_date),
// or nothing when `op` may be sent.
std::optional<Error> validate(const Operation& op);

// Builds the request for `op` against `marketplace_base` (e.g. https://marketplaceapi.microsoft.com/api,
// no trailing slash). Path segments are URL-encoded; api-version is always added; JSON bodies get a
// Content-Type header. Authorization and request-id headers are the executor's job.
HttpRequest build_request(const Operation& op, std::string_view marketplace_base);

// A successful result.
struct OpValue {
    enum class Kind { Ok, Value, OperationId };
    Kind kind = Kind::Ok;
    boost::json::value value;    // Kind::Value
    std::string operation_id;    // Kind::OperationId (from Operation-Location)
};

struct Interpretation {
    std::variant<OpValue, Error> result;
    // List calls: absolute URL of the next page (@nextLink), when there is one.
    std::optional<std::string> next_link;
};

// What Azure's answer to `op` means. Tolerates what Azure really sends: status strings padded with
// spaces (trimmed), quantity as string or number (normalised to a number), unknown fields (kept),
// missing optional fields. A 2xx body that does not parse or lacks a required field is BadResponse;
// a non-2xx is Http (except 409 on PostUsage: the already accepted event is returned as a Value).
// List operations return Value holding a JSON array of the page's items (an absent list is an empty one).
// ListSubscriptionsPage returns the page's object as it is ("subscriptions" checked to be an array
// of objects, "@nextLink" kept). Resolve requires a string "id"; its bodies never appear in errors. PostUsageBatch returns the object
// with its "result" array and an integer "count" (taken from the array when Azure omits it).
Interpretation interpret_response(const Operation& op, const HttpResponse& resp);

// Appends page items (an array, as returned by interpret_response for a list op) to `acc`.
// A `page` that is not an array adds nothing.
void append_page(boost::json::array& acc, boost::json::value&& page);

// True when `next_link` may be followed: same scheme, host and port as `marketplace_base`,
// so a forged @nextLink cannot send our bearer token elsewhere.
bool same_origin(std::string_view next_link, std::string_view marketplace_base);

}  // namespace azmp
