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

namespace azmp::nif {
namespace {

// Lists the rules take (deployments of one account, suspended ids) stay far below this; a longer
// one is refused, which keeps every call short.
constexpr unsigned kMaxListLen = 4096;

// A binary of at most kMaxIdBytes: ids, Azure statuses, webhook actions. Valid during the call.
struct ShortBinary {
    std::string_view value;
    operator std::string_view() const { return value; }
};

// boolean() | unknown
struct MaybeBool {
    std::optional<bool> value;
};

}  // namespace

template <>
struct Codec<ShortBinary> {
    static std::optional<ShortBinary> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
        auto s = nif::decode<std::string_view>(env, t);
        if (!s || s->size() > kMaxIdBytes) return std::nullopt;
        return ShortBinary{*s};
    }
};

template <>
struct Codec<MaybeBool> {
    static std::optional<MaybeBool> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
        if (enif_is_identical(t, atoms::unknown)) return MaybeBool{};
        auto b = nif::decode<bool>(env, t);
        if (!b) return std::nullopt;
        return MaybeBool{*b};
    }
};

// The atoms of the core's enums: the names azmp/rules.hpp and azmp/decisions.hpp give them
// (link_state_name, refusal_name, ...).
template <>
struct EnumAtoms<LinkEvent> {
    static constexpr EnumAtom<LinkEvent> table[] = {
        {&atoms::activated, LinkEvent::Activated},     {&atoms::link_failed, LinkEvent::LinkFailed},
        {&atoms::change_plan, LinkEvent::ChangePlan},  {&atoms::change_quantity, LinkEvent::ChangeQuantity},
        {&atoms::renew, LinkEvent::Renew},             {&atoms::suspend, LinkEvent::Suspend},
        {&atoms::reinstate, LinkEvent::Reinstate},     {&atoms::unsubscribe, LinkEvent::Unsubscribe}};
};
template <>
struct EnumAtoms<LinkRefusal> {
    static constexpr EnumAtom<LinkRefusal> table[] = {
        {&atoms::credit_card_on_file, LinkRefusal::CreditCardOnFile},
        {&atoms::uses_available_credits, LinkRefusal::UsesAvailableCredits},
        {&atoms::already_linked_to_marketplace, LinkRefusal::AlreadyLinkedToMarketplace},
        {&atoms::subscription_linked_to_other_account, LinkRefusal::SubscriptionLinkedToOtherAccount},
        {&atoms::subscription_unsubscribed, LinkRefusal::SubscriptionUnsubscribed},
        {&atoms::invalid_token, LinkRefusal::InvalidToken}};
};
template <>
struct EnumAtoms<LinkStep> {
    static constexpr EnumAtom<LinkStep> table[] = {{&atoms::resolve, LinkStep::Resolve},
                                                   {&atoms::activate, LinkStep::Activate}};
};
template <>
struct EnumAtoms<DeadlineKind> {
    static constexpr EnumAtom<DeadlineKind> table[] = {{&atoms::stop, DeadlineKind::Stop},
                                                       {&atoms::delete_, DeadlineKind::Delete}};
};
template <>
struct EnumAtoms<DeploymentState> {
    static constexpr EnumAtom<DeploymentState> table[] = {{&atoms::running, DeploymentState::Running},
                                                          {&atoms::stopped, DeploymentState::Stopped}};
};
template <>
struct EnumAtoms<PaymentMethod> {
    static constexpr EnumAtom<PaymentMethod> table[] = {
        {&atoms::azure_marketplace_subscription, PaymentMethod::AzureMarketplaceSubscription},
        {&atoms::none, PaymentMethod::None}};
};
template <>
struct EnumAtoms<NoticeKind> {
    static constexpr EnumAtom<NoticeKind> table[] = {
        {&atoms::linked, NoticeKind::Linked},
        {&atoms::link_failed, NoticeKind::LinkFailed},
        {&atoms::subscription_suspended, NoticeKind::SubscriptionSuspended},
        {&atoms::subscription_reinstated, NoticeKind::SubscriptionReinstated},
        {&atoms::subscription_cancelled, NoticeKind::SubscriptionCancelled}};
};
template <>
struct EnumAtoms<CreateRefusal> {
    static constexpr EnumAtom<CreateRefusal> table[] = {
        {&atoms::link_pending, CreateRefusal::LinkPending},
        {&atoms::subscription_suspended, CreateRefusal::SubscriptionSuspended},
        {&atoms::subscription_cancelled, CreateRefusal::SubscriptionCancelled}};
};
template <>
struct EnumAtoms<StopReason> {
    static constexpr EnumAtom<StopReason> table[] = {{&atoms::suspended, StopReason::Suspended},
                                                     {&atoms::unsubscribed, StopReason::Unsubscribed},
                                                     {&atoms::trial_ended, StopReason::TrialEnded}};
};
template <>
struct EnumAtoms<ActivationVerdict> {
    static constexpr EnumAtom<ActivationVerdict> table[] = {
        {&atoms::activate, ActivationVerdict::Activate},
        {&atoms::already_active, ActivationVerdict::AlreadyActive},
        {&atoms::refuse, ActivationVerdict::Refuse}};
};
template <>
struct EnumAtoms<WebhookOutcome> {
    static constexpr EnumAtom<WebhookOutcome> table[] = {
        {&atoms::mismatch, WebhookOutcome::Mismatch}, {&atoms::act, WebhookOutcome::Act},
        {&atoms::refused, WebhookOutcome::Refused},   {&atoms::ignored, WebhookOutcome::Ignored}};
};

