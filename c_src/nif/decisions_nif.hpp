// NIF entry points for the pure decisions (azmp/decisions.hpp): term conversion only, synchronous
// and fast (no dirty scheduler needed). A wrong shape raises badarg.
#pragma once

#include <erl_nif.h>

namespace azmp::nif {

// decide_link(AccountId :: binary(),
//             Profile :: #{credit_card := boolean(), available_credits := boolean(),
//                          other_marketplace_link := boolean()},
//             Sub :: #{status := binary(), linked_account := binary() | undefined})
//   -> link | already_linked | {refuse, Reason :: atom()}
// AccountId must be non-empty; linked_account <<>> means undefined. Extra map keys are ignored.
ERL_NIF_TERM nif_decide_link(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// next_link_state(State :: none | pending | linked | suspended | unsubscribed,
//                 Event :: activated | link_failed | change_plan | change_quantity | renew | suspend |
//                          reinstate | unsubscribe)
//   -> {ok, NewState} | ignore
ERL_NIF_TERM nif_next_link_state(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// decide_create(State, Trial :: boolean()) -> ok | {error, Reason :: atom()}
ERL_NIF_TERM nif_decide_create(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// decide_deployment(State,
//                   Deployment :: #{trial := boolean(), trial_ends_at => integer() | undefined,
//                                   state := running | stopped, stopped_at => integer() | undefined},
//                   Now :: integer())
//   -> keep | {stop, Reason :: atom()} | {delete, At :: integer()}     (unix seconds)
// Extra map keys (id, ...) are ignored.
ERL_NIF_TERM nif_decide_deployment(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

}  // namespace azmp::nif
