// Term conversion for the linking job's steps (azmp/link_step.hpp): the client's results in, the
// plan out. Nothing here decides.
#include <erl_nif.h>

#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string_view>

#include "azmp/link_step.hpp"
#include "call_result.hpp"
#include "nifs.hpp"
#include "rules_codec.hpp"
#include "terms.hpp"

namespace azmp::nif {
namespace {

using linking::Next;
using linking::Step;

// A Resolve answer: a dozen fields (the offer, the plan, the buyer, the term).
constexpr std::size_t kMaxResolvedNodes = 20'000;
constexpr std::size_t kMaxResolvedBytes = 1024 * 1024;

ERL_NIF_TERM next_atom(Next n) {
    switch (n) {
        case Next::Decide: return atoms::decide;
        case Next::Activate: return atoms::activate;
        case Next::Confirm: return atoms::confirm;
        case Next::Linked: return atoms::linked;
        case Next::Refuse: return atoms::refuse;
        case Next::Retry: return atoms::retry;
        case Next::Nothing: return atoms::nothing;
    }
    return atoms::nothing;
}

std::optional<Step> step_of(ERL_NIF_TERM t) {
    if (enif_is_identical(t, atoms::resolved)) return Step::Resolved;
    if (enif_is_identical(t, atoms::checked)) return Step::Checked;
    if (enif_is_identical(t, atoms::activated)) return Step::Activated;
    if (enif_is_identical(t, atoms::confirmed)) return Step::Confirmed;
    return std::nullopt;
}

ERL_NIF_TERM text_or_undefined(ErlNifEnv* env, const std::optional<std::string>& s) {
    return s ? encode(env, std::string_view(*s)) : atoms::undefined;
}

}  // namespace

// plan_link_step(#{step := resolved | checked | activated | confirmed, result := Result,
//                  resolved => ResolveAnswer | undefined, attempts := N, retry_base_s := S, retry_max_s := S,
//                  now := S, job_current => boolean()})
//   -> #{next := decide | activate | confirm | linked | refuse | retry | nothing, subscription_id, status,
//        plan_id, quantity, term, reason, effects, retry_at, attempts}
// Result: the client's ok | {ok, Answer} | {error, Reason}. A wrong shape raises {badarg, Field}.
ERL_NIF_TERM nif_plan_link_step(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    MapFields f(env, argv[0], "facts");
    linking::StepFacts facts;
    const auto step = f.term(atoms::step);
    if (!step || !step_of(*step)) f.fail(atoms::step);
    else facts.step = *step_of(*step);
    std::int64_t attempts = 0;
    f.require(atoms::attempts, attempts);
    if (f.ok() && (attempts < 0 || attempts > 1'000'000)) f.fail(atoms::attempts);
    f.require(atoms::retry_base_s, facts.retry_base_s);
    f.require(atoms::retry_max_s, facts.retry_max_s);
    f.require(atoms::now, facts.now);
    f.get(atoms::job_current, facts.job_current);
    facts.attempts = static_cast<std::uint32_t>(attempts);
    std::optional<boost::json::value> result_json, resolved_json;
    const auto result = f.term(atoms::result);
    if (f.ok() && (!result || !read_call_result(env, *result, AnswerSize::Small, facts.result, result_json)))
        f.fail(atoms::result);
    if (const auto resolved = f.term(atoms::resolved); f.ok() && resolved && !enif_is_identical(*resolved, atoms::undefined)) {
        JsonBudget budget{kMaxResolvedNodes, kMaxResolvedBytes};
        resolved_json = term_to_json(env, *resolved, budget);
        if (!resolved_json) f.fail(atoms::resolved);
    }
    if (!f.ok()) return enif_raise_exception(env, encode(env, *f.error()));
    facts.resolved = resolved_json ? &*resolved_json : nullptr;

    const linking::StepPlan p = linking::plan_link_step(facts);
    return make_map<10>(
        env, {{{atoms::next, next_atom(p.next)},
               {atoms::subscription_id, p.subscription_id.empty() ? atoms::undefined : encode(env, std::string_view(p.subscription_id))},
               {atoms::status, p.azure_status.empty() ? atoms::undefined : encode(env, std::string_view(p.azure_status))},
               {atoms::plan_id, text_or_undefined(env, p.plan_id)},
               {atoms::quantity, p.quantity ? encode(env, *p.quantity) : atoms::undefined},
               {atoms::term, encode_term_fields(env, p.term)},
               {atoms::reason, p.refusal ? encode(env, *p.refusal) : atoms::undefined},
               {atoms::effects, encode_list(env, p.effects)},
               {atoms::retry_at, encode(env, p.retry_at)},
               {atoms::attempts, encode(env, std::int64_t{p.attempts})}}});
}

// plan_landing(#{result := ResolveResult, now := S})
//   -> #{outcome := resolved | resolve_later | invalid_token, expires_at := S}
ERL_NIF_TERM nif_plan_landing(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    MapFields f(env, argv[0], "facts");
    std::int64_t now = 0;
    f.require(atoms::now, now);
    CallReport report;
    std::optional<boost::json::value> json;
    const auto result = f.term(atoms::result);
    if (f.ok() && (!result || !read_call_result(env, *result, AnswerSize::Small, report, json))) f.fail(atoms::result);
    if (!f.ok()) return enif_raise_exception(env, encode(env, *f.error()));
    const linking::LandingPlan p = linking::plan_landing(report, now);
    const ERL_NIF_TERM outcome = p.outcome == linking::LandingOutcome::Resolved       ? atoms::resolved
                                 : p.outcome == linking::LandingOutcome::InvalidToken ? atoms::invalid_token
                                                                                      : atoms::resolve_later;
    return make_map<2>(env, {{{atoms::outcome, outcome}, {atoms::expires_at, encode(env, p.expires_at)}}});
}

}  // namespace azmp::nif