// Effects are lists of:
//   activate | {answer_operation, success | failure} | {set_payment_method, Method}
//   | {notify, #{kind := Kind, reason => Reason}} | {stop_deployment | start_deployment | delete_deployment, Id}
//   | {schedule_deadline, Id, stop | delete, At} | cancel_deadlines
template <>
struct Codec<Effect> {
    static ERL_NIF_TERM encode(ErlNifEnv* env, const Effect& e) {
        auto with_id = [&](ERL_NIF_TERM tag) { return enif_make_tuple2(env, tag, nif::encode(env, e.deployment_id)); };
        switch (e.kind) {
            case EffectKind::Activate: return atoms::activate;
            case EffectKind::AnswerOperation:
                return enif_make_tuple2(env, atoms::answer_operation, e.success ? atoms::success : atoms::failure);
            case EffectKind::SetPaymentMethod:
                return enif_make_tuple2(env, atoms::set_payment_method, nif::encode(env, e.method));
            case EffectKind::Notify: {
                const ERL_NIF_TERM kind = nif::encode(env, e.notice);
                const ERL_NIF_TERM notice =
                    e.reason ? make_map<2>(env, {{{atoms::kind, kind}, {atoms::reason, nif::encode(env, *e.reason)}}})
                             : make_map<1>(env, {{{atoms::kind, kind}}});
                return enif_make_tuple2(env, atoms::notify, notice);
            }
            case EffectKind::StopDeployment: return with_id(atoms::stop_deployment);
            case EffectKind::StartDeployment: return with_id(atoms::start_deployment);
            case EffectKind::DeleteDeployment: return with_id(atoms::delete_deployment);
            case EffectKind::ScheduleDeadline:
                return enif_make_tuple4(env, atoms::schedule_deadline, nif::encode(env, e.deployment_id),
                                        nif::encode(env, e.deadline), nif::encode(env, e.at));
            case EffectKind::CancelDeadlines: return atoms::cancel_deadlines;
        }
        return atoms::unknown;
    }
};

