// NIF entry points for the product rules (azmp/rules.hpp): term conversion only, synchronous and
// short (every list is bounded). A wrong shape raises `{badarg, Field}` naming what was wrong: the
// arguments are read left to right (a map's fields in the order listed here), the first wrong one named.
//
// Effects come back as a list, each one of:
//   activate | {answer_operation, success | failure} | {set_payment_method, Method}
//   | {notify, #{kind := Kind, reason => Reason}} | {stop_deployment, Id} | {start_deployment, Id}
//   | {delete_deployment, Id} | {schedule_deadline, Id, stop | delete, At} | cancel_deadlines
#pragma once

#include <erl_nif.h>

namespace azmp::nif {

// valid_id(Term) -> boolean()
ERL_NIF_TERM nif_valid_id(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// plan_link(Account, #{credit_card, available_credits, other_marketplace_link},
//           #{status := binary(), holder := binary() | undefined, seen_cancelled := boolean(),
//             holds_other := boolean()})
//   -> {link | already_linked | {refuse, Reason}, Effects}
ERL_NIF_TERM nif_plan_link(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// plan_linked() -> Effects
ERL_NIF_TERM nif_plan_linked(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// classify_link_failure(resolve | activate, {http, Status} | bad_request | unavailable)
//   -> retry | {refuse, Reason}
// plan_link_failed(Reason) -> Effects;  marketplace_pays(State) -> boolean()
ERL_NIF_TERM nif_classify_link_failure(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_plan_link_failed(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_marketplace_pays(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// decide_activation(AzureStatus :: binary() | undefined) -> activate | already_active | refuse
ERL_NIF_TERM nif_decide_activation(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// link_retry_delay(Attempts, BaseS, MaxS) -> Seconds
ERL_NIF_TERM nif_link_retry_delay(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// landing_expires_at(Now) -> At;  landing_usable(ExpiresAt, Now) -> boolean()
ERL_NIF_TERM nif_landing_expires_at(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_landing_usable(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// plan_event(Event, Facts, Now, OpAt :: integer() | undefined)
//   Facts :: #{state := State, suspended := [Id], cancelled_at := integer() | undefined,
//              last_op_at := integer() | undefined, marketplace_pays := boolean(), deployments := [Deployment]}
//   -> ignore | stale | {ok, #{state, suspended, cancelled_at, last_op_at}, Effects}
// plan_enforce(Facts, Now) -> {ok, #{...}, Effects}
ERL_NIF_TERM nif_plan_event(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_plan_enforce(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// repair_event(AzureStatus :: binary(), LocalState) -> Event | none
ERL_NIF_TERM nif_repair_event(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// plan_deadline(stop | delete, DeploymentId, State, CancelledAt | undefined, Now) -> Effects
ERL_NIF_TERM nif_plan_deadline(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// plan_webhook(HookAction, HookSubscriptionId,
//              #{action := binary(), subscription_id := binary(), plan_id => binary(), quantity => integer()},
//              PlanKnown :: boolean())
//   -> {mismatch | act | refused | ignored, Event | none, Effects}
ERL_NIF_TERM nif_plan_webhook(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// gate_create(State, Trial, PaysOtherwise :: boolean() | unknown)
//   -> ok | {error, Reason} | need_payment_method
// gate_deployment(State, Deployment, Now, CancelledAt | undefined, PaysOtherwise | unknown)
//   -> need_payment_method | keep | {stop, Reason} | {delete, At}
ERL_NIF_TERM nif_gate_create(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_gate_deployment(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

}  // namespace azmp::nif
