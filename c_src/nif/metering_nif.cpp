// Term conversion for the metering rules, through the typed codec and the atoms made at load.
#include "metering_nif.hpp"

#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

#include "args.hpp"
#include "azmp/metering.hpp"
#include "codec.hpp"
#include "metering_codec.hpp"

namespace azmp::nif {

using metering::ItemOutcome;
using metering::RecordRefusal;

namespace {

// {TermStart, Used}
bool read_counter(ErlNifEnv* env, ERL_NIF_TERM t, metering::TermCounter& c) {
    int arity;
    const ERL_NIF_TERM* e;
    if (!enif_get_tuple(env, t, &arity, &e) || arity != 2) return false;
    auto start = decode<std::int64_t>(env, e[0]);
    auto used = decode<std::int64_t>(env, e[1]);
    if (!start || !used || *used < 0) return false;
    c = {*start, *used};
    return true;
}

// A sum of micro-units: far enough from overflow that adding a few more is safe.
// More dimensions than an offer could have: the list is refused before it is walked further.
constexpr std::int64_t kMaxDimensions = 1000;

// Any non-negative 64-bit sum: the core refuses what it cannot bill (plan_close's too_large).
bool micros_ok(std::int64_t m) { return m >= 0; }

}  // namespace

ERL_NIF_TERM nif_usage_quantity(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    std::optional<metering::Micros> m;
    if (auto i = decode<std::int64_t>(env, argv[0])) {
        if (*i >= 0 && *i <= metering::kMaxSample / metering::kUnit) m = *i * metering::kUnit;
    } else if (double d; enif_get_double(env, argv[0], &d)) {
        m = metering::from_double(d);
    } else if (ErlNifBinary bin; enif_inspect_binary(env, argv[0], &bin) && bin.size <= 64) {
        m = metering::parse_decimal(std::string_view(reinterpret_cast<const char*>(bin.data), bin.size));
    }
    if (!m) return atoms::error;
    return enif_make_tuple2(env, atoms::ok, encode(env, *m));
}

ERL_NIF_TERM nif_usage_format(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    Args a(env);
    std::int64_t m = 0;
    a.read(argv[0], atoms::quantity, m);
    if (!a.ok()) return a.raise();
    return encode(env, std::string_view(metering::format_decimal(m)));
}

ERL_NIF_TERM nif_usage_hour(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    Args a(env);
    std::int64_t at = 0;
    a.read(argv[0], atoms::at_ms, at);
    if (!a.ok()) return a.raise();
    return encode(env, metering::hour_of(at));
}

ERL_NIF_TERM nif_usage_plan_record(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    Args a(env);
    metering::SampleFacts f;
    MapFields m(env, argv[0], "dimension_known");
    m.require(atoms::dimension_known, f.dimension_known);
    m.require(atoms::quantity, f.quantity);
    m.require(atoms::at_ms, f.at_ms);
    m.require(atoms::state, f.state);
    m.require(atoms::cancelled_at, f.cancelled_at);
    m.get(atoms::activated_at, f.activated_at);
    m.require(atoms::bucket_open, f.bucket_open);
    m.require(atoms::now, f.now);
    m.require<IntIn<0, metering::kMaxGraceS>>(atoms::grace_s, f.grace_s);
    std::optional<IntIn<0, metering::kMaxLatenessS>> lateness;
    m.require(atoms::lateness_s, lateness);
    m.require<IntIn<0, std::numeric_limits<std::int64_t>::max()>>(atoms::own_total, f.own_total);
    m.require<IntIn<0, std::numeric_limits<std::int64_t>::max()>>(atoms::current_total, f.current_total);
    a.take(m);
    // Beyond what any clock gives (2^50 ms is the year 37,000): keeps the core's ms arithmetic exact.
    constexpr std::int64_t kMaxTimeMs = std::int64_t{1} << 50;
    if (a.ok() && (f.at_ms < -kMaxTimeMs || f.at_ms > kMaxTimeMs)) a.fail(atoms::at_ms);
    if (a.ok() && (f.now < -kMaxTimeMs / 1000 || f.now > kMaxTimeMs / 1000)) a.fail(atoms::now);
    if (a.ok() && f.activated_at && (*f.activated_at < -kMaxTimeMs / 1000 || *f.activated_at > kMaxTimeMs / 1000))
        a.fail(atoms::activated_at);
    if (!a.ok()) return a.raise();
    f.lateness_s = lateness ? lateness->value : metering::default_lateness_s(f.grace_s);
    const metering::RecordPlan p = metering::plan_record(f);
    if (p.refusal) {
        // The refusals with a limit say it, for the caller to act on.
        ERL_NIF_TERM bound_key = 0;
        switch (*p.refusal) {
            case RecordRefusal::TooLate: bound_key = atoms::oldest_accepted_ms; break;
            case RecordRefusal::InFuture: bound_key = atoms::latest_accepted_ms; break;
            case RecordRefusal::BeforeSubscription: bound_key = atoms::activated_at_ms; break;
            case RecordRefusal::HourTotalTooLarge: bound_key = atoms::max; break;
            default: break;
        }
        ERL_NIF_TERM why = encode(env, *p.refusal);
        if (bound_key != 0)
            why = enif_make_tuple2(env, why, make_map<1>(env, {{{bound_key, encode(env, p.bound)}}}));
        return enif_make_tuple2(env, atoms::error, why);
    }
    return enif_make_tuple4(env, atoms::ok, encode(env, p.hour), encode(env, p.carried_from), encode(env, p.closes_at));
}

ERL_NIF_TERM nif_usage_plan_close(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 5) return enif_make_badarg(env);
    Args a(env);
    std::int64_t recorded = 0, carried = 0, included = 0, term = 0;
    metering::TermCounter before;
    if (a.read(argv[0], atoms::recorded, recorded) && !micros_ok(recorded)) a.fail(atoms::recorded);
    if (a.read(argv[1], atoms::carried_in, carried) && !micros_ok(carried)) a.fail(atoms::carried_in);
    if (a.read(argv[2], atoms::included, included) && !micros_ok(included)) a.fail(atoms::included);
    if (a.ok() && (!read_counter(env, argv[3], before) || !micros_ok(before.used))) a.fail(atoms::used);
    a.read(argv[4], atoms::term_start, term);
    if (!a.ok()) return a.raise();
    const metering::ClosePlan p = metering::plan_close(recorded, carried, included, before, term);
    if (p.too_large)
        return enif_make_tuple2(env, atoms::too_large,
                                enif_make_tuple2(env, encode(env, p.counter.term_start), encode(env, p.counter.used)));
    return enif_make_tuple3(env, encode(env, p.reported), encode(env, p.absorbed),
                            enif_make_tuple2(env, encode(env, p.counter.term_start), encode(env, p.counter.used)));
}