namespace {

// [encode(Item), ...]
template <typename T>
ERL_NIF_TERM encode_list(ErlNifEnv* env, const std::vector<T>& items) {
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (auto it = items.rbegin(); it != items.rend(); ++it) list = enif_make_list_cell(env, encode(env, *it), list);
    return list;
}

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

// {ok, #{state, suspended, cancelled_at, last_op_at}, Effects}
ERL_NIF_TERM encode_plan(ErlNifEnv* env, const EventPlan& p) {
    const ERL_NIF_TERM change = make_map<4>(env, {{{atoms::state, encode(env, p.state)},
                                                   {atoms::suspended, encode_list(env, p.suspended)},
                                                   {atoms::cancelled_at, encode(env, p.cancelled_at)},
                                                   {atoms::last_op_at, encode(env, p.last_op_at)}}});
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
// plan_link(Account, #{credit_card, available_credits, other_marketplace_link},
//           #{status := binary(), holder := binary() | undefined, seen_cancelled := boolean(),
//             holds_other := boolean()})
//   -> {link | already_linked | {refuse, Reason}, Effects}
ERL_NIF_TERM nif_plan_link(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 3) return enif_make_badarg(env);
    Args a(env);
    std::string_view account;
    if (a.read<ShortBinary>(argv[0], atoms::account_id, account) && !valid_id(account)) a.fail(atoms::account_id);

    BillingProfile profile;
    MapFields pf(env, argv[1], "credit_card");
    pf.require(atoms::credit_card, profile.credit_card);
    pf.require(atoms::available_credits, profile.available_credits);
    pf.require(atoms::other_marketplace_link, profile.other_marketplace_link);
    a.take(pf);

    LinkFacts facts;
    std::optional<ShortBinary> holder;
    MapFields ff(env, argv[2], "status");
    ff.require<ShortBinary>(atoms::status, facts.azure_status);
    ff.get(atoms::holder, holder);
    ff.require(atoms::seen_cancelled, facts.seen_cancelled);
    ff.require(atoms::holds_other, facts.account_holds_other);
    a.take(ff);
    if (!a.ok()) return a.raise();
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
// plan_linked() -> Effects
ERL_NIF_TERM nif_plan_linked(ErlNifEnv* env, int argc, const ERL_NIF_TERM[]) {
    if (argc != 0) return enif_make_badarg(env);
    return encode_list(env, plan_linked());
}
// classify_link_failure(resolve | activate, {http, Status} | bad_request | unavailable)
//   -> retry | {refuse, Reason}
// plan_link_failed(Reason) -> Effects;  marketplace_pays(State) -> boolean()
ERL_NIF_TERM nif_classify_link_failure(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 2) return enif_make_badarg(env);
    Args a(env);
    LinkStep step{};
    a.read(argv[0], atoms::step, step);
    // {http, 100..599} | bad_request | unavailable
    CallFailure failure;
    int arity;
    const ERL_NIF_TERM* elems;
    if (enif_get_tuple(env, argv[1], &arity, &elems) && arity == 2 && enif_is_identical(elems[0], atoms::http)) {
        std::int64_t status = 0;
        a.read<IntIn<100, 599>>(elems[1], atoms::failure, status);
        failure.http_status = static_cast<int>(status);
    } else if (enif_is_identical(argv[1], atoms::bad_request)) {
        failure.bad_request = true;
    } else if (!enif_is_identical(argv[1], atoms::unavailable)) {
        a.fail(atoms::failure);
    }
    if (!a.ok()) return a.raise();

    const auto refusal = classify_link_failure(step, failure);
    return refusal ? enif_make_tuple2(env, atoms::refuse, encode(env, *refusal)) : atoms::retry;
}

ERL_NIF_TERM nif_plan_link_failed(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    Args a(env);
    LinkRefusal reason{};
    if (!a.read(argv[0], atoms::reason, reason)) return a.raise();
    return encode_list(env, plan_link_failed(reason));
}

ERL_NIF_TERM nif_marketplace_pays(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    Args a(env);
    LinkState state{};
    if (!a.read(argv[0], atoms::state, state)) return a.raise();
    return encode(env, marketplace_pays(state));
}
// decide_activation(AzureStatus :: binary() | undefined) -> activate | already_active | refuse
ERL_NIF_TERM nif_decide_activation(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    Args a(env);
    std::optional<ShortBinary> status;  // undefined: Get Subscription did not say
    if (!a.read(argv[0], atoms::status, status)) return a.raise();
    return encode(env, decide_activation(status ? std::optional<std::string_view>(status->value) : std::nullopt));
}
// link_retry_delay(Attempts, BaseS, MaxS) -> Seconds
ERL_NIF_TERM nif_link_retry_delay(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 3) return enif_make_badarg(env);
    Args a(env);
    std::int64_t attempts = 0, base_s = 0, max_s = 0;
    a.read<IntIn<0, std::numeric_limits<std::int64_t>::max()>>(argv[0], atoms::attempts, attempts);
    a.read(argv[1], atoms::base_s, base_s);
    a.read(argv[2], atoms::max_s, max_s);
    if (!a.ok()) return a.raise();
    const std::uint32_t capped = attempts > 1000 ? 1000u : static_cast<std::uint32_t>(attempts);
    return encode(env, link_retry_delay_s(capped, base_s, max_s));
}
// landing_expires_at(Now) -> At;  landing_usable(ExpiresAt, Now) -> boolean()
ERL_NIF_TERM nif_landing_expires_at(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    Args a(env);
    std::int64_t now = 0;
    if (!a.read<IntIn<0, (std::int64_t{1} << 40)>>(argv[0], atoms::now, now)) return a.raise();
    return encode(env, landing_expires_at(now));
}

