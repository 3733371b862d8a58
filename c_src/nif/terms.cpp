#include "terms.hpp"

#include "azmp/url_policy.hpp"

#include <boost/json.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace azmp::nif {
namespace {

// Anything longer than this is not an id, a URL or a token Azure would accept; refusing it keeps
// every NIF call short (no multi-megabyte copies on a scheduler).
constexpr std::size_t kMaxFieldBytes = 64 * 1024;

constexpr unsigned kMaxAtomLen = 64;

std::optional<std::string> atom_name(ErlNifEnv* env, ERL_NIF_TERM t) {
    char buf[kMaxAtomLen];
    if (enif_get_atom(env, t, buf, sizeof buf, ERL_NIF_LATIN1) <= 0) return std::nullopt;
    return std::string(buf);
}

std::optional<std::string> binary_string(ErlNifEnv* env, ERL_NIF_TERM t) {
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, t, &bin) || bin.size > kMaxFieldBytes) return std::nullopt;
    return std::string(reinterpret_cast<const char*>(bin.data), bin.size);
}

std::optional<long> positive_int(ErlNifEnv* env, ERL_NIF_TERM t) {
    ErlNifSInt64 v;
    if (!enif_get_int64(env, t, &v) || v <= 0 || v > std::numeric_limits<int>::max()) return std::nullopt;
    return static_cast<long>(v);
}

std::optional<long> non_negative_int(ErlNifEnv* env, ERL_NIF_TERM t) {
    ErlNifSInt64 v;
    if (!enif_get_int64(env, t, &v) || v < 0 || v > std::numeric_limits<int>::max()) return std::nullopt;
    return static_cast<long>(v);
}

std::optional<double> number(ErlNifEnv* env, ERL_NIF_TERM t) {
    double d;
    if (enif_get_double(env, t, &d)) return d;
    ErlNifSInt64 i;
    if (enif_get_int64(env, t, &i)) return static_cast<double>(i);
    return std::nullopt;
}

