// Term conversion for the pure decisions. Every input is checked for shape; the decision itself is
// azmp core code. No allocation beyond the two short strings SubscriptionFacts holds.
#include "decisions_nif.hpp"

#include <optional>
#include <string>
#include <string_view>

#include "azmp/decisions.hpp"
#include "terms.hpp"

namespace azmp::nif {
namespace {

// Longer than any id or status Azure or the control plane uses: refused as badarg.
constexpr std::size_t kMaxIdBytes = 1024;

// The longest atom we accept ("change_quantity", "unsubscribed", ...) fits easily.
constexpr unsigned kAtomBuf = 32;

struct AtomBuf {
    char data[kAtomBuf];
    std::size_t len = 0;
    std::string_view view() const { return {data, len}; }
};

std::optional<AtomBuf> get_atom(ErlNifEnv* env, ERL_NIF_TERM t) {
    AtomBuf b;
    int n = enif_get_atom(env, t, b.data, sizeof b.data, ERL_NIF_LATIN1);
    if (n <= 0) return std::nullopt;
    b.len = static_cast<std::size_t>(n - 1);  // n counts the terminating NUL
    return b;
}

std::optional<bool> get_bool(ErlNifEnv* env, ERL_NIF_TERM t) {
    auto a = get_atom(env, t);
    if (!a) return std::nullopt;
    if (a->view() == "true") return true;
    if (a->view() == "false") return false;
    return std::nullopt;
}

bool is_undefined(ErlNifEnv* env, ERL_NIF_TERM t) {
    auto a = get_atom(env, t);
    return a && a->view() == "undefined";
}

std::optional<std::string_view> get_binary(ErlNifEnv* env, ERL_NIF_TERM t) {
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, t, &bin) || bin.size > kMaxIdBytes) return std::nullopt;
    return std::string_view(reinterpret_cast<const char*>(bin.data), bin.size);
}

std::optional<ERL_NIF_TERM> map_get(ErlNifEnv* env, ERL_NIF_TERM map, const char* key) {
    ERL_NIF_TERM v;
    if (!enif_get_map_value(env, map, atom(env, key), &v)) return std::nullopt;
    return v;
}

std::optional<bool> map_bool(ErlNifEnv* env, ERL_NIF_TERM map, const char* key) {
    auto v = map_get(env, map, key);
    if (!v) return std::nullopt;
    return get_bool(env, *v);
}

// An optional integer field: absent or undefined -> nothing; anything else not an int64 -> badarg.
// Returns false on a wrong shape.
bool map_opt_int(ErlNifEnv* env, ERL_NIF_TERM map, const char* key, std::optional<std::int64_t>& out) {
    auto v = map_get(env, map, key);
    if (!v || is_undefined(env, *v)) {
        out.reset();
        return true;
    }
    ErlNifSInt64 i;
    if (!enif_get_int64(env, *v, &i)) return false;
    out = static_cast<std::int64_t>(i);
    return true;
}

std::optional<LinkState> get_state(ErlNifEnv* env, ERL_NIF_TERM t) {
    auto a = get_atom(env, t);
    if (!a) return std::nullopt;
    return link_state_from_name(a->view());
}

ERL_NIF_TERM atom_of(ErlNifEnv* env, std::string_view name) {
    // Our names are NUL-terminated string literals; make the atom from their exact length anyway.
    return enif_make_atom_len(env, name.data(), name.size());
}

}  // namespace

