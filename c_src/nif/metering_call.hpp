// The client's result of an Azure call ({ok, Decoded} | {error, Reason}) as the metering core
// takes it (azmp/metering_answer.hpp's CallResult).
#pragma once

#include <erl_nif.h>

#include <boost/json/value.hpp>

#include <optional>

#include "azmp/metering_answer.hpp"

namespace azmp::nif {

// False when `t` is neither. `json` holds the decoded answer `out.body` points into. An answer
// larger than the meter ever reads (its budget) is one it cannot read: Answered, without a body.
bool read_call_result(ErlNifEnv* env, ERL_NIF_TERM t, metering::CallResult& out, std::optional<boost::json::value>& json);

}  // namespace azmp::nif
