// Term conversion for the metering rules, through the typed codec and the atoms made at load.
// NIF entry points for the metering rules (azmp/metering.hpp): term conversion only, short calls.
// Quantities cross the boundary as integer micro-units; a wrong shape raises `{badarg, Field}`.
#include "nifs.hpp"

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

using metering::RecordRefusal;

namespace {

// More dimensions than an offer could have: the list is refused before it is walked further.
constexpr std::int64_t kMaxDimensions = 1000;

}  // namespace
// usage_quantity(integer() | float() | binary()) -> {ok, Micros} | error
//   (a binary is an exact decimal such as <<"12.5">>; at most 6 decimals)
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
// usage_format(Micros) -> binary() (the exact decimal text)
ERL_NIF_TERM nif_usage_format(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    Args a(env);
    std::int64_t m = 0;
    a.read(argv[0], atoms::quantity, m);
    if (!a.ok()) return a.raise();
    return encode(env, std::string_view(metering::format_decimal(m)));
}
// usage_hour(AtMs) -> HourStart (unix s, UTC)
ERL_NIF_TERM nif_usage_hour(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    Args a(env);
    std::int64_t at = 0;
    a.read(argv[0], atoms::at_ms, at);
    if (!a.ok()) return a.raise();
    return encode(env, metering::hour_of(at));
}
// usage_plan_record(#{dimension_known, quantity, at_ms, state, cancelled_at, activated_at, bucket_open, now,
//                     grace_s, lateness_s (undefined: a day less the grace), own_total, current_total})
//   -> {ok, Hour, CarriedFrom | undefined, ClosesAt} | {error, Reason | {Reason, #{Bound => Value}}}
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

// usage_sweep(#{now := S, dedupe_window_s := S})
//   -> #{expired_before := S (source ids recorded before then count no more), next_in_ms := Ms}
ERL_NIF_TERM nif_usage_sweep(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    MapFields f(env, argv[0], "facts");
    std::int64_t now = 0, window = 0;
    f.require(atoms::now, now);
    if (f.require(atoms::dedupe_window_s, window) && window < 1) f.fail(atoms::dedupe_window_s);
    if (!f.ok()) return enif_raise_exception(env, encode(env, *f.error()));
    return make_map<2>(env, {{{atoms::expired_before, encode(env, metering::dedupe_cutoff(now, window))},
                              {atoms::next_in_ms, encode(env, metering::sweep_interval_ms(window))}}});
}
// usage_settings(#{grace_s => _, lateness_s => _, lease_s => _, tick_ms => _, retry_base_s => _, retry_max_s => _,
//                  history_days => _, dedupe_window_s => _, dimensions => _, ...})
//   -> {#{grace_s, lateness_s, lease_s, tick_ms, retry_base_s, retry_max_s, history_days, dedupe_window_s},
//       Refused :: [{Setting, not_a_positive_integer | not_a_non_negative_integer | {at_least, Min} | {at_most, Max}}
//                   | {dimensions, {repeated_id, N} | not_a_list | {at_most, Max}}]}   (N: 1-based)
//   Every timing the operator's where given and accepted, else the core's default; what was refused,
//   in a fixed order (other keys are not this function's).
ERL_NIF_TERM nif_usage_settings(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1 || !enif_is_map(env, argv[0])) return enif_make_badarg(env);
    ERL_NIF_TERM keys[] = {atoms::grace_s,      atoms::lateness_s,  atoms::lease_s,      atoms::tick_ms,
                                 atoms::retry_base_s, atoms::retry_max_s, atoms::history_days, atoms::dedupe_window_s};
    static_assert(std::size(keys) == std::size(metering::kSettings));
    metering::SettingValue given[std::size(metering::kSettings)];
    for (std::size_t i = 0; i < std::size(keys); ++i) {
        ERL_NIF_TERM v;
        // Not an integer (or beyond 64 bits): the core's "no value".
        if (enif_get_map_value(env, argv[0], keys[i], &v)) given[i] = {decode<std::int64_t>(env, v), true};
    }
    const metering::ResolvedSettings r = metering::resolve_settings(given);
    ERL_NIF_TERM values[std::size(keys)];
    for (std::size_t i = 0; i < std::size(keys); ++i) values[i] = encode(env, r.values[i]);
    ERL_NIF_TERM settings;
    if (!enif_make_map_from_arrays(env, keys, values, std::size(keys), &settings)) return enif_make_badarg(env);
    std::vector<ERL_NIF_TERM> refused;
    for (const auto& [setting, verdict] : r.refused) {
        ERL_NIF_TERM why = atoms::not_a_positive_integer;
        switch (verdict.problem) {
            case metering::SettingProblem::NotAPositiveInteger: break;
            case metering::SettingProblem::NotANonNegativeInteger: why = atoms::not_a_non_negative_integer; break;
            case metering::SettingProblem::BelowMinimum:
                why = enif_make_tuple2(env, atoms::at_least, encode(env, verdict.bound));
                break;
            case metering::SettingProblem::AboveMaximum:
                why = enif_make_tuple2(env, atoms::at_most, encode(env, verdict.bound));
                break;
        }
        refused.push_back(enif_make_tuple2(env, keys[static_cast<std::size_t>(setting)], why));
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
        if (why != 0) refused.push_back(enif_make_tuple2(env, atoms::dimensions, why));
    }
    return enif_make_tuple2(env, settings, enif_make_list_from_array(env, refused.data(), static_cast<unsigned>(refused.size())));
}

}  // namespace azmp::nif
