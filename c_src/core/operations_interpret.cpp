// What Azure's answer to each operation means.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <exception>

#include "azmp/operations.hpp"
#include "json_util.hpp"
#include "text_util.hpp"

namespace azmp {

namespace json = boost::json;

namespace {

using Result = std::variant<OpValue, Error>;

OpValue ok() { return OpValue{OpValue::Kind::Ok, {}, {}}; }
OpValue value(json::value v) { return OpValue{OpValue::Kind::Value, std::move(v), {}}; }

// Resolve answers describe a purchase made with a secret token: keep their bodies out of errors.
bool body_is_sensitive(OpKind k) { return k == OpKind::Resolve; }

Error bad(const Operation& op, std::string what, std::string_view body) {
    std::string d = std::string(op_name(op.kind)) + ": " + std::move(what);
    if (!body_is_sensitive(op.kind) && !body.empty()) d += "; body: " + detail::truncated(body);
    return Error::bad_response(std::move(d));
}

// Parses and normalises a 2xx body; the error names what was wrong.
std::variant<json::value, Error> read_body(const Operation& op, std::string_view body) {
    auto v = detail::parse_json(body);
    if (!v) return bad(op, body.empty() ? "empty body" : "invalid JSON", body);
    if (auto err = detail::normalise(*v)) return bad(op, *err, body);
    return std::move(*v);
}

// The array member `key` of a list answer. Absent or null means an empty page (Azure omits empty
// collections); anything else but an array of objects is the wrong shape.
std::variant<json::value, Error> array_member(const Operation& op, json::object& obj, std::string_view key,
                                              std::string_view body) {
    auto* p = obj.if_contains(json::string_view(key.data(), key.size()));
    if (p == nullptr || p->is_null()) return json::value(json::array{});
    if (!p->is_array()) return bad(op, "\"" + std::string(key) + "\" is not an array", body);
    for (const auto& item : p->get_array()) {
        if (!item.is_object()) return bad(op, "\"" + std::string(key) + "\" holds a non-object", body);
    }
    return std::move(*p);
}

// The operation id in Operation-Location: .../operations/{opId}?api-version=...
std::optional<std::string> operation_id_from_location(std::string_view loc) {
    loc = detail::trim(loc);
    loc = loc.substr(0, loc.find_first_of("?#"));
    while (!loc.empty() && loc.back() == '/') loc.remove_suffix(1);
    constexpr std::string_view marker = "/operations/";
    const auto at = loc.rfind(marker);
    if (at == std::string_view::npos) return std::nullopt;
    std::string_view seg = loc.substr(at + marker.size());
    if (seg.empty() || seg.find('/') != std::string_view::npos) return std::nullopt;
    std::string id;
    if (!detail::url_unescape(seg, id) || id.empty()) return std::nullopt;
    for (unsigned char c : id) {
        // The id goes back into a URL path and into Erlang terms: printable, no separators.
        if (c <= 0x20 || c == 0x7f || c == '/' || c == '?' || c == '#') return std::nullopt;
    }
    return id;
}

Result object_value(const Operation& op, const HttpResponse& resp) {
    auto r = read_body(op, resp.body);
    if (auto* e = std::get_if<Error>(&r)) return *e;
    auto& v = std::get<json::value>(r);
    if (!v.is_object()) return bad(op, "expected a JSON object", resp.body);
    return value(std::move(v));
}

Interpretation list_value(const Operation& op, const HttpResponse& resp, std::string_view key) {
    Interpretation out;
    auto r = read_body(op, resp.body);
    if (auto* e = std::get_if<Error>(&r)) {
        out.result = *e;
        return out;
    }
    auto& v = std::get<json::value>(r);
    // Microsoft's own SaaS API emulator answers List Operations with a bare array: read it as the
    // one page {"operations": [...]}.
    if (v.is_array() && op.kind == OpKind::ListOperations) {
        json::object wrapped;
        wrapped[json::string_view(key.data(), key.size())] = std::move(v);
        v = std::move(wrapped);
    }
    if (!v.is_object()) {
        out.result = bad(op, "expected a JSON object", resp.body);
        return out;
    }
    auto& obj = v.get_object();
    auto items = array_member(op, obj, key, resp.body);
    if (auto* e = std::get_if<Error>(&items)) {
        out.result = *e;
        return out;
    }
    if (auto* next = obj.if_contains("@nextLink"); next != nullptr && next->is_string() &&
                                                   !next->get_string().empty()) {
        out.next_link = std::string(next->get_string());
    }
    out.result = value(std::move(std::get<json::value>(items)));
    return out;
}

// One page of a list, as Azure answered it: an object whose "subscriptions" is an array of objects
// (or absent / null); "@nextLink" is left for the caller to judge.
Result page_value(const Operation& op, const HttpResponse& resp) {
    auto r = object_value(op, resp);
    if (auto* v = std::get_if<OpValue>(&r)) {
        const auto* items = v->value.get_object().if_contains("subscriptions");
        if (items == nullptr || items->is_null()) return r;
        if (!items->is_array()) return bad(op, "\"subscriptions\" is not an array", resp.body);
        for (const auto& item : items->get_array()) {
            if (!item.is_object()) return bad(op, "\"subscriptions\" holds a non-object", resp.body);
        }
    }
    return r;
}

Result operation_id(const Operation& op, const HttpResponse& resp) {
    auto loc = resp.header("Operation-Location");
    if (!loc) return bad(op, "no Operation-Location header", {});
    auto id = operation_id_from_location(*loc);
    if (!id) return bad(op, "unreadable Operation-Location: " + detail::truncated(*loc), {});
    return OpValue{OpValue::Kind::OperationId, {}, std::move(*id)};
}

Result resolve(const Operation& op, const HttpResponse& resp) {
    auto r = object_value(op, resp);
    if (auto* v = std::get_if<OpValue>(&r)) {
        const auto* id = v->value.get_object().if_contains("id");
        if (id == nullptr || !id->is_string() || id->get_string().empty())
            return bad(op, "no subscription \"id\"", {});
    }
    return r;
}

// 409: the event was already accepted earlier; Azure returns that event in additionalInfo.acceptedMessage.
Result usage_conflict(const Operation& op, const HttpResponse& resp) {
    auto v = detail::parse_json(resp.body);
    if (v && v->is_object()) {
        if (auto* info = v->get_object().if_contains("additionalInfo"); info != nullptr && info->is_object()) {
            if (auto* msg = info->get_object().if_contains("acceptedMessage"); msg != nullptr && msg->is_object()) {
                json::value accepted = std::move(*msg);
                if (auto err = detail::normalise(accepted)) return bad(op, *err, resp.body);
                return value(std::move(accepted));
            }
        }
    }
    return Error::http(resp.status, resp.body);
}

Result batch(const Operation& op, const HttpResponse& resp) {
    auto r = object_value(op, resp);
    auto* v = std::get_if<OpValue>(&r);
    if (v == nullptr) return r;
    auto& obj = v->value.get_object();
    auto* result = obj.if_contains("result");
    if (result == nullptr || !result->is_array()) return bad(op, "no \"result\" array", resp.body);
    for (const auto& item : result->get_array()) {
        if (!item.is_object()) return bad(op, "\"result\" holds a non-object", resp.body);
    }
    // Callers pair results with what they sent: count is always an integer, from the array if need be.
    const auto* count = obj.if_contains("count");
    const auto n = count != nullptr ? detail::as_int64(*count) : std::nullopt;
    obj["count"] = n ? *n : static_cast<std::int64_t>(result->get_array().size());
    return r;
}

Result usage_events(const Operation& op, const HttpResponse& resp) {
    auto r = read_body(op, resp.body);
    if (auto* e = std::get_if<Error>(&r)) return *e;
    auto& v = std::get<json::value>(r);
    if (!v.is_array()) return bad(op, "expected a JSON array", resp.body);
    for (const auto& item : v.get_array()) {
        if (!item.is_object()) return bad(op, "array holds a non-object", resp.body);
    }
    return value(std::move(v));
}

Interpretation interpret(const Operation& op, const HttpResponse& resp) {
    const bool success = resp.status >= 200 && resp.status < 300;
    if (!success) {
        if (op.kind == OpKind::PostUsage && resp.status == 409) return {usage_conflict(op, resp), std::nullopt};
        return {Error::http(resp.status, resp.body), std::nullopt};
    }
    switch (op.kind) {
        case OpKind::Resolve: return {resolve(op, resp), std::nullopt};
        case OpKind::Activate:
        case OpKind::UpdateOperation: return {ok(), std::nullopt};
        case OpKind::GetSubscription:
        case OpKind::GetOperation:
        case OpKind::PostUsage: return {object_value(op, resp), std::nullopt};
        case OpKind::ListSubscriptions: return list_value(op, resp, "subscriptions");
        case OpKind::ListAvailablePlans: return list_value(op, resp, "plans");
        case OpKind::ListOperations: return list_value(op, resp, "operations");
        case OpKind::ChangePlan:
        case OpKind::ChangeQuantity:
        case OpKind::DeleteSubscription: return {operation_id(op, resp), std::nullopt};
        case OpKind::PostUsageBatch: return {batch(op, resp), std::nullopt};
        case OpKind::GetUsageEvents: return {usage_events(op, resp), std::nullopt};
        case OpKind::ListSubscriptionsPage: return {page_value(op, resp), std::nullopt};
    }
    return {bad(op, "unknown operation", {}), std::nullopt};
}

}  // namespace

Interpretation interpret_response(const Operation& op, const HttpResponse& resp) {
    try {
        return interpret(op, resp);
    } catch (const std::exception& e) {
        // Out of memory or a Boost.JSON surprise: an answer we could not read, never a crash.
        return {Error::bad_response(std::string(op_name(op.kind)) + ": " + e.what()), std::nullopt};
    } catch (...) {
        return {Error::bad_response(std::string(op_name(op.kind)) + ": unreadable answer"), std::nullopt};
    }
}

void append_page(json::array& acc, json::value&& page) {
    auto* items = page.if_array();
    if (items == nullptr) return;  // only list pages (arrays) carry items
    acc.reserve(acc.size() + items->size());
    for (auto& item : *items) acc.push_back(std::move(item));
}

}  // namespace azmp
