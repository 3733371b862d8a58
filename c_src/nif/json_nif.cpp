// JSON for the Erlang side (webhook bodies, HTTP answers), with the same Boost.JSON as the rest.
#include <boost/json.hpp>

#include "resources.hpp"

namespace azmp::nif {
namespace {
// Webhook bodies and landing answers are small: anything larger is refused so the call stays short.
constexpr std::size_t kMaxJsonBytes = 256 * 1024;
}  // namespace

// json_decode(Binary) -> {ok, Term} | {error, bad_json}
ERL_NIF_TERM json_decode(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, argv[0], &bin)) return enif_make_badarg(env);
    if (bin.size > kMaxJsonBytes) return error_tuple(env, atoms::too_large);
    boost::system::error_code ec;
    boost::json::value v =
        boost::json::parse(boost::json::string_view(reinterpret_cast<const char*>(bin.data), bin.size), ec);
    if (ec) return error_tuple(env, atoms::bad_json);
    return ok_tuple(env, json_to_term(env, v));
}

// json_encode(Term) -> {ok, Binary} | {error, {badarg, json}}
ERL_NIF_TERM json_encode(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto v = term_to_json(env, argv[0]);
    if (!v) return error_tuple(env, encode(env, Error::badarg("json")));
    std::string out = boost::json::serialize(*v);
    if (out.size() > kMaxJsonBytes) return error_tuple(env, atoms::too_large);
    return ok_tuple(env, encode(env, out));
}

}  // namespace azmp::nif