ERL_NIF_TERM nif_usage_term_start(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 3) return enif_make_badarg(env);
    Args a(env);
    std::int64_t hour = 0, start = 0, months = 0;
    a.read(argv[0], atoms::hour, hour);
    a.read(argv[1], atoms::term_start, start);
    if (a.read(argv[2], atoms::months, months) && (months < 0 || months > 1200)) a.fail(atoms::months);
    if (!a.ok()) return a.raise();
    return encode(env, metering::term_start_for(hour, start, static_cast<int>(months)));
}

ERL_NIF_TERM nif_usage_term(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 3) return enif_make_badarg(env);
    Args a(env);
    std::string_view start, end, unit;
    a.read(argv[0], atoms::start_date, start);
    a.read(argv[1], atoms::end_date, end);
    a.read(argv[2], atoms::term_unit, unit);
    if (!a.ok()) return a.raise();
    const auto term = metering::parse_term(start, end, unit);
    if (!term) return atoms::error;
    return enif_make_tuple3(env, atoms::ok, encode(env, term->start), encode(env, std::int64_t{term->months}));
}

ERL_NIF_TERM nif_usage_schedule(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 4) return enif_make_badarg(env);
    Args a(env);
    std::int64_t hour = 0, grace = 0, now = 0;
    LinkState state = LinkState::None;
    a.read(argv[0], atoms::hour, hour);
    if (a.read(argv[1], atoms::grace_s, grace) && (grace < 0 || grace > metering::kMaxGraceS)) a.fail(atoms::grace_s);
    a.read(argv[2], atoms::now, now);
    a.read(argv[3], atoms::state, state);
    if (!a.ok()) return a.raise();
    const bool carry = metering::plan_release(hour, now) == metering::Release::Carry;
    return make_map<5>(env, {{{atoms::closes_at, encode(env, metering::closes_at(hour, grace))},
                              {atoms::may_submit, encode(env, metering::may_submit(state))},
                              {atoms::expired, encode(env, metering::expired(hour, now))},
                              {atoms::overdue, encode(env, metering::overdue(hour, grace, now))},
                              {atoms::release, carry ? atoms::carry : atoms::send}}});
}

