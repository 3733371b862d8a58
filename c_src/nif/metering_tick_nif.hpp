// NIF entry points for the meter's tick, closing hours and reconciliation (azmp/metering_tick.hpp).
#pragma once

#include <erl_nif.h>

namespace azmp::nif {

// usage_tick(#{now, grace_s, lease_s, call_timeout_ms, history_days, last_reconciled, retry_after,
//              window_waves, held := [#{hour, state, outcome_unknown, _ => _}], lookups := [Hour]})
//   -> #{lease_until, in_flight_until, current_hour, closes_at (the current hour's), archive_last_hour,
//        settled := [Status], submit_states := [LinkState], first_kept_day, overdue_before,
//        reconcile := {DayStart, DayEnd} | undefined, retry_after (of a failed reconciliation),
//        releases := [keep | send | carry | lookup | drop] (one per held hour),
//        lookup_days := [{DayStart, DayEnd}] (one per hour in lookups), batch_size}
ERL_NIF_TERM nif_usage_tick(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// usage_close([#{recorded, carried_in, included, counter := {TermStart, Used, PrevTermStart, PrevUsed}, hour,
//                term := {StartDate, EndDate, TermUnit} | undefined, activated_at => S | undefined,
//                late => [{FromHour, Micros}]}])
//   -> [{Reported, Absorbed, Counter} | {too_large, Counter}]   (at most 1,000 hours a call)
ERL_NIF_TERM nif_usage_close(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// usage_reconcile_answer([LedgerHour], Result)   (the day's hours, as the store's usage maps)
//   -> {ok, [#{subscription_id, dimension, verdict := differ | alarm, billed, processed, recon_status}]}
//    | retry                       (Result: the client's answer to get_usage_events; dirty CPU)
ERL_NIF_TERM nif_usage_reconcile_answer(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

}  // namespace azmp::nif
