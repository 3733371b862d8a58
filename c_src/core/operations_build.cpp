// What to send for each operation: names, argument checks and request construction.
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <cmath>

#include "azmp/operations.hpp"
#include "text_util.hpp"

namespace azmp {

namespace json = boost::json;

std::string_view op_name(OpKind k) noexcept {
    switch (k) {
        case OpKind::Resolve: return "resolve";
        case OpKind::Activate: return "activate";
        case OpKind::GetSubscription: return "get_subscription";
        case OpKind::ListSubscriptions: return "list_subscriptions";
        case OpKind::ListAvailablePlans: return "list_available_plans";
        case OpKind::ChangePlan: return "change_plan";
        case OpKind::ChangeQuantity: return "change_quantity";
        case OpKind::DeleteSubscription: return "delete_subscription";
        case OpKind::ListOperations: return "list_operations";
        case OpKind::GetOperation: return "get_operation";
        case OpKind::UpdateOperation: return "update_operation";
        case OpKind::PostUsage: return "post_usage";
        case OpKind::PostUsageBatch: return "post_usage_batch";
        case OpKind::GetUsageEvents: return "get_usage_events";
        case OpKind::ListSubscriptionsPage: return "list_subscriptions_page";
    }
    return "unknown";
}

namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int lo, int hi) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    return v >= lo && v <= hi;
}

// RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). Azure rejects anything else.
bool is_rfc3339(std::string_view s) {
    if (s.size() < 20) return false;
    if (!digits(s, 0, 4, 0, 9999) || s[4] != '-' || !digits(s, 5, 2, 1, 12) || s[7] != '-' ||
        !digits(s, 8, 2, 1, 31) || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, 0, 23) ||
        s[13] != ':' || !digits(s, 14, 2, 0, 59) || s[16] != ':' || !digits(s, 17, 2, 0, 60))
        return false;
    std::size_t i = 19;
    if (s[i] == '.') {
        std::size_t start = ++i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        if (i == start) return false;
    }
    if (i >= s.size()) return false;
    if (s[i] == 'Z' || s[i] == 'z') return i + 1 == s.size();
    if (s[i] != '+' && s[i] != '-') return false;
    return i + 6 == s.size() && digits(s, i + 1, 2, 0, 23) && s[i + 3] == ':' && digits(s, i + 4, 2, 0, 59);
}

// A value that goes into a header verbatim must not be able to end the header line.
bool header_safe(std::string_view s) {
    for (char c : s) {
        if (c == '\r' || c == '\n' || c == '\0') return false;
    }
    return true;
}

std::optional<Error> validate_event(const UsageEvent& e) {
    if (e.resource_id.empty()) return Error::badarg("resource_id");
    if (e.plan_id.empty()) return Error::badarg("plan_id");
    if (e.dimension.empty()) return Error::badarg("dimension");
    if (!std::isfinite(e.quantity) || e.quantity <= 0) return Error::badarg("quantity");
    if (!is_rfc3339(e.effective_start_time)) return Error::badarg("effective_start_time");
    return std::nullopt;
}

}  // namespace

std::optional<Error> validate(const Operation& op) {
    const bool needs_subscription = op.kind != OpKind::Resolve && op.kind != OpKind::ListSubscriptions &&
                                    op.kind != OpKind::ListSubscriptionsPage &&
                                    op.kind != OpKind::PostUsage && op.kind != OpKind::PostUsageBatch &&
                                    op.kind != OpKind::GetUsageEvents;
    if (needs_subscription && op.subscription_id.empty()) return Error::badarg("subscription_id");
    switch (op.kind) {
        case OpKind::Resolve:
            if (op.marketplace_token.empty() || !header_safe(op.marketplace_token)) return Error::badarg("token");
            break;
        case OpKind::Activate:
            if (op.plan_id.empty()) return Error::badarg("plan_id");
            if (op.quantity < 0) return Error::badarg("quantity");
            break;
        case OpKind::ChangePlan:
            if (op.plan_id.empty()) return Error::badarg("plan_id");
            break;
        case OpKind::ChangeQuantity:
            if (op.quantity < 1) return Error::badarg("quantity");
            break;
        case OpKind::GetOperation:
            if (op.operation_id.empty()) return Error::badarg("operation_id");
            break;
        case OpKind::UpdateOperation:
            if (op.operation_id.empty()) return Error::badarg("operation_id");
            if (op.quantity < 0) return Error::badarg("quantity");
            break;
        case OpKind::PostUsage:
            if (op.events.size() != 1) return Error::badarg("events");
            return validate_event(op.events.front());
        case OpKind::PostUsageBatch:
            if (op.events.empty() || op.events.size() > kMaxBatchEvents) return Error::badarg("events");
            for (const auto& e : op.events) {
                if (auto err = validate_event(e)) return err;
            }
            break;
        case OpKind::GetUsageEvents:
            if (op.filter.usage_start_date.empty()) return Error::badarg("usage_start_date");
            break;
        case OpKind::ListSubscriptionsPage:
            // Checked against the configured marketplace's origin by the client (Client::call).
            if (op.continuation.size() > 4096 || !header_safe(op.continuation)) return Error::badarg("continuation");
            break;
        case OpKind::GetSubscription:
        case OpKind::ListSubscriptions:
        case OpKind::ListAvailablePlans:
        case OpKind::DeleteSubscription:
        case OpKind::ListOperations:
            break;
    }
    return std::nullopt;
}