ERL_NIF_TERM nif_usage_reconcile(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 3) return enif_make_badarg(env);
    Args a(env);
    std::int64_t billed = 0;
    std::optional<std::int64_t> processed;
    std::string_view status;
    if (a.read(argv[0], atoms::billed, billed) && !micros_ok(billed)) a.fail(atoms::billed);
    a.read(argv[1], atoms::processed, processed);
    a.read(argv[2], atoms::status, status);
    if (!a.ok()) return a.raise();
    switch (metering::reconcile_day(billed, processed, status.size() <= 64 ? status : std::string_view("?"))) {
        case metering::ReconVerdict::Agree: return atoms::agree;
        case metering::ReconVerdict::Differ: return atoms::differ;
        case metering::ReconVerdict::Alarm: return atoms::alarm;
    }
    return atoms::differ;
}

namespace {

// The grace the schedule takes (an hour closes at most a day after it ends).
bool read_grace(Args& a, ERL_NIF_TERM t, std::int64_t& grace) {
    if (a.read(t, atoms::grace_s, grace) && (grace < 0 || grace > metering::kMaxGraceS)) a.fail(atoms::grace_s);
    return a.ok();
}

// A setting that is a count: at least 1.
bool read_positive(Args& a, ERL_NIF_TERM t, ERL_NIF_TERM field, std::int64_t& v) {
    if (a.read(t, field, v) && v < 1) a.fail(field);
    return a.ok();
}

}  // namespace

ERL_NIF_TERM nif_usage_archivable(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 2) return enif_make_badarg(env);
    Args a(env);
    std::int64_t now = 0, grace = 0;
    a.read(argv[0], atoms::now, now);
    read_grace(a, argv[1], grace);
    if (!a.ok()) return a.raise();
    ERL_NIF_TERM settled = enif_make_list(env, 0);
    // Built from the end: the list in the table's order.
    const auto& table = EnumAtoms<ItemOutcome>::table;
    for (auto it = std::rbegin(table); it != std::rend(table); ++it)
        if (metering::settled(it->value)) settled = enif_make_list_cell(env, *it->atom, settled);
    return enif_make_tuple2(env, encode(env, metering::last_archivable_hour(now, grace)), settled);
}

ERL_NIF_TERM nif_usage_first_kept_day(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 2) return enif_make_badarg(env);
    Args a(env);
    std::int64_t now = 0, days = 0;
    a.read(argv[0], atoms::now, now);
    read_positive(a, argv[1], atoms::history_days, days);
    if (!a.ok()) return a.raise();
    return encode(env, metering::first_kept_day(now, days));
}

ERL_NIF_TERM nif_usage_daily_reconcile(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 3) return enif_make_badarg(env);
    Args a(env);
    metering::DailyFacts f;
    a.read(argv[0], atoms::now, f.now);
    a.read(argv[1], atoms::last_reconciled, f.last_reconciled);
    a.read(argv[2], atoms::retry_after, f.retry_after);
    if (!a.ok()) return a.raise();
    const auto day = metering::day_to_reconcile(f);
    return day ? enif_make_tuple2(env, atoms::reconcile, encode(env, *day)) : atoms::wait;
}

