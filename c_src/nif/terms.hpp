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

// What term_to_json may still take: terms (nodes) and bytes of JSON text. Every term costs at least
// one node and one byte, and a binary or a map is charged for its size before it is copied or
// walked, so a conversion gives up after at most `nodes` terms whatever it is handed: a scheduler
// is never held for long by a large term (a 16 MB binary, a 100,000-key map, a long list).
struct JsonBudget {
    std::size_t nodes;
    std::size_t bytes;
    bool exceeded = false;  // set when the conversion gave up on the budget (not on a wrong term)
    bool take(std::size_t n, std::size_t b) {
        if (n > nodes || b > bytes) return !(exceeded = true);
        nodes -= n;
        bytes -= b;
        return true;
    }
};

// Erlang term -> JSON: maps (binary or atom keys), lists, binaries (UTF-8 strings), integers,
// floats, true/false/null, other atoms as strings. Nothing for anything else (pids, tuples, ...),
// nor once `budget` is spent (budget.exceeded then tells which).
std::optional<boost::json::value> term_to_json(ErlNifEnv* env, ERL_NIF_TERM t, JsonBudget& budget, int depth = 0);

// (OpName atom, Args map) -> Operation, or the Error naming the offending field.
std::variant<Operation, Error> operation_from_terms(ErlNifEnv* env, ERL_NIF_TERM op, ERL_NIF_TERM args);

}  // namespace azmp::nif
