// Term conversion for azmp/status_text.hpp. Names come in as atoms (the statuses and reasons the
// Erlang side already holds); anything else is badarg.
// NIF entry points for the words a customer is shown (azmp/status_text.hpp).
#include "nifs.hpp"

#include <optional>
#include <string_view>

#include "azmp/status_text.hpp"
#include "codec.hpp"

namespace azmp::nif {
namespace {

// An atom's name, copied into buf (valid while buf is). Atoms longer than buf are not names we know.
std::optional<std::string_view> atom_name(ErlNifEnv* env, ERL_NIF_TERM t, char (&buf)[64]) {
    int n = enif_get_atom(env, t, buf, sizeof buf, ERL_NIF_LATIN1);
    if (n <= 0) return std::nullopt;
    return std::string_view(buf, static_cast<std::size_t>(n - 1));
}

ERL_NIF_TERM text_map(ErlNifEnv* env, const ShownText& t) {
    return make_map<3>(env, {{{atoms::reason, atom_named(env, t.reason)},
                              {atom_named(env, "title"), encode(env, t.title)},
                              {atom_named(env, "message"), encode(env, t.message)}}});
}

}  // namespace
// link_status_text(Status :: atom(), Refusal :: atom() | undefined, Retrying :: boolean())
//   -> #{reason := atom(), title := binary(), message := binary()} | undefined
ERL_NIF_TERM nif_link_status_text(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 3) return enif_make_badarg(env);
    char status_buf[64], refusal_buf[64];
    auto status = atom_name(env, argv[0], status_buf);
    auto refusal = enif_is_identical(argv[1], atoms::undefined) ? std::optional<std::string_view>("")
                                                                 : atom_name(env, argv[1], refusal_buf);
    auto retrying = decode<bool>(env, argv[2]);
    if (!status || !refusal || !retrying) return enif_make_badarg(env);
    auto t = link_status_text(*status, *refusal, *retrying);
    return t ? text_map(env, *t) : atoms::undefined;
}
// landing_error_text(Error :: atom())
//   -> #{reason := atom(), status := 400..599, title := binary(), message := binary()} | undefined
ERL_NIF_TERM nif_landing_error_text(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 1) return enif_make_badarg(env);
    char buf[64];
    auto error = atom_name(env, argv[0], buf);
    if (!error) return enif_make_badarg(env);
    auto t = landing_error_text(*error);
    if (!t) return atoms::undefined;
    ERL_NIF_TERM m = text_map(env, t->text);
    enif_make_map_put(env, m, atoms::status, enif_make_int(env, t->http_status), &m);
    return m;
}

}  // namespace azmp::nif
