// The client's result of an Azure call ({ok, Decoded} | {error, Reason}) as the core takes it
// (azmp/call_result.hpp).
#pragma once

#include <erl_nif.h>

#include <boost/json/value.hpp>

#include <optional>

#include "azmp/call_result.hpp"

namespace azmp::nif {

// How much of an answer is read. On a normal scheduler (a batch's 25 items, a subscription): a
// small budget, so that no answer holds it for long. On a dirty one (a day's usageEvents rows of
// every subscription of a dimension): a large one.
enum class AnswerSize { Small, Large };

// `ok` (a call answered without a body) is Answered without one. False when `t` is none of these. `json` holds the decoded answer `out.body` points into. An answer
// beyond its budget is one the meter cannot read: Answered, without a body.
bool read_call_result(ErlNifEnv* env, ERL_NIF_TERM t, AnswerSize size, CallReport& out,
                      std::optional<boost::json::value>& json);

}  // namespace azmp::nif