ERL_NIF_TERM nif_usage_reconcile_retry_at(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    Args a(env);
    std::int64_t now = 0;
    a.read(argv[0], atoms::now, now);
    if (!a.ok()) return a.raise();
    return encode(env, metering::reconcile_retry_at(now));
}

ERL_NIF_TERM nif_usage_dedupe_cutoff(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 2) return enif_make_badarg(env);
    Args a(env);
    std::int64_t now = 0, window = 0;
    a.read(argv[0], atoms::now, now);
    read_positive(a, argv[1], atoms::dedupe_window_s, window);
    if (!a.ok()) return a.raise();
    return encode(env, metering::dedupe_cutoff(now, window));
}

ERL_NIF_TERM nif_usage_sweep_interval_ms(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    Args a(env);
    std::int64_t window = 0;
    read_positive(a, argv[0], atoms::dedupe_window_s, window);
    if (!a.ok()) return a.raise();
    return encode(env, metering::sweep_interval_ms(window));
}

ERL_NIF_TERM nif_usage_check_settings(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1 || !enif_is_map(env, argv[0])) return enif_make_badarg(env);
    using Check = std::optional<metering::SettingVerdict> (*)(std::optional<std::int64_t>) noexcept;
    const std::pair<ERL_NIF_TERM, Check> checks[] = {{atoms::history_days, &metering::check_history_days},
                                                     {atoms::dedupe_window_s, &metering::check_dedupe_window_s},
                                                     {atoms::grace_s, &metering::check_grace_s},
                                                     {atoms::lateness_s, &metering::check_lateness_s}};
    for (const auto& [key, check] : checks) {
        ERL_NIF_TERM v;
        if (!enif_get_map_value(env, argv[0], key, &v)) continue;
        // Not an integer (or beyond 64 bits): the core's "no value".
        const auto verdict = check(decode<std::int64_t>(env, v));
        if (!verdict) continue;
        ERL_NIF_TERM why = atoms::not_a_positive_integer;
        switch (verdict->problem) {
            case metering::SettingProblem::NotAPositiveInteger: break;
            case metering::SettingProblem::NotANonNegativeInteger: why = atoms::not_a_non_negative_integer; break;
            case metering::SettingProblem::BelowMinimum:
                why = enif_make_tuple2(env, atoms::at_least, encode(env, verdict->bound));
                break;
            case metering::SettingProblem::AboveMaximum:
                why = enif_make_tuple2(env, atoms::at_most, encode(env, verdict->bound));
                break;
        }
        return enif_make_tuple2(env, atoms::error, enif_make_tuple2(env, key, why));
    }
    // The dimensions' ids (those that are binaries: the caller checks each dimension's shape).
    if (ERL_NIF_TERM dims; enif_get_map_value(env, argv[0], atoms::dimensions, &dims)) {
        std::vector<std::string_view> ids;
        std::vector<std::int64_t> positions;  // 1-based, in the list
        ERL_NIF_TERM head, tail = dims, id;
        std::int64_t n = 0;
        while (n < kMaxDimensions && enif_get_list_cell(env, tail, &head, &tail)) {
            ++n;
            if (!enif_is_map(env, head) || !enif_get_map_value(env, head, atoms::id, &id)) continue;
            if (const auto v = decode<std::string_view>(env, id)) {
                ids.push_back(*v);
                positions.push_back(n);
            }
        }
        ERL_NIF_TERM why = 0;
        if (!enif_is_empty_list(env, tail)) {
            why = enif_is_list(env, tail) ? enif_make_tuple2(env, atoms::at_most, encode(env, kMaxDimensions))
                                          : atoms::not_a_list;
        } else if (const auto i = metering::repeated_dimension(ids)) {
            why = enif_make_tuple2(env, atoms::repeated_id, encode(env, positions[*i]));
        }
        if (why != 0) return enif_make_tuple2(env, atoms::error, enif_make_tuple2(env, atoms::dimensions, why));
    }
    return atoms::ok;
}

}  // namespace azmp::nif
