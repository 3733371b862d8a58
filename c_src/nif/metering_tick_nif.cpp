// Term conversion for the meter's tick, its closing hours and a day's reconciliation
// (azmp/metering_tick.hpp). Decisions are the core's; this only converts.
// NIF entry points for the meter's tick, closing hours and reconciliation (azmp/metering_tick.hpp).
#include "azmp/azure_fields.hpp"
#include "nifs.hpp"
#include "rules_codec.hpp"
#include "terms.hpp"

#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "args.hpp"
#include "azmp/metering_tick.hpp"
#include "codec.hpp"
#include "metering_codec.hpp"
#include "call_result.hpp"
#include "resources.hpp"
#include "terms.hpp"

namespace azmp::nif {

using metering::HeldHour;
using metering::HeldRelease;

template <>
struct EnumAtoms<HeldRelease> {
    static constexpr EnumAtom<HeldRelease> table[] = {{&atoms::keep, HeldRelease::Keep},
                                                      {&atoms::send, HeldRelease::Send},
                                                      {&atoms::carry, HeldRelease::Carry},
                                                      {&atoms::lookup, HeldRelease::Lookup},
                                                      {&atoms::drop, HeldRelease::Drop}};
};

template <>
struct Codec<HeldHour> {
    static std::optional<HeldHour> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
        MapFields f(env, t, "held");
        HeldHour h;
        f.require(atoms::hour, h.hour);
        f.require(atoms::state, h.state);
        f.get(atoms::outcome_unknown, h.outcome_unknown);
        if (f.error()) return std::nullopt;
        return h;
    }
};

namespace {

constexpr std::int64_t kMaxMicros = std::numeric_limits<std::int64_t>::max();
// Unix seconds any clock gives (to the year 37,000): keeps the core's arithmetic in range.
constexpr std::int64_t kMaxTimeS = std::int64_t{1} << 40;
using Time = IntIn<-kMaxTimeS, kMaxTimeS>;
// Held hours one tick reads (a suspension holds a subscription's hours: a day of a few thousand
// subscriptions' dimensions), and closing hours one call takes (the meter closes 500 at a time).
constexpr std::size_t kMaxHeld = 100'000;
constexpr std::size_t kMaxClosing = 1'000;
// A day's ledger for reconciliation (24 hours of every subscription's dimension).
constexpr std::size_t kMaxLedger = 10'000'000;

// The atoms of the values of E for which Pred holds, in the table's order.
template <typename E, typename Pred>
ERL_NIF_TERM atoms_where(ErlNifEnv* env, Pred pred) {
    ERL_NIF_TERM list = enif_make_list(env, 0);
    const auto& table = EnumAtoms<E>::table;
    for (auto it = std::rbegin(table); it != std::rend(table); ++it)
        if (pred(it->value)) list = enif_make_list_cell(env, *it->atom, list);
    return list;
}

// {TermStart, Used} or {TermStart, Used, PrevTermStart, PrevUsed}
bool read_counter(ErlNifEnv* env, ERL_NIF_TERM t, metering::TermCounter& c) {
    int arity;
    const ERL_NIF_TERM* e;
    if (!enif_get_tuple(env, t, &arity, &e) || (arity != 2 && arity != 4)) return false;
    for (int i = 0; i < arity; i += 2) {
        auto start = decode<Time>(env, e[i]);
        auto used = decode<IntIn<0, kMaxMicros>>(env, e[i + 1]);
        if (!start || !used) return false;
        (i == 0 ? c.term_start : c.prev_term_start) = start->value;
        (i == 0 ? c.used : c.prev_used) = used->value;
    }
    return true;
}

ERL_NIF_TERM encode_counter(ErlNifEnv* env, const metering::TermCounter& c) {
    return enif_make_tuple4(env, encode(env, c.term_start), encode(env, c.used), encode(env, c.prev_term_start),
                            encode(env, c.prev_used));
}

// [{FromHour, Micros}]: at most a day of late samples' origins in an hour.
constexpr std::size_t kMaxLate = 100'000;
bool read_late(ErlNifEnv* env, ERL_NIF_TERM t, std::vector<metering::LateSample>& out) {
    ERL_NIF_TERM head, tail = t;
    while (enif_get_list_cell(env, tail, &head, &tail)) {
        int arity;
        const ERL_NIF_TERM* e;
        if (out.size() >= kMaxLate || !enif_get_tuple(env, head, &arity, &e) || arity != 2) return false;
        auto from = decode<Time>(env, e[0]);
        auto q = decode<IntIn<0, kMaxMicros>>(env, e[1]);
        if (!from || !q) return false;
        out.push_back({from->value, q->value});
    }
    return enif_is_empty_list(env, tail);
}

}  // namespace

