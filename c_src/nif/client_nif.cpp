// Entry points of the marketplace client: create, call (asynchronous), cancel, stats.
#include "nifs.hpp"
#include "resources.hpp"

namespace azmp::nif {

// client_new(Config :: map()) -> {ok, {ClientRes, TimeoutMs}} | {error, Reason}
ERL_NIF_TERM nif_client_new(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    if (!enif_is_map(env, argv[0])) return enif_make_badarg(env);
    auto parsed = config_from_term(env, argv[0]);
    if (auto* err = std::get_if<Error>(&parsed)) return error_tuple(env, encode(env, *err));
    Library* lib = library(env);
    auto& cfg = std::get<ClientConfig>(parsed);
    long timeout_ms = cfg.timeout_ms;
    ERL_NIF_TERM term = make_resource<ClientRes>(env, lib->client_type, std::make_shared<Client>(std::move(cfg), lib->engine),
                                                 timeout_ms);
    return ok_tuple(env, enif_make_tuple2(env, term, encode(env, std::int64_t{timeout_ms})));
}

// request(ClientRes, Op :: atom(), Args :: map()) -> {ok, CallRes} | {error, Reason}
// The result arrives as {azmp_reply, CallRes, Result}.
ERL_NIF_TERM nif_request(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    Library* lib = library(env);
    ClientRes* cres = nullptr;
    if (!enif_get_resource(env, argv[0], lib->client_type, reinterpret_cast<void**>(&cres)) || !cres->client)
        return enif_make_badarg(env);
    if (!enif_is_atom(env, argv[1]) || !enif_is_map(env, argv[2])) return enif_make_badarg(env);
    auto parsed = operation_from_terms(env, argv[1], argv[2]);
    if (auto* err = std::get_if<Error>(&parsed)) return error_tuple(env, encode(env, *err));

    NewCall c = new_call(env);
    if (!c.call) return enif_make_badarg(env);
    c.call->client = cres->client;
    auto pending = c.pending;
    auto started = cres->client->call(std::move(std::get<Operation>(parsed)), [pending](CallResult&& r) {
        pending->send([&r](ErlNifEnv* e) { return result_to_term(e, r); });
    });
    if (auto* err = std::get_if<Error>(&started)) {
        abandon_call(env, c);
        return error_tuple(env, encode(env, *err));
    }
    c.call->id = std::get<Client::CallId>(started);
    return ok_tuple(env, c.term);
}

// cancel(CallRes) -> ok: the caller gave up waiting.
ERL_NIF_TERM nif_cancel(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    CallRes* call = nullptr;
    if (!enif_get_resource(env, argv[0], library(env)->call_type, reinterpret_cast<void**>(&call)))
        return enif_make_badarg(env);
    if (!call->replied.load())
        if (auto client = call->client.lock()) client->cancel(call->id);
    return atoms::ok;
}

// client_stats(ClientRes) -> #{token_requests, in_flight, retries, token_obtained_at}
ERL_NIF_TERM nif_client_stats(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ClientRes* cres = nullptr;
    if (!enif_get_resource(env, argv[0], library(env)->client_type, reinterpret_cast<void**>(&cres)) ||
        !cres->client)
        return enif_make_badarg(env);
    ClientStats s = cres->client->stats();
    return make_map<4>(env, {{{atoms::token_requests, encode(env, std::uint64_t{s.token_requests})},
                              {atoms::in_flight, encode(env, std::uint64_t{s.in_flight})},
                              {atoms::retries, encode(env, std::uint64_t{s.retries})},
                              {atoms::token_obtained_at, encode(env, std::int64_t{s.token_obtained_at})}}});
}

}  // namespace azmp::nif