ERL_NIF_TERM nif_decide_link(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 3 || !enif_is_map(env, argv[1]) || !enif_is_map(env, argv[2])) return enif_make_badarg(env);
    auto account = get_binary(env, argv[0]);
    if (!account || account->empty()) return enif_make_badarg(env);

    BillingProfile profile;
    auto cc = map_bool(env, argv[1], "credit_card");
    auto credits = map_bool(env, argv[1], "available_credits");
    auto other = map_bool(env, argv[1], "other_marketplace_link");
    if (!cc || !credits || !other) return enif_make_badarg(env);
    profile.credit_card = *cc;
    profile.available_credits = *credits;
    profile.other_marketplace_link = *other;

    auto status_t = map_get(env, argv[2], "status");
    auto linked_t = map_get(env, argv[2], "linked_account");
    if (!status_t || !linked_t) return enif_make_badarg(env);
    auto status = get_binary(env, *status_t);
    if (!status) return enif_make_badarg(env);
    SubscriptionFacts sub;
    sub.azure_status.assign(*status);
    if (!is_undefined(env, *linked_t)) {
        auto linked = get_binary(env, *linked_t);
        if (!linked) return enif_make_badarg(env);
        sub.linked_account.assign(*linked);
    }

    const LinkDecision d = decide_link(*account, profile, sub);
    switch (d.verdict) {
        case LinkVerdict::Link: return atom(env, "link");
        case LinkVerdict::AlreadyLinked: return atom(env, "already_linked");
        case LinkVerdict::Refuse: break;
    }
    const std::string_view reason = d.refusal ? refusal_name(*d.refusal) : std::string_view("unknown");
    return enif_make_tuple2(env, atom(env, "refuse"), atom_of(env, reason));
}

ERL_NIF_TERM nif_next_link_state(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 2) return enif_make_badarg(env);
    auto state = get_state(env, argv[0]);
    auto ev_atom = get_atom(env, argv[1]);
    if (!state || !ev_atom) return enif_make_badarg(env);
    auto event = link_event_from_name(ev_atom->view());
    if (!event) return enif_make_badarg(env);
    auto next = next_link_state(*state, *event);
    if (!next) return atom(env, "ignore");
    return ok_tuple(env, atom_of(env, link_state_name(*next)));
}

ERL_NIF_TERM nif_decide_create(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 2) return enif_make_badarg(env);
    auto state = get_state(env, argv[0]);
    auto trial = get_bool(env, argv[1]);
    if (!state || !trial) return enif_make_badarg(env);
    auto refusal = decide_create(*state, *trial);
    if (!refusal) return atom(env, "ok");
    return error_tuple(env, atom_of(env, create_refusal_name(*refusal)));
}

ERL_NIF_TERM nif_decide_deployment(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 3 || !enif_is_map(env, argv[1])) return enif_make_badarg(env);
    auto state = get_state(env, argv[0]);
    ErlNifSInt64 now;
    if (!state || !enif_get_int64(env, argv[2], &now)) return enif_make_badarg(env);

    Deployment d;
    auto trial = map_bool(env, argv[1], "trial");
    auto dstate_t = map_get(env, argv[1], "state");
    if (!trial || !dstate_t) return enif_make_badarg(env);
    d.trial = *trial;
    auto dstate = get_atom(env, *dstate_t);
    if (!dstate) return enif_make_badarg(env);
    if (dstate->view() == "running") d.state = DeploymentState::Running;
    else if (dstate->view() == "stopped") d.state = DeploymentState::Stopped;
    else return enif_make_badarg(env);
    if (!map_opt_int(env, argv[1], "trial_ends_at", d.trial_ends_at) ||
        !map_opt_int(env, argv[1], "stopped_at", d.stopped_at))
        return enif_make_badarg(env);

    const DeploymentAction a = decide_deployment(*state, d, static_cast<std::int64_t>(now));
    switch (a.kind) {
        case ActionKind::Keep: return atom(env, "keep");
        case ActionKind::Stop:
            return enif_make_tuple2(env, atom(env, "stop"),
                                    atom_of(env, a.stop_reason ? stop_reason_name(*a.stop_reason) : "unknown"));
        case ActionKind::Delete:
            return enif_make_tuple2(env, atom(env, "delete"), enif_make_int64(env, a.delete_at));
    }
    return atom(env, "keep");
}

}  // namespace azmp::nif