template <>
struct Codec<metering::CloseFacts> {
    static std::optional<metering::CloseFacts> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
        MapFields f(env, t, "hours");
        metering::CloseFacts c;
        f.require<IntIn<0, kMaxMicros>>(atoms::recorded, c.recorded);
        f.require<IntIn<0, kMaxMicros>>(atoms::carried_in, c.carried_in);
        f.require<IntIn<0, kMaxMicros>>(atoms::included, c.included);
        f.require<Time>(atoms::hour, c.hour);
        std::optional<Time> activated;
        f.get(atoms::activated_at, activated);
        if (activated) c.activated_at = activated->value;
        if (auto counter = f.term(atoms::counter); !counter || !read_counter(env, *counter, c.counter))
            f.fail(atoms::counter);
        if (auto late = f.term(atoms::late); late && !read_late(env, *late, c.late)) f.fail(atoms::late);
        // The link's term as it keeps it (#{<<"startDate">>, <<"endDate">>, <<"termUnit">>}, Azure's
        // spelling), or undefined. A term that does not read as one counts as none.
        if (auto term = f.term(atoms::term); term && !enif_is_identical(*term, atoms::undefined)) {
            const StoredTerm stored = decode_term_fields(env, *term);
            if (!stored.shaped) f.fail(atoms::term);
            else if (stored.term)
                c.term = metering::parse_term(stored.term->start_date, stored.term->end_date, stored.term->term_unit);
        }
        if (f.error()) return std::nullopt;
        return c;
    }
};
// usage_tick(#{now, grace_s, lease_s, call_timeout_ms, history_days, last_reconciled, retry_after,
//              window_waves, held := [#{hour, state, outcome_unknown, _ => _}], lookups := [Hour]})
//   -> #{lease_until, in_flight_until, current_hour, closes_at (the current hour's), archive_last_hour,
//        settled := [Status], submit_states := [LinkState], first_kept_day, overdue_before,
//        reconcile := {DayStart, DayEnd} | undefined, retry_after (of a failed reconciliation),
//        releases := [keep | send | carry | lookup | drop] (one per held hour),
//        lookup_days := [{DayStart, DayEnd}] (one per hour in lookups), batch_size}
ERL_NIF_TERM nif_usage_tick(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    Args a(env);
    MapFields f(env, argv[0], "facts");
    metering::TickFacts t;
    f.require<Time>(atoms::now, t.now);
    f.require<IntIn<0, metering::kMaxGraceS>>(atoms::grace_s, t.grace_s);
    f.require<IntIn<1, 86400>>(atoms::lease_s, t.lease_s);
    f.require<IntIn<1, 86'400'000>>(atoms::call_timeout_ms, t.call_timeout_ms);
    f.require<IntIn<1, 100'000>>(atoms::history_days, t.history_days);
    f.require<Time>(atoms::last_reconciled, t.last_reconciled);
    f.require<Time>(atoms::retry_after, t.reconcile_retry_after);
    f.require<IntIn<1, 1000>>(atoms::window_waves, t.window_waves);
    f.require<ListOf<HeldHour, kMaxHeld>>(atoms::held, t.held);
    std::vector<Time> lookups;
    f.require<ListOf<Time, kMaxHeld>>(atoms::lookups, lookups);
    for (const Time& h : lookups) t.lookups.push_back(h.value);
    a.take(f);
    if (!a.ok()) return a.raise();
    const metering::TickPlan p = metering::plan_tick(t);
    ERL_NIF_TERM releases = enif_make_list(env, 0);
    for (auto it = p.releases.rbegin(); it != p.releases.rend(); ++it)
        releases = enif_make_list_cell(env, encode(env, *it), releases);
    ERL_NIF_TERM days = enif_make_list(env, 0);
    for (auto it = p.lookup_days.rbegin(); it != p.lookup_days.rend(); ++it)
        days = enif_make_list_cell(env, enif_make_tuple2(env, encode(env, it->first), encode(env, it->second)), days);
    return make_map<14>(
        env, {{{atoms::lease_until, encode(env, p.lease_until)},
               {atoms::in_flight_until, encode(env, p.in_flight_until)},
               {atoms::current_hour, encode(env, p.current_hour)},
               {atoms::closes_at, encode(env, p.current_closes_at)},
               {atoms::archive_last_hour, encode(env, p.archive_last_hour)},
               {atoms::settled, atoms_where<metering::ItemOutcome>(env, metering::settled)},
               {atoms::submit_states, atoms_where<LinkState>(env, metering::may_submit)},
               {atoms::first_kept_day, encode(env, p.first_kept_day)},
               {atoms::overdue_before, encode(env, p.overdue_before)},
               {atoms::reconcile, p.reconcile_day ? enif_make_tuple2(env, encode(env, *p.reconcile_day),
                                                                     encode(env, *p.reconcile_day + metering::kDayS - 1))
                                                  : atoms::undefined},
               {atoms::retry_after, encode(env, p.reconcile_retry_at)},
               {atoms::releases, releases},
               {atoms::lookup_days, days},
               {atoms::batch_size, encode(env, static_cast<std::int64_t>(p.batch_size))}}});
}
// usage_close([#{recorded, carried_in, included, counter := {TermStart, Used, PrevTermStart, PrevUsed}, hour,
//                term := #{<<"startDate">>, <<"endDate">>, <<"termUnit">>} | undefined, activated_at => S | undefined,
//                late => [{FromHour, Micros}]}])
//   -> [{Reported, Absorbed, Counter} | {too_large, Counter}]   (at most 1,000 hours a call)
ERL_NIF_TERM nif_usage_close(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    Args a(env);
    std::vector<metering::CloseFacts> hours;
    a.read<ListOf<metering::CloseFacts, kMaxClosing>>(argv[0], atoms::hours, hours);
    if (!a.ok()) return a.raise();
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (auto it = hours.rbegin(); it != hours.rend(); ++it) {
        const metering::ClosePlan p = metering::plan_close_hour(*it);
        const ERL_NIF_TERM one =
            p.too_large ? enif_make_tuple2(env, atoms::too_large, encode_counter(env, p.counter))
                        : enif_make_tuple3(env, encode(env, p.reported), encode(env, p.absorbed), encode_counter(env, p.counter));
        list = enif_make_list_cell(env, one, list);
    }
    return list;
}

