// Term conversion for the fulfillment reconciliation's step (azmp/reconcile_step.hpp).
#include <erl_nif.h>

#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "azmp/client.hpp"
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

// pace := #{now_ms, started_ms, interval_ms, pages_done, pages_last_pass, max_calls_per_s => N,
//           took_ms => Ms, calls => N}
bool read_pace(ErlNifEnv* env, ERL_NIF_TERM t, reconcile::Pace& pace) {
    MapFields pf(env, t, "pace");
    pf.require(atoms::now_ms, pace.now_ms);
    pf.require(atoms::started_ms, pace.started_ms);
    pf.require(atoms::interval_ms, pace.interval_ms);
    pf.require(atoms::pages_done, pace.pages_done);
    pf.require(atoms::pages_last_pass, pace.pages_last_pass);
    pf.get<double>(atoms::max_calls_per_s, pace.max_calls_per_s);
    pf.get(atoms::took_ms, pace.took_ms);
    pf.get(atoms::calls, pace.calls);
    return pf.ok();
}

ERL_NIF_TERM encode_repairs(ErlNifEnv* env, const std::vector<reconcile::Repair>& repairs) {
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (auto r = repairs.rbegin(); r != repairs.rend(); ++r)
        list = enif_make_list_cell(env,
                                   make_map<3>(env, {{{atoms::account_id, encode(env, std::string_view(r->account_id))},
                                                      {atoms::subscription_id, encode(env, std::string_view(r->subscription_id))},
                                                      {atoms::event, encode(env, r->event)}}}),
                                   list);
    return list;
}

ERL_NIF_TERM need_links(ErlNifEnv* env, const std::vector<reconcile::Seen>& seen) {
    ERL_NIF_TERM ids = enif_make_list(env, 0);
    for (auto s = seen.rbegin(); s != seen.rend(); ++s)
        ids = enif_make_list_cell(env, encode(env, std::string_view(s->subscription_id)), ids);
    return make_map<2>(env, {{{atoms::outcome, atoms::need_links}, {atoms::subscription_ids, ids}}});
}

// One page of a pass: its repairs, where the pass goes on and when.
ERL_NIF_TERM plan_page(ErlNifEnv* env, MapFields& f, const CallReport& report, std::int64_t now,
                       std::optional<std::int64_t> window, const std::unordered_map<std::string, reconcile::Local>* links) {
    reconcile::Pace pace;
    const auto pace_term = f.term(atoms::pace);
    if (!pace_term || !read_pace(env, *pace_term, pace)) return refuse(env, f, atoms::pace);
    ShortBinary base{kDefaultMarketplaceUrl};
    if (const auto b = f.term(atoms::marketplace_url); b && !enif_is_identical(*b, atoms::undefined)) {
        const auto d = decode<ShortBinary>(env, *b);
        if (!d) return refuse(env, f, atoms::marketplace_url);
        base = *d;
    }
    if (report.kind != CallKind::Answered)
        return make_map<2>(env, {{{atoms::outcome, atoms::failed},
                                  {atoms::next_in_ms, encode(env, reconcile::retry_page_in_ms(pace))}}});
    const auto reading = reconcile::read_page(report, base.value);
    if (reading.fault != reconcile::PageFault::None)
        return make_map<3>(env, {{{atoms::outcome, atoms::bad_response},
                                  {atoms::reason, reading.fault == reconcile::PageFault::ForeignContinuation
                                                      ? atoms::foreign_continuation : atoms::unreadable},
                                  {atoms::next_in_ms, encode(env, reconcile::next_pass_in_ms(pace))}}});
    if (!links) return need_links(env, reading.page.seen);
    const auto& next = reading.page.continuation;
    const std::int64_t in_ms = next ? reconcile::next_page_in_ms(pace) : reconcile::next_pass_in_ms(pace);
    return make_map<5>(env, {{{atoms::outcome, atoms::repairs},
                              {atoms::repairs, encode_repairs(env, reconcile::plan_repairs(reading.page.seen, *links))},
                              {atoms::enforce_changed_since, encode(env, reconcile::enforce_changed_since(now, window))},
                              {atoms::continuation, next ? encode(env, std::string_view(*next)) : atoms::done},
                              {atoms::next_in_ms, encode(env, in_ms)}}});
}

ERL_NIF_TERM reconcile_now(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    MapFields f(env, argv[0], "facts");
    const auto step = f.term(atoms::step);
    if (!step || (!enif_is_identical(*step, atoms::list) && !enif_is_identical(*step, atoms::one) &&
                  !enif_is_identical(*step, atoms::page)))
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

    if (enif_is_identical(*step, atoms::page)) return plan_page(env, f, report, now, window, links_term ? &links : nullptr);
    if (report.kind != CallKind::Answered) return make_map<1>(env, {{{atoms::outcome, atoms::failed}}});
    const auto seen = reconcile::read_subscriptions(report, one_id);
    if (!seen) return make_map<1>(env, {{{atoms::outcome, atoms::bad_response}}});
    if (!links_term) return need_links(env, *seen);
    return make_map<3>(env, {{{atoms::outcome, atoms::repairs}, {atoms::repairs, encode_repairs(env, reconcile::plan_repairs(*seen, links))},
                              {atoms::enforce_changed_since, encode(env, reconcile::enforce_changed_since(now, window))}}});
}

}  // namespace

// plan_reconcile(#{step := list | one, subscription_id => Id (one), result := Result, now := S,
//                  enforce_window_s => S | undefined, links => #{SubId => #{account_id, state}}})
//   -> #{outcome := failed} | #{outcome := bad_response}
//    | #{outcome := need_links, subscription_ids := [SubId]}   (links absent: gather these, ask again)
//    | #{outcome := repairs, repairs := [#{account_id, subscription_id, event}],
//        enforce_changed_since := S}   (links changed since then get their effects planned again)
// plan_reconcile(#{step := page, result := Result, now := S, enforce_window_s => S | undefined,
//                  links => ..., marketplace_url => binary() | undefined (Azure's),
//                  pace := #{now_ms, started_ms, interval_ms, pages_done (this page included),
//                            pages_last_pass (0: unknown), max_calls_per_s => number(),
//                            took_ms => Ms (how long this step's calls took, up to now_ms)}})
//   -> #{outcome := failed, next_in_ms := Ms}                   (ask for the same page again then)
//    | #{outcome := bad_response, reason := unreadable | foreign_continuation, next_in_ms := Ms}
//                                                               (the pass ends; the next starts then)
//    | #{outcome := need_links, subscription_ids := [SubId]}
//    | #{outcome := repairs, repairs, enforce_changed_since, continuation := binary() | done,
//        next_in_ms := Ms}   (the next page then; done: the pass is over, the next pass starts then)
// next_in_ms counts from now_ms: gaps are between call starts, so it is the gap less took_ms.
// Result: the client's answer to list_subscriptions (step list), list_subscriptions_page (page) or
// get_subscription (one). On a dirty CPU scheduler: a list holds every subscription of the offer.
ERL_NIF_TERM nif_plan_reconcile(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    return enif_schedule_nif(env, "plan_reconcile", ERL_NIF_DIRTY_JOB_CPU_BOUND, guarded<reconcile_now>, argc, argv);
}

}  // namespace azmp::nif
