// Term conversion for the product rules, through the typed codec (codec.hpp) and the atoms made at
// load (atoms.hpp). Arguments are read in order; the first wrong one raises `error:{badarg, Field}`.
// NIF entry points for the product rules (azmp/rules.hpp): term conversion only, synchronous and
// short (every list is bounded). A wrong shape raises `{badarg, Field}` naming what was wrong: the
// arguments are read left to right (a map's fields in the order listed here), the first wrong one named.
//
// Effects come back as a list, each one of:
//   activate | {answer_operation, success | failure} | {set_payment_method, Method}
//   | {notify, #{kind := Kind, reason => Reason}} | {stop_deployment, Id} | {start_deployment, Id}
//   | {delete_deployment, Id} | {schedule_deadline, Id, stop | delete, At} | cancel_deadlines
#include "nifs.hpp"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "azmp/rules.hpp"
#include "args.hpp"
#include "codec.hpp"
#include "rules_codec.hpp"

namespace azmp::nif {

namespace {

// A refusal the core left out (a bug) is `unknown`.
template <typename E>
ERL_NIF_TERM encode_or_unknown(ErlNifEnv* env, const std::optional<E>& v) {
    return v ? encode(env, *v) : atoms::unknown;
}

// The elements of the list under `key`: a proper list of at most kMaxListLen, else {badarg, Key}.
std::vector<ERL_NIF_TERM> list_field(ErlNifEnv* env, MapFields& f, ERL_NIF_TERM key) {
    std::vector<ERL_NIF_TERM> items;
    const auto t = f.term(key);
    if (!t) {
        f.fail(key);
        return items;
    }
    // Walked at most one cell past the limit (enif_get_list_length would walk all of a long list).
    ERL_NIF_TERM head, tail = *t;
    while (items.size() <= kMaxListLen && enif_get_list_cell(env, tail, &head, &tail)) items.push_back(head);
    if (items.size() > kMaxListLen || !enif_is_empty_list(env, tail)) {
        f.fail(key);
        items.clear();
    }
    return items;
}

// #{trial := boolean(), state := running | stopped, trial_ends_at => integer() | undefined,
//   stopped_at => integer() | undefined}
void read_deployment(MapFields& f, Deployment& d) {
    f.require(atoms::trial, d.trial);
    f.require(atoms::state, d.state);
    f.get(atoms::trial_ends_at, d.trial_ends_at);
    f.get(atoms::stopped_at, d.stopped_at);
}

// #{state, suspended := [binary()], cancelled_at, last_op_at, marketplace_pays,
//   deployments := [#{id := binary(), ...deployment}]}. A term that is not a map is named by its
// first field (here and below), as the entry points always named it.
void read_account(ErlNifEnv* env, ERL_NIF_TERM t, AccountFacts& facts, Args& a) {
    if (!a.ok()) return;
    MapFields f(env, t, "state");
    f.require(atoms::state, facts.state);
    std::vector<ShortBinary> suspended;
    f.require<ListOf<ShortBinary, kMaxListLen>>(atoms::suspended, suspended);
    facts.suspended.assign(suspended.begin(), suspended.end());
    f.require(atoms::cancelled_at, facts.cancelled_at);
    f.require(atoms::last_op_at, facts.last_op_at);
    f.require(atoms::marketplace_pays, facts.marketplace_pays);
    for (ERL_NIF_TERM d : list_field(env, f, atoms::deployments)) {
        DeploymentFact fact;
        MapFields df(env, d, "id");
        df.require<ShortBinary>(atoms::id, fact.id);
        read_deployment(df, fact.d);
        if (!df.ok()) {
            f.fail(*df.error());
            break;
        }
        facts.deployments.push_back(std::move(fact));
    }
    a.take(f);
}

// {ok, #{state, suspended, cancelled_at, last_op_at, claim_cancelled}, Effects}
ERL_NIF_TERM encode_plan(ErlNifEnv* env, const EventPlan& p) {
    const ERL_NIF_TERM change = make_map<5>(env, {{{atoms::state, encode(env, p.state)},
                                                   {atoms::suspended, encode_list(env, p.suspended)},
                                                   {atoms::cancelled_at, encode(env, p.cancelled_at)},
                                                   {atoms::last_op_at, encode(env, p.last_op_at)},
                                                   {atoms::claim_cancelled, encode(env, p.claim_cancelled)}}});
    return enif_make_tuple3(env, atoms::ok, change, encode_list(env, p.effects));
}

// keep | {stop, Reason} | {delete, At}
ERL_NIF_TERM encode_action(ErlNifEnv* env, const DeploymentAction& a) {
    switch (a.kind) {
        case ActionKind::Keep: return atoms::keep;
        case ActionKind::Stop: return enif_make_tuple2(env, atoms::stop, encode_or_unknown(env, a.stop_reason));
        case ActionKind::Delete: return enif_make_tuple2(env, atoms::delete_, encode(env, a.delete_at));
    }
    return atoms::keep;
}

}  // namespace
// valid_id(Term) -> boolean()
ERL_NIF_TERM nif_valid_id(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    const auto id = decode<std::string_view>(env, argv[0]);
    return encode(env, id && valid_id(*id));
}
// plan_link(#{account_id, credit_card, available_credits, other_marketplace_link,     (the platform's)
//             status := binary(), holder => binary() | undefined, seen_cancelled, holds_other})  (the claim's)
//   -> {link | already_linked | {refuse, Reason}, Effects}
ERL_NIF_TERM nif_plan_link(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    MapFields f(env, argv[0], "facts");
    std::string_view account;
    if (f.require<ShortBinary>(atoms::account_id, account) && !valid_id(account)) f.fail(atoms::account_id);
    BillingProfile profile;
    f.require(atoms::credit_card, profile.credit_card);
    f.require(atoms::available_credits, profile.available_credits);
    f.require(atoms::other_marketplace_link, profile.other_marketplace_link);
    LinkFacts facts;
    std::optional<ShortBinary> holder;
    f.require<ShortBinary>(atoms::status, facts.azure_status);
    f.get(atoms::holder, holder);
    f.require(atoms::seen_cancelled, facts.seen_cancelled);
    f.require(atoms::holds_other, facts.account_holds_other);
    if (!f.ok()) return enif_raise_exception(env, encode(env, *f.error()));
    if (holder) facts.holder = holder->value;

    const LinkPlan plan = plan_link(account, profile, facts);
    ERL_NIF_TERM verdict = atoms::link;
    switch (plan.decision.verdict) {
        case LinkVerdict::Link: break;
        case LinkVerdict::AlreadyLinked: verdict = atoms::already_linked; break;
        case LinkVerdict::Refuse:
            verdict = enif_make_tuple2(env, atoms::refuse, encode_or_unknown(env, plan.decision.refusal));
            break;
    }
    return enif_make_tuple2(env, verdict, encode_list(env, plan.effects));
}
// marketplace_pays(State) -> boolean()
ERL_NIF_TERM nif_marketplace_pays(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    Args a(env);
    LinkState state{};
    if (!a.read(argv[0], atoms::state, state)) return a.raise();
    return encode(env, marketplace_pays(state));
}
// landing_usable(ExpiresAt, Now) -> boolean()
ERL_NIF_TERM nif_landing_usable(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 2) return enif_make_badarg(env);
    Args a(env);
    std::int64_t expires_at = 0, now = 0;
    a.read(argv[0], atoms::expires_at, expires_at);
    a.read(argv[1], atoms::now, now);
    if (!a.ok()) return a.raise();
    return encode(env, landing_usable(expires_at, now));
}
// plan_event(#{event := Event | enforce, now := integer(), op_at => integer() | undefined,
//              state := State, suspended := [Id], cancelled_at := integer() | undefined,
//              last_op_at := integer() | undefined, marketplace_pays := boolean(), deployments := [Deployment]})
//   -> ignore | stale | {ok, #{state, suspended, cancelled_at, last_op_at, claim_cancelled}, Effects}
//   (`enforce': the effects of being in the link's state, again, for reconciliation's catch-up)
ERL_NIF_TERM nif_plan_event(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    Args a(env);
    MapFields f(env, argv[0], "facts");
    std::optional<LinkEvent> event;
    if (const auto e = f.term(atoms::event); !e) f.fail(atoms::event);
    else if (!enif_is_identical(*e, atoms::enforce) && !(event = decode<LinkEvent>(env, *e))) f.fail(atoms::event);
    std::int64_t now = 0;
    std::optional<std::int64_t> op_at;
    f.require(atoms::now, now);
    f.get(atoms::op_at, op_at);
    a.take(f);
    AccountFacts facts;
    read_account(env, argv[0], facts, a);
    if (!a.ok()) return a.raise();
    if (!event) return encode_plan(env, plan_enforce(facts, now));
    const EventPlan p = plan_event(*event, facts, now, op_at);
    if (p.stale) return atoms::stale;
    if (!p.applies) return atoms::ignore;
    return encode_plan(env, p);
}
// plan_deadline(#{kind := stop | delete, deployment_id, state, cancelled_at := integer() | undefined, now})
//   -> Effects
ERL_NIF_TERM nif_plan_deadline(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    MapFields f(env, argv[0], "facts");
    DeadlineKind kind{};
    std::string_view deployment_id;
    LinkState state{};
    std::optional<std::int64_t> cancelled_at;
    std::int64_t now = 0;
    f.require(atoms::kind, kind);
    f.require<ShortBinary>(atoms::deployment_id, deployment_id);
    f.require(atoms::state, state);
    f.require(atoms::cancelled_at, cancelled_at);
    f.require(atoms::now, now);
    if (!f.ok()) return enif_raise_exception(env, encode(env, *f.error()));
    return encode_list(env, plan_deadline(kind, deployment_id, state, cancelled_at, now));
}
// gate_create(State, Trial, PaysOtherwise :: boolean() | unknown)
//   -> ok | {error, Reason} | need_payment_method
// gate_deployment(State, Deployment, Now, CancelledAt | undefined, PaysOtherwise | unknown)
//   -> need_payment_method | keep | {stop, Reason} | {delete, At}
ERL_NIF_TERM nif_gate_create(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 3) return enif_make_badarg(env);
    Args a(env);
    LinkState state{};
    bool trial = false;
    MaybeBool pays_otherwise;
    a.read(argv[0], atoms::state, state);
    a.read(argv[1], atoms::trial, trial);
    a.read(argv[2], atoms::pays_otherwise, pays_otherwise);
    if (!a.ok()) return a.raise();

    const Gate g = gate_create(state, trial, pays_otherwise.value);
    switch (g.verdict) {
        case GateVerdict::Allow: return atoms::ok;
        case GateVerdict::NeedPaymentMethod: return atoms::need_payment_method;
        case GateVerdict::Refuse: break;
    }
    return enif_make_tuple2(env, atoms::error, encode_or_unknown(env, g.refusal));
}

ERL_NIF_TERM nif_gate_deployment(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 5) return enif_make_badarg(env);
    Args a(env);
    LinkState state{};
    Deployment deployment;
    std::int64_t now = 0;
    std::optional<std::int64_t> cancelled_at;
    MaybeBool pays_otherwise;
    if (a.read(argv[0], atoms::state, state)) {
        MapFields f(env, argv[1], "trial");
        read_deployment(f, deployment);
        a.take(f);
    }
    a.read(argv[2], atoms::now, now);
    a.read(argv[3], atoms::cancelled_at, cancelled_at);
    a.read(argv[4], atoms::pays_otherwise, pays_otherwise);
    if (!a.ok()) return a.raise();

    const DeploymentGate g = gate_deployment(state, deployment, now, cancelled_at, pays_otherwise.value);
    if (g.need_payment_method) return atoms::need_payment_method;
    return encode_action(env, g.action);
}

}  // namespace azmp::nif
