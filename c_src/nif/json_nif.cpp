// JSON for the Erlang side (webhook bodies, HTTP answers), with the same Boost.JSON as the rest.
#include <boost/json.hpp>

#include <exception>
#include <new>
#include <string_view>

#include "core/json_util.hpp"
#include "nifs.hpp"
#include "resources.hpp"

namespace azmp::nif {
namespace {
// Webhook bodies and landing answers are small: anything larger is refused so the call stays short.
constexpr std::size_t kMaxJsonBytes = 256 * 1024;
// Terms json_encode converts at most (our answers hold a few dozen): with kMaxJsonBytes, what keeps
// one call well within its ~1 ms on a normal scheduler (bench/azmp_bench_nif_worst.erl measures it).
constexpr std::size_t kMaxJsonNodes = 4'000;
}  // namespace

namespace {
// Decoding costs up to ~0.4 us per JSON value (Boost.JSON's parse, then a term each), and 4 KiB holds at
// most ~1,400 values: decoded at once. A larger text (a webhook body is ~1 KiB) goes to a dirty CPU
// scheduler, so no normal scheduler is held by 256 KiB of `[{},{},...]` (tens of ms).
constexpr std::size_t kInlineJsonBytes = 4 * 1024;

// The core's parser, so that what it refuses (1e999: no Erlang float holds it) is bad_json here too.
ERL_NIF_TERM decode_now(ErlNifEnv* env, const ErlNifBinary& bin) {
    auto v = detail::parse_json(std::string_view(reinterpret_cast<const char*>(bin.data), bin.size));
    if (!v) return error_tuple(env, atoms::bad_json);
    return ok_tuple(env, json_to_term(env, *v));
}

// The dirty half (scheduled through guarded<>, as the entry table's functions are).
ERL_NIF_TERM json_decode_dirty(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, argv[0], &bin)) return enif_make_badarg(env);
    return decode_now(env, bin);
}
}  // namespace

// json_decode(Binary) -> {ok, Term} | {error, bad_json} | {error, too_large}
ERL_NIF_TERM nif_json_decode(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, argv[0], &bin)) return enif_make_badarg(env);
    if (bin.size > kMaxJsonBytes) return error_tuple(env, atoms::too_large);
    if (bin.size > kInlineJsonBytes)
        return enif_schedule_nif(env, "json_decode", ERL_NIF_DIRTY_JOB_CPU_BOUND, guarded<json_decode_dirty>, argc, argv);
    return decode_now(env, bin);
}

// json_encode(Term) -> {ok, Binary} | {error, {badarg, json}} | {error, too_large}
// The size limits are checked as the term is walked, before any copy: see JsonBudget.
ERL_NIF_TERM nif_json_encode(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    JsonBudget budget{kMaxJsonNodes, kMaxJsonBytes};
    auto v = term_to_json(env, argv[0], budget);
    if (!v && budget.exceeded) return error_tuple(env, atoms::too_large);
    if (!v) return error_tuple(env, encode(env, Error::badarg("json")));
    std::string out = boost::json::serialize(*v);
    if (out.size() > kMaxJsonBytes) return error_tuple(env, atoms::too_large);
    return ok_tuple(env, encode(env, out));
}

}  // namespace azmp::nif
