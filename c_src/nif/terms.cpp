#include "terms.hpp"

#include <boost/json.hpp>

#include <cmath>
#include <vector>

#include "codec.hpp"

namespace azmp::nif {

// Enums as atoms (see codec.hpp).
template <>
struct EnumAtoms<TokenEndpoint> {
    static constexpr EnumAtom<TokenEndpoint> table[] = {{&atoms::v1, TokenEndpoint::V1}, {&atoms::v2, TokenEndpoint::V2}};
};

template <>
struct EnumAtoms<OpKind> {
    static constexpr EnumAtom<OpKind> table[] = {
        {&atoms::resolve, OpKind::Resolve},
        {&atoms::activate, OpKind::Activate},
        {&atoms::get_subscription, OpKind::GetSubscription},
        {&atoms::list_subscriptions, OpKind::ListSubscriptions},
        {&atoms::list_available_plans, OpKind::ListAvailablePlans},
        {&atoms::change_plan, OpKind::ChangePlan},
        {&atoms::change_quantity, OpKind::ChangeQuantity},
        {&atoms::delete_subscription, OpKind::DeleteSubscription},
        {&atoms::list_operations, OpKind::ListOperations},
        {&atoms::get_operation, OpKind::GetOperation},
        {&atoms::update_operation, OpKind::UpdateOperation},
        {&atoms::post_usage, OpKind::PostUsage},
        {&atoms::post_usage_batch, OpKind::PostUsageBatch},
        {&atoms::get_usage_events, OpKind::GetUsageEvents},
        {&atoms::list_subscriptions_page, OpKind::ListSubscriptionsPage},
    };
};

namespace {

// Atoms that become JSON strings are at most this long (with the NUL).
constexpr unsigned kMaxAtomLen = 64;

std::optional<std::string> atom_name(ErlNifEnv* env, ERL_NIF_TERM t) {
    char buf[kMaxAtomLen];
    if (enif_get_atom(env, t, buf, sizeof buf, ERL_NIF_LATIN1) <= 0) return std::nullopt;
    return std::string(buf);
}

// Authorized app ids the webhook authenticator accepts at most (Azure sends one).
constexpr std::size_t kMaxAuthorizedApps = 16;

// #{max_attempts, base_delay_ms, max_delay_ms, max_retry_after_ms}: any error is {badarg, retry}.
std::optional<Error> retry_from_term(ErlNifEnv* env, ERL_NIF_TERM map, RetryConfig& r) {
    MapFields f(env, map, "retry");
    f.get<NonNegative>(atoms::max_attempts, r.max_attempts);
    f.get<NonNegative>(atoms::base_delay_ms, r.base_delay_ms);
    f.get<NonNegative>(atoms::max_delay_ms, r.max_delay_ms);
    f.get<NonNegative>(atoms::max_retry_after_ms, r.max_retry_after_ms);
    if (f.finish()) return Error::badarg("retry");
    return std::nullopt;
}

// One usage event; not a map: {badarg, events}.
std::optional<Error> event_from_term(ErlNifEnv* env, ERL_NIF_TERM map, UsageEvent& e) {
    MapFields f(env, map, "events");
    f.get(atoms::resource_id, e.resource_id);
    f.get(atoms::dimension, e.dimension);
    f.get(atoms::effective_start_time, e.effective_start_time);
    f.get(atoms::plan_id, e.plan_id);
    f.require(atoms::quantity, e.quantity);
    return f.finish();
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

std::optional<Error> filter_from_term(ErlNifEnv* env, ERL_NIF_TERM map, UsageFilter& u) {
    MapFields f(env, map, "filter");
    f.get(atoms::usage_start_date, u.usage_start_date);
    f.get<std::string>(atoms::usage_end_date, u.usage_end_date);
    f.get<std::string>(atoms::offer_id, u.offer_id);
    f.get<std::string>(atoms::plan_id, u.plan_id);
    f.get<std::string>(atoms::dimension, u.dimension);
    f.get<std::string>(atoms::azure_subscription_id, u.azure_subscription_id);
    f.get<std::string>(atoms::recon_status, u.recon_status);
    return f.finish();
}

}  // namespace

ERL_NIF_TERM ok_tuple(ErlNifEnv* env, ERL_NIF_TERM value) { return enif_make_tuple2(env, atoms::ok, value); }

ERL_NIF_TERM error_tuple(ErlNifEnv* env, ERL_NIF_TERM reason) { return enif_make_tuple2(env, atoms::error, reason); }

ERL_NIF_TERM json_to_term(ErlNifEnv* env, const boost::json::value& v) {
    using boost::json::kind;
    switch (v.kind()) {
        case kind::null: return atoms::null;
        case kind::bool_: return encode(env, v.get_bool());
        case kind::int64: return encode(env, std::int64_t{v.get_int64()});
        case kind::uint64: return encode(env, std::uint64_t{v.get_uint64()});
        // parse_json refuses non-finite numbers; should one come through, null rather than the
        // exception enif_make_double returns for it (which must never sit inside a term).
        case kind::double_: return std::isfinite(v.get_double()) ? encode(env, v.get_double()) : atoms::null;
        case kind::string: return encode(env, std::string_view(v.get_string()));
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
                keys[n] = encode(env, std::string_view(kv.key()));
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
    return atoms::null;
}

ERL_NIF_TERM error_to_term(ErlNifEnv* env, const Error& e) { return encode(env, e); }

ERL_NIF_TERM result_to_term(ErlNifEnv* env, const CallResult& r) {
    if (const auto* e = std::get_if<Error>(&r)) return error_tuple(env, encode(env, *e));
    const auto& v = std::get<OpValue>(r);
    switch (v.kind) {
        case OpValue::Kind::Ok: return atoms::ok;
        case OpValue::Kind::Value: return ok_tuple(env, json_to_term(env, v.value));
        case OpValue::Kind::OperationId: return ok_tuple(env, encode(env, v.operation_id));
    }
    return atoms::ok;
}

std::variant<ClientConfig, Error> config_from_term(ErlNifEnv* env, ERL_NIF_TERM map) {
    ClientConfig cfg;
    cfg.credentials.login_url = std::string(kDefaultLoginUrl);
    MapFields f(env, map, "config");
    f.get(atoms::tenant_id, cfg.credentials.tenant_id);
    f.get(atoms::client_id, cfg.credentials.client_id);
    f.get(atoms::client_secret, cfg.credentials.client_secret);
    f.get(atoms::login_url, cfg.credentials.login_url);
    f.get(atoms::marketplace_url, cfg.marketplace_url);
    f.get(atoms::ca_file, cfg.ca_file);
    f.get(atoms::proxy, cfg.proxy);
    f.get(atoms::token_endpoint, cfg.credentials.endpoint);
    f.get<Positive>(atoms::timeout_ms, cfg.timeout_ms);
    f.get<Positive>(atoms::connect_timeout_ms, cfg.connect_timeout_ms);
    f.get<Positive>(atoms::max_in_flight, cfg.max_in_flight);
    f.get(atoms::allow_insecure_loopback, cfg.allow_insecure_loopback);
    if (auto retry = f.term(atoms::retry))
        if (auto err = retry_from_term(env, *retry, cfg.retry)) f.fail(std::move(*err));
    if (auto err = f.finish()) return *err;
    // The one check of the values, the same the C++ tests exercise.
    if (auto bad = validate_config(cfg)) return *bad;
    return cfg;
}

std::variant<WebhookAuthConfig, Error> webhook_auth_config_from_term(ErlNifEnv* env, ERL_NIF_TERM map) {
    WebhookAuthConfig cfg;
    cfg.login_url = std::string(kDefaultLoginUrl);
    MapFields f(env, map, "config");
    f.get(atoms::login_url, cfg.login_url);
    f.get(atoms::tenant_id, cfg.tenant_id);
    f.get(atoms::audience, cfg.audience);
    f.get(atoms::ca_file, cfg.ca_file);
    f.get<NonNegative>(atoms::timeout_ms, cfg.timeout_ms);
    f.get<NonNegative>(atoms::min_refresh_interval_s, cfg.min_refresh_interval_s);
    f.get<NonNegative>(atoms::skew_s, cfg.skew_s);
    f.get<ListOf<std::string, kMaxAuthorizedApps>>(atoms::authorized_apps, cfg.authorized_apps);
    f.get(atoms::allow_insecure_loopback, cfg.allow_insecure_loopback);
    if (auto err = f.finish()) return *err;
    // The one check of the values, the same the C++ tests exercise (skew_s at most 3600, ...).
    if (auto bad = validate_config(cfg)) return *bad;
    return cfg;
}

std::optional<boost::json::value> term_to_json(ErlNifEnv* env, ERL_NIF_TERM t, JsonBudget& budget, int depth) {
    // Deeper than any document we produce: refuse rather than recurse without bound.
    if (depth > 64) return std::nullopt;
    if (!budget.take(1, 1)) return std::nullopt;
    ErlNifBinary bin;
    if (enif_is_binary(env, t) && enif_inspect_binary(env, t, &bin)) {
        if (!budget.take(0, bin.size + 1)) return std::nullopt;  // +1: the closing quote
        return boost::json::value(boost::json::string_view(reinterpret_cast<const char*>(bin.data), bin.size));
    }
    if (enif_is_atom(env, t)) {
        if (auto b = decode<bool>(env, t)) return boost::json::value(*b);
        if (enif_is_identical(t, atoms::null) || enif_is_identical(t, atoms::undefined))
            return boost::json::value(nullptr);
        auto name = atom_name(env, t);
        if (!name) return std::nullopt;
        return boost::json::value(*name);
    }
    ErlNifSInt64 i;
    if (enif_get_int64(env, t, &i)) return boost::json::value(static_cast<std::int64_t>(i));
    double d;
    if (enif_get_double(env, t, &d)) return boost::json::value(d);
    if (enif_is_list(env, t)) {
        boost::json::array a;
        ERL_NIF_TERM head, tail = t;
        // Each element takes from the budget before it is converted: a long list stops early.
        while (enif_get_list_cell(env, tail, &head, &tail)) {
            auto v = term_to_json(env, head, budget, depth + 1);
            if (!v) return std::nullopt;
            a.push_back(std::move(*v));
        }
        if (!enif_is_empty_list(env, tail)) return std::nullopt;
        return boost::json::value(std::move(a));
    }
    if (enif_is_map(env, t)) {
        // A map's size is known at once: one too large for the budget is refused before any walk
        // (a key is a term of its own and at least `"":`; its value is charged when converted).
        std::size_t size = 0;
        if (!enif_get_map_size(env, t, &size) || !budget.take(size, 3 * size)) return std::nullopt;
        boost::json::object o;
        o.reserve(size);
        ErlNifMapIterator it;
        if (!enif_map_iterator_create(env, t, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return std::nullopt;
        bool ok = true;
        ERL_NIF_TERM k, v;
        while (ok && enif_map_iterator_get_pair(env, &it, &k, &v)) {
            std::string key;
            if (enif_inspect_binary(env, k, &bin)) {
                ok = budget.take(0, bin.size);
                if (ok) key.assign(reinterpret_cast<const char*>(bin.data), bin.size);
            } else if (auto a = atom_name(env, k)) {
                key = std::move(*a);
            } else {
                ok = false;
            }
            if (ok) {
                auto jv = term_to_json(env, v, budget, depth + 1);
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
    auto kind = decode<OpKind>(env, op_term);
    if (!kind) return Error::badarg("operation");
    op.kind = *kind;
    MapFields f(env, args, "args");
    f.get(atoms::subscription_id, op.subscription_id);
    f.get(atoms::plan_id, op.plan_id);
    f.get(atoms::operation_id, op.operation_id);
    f.get(atoms::token, op.marketplace_token);
    f.get(atoms::continuation, op.continuation);
    f.get<Positive>(atoms::quantity, op.quantity);
    if (auto status = f.term(atoms::status)) {
        if (enif_is_identical(*status, atoms::success)) op.success = true;
        else if (enif_is_identical(*status, atoms::failure)) op.success = false;
        else f.fail(atoms::status);
    }
    // `event` (post_usage) and `events` (post_usage_batch) both fill op.events.
    if (auto event = f.term(atoms::event)) {
        UsageEvent e;
        if (auto err = event_from_term(env, *event, e)) f.fail(std::move(*err));
        else op.events.push_back(std::move(e));
    }
    if (auto events = f.term(atoms::events))
        if (auto err = events_from_term(env, *events, op.events)) f.fail(std::move(*err));
    if (auto filter = f.term(atoms::filter))
        if (auto err = filter_from_term(env, *filter, op.filter)) f.fail(std::move(*err));
    if (auto err = f.finish()) return *err;
    return op;
}

}  // namespace azmp::nif
