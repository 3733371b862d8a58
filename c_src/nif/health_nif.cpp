// Term conversion for the plugin's health (azmp/health.hpp).
#include <erl_nif.h>

#include <cstdint>
#include <optional>

#include "azmp/health.hpp"
#include "codec.hpp"
#include "nifs.hpp"

namespace azmp::nif {
namespace {

// Seconds with signature failures: a window's worth, more only when checks were held up.
constexpr std::size_t kMaxBuckets = 100'000;

bool read_buckets(ErlNifEnv* env, ERL_NIF_TERM list, health::Facts& f) {
    ERL_NIF_TERM head, tail = list;
    while (enif_get_list_cell(env, tail, &head, &tail)) {
        int arity;
        const ERL_NIF_TERM* e;
        if (f.signature_failures.size() >= kMaxBuckets || !enif_get_tuple(env, head, &arity, &e) || arity != 2)
            return false;
        const auto second = decode<std::int64_t>(env, e[0]);
        const auto count = decode<std::int64_t>(env, e[1]);
        if (!second || !count) return false;
        f.signature_failures.emplace_back(*second, *count);
    }
    return enif_is_empty_list(env, tail);
}

ERL_NIF_TERM state_atom(health::Reachability r) {
    switch (r) {
        case health::Reachability::Reachable: return atoms::reachable;
        case health::Reachability::Unreachable: return atoms::unreachable;
        case health::Reachability::Unknown: return atoms::unknown;
    }
    return atoms::unknown;
}

}  // namespace

// plan_health(#{now, consecutive_unreachable, last_reached_at, last_unreachable_at (undefined: none),
//               signature_failures => [{Second, Count}]})
//   -> #{state := reachable | unreachable | unknown, signature_failures := N (within the window),
//        forget_before := Second, alarms := [unreachable | signatures]}
ERL_NIF_TERM nif_plan_health(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    MapFields f(env, argv[0], "facts");
    health::Facts facts;
    f.require(atoms::now, facts.now);
    f.require(atoms::consecutive_unreachable, facts.consecutive_unreachable);
    f.require(atoms::last_reached_at, facts.last_reached_at);
    f.require(atoms::last_unreachable_at, facts.last_unreachable_at);
    if (const auto b = f.term(atoms::signature_failures); b && !read_buckets(env, *b, facts))
        f.fail(atoms::signature_failures);
    if (!f.ok()) return enif_raise_exception(env, encode(env, *f.error()));
    const health::Plan p = health::plan_health(facts);
    ERL_NIF_TERM alarms = enif_make_list(env, 0);
    if (p.signatures_alarm) alarms = enif_make_list_cell(env, atoms::signatures, alarms);
    if (p.unreachable_alarm) alarms = enif_make_list_cell(env, atoms::unreachable, alarms);
    return make_map<4>(env, {{{atoms::state, state_atom(p.state)},
                              {atoms::signature_failures, encode(env, p.signature_failures)},
                              {atoms::forget_before, encode(env, p.forget_before)},
                              {atoms::alarms, alarms}}});
}

}  // namespace azmp::nif
