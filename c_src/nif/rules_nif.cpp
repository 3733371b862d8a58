// Term conversion for the product rules. Decoding is typed: each reader names the field it reads,
// and a wrong shape throws DecodeError, turned into `error:{badarg, Field}` at the entry point.
#include "rules_nif.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "azmp/rules.hpp"
#include "terms.hpp"

namespace azmp::nif {
namespace {

// Lists the rules take (deployments of one account, suspended ids) stay far below this; a longer
// one is refused, which keeps every call short.
constexpr unsigned kMaxListLen = 4096;
constexpr unsigned kAtomBuf = 32;

struct DecodeError {
    const char* field;
};

class Decoder {
public:
    explicit Decoder(ErlNifEnv* env) : env_(env) {}

    std::string_view binary(ERL_NIF_TERM t, const char* field) const {
        ErlNifBinary bin;
        if (!enif_inspect_binary(env_, t, &bin) || bin.size > kMaxIdBytes) throw DecodeError{field};
        return {reinterpret_cast<const char*>(bin.data), bin.size};
    }

    std::string_view atom(ERL_NIF_TERM t, char (&buf)[kAtomBuf], const char* field) const {
        const int n = enif_get_atom(env_, t, buf, sizeof buf, ERL_NIF_LATIN1);
        if (n <= 0) throw DecodeError{field};
        return {buf, static_cast<std::size_t>(n - 1)};
    }

    bool is_atom(ERL_NIF_TERM t, std::string_view name) const {
        char buf[kAtomBuf];
        const int n = enif_get_atom(env_, t, buf, sizeof buf, ERL_NIF_LATIN1);
        return n > 0 && std::string_view(buf, static_cast<std::size_t>(n - 1)) == name;
    }

    bool boolean(ERL_NIF_TERM t, const char* field) const {
        if (is_atom(t, "true")) return true;
        if (is_atom(t, "false")) return false;
        throw DecodeError{field};
    }

    // boolean() | unknown
    std::optional<bool> tristate(ERL_NIF_TERM t, const char* field) const {
        if (is_atom(t, "unknown")) return std::nullopt;
        return boolean(t, field);
    }

    std::int64_t integer(ERL_NIF_TERM t, const char* field) const {
        ErlNifSInt64 v;
        if (!enif_get_int64(env_, t, &v)) throw DecodeError{field};
        return static_cast<std::int64_t>(v);
    }

    std::optional<std::int64_t> opt_integer(ERL_NIF_TERM t, const char* field) const {
        if (is_atom(t, "undefined")) return std::nullopt;
        return integer(t, field);
    }

    ERL_NIF_TERM field(ERL_NIF_TERM map, const char* key) const {
        ERL_NIF_TERM v;
        if (!enif_is_map(env_, map) || !enif_get_map_value(env_, map, nif::atom(env_, key), &v)) throw DecodeError{key};
        return v;
    }

    std::optional<ERL_NIF_TERM> opt_field(ERL_NIF_TERM map, const char* key) const {
        ERL_NIF_TERM v;
        if (!enif_is_map(env_, map)) throw DecodeError{key};
        if (!enif_get_map_value(env_, map, nif::atom(env_, key), &v) || is_atom(v, "undefined")) return std::nullopt;
        return v;
    }

    LinkState state(ERL_NIF_TERM t, const char* field) const {
        char buf[kAtomBuf];
        auto s = link_state_from_name(atom(t, buf, field));
        if (!s) throw DecodeError{field};
        return *s;
    }

    LinkEvent event(ERL_NIF_TERM t, const char* field) const {
        char buf[kAtomBuf];
        auto e = link_event_from_name(atom(t, buf, field));
        if (!e) throw DecodeError{field};
        return *e;
    }

    template <typename F>
    void list(ERL_NIF_TERM t, const char* field, F&& each) const {
        unsigned len;
        if (!enif_get_list_length(env_, t, &len) || len > kMaxListLen) throw DecodeError{field};
        ERL_NIF_TERM head, tail = t;
        while (enif_get_list_cell(env_, tail, &head, &tail)) each(head);
    }

