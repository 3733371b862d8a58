// Entry points of webhook authentication: create an authenticator, check a bearer token.
#include "nifs.hpp"
#include "resources.hpp"

namespace azmp::nif {

// webhook_auth_new(Config :: map()) -> {ok, AuthRes} | {error, {badarg, Field}}
ERL_NIF_TERM nif_webhook_auth_new(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    if (!enif_is_map(env, argv[0])) return enif_make_badarg(env);
    auto parsed = webhook_auth_config_from_term(env, argv[0]);
    if (auto* err = std::get_if<Error>(&parsed)) return error_tuple(env, encode(env, *err));
    Library* lib = library(env);
    return ok_tuple(env, make_resource<AuthRes>(env, lib->auth_type,
                                                std::make_shared<WebhookAuthenticator>(
                                                    std::move(std::get<WebhookAuthConfig>(parsed)), lib->engine)));
}

// webhook_authenticate(AuthRes, Authorization :: binary(), Now :: integer()) -> {ok, CallRes}
// The verdict arrives as {azmp_reply, CallRes, {ok, Claims} | {error, Reason :: atom()}}.
ERL_NIF_TERM nif_webhook_authenticate(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    AuthRes* res = nullptr;
    ErlNifBinary header;
    ErlNifSInt64 now;
    if (!enif_get_resource(env, argv[0], library(env)->auth_type, reinterpret_cast<void**>(&res)) || !res->auth ||
        !enif_inspect_binary(env, argv[1], &header) || !enif_get_int64(env, argv[2], &now))
        return enif_make_badarg(env);
    // A bearer token is a few kilobytes; anything far larger is not one.
    if (header.size > 64 * 1024) return error_tuple(env, atoms::malformed);
    NewCall c = new_call(env);
    if (!c.call) return enif_make_badarg(env);
    auto pending = c.pending;
    bool started = res->auth->authenticate(
        std::string(reinterpret_cast<const char*>(header.data), header.size), now, [pending](AuthResult&& r) {
            pending->send([&r](ErlNifEnv* e) {
                if (auto* claims = std::get_if<boost::json::object>(&r))
                    return ok_tuple(e, json_to_term(e, boost::json::value(std::move(*claims))));
                return error_tuple(e, atom_named(e, std::get<std::string>(r)));
            });
        });
    if (!started) {
        abandon_call(env, c);
        return error_tuple(env, encode(env, Error::transport("the engine is stopped; reload the plugin")));
    }
    return ok_tuple(env, c.term);
}

}  // namespace azmp::nif
