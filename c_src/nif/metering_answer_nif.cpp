// Term conversion for the meter's answers (azmp/metering_answer.hpp): the hours sent, the client's
// result of the call, and the decisions back. Azure's JSON is read by the core, never here.
// NIF entry point for the meter's answers (azmp/metering_answer.hpp): term conversion only.
#include "nifs.hpp"
#include "call_result.hpp"

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "args.hpp"
#include "azmp/metering_answer.hpp"
#include "codec.hpp"
#include "metering_codec.hpp"
#include "resources.hpp"
#include "terms.hpp"

namespace azmp::nif {

using azmp::CallKind;
using azmp::CallReport;

using metering::HourDecision;
using metering::ItemOutcome;
using metering::SentHour;

namespace {

// The most hours one answer is about: a batch holds 25, a check one; a lookup settles a day's hours
// in doubt of every subscription of a dimension (on a dirty scheduler).
constexpr std::size_t kMaxBatchHours = 25;
constexpr std::size_t kMaxHours = 1'000'000;

constexpr std::int64_t kMaxMicros = std::numeric_limits<std::int64_t>::max();
// A day's ledger of a dimension: 24 hours of every subscription.
constexpr std::size_t kMaxDayHours = 10'000'000;

}  // namespace

template <>
struct Codec<SentHour> {
    static std::optional<SentHour> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
        MapFields f(env, t, "hours");
        SentHour h;
        std::int64_t attempts = 0;
        f.require(atoms::subscription_id, h.resource_id);
        f.require(atoms::dimension, h.dimension);
        f.require(atoms::hour, h.hour);
        f.require<IntIn<0, kMaxMicros>>(atoms::reported, h.quantity);
        std::optional<std::string> plan;  // undefined: none known
        f.get(atoms::plan_id, plan);
        h.plan_id = plan.value_or("");
        f.get<IntIn<0, 1'000'000>>(atoms::attempts, attempts);
        f.get(atoms::outcome_unknown, h.outcome_unknown);
        f.require(atoms::state, h.state);
        if (f.error()) return std::nullopt;
        h.attempts = static_cast<std::uint32_t>(attempts);
        return h;
    }
};


namespace {

ERL_NIF_TERM encode_decision(ErlNifEnv* env, const HourDecision& d) {
    const ERL_NIF_TERM reason = d.reason.empty() ? atoms::undefined : atom_named(env, d.reason);
    return make_map<11>(env, {{{atoms::outcome, encode(env, d.outcome)},
                               {atoms::reason, reason},
                               {atoms::carry, encode(env, d.carry)},
                               {atoms::alarm, encode(env, d.alarm)},
                               {atoms::next_attempt_at, encode(env, d.next_attempt_at)},
                               {atoms::outcome_unknown, encode(env, d.outcome_unknown)},
                               {atoms::attempt_failed, encode(env, d.attempt_failed)},
                               {atoms::plan_id, encode(env, d.plan_id)},
                               {atoms::event_id, encode(env, d.event_id)},
                               {atoms::message_time, encode(env, d.message_time)},
                               {atoms::azure_quantity, encode(env, d.azure_quantity)}}});
}

}  // namespace