    // #{trial := boolean(), state := running | stopped, trial_ends_at => integer() | undefined,
    //   stopped_at => integer() | undefined, id => binary()}
    Deployment deployment(ERL_NIF_TERM m) const {
        Deployment d;
        d.trial = boolean(field(m, "trial"), "trial");
        const ERL_NIF_TERM st = field(m, "state");
        if (is_atom(st, "running")) d.state = DeploymentState::Running;
        else if (is_atom(st, "stopped")) d.state = DeploymentState::Stopped;
        else throw DecodeError{"state"};
        if (auto v = opt_field(m, "trial_ends_at")) d.trial_ends_at = integer(*v, "trial_ends_at");
        if (auto v = opt_field(m, "stopped_at")) d.stopped_at = integer(*v, "stopped_at");
        return d;
    }

    AccountFacts account(ERL_NIF_TERM m) const {
        AccountFacts f;
        f.state = state(field(m, "state"), "state");
        list(field(m, "suspended"), "suspended", [&](ERL_NIF_TERM id) { f.suspended.emplace_back(binary(id, "suspended")); });
        f.cancelled_at = opt_integer(field(m, "cancelled_at"), "cancelled_at");
        f.last_op_at = opt_integer(field(m, "last_op_at"), "last_op_at");
        f.marketplace_pays = boolean(field(m, "marketplace_pays"), "marketplace_pays");
        list(field(m, "deployments"), "deployments", [&](ERL_NIF_TERM d) {
            f.deployments.push_back(DeploymentFact{std::string(binary(field(d, "id"), "id")), deployment(d)});
        });
        return f;
    }

private:
    ErlNifEnv* env_;
};

// --- encoders

ERL_NIF_TERM name(ErlNifEnv* env, std::string_view n) { return enif_make_atom_len(env, n.data(), n.size()); }

ERL_NIF_TERM opt_int(ErlNifEnv* env, std::optional<std::int64_t> v) {
    return v ? enif_make_int64(env, *v) : atom(env, "undefined");
}

ERL_NIF_TERM encode(ErlNifEnv* env, const Effect& e) {
    switch (e.kind) {
        case EffectKind::Activate: return atom(env, "activate");
        case EffectKind::AnswerOperation:
            return enif_make_tuple2(env, atom(env, "answer_operation"), atom(env, e.success ? "success" : "failure"));
        case EffectKind::SetPaymentMethod:
            return enif_make_tuple2(env, atom(env, "set_payment_method"), name(env, payment_method_name(e.method)));
        case EffectKind::Notify: {
            ERL_NIF_TERM m = enif_make_new_map(env);
            enif_make_map_put(env, m, atom(env, "kind"), name(env, notice_kind_name(e.notice)), &m);
            if (e.reason) enif_make_map_put(env, m, atom(env, "reason"), name(env, refusal_name(*e.reason)), &m);
            return enif_make_tuple2(env, atom(env, "notify"), m);
        }
        case EffectKind::StopDeployment:
            return enif_make_tuple2(env, atom(env, "stop_deployment"), make_binary(env, e.deployment_id));
        case EffectKind::StartDeployment:
            return enif_make_tuple2(env, atom(env, "start_deployment"), make_binary(env, e.deployment_id));
        case EffectKind::DeleteDeployment:
            return enif_make_tuple2(env, atom(env, "delete_deployment"), make_binary(env, e.deployment_id));
        case EffectKind::ScheduleDeadline:
            return enif_make_tuple4(env, atom(env, "schedule_deadline"), make_binary(env, e.deployment_id),
                                    name(env, deadline_kind_name(e.deadline)), enif_make_int64(env, e.at));
        case EffectKind::CancelDeadlines: return atom(env, "cancel_deadlines");
    }
    return atom(env, "unknown");
}

ERL_NIF_TERM encode(ErlNifEnv* env, const Effects& es) {
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (auto it = es.rbegin(); it != es.rend(); ++it) list = enif_make_list_cell(env, encode(env, *it), list);
    return list;
}

ERL_NIF_TERM encode_ids(ErlNifEnv* env, const std::vector<std::string>& ids) {
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (auto it = ids.rbegin(); it != ids.rend(); ++it) list = enif_make_list_cell(env, make_binary(env, *it), list);
    return list;
}

ERL_NIF_TERM encode_plan(ErlNifEnv* env, const EventPlan& p) {
    ERL_NIF_TERM m = enif_make_new_map(env);
    enif_make_map_put(env, m, atom(env, "state"), name(env, link_state_name(p.state)), &m);
    enif_make_map_put(env, m, atom(env, "suspended"), encode_ids(env, p.suspended), &m);
    enif_make_map_put(env, m, atom(env, "cancelled_at"), opt_int(env, p.cancelled_at), &m);
    enif_make_map_put(env, m, atom(env, "last_op_at"), opt_int(env, p.last_op_at), &m);
    return enif_make_tuple3(env, atom(env, "ok"), m, encode(env, p.effects));
}

ERL_NIF_TERM encode_action(ErlNifEnv* env, const DeploymentAction& a) {
    switch (a.kind) {
        case ActionKind::Keep: return atom(env, "keep");
        case ActionKind::Stop:
            return enif_make_tuple2(env, atom(env, "stop"), name(env, a.stop_reason ? stop_reason_name(*a.stop_reason) : "unknown"));
        case ActionKind::Delete: return enif_make_tuple2(env, atom(env, "delete"), enif_make_int64(env, a.delete_at));
    }
    return atom(env, "keep");
}

// The entry point's frame: arity checked, DecodeError turned into {badarg, Field}.
template <typename F>
ERL_NIF_TERM decoding(ErlNifEnv* env, int argc, int arity, F&& body) {
    if (argc != arity) return enif_make_badarg(env);
    try {
        return body(Decoder(env));
    } catch (const DecodeError& e) {
        return enif_raise_exception(env, enif_make_tuple2(env, atom(env, "badarg"), atom(env, e.field)));
    }
}

}  // namespace

ERL_NIF_TERM nif_valid_id(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    ErlNifBinary bin;
    const bool ok = enif_inspect_binary(env, argv[0], &bin) &&
                    valid_id(std::string_view(reinterpret_cast<const char*>(bin.data), bin.size));
    return atom(env, ok ? "true" : "false");
}

ERL_NIF_TERM nif_plan_link(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    return decoding(env, argc, 3, [&](const Decoder& d) {
        const std::string_view account = d.binary(argv[0], "account_id");
        if (!valid_id(account)) throw DecodeError{"account_id"};
        BillingProfile p;
        p.credit_card = d.boolean(d.field(argv[1], "credit_card"), "credit_card");
        p.available_credits = d.boolean(d.field(argv[1], "available_credits"), "available_credits");
        p.other_marketplace_link = d.boolean(d.field(argv[1], "other_marketplace_link"), "other_marketplace_link");
        LinkFacts f;
        f.azure_status = d.binary(d.field(argv[2], "status"), "status");
        if (auto h = d.opt_field(argv[2], "holder")) f.holder = d.binary(*h, "holder");
        f.seen_cancelled = d.boolean(d.field(argv[2], "seen_cancelled"), "seen_cancelled");
        f.account_holds_other = d.boolean(d.field(argv[2], "holds_other"), "holds_other");

        const LinkPlan plan = plan_link(account, p, f);
        ERL_NIF_TERM verdict = atom(env, "link");
        switch (plan.decision.verdict) {
            case LinkVerdict::Link: break;
            case LinkVerdict::AlreadyLinked: verdict = atom(env, "already_linked"); break;
            case LinkVerdict::Refuse:
                verdict = enif_make_tuple2(env, atom(env, "refuse"),
                                           name(env, plan.decision.refusal ? refusal_name(*plan.decision.refusal) : "unknown"));
                break;
        }
        return enif_make_tuple2(env, verdict, encode(env, plan.effects));
    });
}

ERL_NIF_TERM nif_plan_linked(ErlNifEnv* env, int argc, const ERL_NIF_TERM[]) {
    if (argc != 0) return enif_make_badarg(env);
    return encode(env, plan_linked());
}

ERL_NIF_TERM nif_classify_link_failure(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    return decoding(env, argc, 2, [&](const Decoder& d) {
        LinkStep step;
        if (d.is_atom(argv[0], "resolve")) step = LinkStep::Resolve;
        else if (d.is_atom(argv[0], "activate")) step = LinkStep::Activate;
        else throw DecodeError{"step"};
        CallFailure f;
        int arity;
        const ERL_NIF_TERM* elems;
        if (enif_get_tuple(env, argv[1], &arity, &elems) && arity == 2 && d.is_atom(elems[0], "http")) {
            const std::int64_t status = d.integer(elems[1], "failure");
            if (status < 100 || status > 599) throw DecodeError{"failure"};
            f.http_status = static_cast<int>(status);
        } else if (d.is_atom(argv[1], "bad_request")) {
            f.bad_request = true;
        } else if (!d.is_atom(argv[1], "unavailable")) {
            throw DecodeError{"failure"};
        }
        const auto refusal = classify_link_failure(step, f);
        if (refusal) return enif_make_tuple2(env, atom(env, "refuse"), name(env, refusal_name(*refusal)));
        return atom(env, "retry");
    });
}

ERL_NIF_TERM nif_plan_link_failed(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    return decoding(env, argc, 1, [&](const Decoder& d) {
        char buf[kAtomBuf];
        const auto r = refusal_from_name(d.atom(argv[0], buf, "reason"));
        if (!r) throw DecodeError{"reason"};
        return encode(env, plan_link_failed(*r));
    });
}

ERL_NIF_TERM nif_marketplace_pays(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    return decoding(env, argc, 1, [&](const Decoder& d) {
        return atom(env, marketplace_pays(d.state(argv[0], "state")) ? "true" : "false");
    });
}

ERL_NIF_TERM nif_decide_activation(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    return decoding(env, argc, 1, [&](const Decoder& d) {
        std::optional<std::string_view> status;
        if (!d.is_atom(argv[0], "undefined")) status = d.binary(argv[0], "status");
        switch (decide_activation(status)) {
            case ActivationVerdict::Activate: return atom(env, "activate");
            case ActivationVerdict::AlreadyActive: return atom(env, "already_active");
            case ActivationVerdict::Refuse: return atom(env, "refuse");
        }
        return atom(env, "activate");
    });
}

ERL_NIF_TERM nif_link_retry_delay(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    return decoding(env, argc, 3, [&](const Decoder& d) {
        const std::int64_t attempts = d.integer(argv[0], "attempts");
        if (attempts < 0) throw DecodeError{"attempts"};
        const std::uint32_t a = attempts > 1000 ? 1000u : static_cast<std::uint32_t>(attempts);
        return enif_make_int64(env, link_retry_delay_s(a, d.integer(argv[1], "base_s"), d.integer(argv[2], "max_s")));
    });
}

ERL_NIF_TERM nif_landing_expires_at(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    return decoding(env, argc, 1, [&](const Decoder& d) {
        const std::int64_t now = d.integer(argv[0], "now");
        if (now < 0 || now > (std::int64_t{1} << 40)) throw DecodeError{"now"};
        return enif_make_int64(env, landing_expires_at(now));
    });
}

ERL_NIF_TERM nif_landing_usable(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    return decoding(env, argc, 2, [&](const Decoder& d) {
        return atom(env, landing_usable(d.integer(argv[0], "expires_at"), d.integer(argv[1], "now")) ? "true" : "false");
    });
}

ERL_NIF_TERM nif_plan_event(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    return decoding(env, argc, 4, [&](const Decoder& d) {
        const LinkEvent event = d.event(argv[0], "event");
        const AccountFacts facts = d.account(argv[1]);
        const std::int64_t now = d.integer(argv[2], "now");
        const auto op_at = d.opt_integer(argv[3], "op_at");
        const EventPlan p = plan_event(event, facts, now, op_at);
        if (p.stale) return atom(env, "stale");
        if (!p.applies) return atom(env, "ignore");
        return encode_plan(env, p);
    });
}

ERL_NIF_TERM nif_plan_enforce(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    return decoding(env, argc, 2, [&](const Decoder& d) {
        const AccountFacts facts = d.account(argv[0]);
        return encode_plan(env, plan_enforce(facts, d.integer(argv[1], "now")));
    });
}

ERL_NIF_TERM nif_repair_event(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    return decoding(env, argc, 2, [&](const Decoder& d) {
        const auto e = repair_event(d.binary(argv[0], "status"), d.state(argv[1], "state"));
        return e ? name(env, link_event_name(*e)) : atom(env, "none");
    });
}

ERL_NIF_TERM nif_plan_deadline(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    return decoding(env, argc, 5, [&](const Decoder& d) {
        char buf[kAtomBuf];
        const auto kind = deadline_kind_from_name(d.atom(argv[0], buf, "kind"));
        if (!kind) throw DecodeError{"kind"};
        return encode(env, plan_deadline(*kind, d.binary(argv[1], "deployment_id"), d.state(argv[2], "state"),
                                         d.opt_integer(argv[3], "cancelled_at"), d.integer(argv[4], "now")));
    });
}

ERL_NIF_TERM nif_plan_webhook(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    return decoding(env, argc, 4, [&](const Decoder& d) {
        const std::string_view hook_action = d.binary(argv[0], "action");
        const std::string_view hook_sub = d.binary(argv[1], "subscription_id");
        WebhookOperation op;
        op.action = d.binary(d.field(argv[2], "action"), "action");
        op.subscription_id = d.binary(d.field(argv[2], "subscription_id"), "subscription_id");
        if (auto v = d.opt_field(argv[2], "plan_id")) op.plan_id = std::string(d.binary(*v, "plan_id"));
        if (auto v = d.opt_field(argv[2], "quantity")) op.quantity = d.integer(*v, "quantity");
        const WebhookPlan p = plan_webhook(hook_action, hook_sub, op, d.boolean(argv[3], "plan_known"));
        const char* outcome = "ignored";
        switch (p.outcome) {
            case WebhookOutcome::Mismatch: outcome = "mismatch"; break;
            case WebhookOutcome::Act: outcome = "act"; break;
            case WebhookOutcome::Refused: outcome = "refused"; break;
            case WebhookOutcome::Ignored: break;
        }
        return enif_make_tuple3(env, atom(env, outcome), p.event ? name(env, link_event_name(*p.event)) : atom(env, "none"),
                                encode(env, p.effects));
    });
}

ERL_NIF_TERM nif_gate_create(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    return decoding(env, argc, 3, [&](const Decoder& d) {
        const Gate g = gate_create(d.state(argv[0], "state"), d.boolean(argv[1], "trial"), d.tristate(argv[2], "pays_otherwise"));
        switch (g.verdict) {
            case GateVerdict::Allow: return atom(env, "ok");
            case GateVerdict::NeedPaymentMethod: return atom(env, "need_payment_method");
            case GateVerdict::Refuse: break;
        }
        return error_tuple(env, name(env, g.refusal ? create_refusal_name(*g.refusal) : "unknown"));
    });
}

ERL_NIF_TERM nif_gate_deployment(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    return decoding(env, argc, 5, [&](const Decoder& d) {
        const DeploymentGate g = gate_deployment(d.state(argv[0], "state"), d.deployment(argv[1]), d.integer(argv[2], "now"),
                                                 d.opt_integer(argv[3], "cancelled_at"), d.tristate(argv[4], "pays_otherwise"));
        if (g.need_payment_method) return atom(env, "need_payment_method");
        return encode_action(env, g.action);
    });
}

}  // namespace azmp::nif