ERL_NIF_TERM nif_landing_usable(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 2) return enif_make_badarg(env);
    Args a(env);
    std::int64_t expires_at = 0, now = 0;
    a.read(argv[0], atoms::expires_at, expires_at);
    a.read(argv[1], atoms::now, now);
    if (!a.ok()) return a.raise();
    return encode(env, landing_usable(expires_at, now));
}
// plan_event(Event, Facts, Now, OpAt :: integer() | undefined)
//   Facts :: #{state := State, suspended := [Id], cancelled_at := integer() | undefined,
//              last_op_at := integer() | undefined, marketplace_pays := boolean(), deployments := [Deployment]}
//   -> ignore | stale | {ok, #{state, suspended, cancelled_at, last_op_at}, Effects}
// plan_enforce(Facts, Now) -> {ok, #{...}, Effects}
ERL_NIF_TERM nif_plan_event(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 4) return enif_make_badarg(env);
    Args a(env);
    LinkEvent event{};
    AccountFacts facts;
    std::int64_t now = 0;
    std::optional<std::int64_t> op_at;
    a.read(argv[0], atoms::event, event);
    read_account(env, argv[1], facts, a);
    a.read(argv[2], atoms::now, now);
    a.read(argv[3], atoms::op_at, op_at);
    if (!a.ok()) return a.raise();

    const EventPlan p = plan_event(event, facts, now, op_at);
    if (p.stale) return atoms::stale;
    if (!p.applies) return atoms::ignore;
    return encode_plan(env, p);
}

ERL_NIF_TERM nif_plan_enforce(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 2) return enif_make_badarg(env);
    Args a(env);
    AccountFacts facts;
    std::int64_t now = 0;
    read_account(env, argv[0], facts, a);
    a.read(argv[1], atoms::now, now);
    if (!a.ok()) return a.raise();
    return encode_plan(env, plan_enforce(facts, now));
}
// repair_event(AzureStatus :: binary(), LocalState) -> Event | none
ERL_NIF_TERM nif_repair_event(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 2) return enif_make_badarg(env);
    Args a(env);
    std::string_view status;
    LinkState state{};
    a.read<ShortBinary>(argv[0], atoms::status, status);
    a.read(argv[1], atoms::state, state);
    if (!a.ok()) return a.raise();
    const auto event = repair_event(status, state);
    return event ? encode(env, *event) : atoms::none;
}
// plan_deadline(stop | delete, DeploymentId, State, CancelledAt | undefined, Now) -> Effects
ERL_NIF_TERM nif_plan_deadline(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 5) return enif_make_badarg(env);
    Args a(env);
    DeadlineKind kind{};
    std::string_view deployment_id;
    LinkState state{};
    std::optional<std::int64_t> cancelled_at;
    std::int64_t now = 0;
    a.read(argv[0], atoms::kind, kind);
    a.read<ShortBinary>(argv[1], atoms::deployment_id, deployment_id);
    a.read(argv[2], atoms::state, state);
    a.read(argv[3], atoms::cancelled_at, cancelled_at);
    a.read(argv[4], atoms::now, now);
    if (!a.ok()) return a.raise();
    return encode_list(env, plan_deadline(kind, deployment_id, state, cancelled_at, now));
}
// plan_webhook(HookAction, HookSubscriptionId,
//              #{action := binary(), subscription_id := binary(), plan_id => binary(), quantity => integer()},
//              PlanKnown :: boolean())
//   -> {mismatch | act | refused | ignored, Event | none, Effects}
ERL_NIF_TERM nif_plan_webhook(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 4) return enif_make_badarg(env);
    Args a(env);
    std::string_view hook_action, hook_subscription;
    a.read<ShortBinary>(argv[0], atoms::action, hook_action);
    a.read<ShortBinary>(argv[1], atoms::subscription_id, hook_subscription);

    WebhookOperation op;
    if (a.ok()) {
        MapFields f(env, argv[2], "action");
        f.require<ShortBinary>(atoms::action, op.action);
        f.require<ShortBinary>(atoms::subscription_id, op.subscription_id);
        f.get<std::optional<ShortBinary>>(atoms::plan_id, op.plan_id);
        f.get(atoms::quantity, op.quantity);
        a.take(f);
    }
    bool plan_known = false;
    a.read(argv[3], atoms::plan_known, plan_known);
    if (!a.ok()) return a.raise();

    const WebhookPlan p = plan_webhook(hook_action, hook_subscription, op, plan_known);
    return enif_make_tuple3(env, encode(env, p.outcome), p.event ? encode(env, *p.event) : atoms::none,
                            encode_list(env, p.effects));
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