namespace {

// Whole numbers go out as JSON integers ("5", not "5E0", which is how Boost.JSON prints doubles).
json::value quantity_json(double q) {
    if (std::trunc(q) == q && std::fabs(q) < 9007199254740992.0) return json::value(static_cast<std::int64_t>(q));
    return json::value(q);
}

json::object usage_event_json(const UsageEvent& e) {
    json::object o;
    o["resourceId"] = e.resource_id;
    o["quantity"] = quantity_json(e.quantity);
    o["dimension"] = e.dimension;
    o["effectiveStartTime"] = e.effective_start_time;
    o["planId"] = e.plan_id;
    return o;
}

void set_json_body(HttpRequest& req, const json::value& body) {
    req.body = json::serialize(body);
    req.headers.emplace_back("Content-Type", "application/json");
}

void add_query(std::string& url, std::string_view name, const std::optional<std::string>& value) {
    if (!value || value->empty()) return;  // an empty filter is no filter
    url += '&';
    url += name;
    url += '=';
    url += detail::url_escape(*value);
}

}  // namespace

HttpRequest build_request(const Operation& op, std::string_view marketplace_base) {
    HttpRequest req;
    std::string path;
    const std::string sub = "/saas/subscriptions/" + detail::url_escape(op.subscription_id);
    switch (op.kind) {
        case OpKind::Resolve:
            req.method = Method::Post;
            path = "/saas/subscriptions/resolve";
            req.headers.emplace_back("x-ms-marketplace-token", op.marketplace_token);
            break;
        case OpKind::Activate: {
            req.method = Method::Post;
            path = sub + "/activate";
            json::object body;
            body["planId"] = op.plan_id;
            if (op.quantity > 0) body["quantity"] = op.quantity;
            set_json_body(req, body);
            break;
        }
        case OpKind::GetSubscription:
            path = sub;
            break;
        case OpKind::ListSubscriptions:
            path = "/saas/subscriptions";
            break;
        case OpKind::ListAvailablePlans:
            path = sub + "/listAvailablePlans";
            break;
        case OpKind::ChangePlan: {
            req.method = Method::Patch;
            path = sub;
            set_json_body(req, json::object{{"planId", op.plan_id}});
            break;
        }
        case OpKind::ChangeQuantity: {
            req.method = Method::Patch;
            path = sub;
            set_json_body(req, json::object{{"quantity", op.quantity}});
            break;
        }
        case OpKind::DeleteSubscription:
            req.method = Method::Delete;
            path = sub;
            break;
        case OpKind::ListOperations:
            path = sub + "/operations";
            break;
        case OpKind::GetOperation:
            path = sub + "/operations/" + detail::url_escape(op.operation_id);
            break;
        case OpKind::UpdateOperation: {
            req.method = Method::Patch;
            path = sub + "/operations/" + detail::url_escape(op.operation_id);
            json::object body;
            body["status"] = op.success ? "Success" : "Failure";
            if (!op.plan_id.empty()) body["planId"] = op.plan_id;
            if (op.quantity > 0) body["quantity"] = op.quantity;
            set_json_body(req, body);
            break;
        }
        case OpKind::PostUsage: {
            req.method = Method::Post;
            path = "/usageEvent";
            set_json_body(req, op.events.empty() ? json::object{} : usage_event_json(op.events.front()));
            break;
        }
        case OpKind::PostUsageBatch: {
            req.method = Method::Post;
            path = "/batchUsageEvent";
            json::array items;
            for (const auto& e : op.events) items.push_back(usage_event_json(e));
            set_json_body(req, json::object{{"request", std::move(items)}});
            break;
        }
        case OpKind::GetUsageEvents:
            path = "/usageEvents";
            break;
        case OpKind::ListSubscriptionsPage:
            if (!op.continuation.empty()) {
                req.url = op.continuation;  // Azure's @nextLink, api-version included
                return req;
            }
            path = "/saas/subscriptions";
            break;
    }
    req.url.reserve(marketplace_base.size() + path.size() + 32);
    req.url.append(marketplace_base);
    req.url += path;
    req.url += "?api-version=";
    req.url += kApiVersion;
    if (op.kind == OpKind::GetUsageEvents) {
        const UsageFilter& f = op.filter;
        // Names exactly as in meteringapi.v1.json (UsageEndDate really is capitalised there).
        add_query(req.url, "usageStartDate", f.usage_start_date);
        add_query(req.url, "UsageEndDate", f.usage_end_date);
        add_query(req.url, "offerId", f.offer_id);
        add_query(req.url, "planId", f.plan_id);
        add_query(req.url, "dimension", f.dimension);
        add_query(req.url, "azureSubscriptionId", f.azure_subscription_id);
        add_query(req.url, "reconStatus", f.recon_status);
    }
    return req;
}

}  // namespace azmp
