// Term conversion for the fulfillment reconciliation's step (azmp/reconcile_step.hpp).
#include <erl_nif.h>

#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "azmp/reconcile_step.hpp"
#include "call_result.hpp"
#include "nifs.hpp"
#include "resources.hpp"
#include "rules_codec.hpp"

namespace azmp::nif {
namespace {

// The links the answer names: one per listed subscription at most.
constexpr std::size_t kMaxLinks = 1'000'000;

ERL_NIF_TERM refuse(ErlNifEnv* env, MapFields& f, ERL_NIF_TERM field) {
    f.fail(field);
    return enif_raise_exception(env, encode(env, *f.error()));
}

// #{SubId => #{account_id := binary(), state := LinkState}}
bool read_links(ErlNifEnv* env, ERL_NIF_TERM t, std::unordered_map<std::string, reconcile::Local>& out) {
    std::size_t size = 0;
    if (!enif_get_map_size(env, t, &size) || size > kMaxLinks) return false;
    out.reserve(size);
    ErlNifMapIterator it;
    if (!enif_map_iterator_create(env, t, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return false;
    bool ok = true;
    ERL_NIF_TERM k, v;
    while (ok && enif_map_iterator_get_pair(env, &it, &k, &v)) {
        const auto id = decode<ShortBinary>(env, k);
        MapFields lf(env, v, "links");
        ShortBinary account{};
        reconcile::Local local;
        lf.require(atoms::account_id, account);
        lf.require(atoms::state, local.state);
        ok = id && lf.ok();
        if (ok) {
            local.account_id = std::string(account.value);
            out.emplace(std::string(id->value), std::move(local));
        }
        enif_map_iterator_next(env, &it);
    }
    enif_map_iterator_destroy(env, &it);
    return ok;
}

ERL_NIF_TERM reconcile_now(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    MapFields f(env, argv[0], "facts");
    const auto step = f.term(atoms::step);
    if (!step || (!enif_is_identical(*step, atoms::list) && !enif_is_identical(*step, atoms::one)))
        return refuse(env, f, atoms::step);
    std::string one_id;
    if (enif_is_identical(*step, atoms::one)) {
        ShortBinary id{};
        if (!f.require(atoms::subscription_id, id) || id.value.empty()) return refuse(env, f, atoms::subscription_id);
        one_id = std::string(id.value);
    }
    std::int64_t now = 0;
    std::optional<std::int64_t> window;
    if (!f.require(atoms::now, now)) return refuse(env, f, atoms::now);
    if (const auto w = f.term(atoms::enforce_window_s); w && !enif_is_identical(*w, atoms::undefined)) {
        window = decode<std::int64_t>(env, *w);
        if (!window) return refuse(env, f, atoms::enforce_window_s);
    }
    const auto result = f.term(atoms::result);
    CallReport report;
    std::optional<boost::json::value> json;
    if (!result || !read_call_result(env, *result, AnswerSize::Large, report, json)) return refuse(env, f, atoms::result);
    std::unordered_map<std::string, reconcile::Local> links;
    const auto links_term = f.term(atoms::links);
    if (links_term && !read_links(env, *links_term, links)) return refuse(env, f, atoms::links);

    if (report.kind != CallKind::Answered) return make_map<1>(env, {{{atoms::outcome, atoms::failed}}});
    const auto seen = reconcile::read_subscriptions(report, one_id);
    if (!seen) return make_map<1>(env, {{{atoms::outcome, atoms::bad_response}}});
    if (!links_term) {
        ERL_NIF_TERM ids = enif_make_list(env, 0);
        for (auto s = seen->rbegin(); s != seen->rend(); ++s)
            ids = enif_make_list_cell(env, encode(env, std::string_view(s->subscription_id)), ids);
        return make_map<2>(env, {{{atoms::outcome, atoms::need_links}, {atoms::subscription_ids, ids}}});
    }
    const auto repairs = reconcile::plan_repairs(*seen, links);
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (auto r = repairs.rbegin(); r != repairs.rend(); ++r)
        list = enif_make_list_cell(env,
                                   make_map<3>(env, {{{atoms::account_id, encode(env, std::string_view(r->account_id))},
                                                      {atoms::subscription_id, encode(env, std::string_view(r->subscription_id))},
                                                      {atoms::event, encode(env, r->event)}}}),
                                   list);
    return make_map<3>(env, {{{atoms::outcome, atoms::repairs}, {atoms::repairs, list},
                              {atoms::enforce_changed_since, encode(env, reconcile::enforce_changed_since(now, window))}}});
}

}  // namespace

// plan_reconcile(#{step := list | one, subscription_id => Id (one), result := Result, now := S,
//                  enforce_window_s => S | undefined, links => #{SubId => #{account_id, state}}})
//   -> #{outcome := failed} | #{outcome := bad_response}
//    | #{outcome := need_links, subscription_ids := [SubId]}   (links absent: gather these, ask again)
//    | #{outcome := repairs, repairs := [#{account_id, subscription_id, event}],
//        enforce_changed_since := S}   (links changed since then get their effects planned again)
// Result: the client's answer to list_subscriptions (step list) or get_subscription (one). On a dirty
// CPU scheduler: a list holds every subscription of the offer.
ERL_NIF_TERM nif_plan_reconcile(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    return enif_schedule_nif(env, "plan_reconcile", ERL_NIF_DIRTY_JOB_CPU_BOUND, guarded<reconcile_now>, argc, argv);
}

}  // namespace azmp::nif