// Walks a map's entries; `on_entry(key_name, value)` returns an Error to stop. Keys must be atoms.
template <typename F>
std::optional<Error> for_each_entry(ErlNifEnv* env, ERL_NIF_TERM map, const char* what, F&& on_entry) {
    if (!enif_is_map(env, map)) return Error::badarg(what);
    ErlNifMapIterator it;
    if (!enif_map_iterator_create(env, map, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return Error::badarg(what);
    std::optional<Error> err;
    ERL_NIF_TERM k, v;
    while (!err && enif_map_iterator_get_pair(env, &it, &k, &v)) {
        auto name = atom_name(env, k);
        if (!name) {
            err = Error::badarg(what);
        } else {
            err = on_entry(*name, v);
        }
        enif_map_iterator_next(env, &it);
    }
    enif_map_iterator_destroy(env, &it);
    return err;
}

std::optional<Error> set_string(ErlNifEnv* env, ERL_NIF_TERM v, const std::string& field, std::string& out) {
    auto s = binary_string(env, v);
    if (!s) return Error::badarg(field);
    out = std::move(*s);
    return std::nullopt;
}

std::optional<Error> retry_from_term(ErlNifEnv* env, ERL_NIF_TERM map, RetryConfig& r) {
    return for_each_entry(env, map, "retry", [&](const std::string& k, ERL_NIF_TERM v) -> std::optional<Error> {
        auto n = non_negative_int(env, v);
        if (!n) return Error::badarg("retry");
        if (k == "max_attempts") r.max_attempts = static_cast<int>(*n);
        else if (k == "base_delay_ms") r.base_delay_ms = *n;
        else if (k == "max_delay_ms") r.max_delay_ms = *n;
        else if (k == "max_retry_after_ms") r.max_retry_after_ms = *n;
        else return Error::badarg("retry");
        return std::nullopt;
    });
}

std::optional<Error> event_from_term(ErlNifEnv* env, ERL_NIF_TERM map, UsageEvent& e) {
    bool has_quantity = false;
    auto err = for_each_entry(env, map, "events", [&](const std::string& k, ERL_NIF_TERM v) -> std::optional<Error> {
        if (k == "resource_id") return set_string(env, v, k, e.resource_id);
        if (k == "dimension") return set_string(env, v, k, e.dimension);
        if (k == "effective_start_time") return set_string(env, v, k, e.effective_start_time);
        if (k == "plan_id") return set_string(env, v, k, e.plan_id);
        if (k == "quantity") {
            auto q = number(env, v);
            if (!q) return Error::badarg("quantity");
            e.quantity = *q;
            has_quantity = true;
            return std::nullopt;
        }
        return Error::badarg(k);
    });
    if (!err && !has_quantity) return Error::badarg("quantity");
    return err;
}

std::optional<Error> events_from_term(ErlNifEnv* env, ERL_NIF_TERM list, std::vector<UsageEvent>& out) {
    ERL_NIF_TERM head, tail = list;
    // Stop one past the limit: a long list is refused without walking all of it.
    while (enif_get_list_cell(env, tail, &head, &tail)) {
        if (out.size() > kMaxBatchEvents) return Error::badarg("events");
        UsageEvent e;
        if (auto err = event_from_term(env, head, e)) return err;
        out.push_back(std::move(e));
    }
    if (!enif_is_empty_list(env, tail) && out.size() <= kMaxBatchEvents) return Error::badarg("events");
    return std::nullopt;
}

std::optional<Error> filter_from_term(ErlNifEnv* env, ERL_NIF_TERM map, UsageFilter& f) {
    return for_each_entry(env, map, "filter", [&](const std::string& k, ERL_NIF_TERM v) -> std::optional<Error> {
        if (k == "usage_start_date") return set_string(env, v, k, f.usage_start_date);
        std::optional<std::string>* slot = nullptr;
        if (k == "usage_end_date") slot = &f.usage_end_date;
        else if (k == "offer_id") slot = &f.offer_id;
        else if (k == "plan_id") slot = &f.plan_id;
        else if (k == "dimension") slot = &f.dimension;
        else if (k == "azure_subscription_id") slot = &f.azure_subscription_id;
        else if (k == "recon_status") slot = &f.recon_status;
        else return Error::badarg(k);
        auto s = binary_string(env, v);
        if (!s) return Error::badarg(k);
        *slot = std::move(*s);
        return std::nullopt;
    });
}

struct OpName {
    const char* name;
    OpKind kind;
};
constexpr OpName kOps[] = {
    {"resolve", OpKind::Resolve},
    {"activate", OpKind::Activate},
    {"get_subscription", OpKind::GetSubscription},
    {"list_subscriptions", OpKind::ListSubscriptions},
    {"list_available_plans", OpKind::ListAvailablePlans},
    {"change_plan", OpKind::ChangePlan},
    {"change_quantity", OpKind::ChangeQuantity},
    {"delete_subscription", OpKind::DeleteSubscription},
    {"list_operations", OpKind::ListOperations},
    {"get_operation", OpKind::GetOperation},
    {"update_operation", OpKind::UpdateOperation},
    {"post_usage", OpKind::PostUsage},
    {"post_usage_batch", OpKind::PostUsageBatch},
    {"get_usage_events", OpKind::GetUsageEvents},
};

}  // namespace

ERL_NIF_TERM atom(ErlNifEnv* env, const char* name) { return enif_make_atom(env, name); }

ERL_NIF_TERM make_binary(ErlNifEnv* env, std::string_view s) {
    ERL_NIF_TERM t;
    unsigned char* p = enif_make_new_binary(env, s.size(), &t);
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    return t;
}

ERL_NIF_TERM ok_tuple(ErlNifEnv* env, ERL_NIF_TERM value) { return enif_make_tuple2(env, atom(env, "ok"), value); }

ERL_NIF_TERM error_tuple(ErlNifEnv* env, ERL_NIF_TERM reason) {
    return enif_make_tuple2(env, atom(env, "error"), reason);
}

ERL_NIF_TERM json_to_term(ErlNifEnv* env, const boost::json::value& v) {
    using boost::json::kind;
    switch (v.kind()) {
        case kind::null: return atom(env, "null");
        case kind::bool_: return atom(env, v.get_bool() ? "true" : "false");
        case kind::int64: return enif_make_int64(env, v.get_int64());
        case kind::uint64: return enif_make_uint64(env, v.get_uint64());
        case kind::double_: return enif_make_double(env, v.get_double());
        case kind::string: return make_binary(env, v.get_string());
        case kind::array: {
            // Built from the tail: no temporary array of terms.
            const auto& a = v.get_array();
            ERL_NIF_TERM list = enif_make_list(env, 0);
            for (auto it = a.rbegin(); it != a.rend(); ++it) list = enif_make_list_cell(env, json_to_term(env, *it), list);
            return list;
        }
        case kind::object: {
            const auto& o = v.get_object();
            // Most of Azure's objects are small: their keys and values fit on the stack.
            constexpr std::size_t kInline = 32;
            ERL_NIF_TERM inline_keys[kInline], inline_values[kInline];
            std::vector<ERL_NIF_TERM> heap_keys, heap_values;
            ERL_NIF_TERM* keys = inline_keys;
            ERL_NIF_TERM* values = inline_values;
            if (o.size() > kInline) {
                heap_keys.resize(o.size());
                heap_values.resize(o.size());
                keys = heap_keys.data();
                values = heap_values.data();
            }
            std::size_t n = 0;
            for (const auto& kv : o) {
                keys[n] = make_binary(env, kv.key());
                values[n] = json_to_term(env, kv.value());
                ++n;
            }
            ERL_NIF_TERM m;
            if (enif_make_map_from_arrays(env, keys, values, n, &m)) return m;
            // Duplicate keys (legal JSON, rare): the last one wins, as in most JSON readers.
            m = enif_make_new_map(env);
            for (std::size_t i = 0; i < n; ++i) enif_make_map_put(env, m, keys[i], values[i], &m);
            return m;
        }
    }
    return atom(env, "null");
}

ERL_NIF_TERM error_to_term(ErlNifEnv* env, const Error& e) {
    switch (e.kind) {
        case ErrorKind::Timeout: return atom(env, "timeout");
        case ErrorKind::Overloaded: return atom(env, "overloaded");
        case ErrorKind::Http:
            return enif_make_tuple3(env, atom(env, "http"), enif_make_long(env, e.status), make_binary(env, e.detail));
        case ErrorKind::Transport: return enif_make_tuple2(env, atom(env, "transport"), make_binary(env, e.detail));
        case ErrorKind::BadResponse:
            return enif_make_tuple2(env, atom(env, "bad_response"), make_binary(env, e.detail));
        case ErrorKind::Auth: return enif_make_tuple2(env, atom(env, "auth"), make_binary(env, e.detail));
        case ErrorKind::Badarg: return enif_make_tuple2(env, atom(env, "badarg"), atom(env, e.detail.c_str()));
    }
    return atom(env, "error");
}

ERL_NIF_TERM result_to_term(ErlNifEnv* env, const CallResult& r) {
    if (const auto* e = std::get_if<Error>(&r)) return error_tuple(env, error_to_term(env, *e));
    const auto& v = std::get<OpValue>(r);
    switch (v.kind) {
        case OpValue::Kind::Ok: return atom(env, "ok");
        case OpValue::Kind::Value: return ok_tuple(env, json_to_term(env, v.value));
        case OpValue::Kind::OperationId: return ok_tuple(env, make_binary(env, v.operation_id));
    }
    return atom(env, "ok");
}

std::variant<ClientConfig, Error> config_from_term(ErlNifEnv* env, ERL_NIF_TERM map) {
    ClientConfig cfg;
    cfg.credentials.login_url = std::string(kDefaultLoginUrl);
    auto err = for_each_entry(env, map, "config", [&](const std::string& k, ERL_NIF_TERM v) -> std::optional<Error> {
        if (k == "tenant_id") return set_string(env, v, k, cfg.credentials.tenant_id);
        if (k == "client_id") return set_string(env, v, k, cfg.credentials.client_id);
        if (k == "client_secret") return set_string(env, v, k, cfg.credentials.client_secret);
        if (k == "login_url") return set_string(env, v, k, cfg.credentials.login_url);
        if (k == "marketplace_url") return set_string(env, v, k, cfg.marketplace_url);
        if (k == "ca_file") return set_string(env, v, k, cfg.ca_file);
        if (k == "proxy") return set_string(env, v, k, cfg.proxy);
        if (k == "token_endpoint") {
            auto a = atom_name(env, v);
            if (a == "v1") cfg.credentials.endpoint = TokenEndpoint::V1;
            else if (a == "v2") cfg.credentials.endpoint = TokenEndpoint::V2;
            else return Error::badarg(k);
            return std::nullopt;
        }
        if (k == "timeout_ms" || k == "connect_timeout_ms" || k == "max_in_flight") {
            auto n = positive_int(env, v);
            if (!n) return Error::badarg(k);
            if (k == "timeout_ms") cfg.timeout_ms = *n;
            else if (k == "connect_timeout_ms") cfg.connect_timeout_ms = *n;
            else cfg.max_in_flight = static_cast<std::size_t>(*n);
            return std::nullopt;
        }
        if (k == "retry") return retry_from_term(env, v, cfg.retry);
        return Error::badarg(k);
    });
    if (err) return *err;
    if (auto bad = validate_config(cfg)) return *bad;
    return cfg;
}

std::variant<WebhookAuthConfig, Error> webhook_auth_config_from_term(ErlNifEnv* env, ERL_NIF_TERM map) {
    WebhookAuthConfig cfg;
    cfg.login_url = std::string(kDefaultLoginUrl);
    auto err = for_each_entry(env, map, "config", [&](const std::string& k, ERL_NIF_TERM v) -> std::optional<Error> {
        if (k == "login_url") return set_string(env, v, k, cfg.login_url);
        if (k == "tenant_id") return set_string(env, v, k, cfg.tenant_id);
        if (k == "audience") return set_string(env, v, k, cfg.audience);
        if (k == "ca_file") return set_string(env, v, k, cfg.ca_file);
        if (k == "timeout_ms" || k == "min_refresh_interval_s" || k == "skew_s") {
            auto n = non_negative_int(env, v);
            if (!n || (k == "timeout_ms" && *n == 0)) return Error::badarg(k);
            if (k == "timeout_ms") cfg.timeout_ms = *n;
            else if (k == "min_refresh_interval_s") cfg.min_refresh_interval_s = *n;
            else cfg.skew_s = *n;
            return std::nullopt;
        }
        if (k == "authorized_apps") {
            std::vector<std::string> apps;
            ERL_NIF_TERM head, tail = v;
            while (enif_get_list_cell(env, tail, &head, &tail)) {
                auto s = binary_string(env, head);
                if (!s || apps.size() >= 16) return Error::badarg(k);
                apps.push_back(std::move(*s));
            }
            if (!enif_is_empty_list(env, tail) || apps.empty()) return Error::badarg(k);
            cfg.authorized_apps = std::move(apps);
            return std::nullopt;
        }
        return Error::badarg(k);
    });
    if (err) return *err;
    while (!cfg.login_url.empty() && cfg.login_url.back() == '/') cfg.login_url.pop_back();
    if (cfg.tenant_id.empty()) return Error::badarg("tenant_id");
    if (cfg.audience.empty()) return Error::badarg("audience");
    if (!endpoint_allowed(cfg.login_url)) return Error::badarg("login_url");
    return cfg;
}

std::optional<boost::json::value> term_to_json(ErlNifEnv* env, ERL_NIF_TERM t, int depth) {
    // Deeper than any document we produce: refuse rather than recurse without bound.
    if (depth > 64) return std::nullopt;
    ErlNifBinary bin;
    if (enif_is_binary(env, t) && enif_inspect_binary(env, t, &bin))
        return boost::json::value(boost::json::string_view(reinterpret_cast<const char*>(bin.data), bin.size));
    if (enif_is_atom(env, t)) {
        auto name = atom_name(env, t);
        if (!name) return std::nullopt;
        if (*name == "true") return boost::json::value(true);
        if (*name == "false") return boost::json::value(false);
        if (*name == "null" || *name == "undefined") return boost::json::value(nullptr);
        return boost::json::value(*name);
    }
    ErlNifSInt64 i;
    if (enif_get_int64(env, t, &i)) return boost::json::value(static_cast<std::int64_t>(i));
    double d;
    if (enif_get_double(env, t, &d)) return boost::json::value(d);
    if (enif_is_list(env, t)) {
        boost::json::array a;
        ERL_NIF_TERM head, tail = t;
        while (enif_get_list_cell(env, tail, &head, &tail)) {
            auto v = term_to_json(env, head, depth + 1);
            if (!v) return std::nullopt;
            a.push_back(std::move(*v));
        }
        if (!enif_is_empty_list(env, tail)) return std::nullopt;
        return boost::json::value(std::move(a));
    }
    if (enif_is_map(env, t)) {
        boost::json::object o;
        ErlNifMapIterator it;
        if (!enif_map_iterator_create(env, t, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return std::nullopt;
        bool ok = true;
        ERL_NIF_TERM k, v;
        while (ok && enif_map_iterator_get_pair(env, &it, &k, &v)) {
            std::string key;
            if (enif_inspect_binary(env, k, &bin)) key.assign(reinterpret_cast<const char*>(bin.data), bin.size);
            else if (auto a = atom_name(env, k)) key = std::move(*a);
            else ok = false;
            if (ok) {
                auto jv = term_to_json(env, v, depth + 1);
                if (jv) o[key] = std::move(*jv);
                else ok = false;
            }
            enif_map_iterator_next(env, &it);
        }
        enif_map_iterator_destroy(env, &it);
        if (!ok) return std::nullopt;
        return boost::json::value(std::move(o));
    }
    return std::nullopt;
}

std::variant<Operation, Error> operation_from_terms(ErlNifEnv* env, ERL_NIF_TERM op_term, ERL_NIF_TERM args) {
    Operation op;
    auto name = atom_name(env, op_term);
    if (!name) return Error::badarg("operation");
    bool known = false;
    for (const auto& o : kOps) {
        if (*name == o.name) {
            op.kind = o.kind;
            known = true;
            break;
        }
    }
    if (!known) return Error::badarg("operation");
    auto err = for_each_entry(env, args, "args", [&](const std::string& k, ERL_NIF_TERM v) -> std::optional<Error> {
        if (k == "subscription_id") return set_string(env, v, k, op.subscription_id);
        if (k == "plan_id") return set_string(env, v, k, op.plan_id);
        if (k == "operation_id") return set_string(env, v, k, op.operation_id);
        if (k == "token") return set_string(env, v, k, op.marketplace_token);
        if (k == "quantity") {
            auto n = positive_int(env, v);
            if (!n) return Error::badarg(k);
            op.quantity = *n;
            return std::nullopt;
        }
        if (k == "status") {
            auto a = atom_name(env, v);
            if (a == "success") op.success = true;
            else if (a == "failure") op.success = false;
            else return Error::badarg(k);
            return std::nullopt;
        }
        if (k == "event") {
            UsageEvent e;
            if (auto bad = event_from_term(env, v, e)) return bad;
            op.events.push_back(std::move(e));
            return std::nullopt;
        }
        if (k == "events") return events_from_term(env, v, op.events);
        if (k == "filter") return filter_from_term(env, v, op.filter);
        return Error::badarg(k);
    });
    if (err) return *err;
    return op;
}

}  // namespace azmp::nif
