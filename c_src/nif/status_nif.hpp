// NIF entry points for the words a customer is shown (azmp/status_text.hpp).
#pragma once

#include <erl_nif.h>

namespace azmp::nif {

// link_status_text(Status :: atom(), Refusal :: atom() | undefined, Retrying :: boolean())
//   -> #{reason := atom(), title := binary(), message := binary()} | undefined
ERL_NIF_TERM nif_link_status_text(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// landing_error_text(Error :: atom())
//   -> #{reason := atom(), status := 400..599, title := binary(), message := binary()} | undefined
ERL_NIF_TERM nif_landing_error_text(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

}  // namespace azmp::nif