namespace {

ERL_NIF_TERM answer_now(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 2) return enif_make_badarg(env);
    Args a(env);
    MapFields f(env, argv[0], "facts");
    ERL_NIF_TERM step = 0;
    std::vector<SentHour> hours;
    std::int64_t now = 0;
    std::vector<metering::LedgerHour> day;
    metering::RetrySettings retry;
    ERL_NIF_TERM refused_as = atoms::undefined;
    if (auto t = f.term(atoms::step)) step = *t;
    else f.fail(atoms::step);
    f.require<ListOf<SentHour, kMaxHours>>(atoms::hours, hours);
    f.require(atoms::now, now);
    f.get<IntIn<1, 86400 * 365>>(atoms::retry_base_s, retry.base_s);
    f.get<IntIn<1, 86400 * 365>>(atoms::retry_max_s, retry.max_s);
    f.get<ListOf<metering::LedgerHour, kMaxDayHours>>(atoms::day, day);
    if (auto t = f.term(atoms::refused_as)) refused_as = *t;
    a.take(f);
    CallReport result;
    std::optional<boost::json::value> json;
    const AnswerSize size = enif_is_identical(step, atoms::lookup) ? AnswerSize::Large : AnswerSize::Small;
    if (a.ok() && !read_call_result(env, argv[1], size, result, json)) a.fail(atoms::answer);
    if (a.ok() && enif_is_identical(step, atoms::check) && hours.size() != 1) a.fail(atoms::hours);
    if (a.ok() && !enif_is_identical(step, atoms::batch) && !enif_is_identical(step, atoms::lookup) &&
        !enif_is_identical(step, atoms::check))
        a.fail(atoms::step);
    if (!a.ok()) return a.raise();

    std::vector<HourDecision> decisions;
    std::size_t unmatched = 0;
    if (enif_is_identical(step, atoms::batch)) {
        metering::BatchPlan p = metering::plan_batch_answer(hours, result, retry, now);
        decisions = std::move(p.hours);
        unmatched = p.unmatched;
    } else if (enif_is_identical(step, atoms::lookup)) {
        decisions = metering::plan_lookups(hours, day, result, retry, now);
    } else {
        char name[64] = {};
        if (enif_get_atom(env, refused_as, name, sizeof name, ERL_NIF_LATIN1) <= 0) name[0] = '\0';
        decisions.push_back(metering::plan_subscription_check(hours[0], name, result, retry, now));
    }
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (auto it = decisions.rbegin(); it != decisions.rend(); ++it)
        list = enif_make_list_cell(env, encode_decision(env, *it), list);
    return enif_make_tuple2(env, list, encode(env, static_cast<std::int64_t>(unmatched)));
}

}  // namespace
// usage_answer(Facts, Result) -> {[Decision], Unmatched}
//   Facts :: #{step := batch | lookup | check, hours := [Hour] (batch: 1..25; check: one; lookup: the
//              hours in doubt of a UTC day and dimension),
//              now := unix s, retry_base_s => S, retry_max_s => S,
//              day => [LedgerHour] (lookup: the ledger's hours of that day and dimension),
//              refused_as => atom() (check)}
//   Hour :: #{subscription_id, dimension, hour, reported := Micros, plan_id, attempts, outcome_unknown,
//             state := link_state(), _ => _}
//   Result :: the client's {ok, Decoded} | {error, Reason} for the step's call (post_usage_batch,
//             get_usage_events, get_subscription)
//   Decision :: #{outcome, reason, carry, alarm, next_attempt_at, outcome_unknown, attempt_failed,
//                 plan_id, event_id, message_time, azure_quantity}
ERL_NIF_TERM nif_usage_answer(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 2) return enif_make_badarg(env);
    // A batch's answer holds 25 items: at once. A lookup reads a day's usageEvents rows of every
    // subscription of a dimension: on a dirty CPU scheduler.
    ERL_NIF_TERM step, hours;
    if (enif_is_map(env, argv[0]) && enif_get_map_value(env, argv[0], atoms::step, &step) &&
        enif_is_identical(step, atoms::lookup))
        return enif_schedule_nif(env, "usage_answer", ERL_NIF_DIRTY_JOB_CPU_BOUND, guarded<answer_now>, argc, argv);
    // Anything else is about a batch's hours at most: refused before it is walked.
    unsigned length = 0;
    if (enif_is_map(env, argv[0]) && enif_get_map_value(env, argv[0], atoms::hours, &hours) &&
        (!enif_get_list_length(env, hours, &length) || length > kMaxBatchHours))
        return enif_raise_exception(env, enif_make_tuple2(env, atoms::badarg, atoms::hours));
    return answer_now(env, argc, argv);
}

}  // namespace azmp::nif
