// NIF entry point for the meter's answers (azmp/metering_answer.hpp): term conversion only.
#pragma once

#include <erl_nif.h>

namespace azmp::nif {

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
ERL_NIF_TERM nif_usage_answer(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

}  // namespace azmp::nif
