// Conversions between Erlang terms and the library's C++ values. No Azure logic here.
#pragma once

#include <erl_nif.h>

#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <variant>

#include "azmp/client.hpp"
#include "azmp/error.hpp"
#include "azmp/operations.hpp"
#include "azmp/webhook_auth.hpp"
#include "codec.hpp"

namespace azmp::nif {

// Typed conversions live in codec.hpp (decode<T>, encode, MapFields) and atoms in atoms.hpp
// (atoms::ok, ...).

ERL_NIF_TERM ok_tuple(ErlNifEnv* env, ERL_NIF_TERM value);
ERL_NIF_TERM error_tuple(ErlNifEnv* env, ERL_NIF_TERM reason);

// JSON -> maps with binary keys, lists, binaries, integers/floats, true/false, null.
ERL_NIF_TERM json_to_term(ErlNifEnv* env, const boost::json::value& v);

// timeout | overloaded | {http, Status, Body} | {transport, D} | {bad_response, D} | {auth, D} | {badarg, Field}
// Same as encode(env, e).
ERL_NIF_TERM error_to_term(ErlNifEnv* env, const Error& e);

// ok | {ok, Value} | {ok, OperationId} | {error, Reason}
ERL_NIF_TERM result_to_term(ErlNifEnv* env, const CallResult& r);

// A map of client options -> ClientConfig checked by validate_config (azmp/client.hpp), or the Error
// naming the offending field.
std::variant<ClientConfig, Error> config_from_term(ErlNifEnv* env, ERL_NIF_TERM map);

// A map of webhook authentication options -> WebhookAuthConfig checked by validate_config
// (azmp/webhook_auth.hpp), or the Error naming the offending field.
std::variant<WebhookAuthConfig, Error> webhook_auth_config_from_term(ErlNifEnv* env, ERL_NIF_TERM map);

// Erlang term -> JSON: maps (binary or atom keys), lists, binaries (UTF-8 strings), integers,
// floats, true/false/null, other atoms as strings. Nothing for anything else (pids, tuples, ...).
std::optional<boost::json::value> term_to_json(ErlNifEnv* env, ERL_NIF_TERM t, int depth = 0);

// (OpName atom, Args map) -> Operation, or the Error naming the offending field.
std::variant<Operation, Error> operation_from_terms(ErlNifEnv* env, ERL_NIF_TERM op, ERL_NIF_TERM args);

}  // namespace azmp::nif
