// Term conversion for the webhook's steps (azmp/webhook_step.hpp): the body, Azure's answers (the
// client's results, read by the core) and the plans back. Nothing here decides.
#include <erl_nif.h>

#include <boost/json/value.hpp>

#include <array>
#include <optional>
#include <string_view>
#include <utility>

#include "azmp/webhook_step.hpp"
#include "call_result.hpp"
#include "nifs.hpp"
#include "rules_codec.hpp"
#include "terms.hpp"

namespace azmp::nif {
namespace {

using webhook::Delivery;
using webhook::Reply;
using webhook::StepPlan;

ERL_NIF_TERM encode_reply(ErlNifEnv* env, const Reply& r) {
    ERL_NIF_TERM k = atom_named(env, r.key), v = atom_named(env, r.reason);
    ERL_NIF_TERM body;
    if (!enif_make_map_from_arrays(env, &k, &v, 1, &body)) return enif_make_badarg(env);
    return enif_make_tuple2(env, encode(env, std::int64_t{r.status}), body);
}

template <typename T>
ERL_NIF_TERM or_undefined(ErlNifEnv* env, const std::optional<T>& v) {
    return v ? encode(env, *v) : atoms::undefined;
}

ERL_NIF_TERM encode_plan(ErlNifEnv* env, const StepPlan& p) {
    const ERL_NIF_TERM need = p.need_plan_known
                                  ? enif_make_tuple2(env, atoms::plan_known, encode(env, std::string_view(*p.need_plan_known)))
                                  : atoms::none;
    const ERL_NIF_TERM answer = !p.answer ? atoms::none : *p.answer ? atoms::success : atoms::failure;
    ERL_NIF_TERM apply = atoms::none;
    if (p.event) {
        const ERL_NIF_TERM info = make_map<3>(
            env, {{{atoms::plan_id, p.info.plan_id ? encode(env, std::string_view(*p.info.plan_id)) : atoms::undefined},
                   {atoms::quantity, or_undefined(env, p.info.quantity)},
                   {atoms::term, encode_term_fields(env, p.info.term)}}});
        apply = make_map<3>(env, {{{atoms::event, encode(env, *p.event)}, {atoms::info, info},
                                   {atoms::at, or_undefined(env, p.at_ms)}}});
    }
    return make_map<7>(env, {{{atoms::need, need},
                              {atoms::answer, answer},
                              {atoms::apply, apply},
                              {atoms::record, p.record ? encode(env, *p.record) : atoms::none},
                              {atoms::release, encode(env, p.release)},
                              {atoms::deferred, encode(env, p.deferred)},
                              {atoms::reply, p.reply ? encode_reply(env, *p.reply) : atoms::none}}});
}

ERL_NIF_TERM delivery_step(ErlNifEnv* env, MapFields& f) {
    ErlNifBinary body;
    const auto t = f.term(atoms::body);
    if (!t || !enif_inspect_binary(env, *t, &body)) {
        f.fail(atoms::body);
        return enif_raise_exception(env, encode(env, *f.error()));
    }
    const auto d = webhook::read_delivery(std::string_view(reinterpret_cast<const char*>(body.data), body.size));
    if (!d) return enif_make_tuple2(env, atoms::reply, encode_reply(env, webhook::bad_body()));
    return enif_make_tuple2(
        env, atoms::act,
        make_map<4>(env, {{{atoms::operation_id, encode(env, std::string_view(d->operation_id))},
                           {atoms::subscription_id, encode(env, std::string_view(d->subscription_id))},
                           {atoms::action, encode(env, std::string_view(d->action))},
                           {atoms::term, encode_term_fields(env, d->term)}}}));
}

ERL_NIF_TERM operation_step(ErlNifEnv* env, MapFields& f) {
    std::string_view op, sub, action;
    f.require<ShortBinary>(atoms::operation_id, op);
    f.require<ShortBinary>(atoms::subscription_id, sub);
    f.require<ShortBinary>(atoms::action, action);
    std::optional<bool> plan_known;
    if (const auto known = f.term(atoms::plan_known)) {
        plan_known = decode<bool>(env, *known);
        if (!plan_known) f.fail(atoms::plan_known);
    }
    const auto term = f.term(atoms::term);
    const auto result = f.term(atoms::result);
    CallReport report;
    std::optional<boost::json::value> json;
    if (f.ok() && (!result || !read_call_result(env, *result, AnswerSize::Small, report, json))) f.fail(atoms::result);
    if (!f.ok()) return enif_raise_exception(env, encode(env, *f.error()));
    const Delivery d{std::string(op), std::string(sub), std::string(action), term ? decode_term_fields(env, *term).term : std::nullopt};
    return encode_plan(env, webhook::plan_operation(d, report, plan_known));
}

ERL_NIF_TERM answered_step(ErlNifEnv* env, MapFields& f) {
    const auto answer = f.term(atoms::answer);
    const auto result = f.term(atoms::result);
    if (!answer || (!enif_is_identical(*answer, atoms::success) && !enif_is_identical(*answer, atoms::failure)))
        f.fail(atoms::answer);
    CallReport report;
    std::optional<boost::json::value> json;
    if (f.ok() && (!result || !read_call_result(env, *result, AnswerSize::Small, report, json))) f.fail(atoms::result);
    if (!f.ok()) return enif_raise_exception(env, encode(env, *f.error()));
    const auto p = webhook::plan_answered(enif_is_identical(*answer, atoms::success), report);
    return p ? encode_plan(env, *p) : atoms::proceed;
}

}  // namespace

// plan_webhook(Facts) -> the step's plan. Facts, by step:
//   #{step := delivery, body := binary()}  (authenticated, at most 64 KiB)
//     -> {act, #{operation_id, subscription_id, action, term}} | {reply, {400, #{error := bad_webhook_body}}}
//   #{step := operation, operation_id, subscription_id, action, term, result := GetOperationResult,
//     plan_known => boolean()}
//     -> #{need := none | {plan_known, PlanId}, answer := none | success | failure,
//          apply := none | #{event, info := #{plan_id, quantity, term}, at}, record := none | refused | ignored,
//          release := boolean(), deferred := boolean(), reply := none | {Status, #{error | status := atom()}}}
//   #{step := answered, answer := success | failure, result := ok | {error, Reason}} -> proceed | Plan
// Results are the client's ({ok, Answer} | {error, Reason}). A wrong shape raises {badarg, Field}.
ERL_NIF_TERM nif_plan_webhook(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    MapFields f(env, argv[0], "facts");
    const auto step = f.term(atoms::step);
    if (step && enif_is_identical(*step, atoms::delivery)) return delivery_step(env, f);
    if (step && enif_is_identical(*step, atoms::operation)) return operation_step(env, f);
    if (step && enif_is_identical(*step, atoms::answered)) return answered_step(env, f);
    f.fail(atoms::step);
    return enif_raise_exception(env, encode(env, *f.error()));
}

}  // namespace azmp::nif