namespace {

// On a dirty CPU scheduler: a day's rows of every subscription take tens of ms.
ERL_NIF_TERM reconcile_dirty(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto ours = decode<ListOf<metering::LedgerHour, kMaxLedger>>(env, argv[0]);
    if (!ours) return enif_raise_exception(env, enif_make_tuple2(env, atoms::badarg, atoms::ledger));
    metering::CallResult rows;
    std::optional<boost::json::value> json;
    if (!read_call_result(env, argv[1], AnswerSize::Large, rows, json))
        return enif_raise_exception(env, enif_make_tuple2(env, atoms::badarg, atoms::answer));
    const auto diffs = metering::plan_reconcile(ours->items, rows);
    if (!diffs) return atoms::retry;
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (auto it = diffs->rbegin(); it != diffs->rend(); ++it) {
        const ERL_NIF_TERM verdict = it->verdict == metering::ReconVerdict::Alarm ? atoms::alarm : atoms::differ;
        list = enif_make_list_cell(
            env, make_map<6>(env, {{{atoms::subscription_id, encode(env, std::string_view(it->resource_id))},
                                    {atoms::dimension, encode(env, std::string_view(it->dimension))},
                                    {atoms::verdict, verdict},
                                    {atoms::billed, encode(env, it->billed)},
                                    {atoms::processed, encode(env, it->processed)},
                                    {atoms::recon_status, encode(env, std::string_view(it->recon_status))}}}),
            list);
    }
    return enif_make_tuple2(env, atoms::ok, list);
}

}  // namespace
// usage_reconcile_answer([LedgerHour], Result)   (the day's hours, as the store's usage maps)
//   -> {ok, [#{subscription_id, dimension, verdict := differ | alarm, billed, processed, recon_status}]}
//    | retry                       (Result: the client's answer to get_usage_events; dirty CPU)
ERL_NIF_TERM nif_usage_reconcile_answer(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 2) return enif_make_badarg(env);
    return enif_schedule_nif(env, "usage_reconcile_answer", ERL_NIF_DIRTY_JOB_CPU_BOUND, guarded<reconcile_dirty>,
                             argc, argv);
}

}  // namespace azmp::nif
