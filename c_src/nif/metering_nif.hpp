// NIF entry points for the metering rules (azmp/metering.hpp): term conversion only, short calls.
// Quantities cross the boundary as integer micro-units; a wrong shape raises `{badarg, Field}`.
#pragma once

#include <erl_nif.h>

namespace azmp::nif {

// usage_quantity(integer() | float() | binary()) -> {ok, Micros} | error
//   (a binary is an exact decimal such as <<"12.5">>; at most 6 decimals)
ERL_NIF_TERM nif_usage_quantity(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// usage_format(Micros) -> binary() (the exact decimal text)
ERL_NIF_TERM nif_usage_format(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// usage_hour(AtMs) -> HourStart (unix s, UTC)
ERL_NIF_TERM nif_usage_hour(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// usage_plan_record(#{dimension_known, quantity, at_ms, state, cancelled_at, activated_at, bucket_open, now,
//                     grace_s, lateness_s (undefined: a day less the grace), own_total, current_total})
//   -> {ok, Hour, CarriedFrom | undefined, ClosesAt} | {error, Reason | {Reason, #{Bound => Value}}}
ERL_NIF_TERM nif_usage_plan_record(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// usage_term(StartDate, EndDate, TermUnit) -> {ok, StartUnixS, Months} | error (Azure's term, read)
ERL_NIF_TERM nif_usage_term(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// usage_dedupe_cutoff(Now, WindowS) -> the recorded-at time before which a source id has expired
ERL_NIF_TERM nif_usage_dedupe_cutoff(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// usage_sweep_interval_ms(WindowS) -> how often expired source ids are swept
ERL_NIF_TERM nif_usage_sweep_interval_ms(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// usage_check_settings(#{history_days => _, dedupe_window_s => _, grace_s => _, dimensions => _, ...}) -> ok
//   | {error, {history_days | dedupe_window_s, not_a_positive_integer | {at_least, Min}}}
//   | {error, {grace_s, not_a_non_negative_integer | {at_most, Max}}}
//   | {error, {dimensions, {repeated_id, N} | not_a_list | {at_most, Max}}}   (N: 1-based)
//   (the keys present are checked; others are not this function's)
ERL_NIF_TERM nif_usage_check_settings(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

}  // namespace azmp::nif
