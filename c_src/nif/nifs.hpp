// The NIF entry points, declared from the one table (nifs.def).
#pragma once

#include <erl_nif.h>

namespace azmp::nif {

#define AZMP_NIF(name, arity) ERL_NIF_TERM nif_##name(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
#include "nifs.def"
#undef AZMP_NIF

}  // namespace azmp::nif
