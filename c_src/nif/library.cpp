// The NIF library: lifecycle (load / upgrade / unload), resource types, and the entry points.
// Entry points only convert terms and route to azmp::Client; every one catches every C++ exception.
#include <erl_nif.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <memory>
#include <new>
#include <stdexcept>

#include "azmp/client.hpp"
#include "azmp/engine.hpp"
#include "terms.hpp"

namespace azmp::nif {
namespace {

// Bumped whenever the Erlang stubs and this library stop agreeing on functions, terms or resource
// layouts. The Erlang module passes the number it was written for as load_info.
constexpr int kAbiVersion = 1;

// Library-wide state, shared by every module instance that loaded this very image (a reload of the
// same file reuses the same image, so an upgrade keeps the engine and its in-flight calls).
struct Library {
    int abi = kAbiVersion;
    const void* image = nullptr;  // identifies this loaded image
    std::atomic<int> module_refs{1};
    std::shared_ptr<Engine> engine;
    ErlNifResourceType* client_type = nullptr;
    ErlNifResourceType* call_type = nullptr;
};

const char kImageTag = 0;  // its address tells two loaded images apart

// Resource: a client (config, token cache), owned jointly with in-flight calls.
struct ClientRes {
    std::shared_ptr<Client> client;
    long timeout_ms = 0;
};

// Resource: one call; monitors its caller so that a caller that dies cancels the call.
struct CallRes {
    std::weak_ptr<Client> client;
    Client::CallId id = 0;
    ErlNifMonitor monitor;
    std::atomic<bool> monitoring{false};
    std::atomic<bool> replied{false};
};

Library* library(ErlNifEnv* env) { return static_cast<Library*>(enif_priv_data(env)); }

void client_dtor(ErlNifEnv*, void* obj) { static_cast<ClientRes*>(obj)->~ClientRes(); }
void call_dtor(ErlNifEnv*, void* obj) { static_cast<CallRes*>(obj)->~CallRes(); }

void call_down(ErlNifEnv*, void* obj, ErlNifPid*, ErlNifMonitor*) {
    auto* c = static_cast<CallRes*>(obj);
    c->monitoring.store(false);
    if (c->replied.load()) return;
    if (auto client = c->client.lock()) client->cancel(c->id);
}

// Resource type names carry the loaded image's identity. Reloading the same image takes its
// resources over (same code, same layouts). A different image (a new version of the file) gets types
// of its own: objects made by the old image keep the old image loaded, and are destroyed by its
// code, until the last one is gone; only then does the VM unload it (and we join its engine).
std::string type_name(const char* base) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s_%p", base, static_cast<const void*>(&kImageTag));
    return buf;
}

bool open_resource_types(ErlNifEnv* env, Library* lib) {
    auto flags = static_cast<ErlNifResourceFlags>(ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER);
    ErlNifResourceTypeInit client_init{client_dtor, nullptr, nullptr, 0, nullptr};
    ErlNifResourceTypeInit call_init{call_dtor, nullptr, call_down, 0, nullptr};
    lib->client_type = enif_open_resource_type_x(env, type_name("azmp_client").c_str(), &client_init, flags, nullptr);
    lib->call_type = enif_open_resource_type_x(env, type_name("azmp_call").c_str(), &call_init, flags, nullptr);
    return lib->client_type && lib->call_type;
}

bool abi_matches(ErlNifEnv* env, ERL_NIF_TERM load_info) {
    int abi = 0;
    return enif_get_int(env, load_info, &abi) && abi == kAbiVersion;
}

int on_load(ErlNifEnv* env, void** priv, ERL_NIF_TERM load_info) {
    if (!abi_matches(env, load_info)) return 1;
    try {
        auto lib = std::make_unique<Library>();
        lib->image = &kImageTag;
        if (!open_resource_types(env, lib.get())) return 2;
        lib->engine = std::make_shared<Engine>();
        *priv = lib.release();
        return 0;
    } catch (...) {
        return 3;
    }
}

int on_upgrade(ErlNifEnv* env, void** priv, void** old_priv, ERL_NIF_TERM load_info) {
    if (!abi_matches(env, load_info)) return 1;
    auto* old = static_cast<Library*>(*old_priv);
    if (old && old->image == &kImageTag && old->abi == kAbiVersion) {
        // Same image: share the running engine, so calls in flight keep going and reply.
        if (!open_resource_types(env, old)) return 2;
        old->module_refs.fetch_add(1);
        *priv = old;
        return 0;
    }
    // A different image (a new file): its own engine and resource types. The old engine keeps
    // serving the calls it has until the old image's last object is gone (see type_name).
    return on_load(env, priv, load_info);
}

void on_unload(ErlNifEnv*, void* priv) {
    auto* lib = static_cast<Library*>(priv);
    if (!lib || lib->module_refs.fetch_sub(1) != 1) return;
    // Last module instance using this image: stop and join the engine before the code can go away.
    lib->engine->stop();
    delete lib;
}

ERL_NIF_TERM raise_internal(ErlNifEnv* env, const char* what) {
    return enif_raise_exception(
        env, enif_make_tuple2(env, atom(env, "azmp_internal_error"), make_binary(env, what ? what : "")));
}

// Keeps C++ exceptions off the VM boundary.
template <ERL_NIF_TERM (*F)(ErlNifEnv*, int, const ERL_NIF_TERM[])>
ERL_NIF_TERM guarded(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    try {
        return F(env, argc, argv);
    } catch (const std::bad_alloc&) {
        return raise_internal(env, "out of memory");
    } catch (const std::exception& e) {
        return raise_internal(env, e.what());
    } catch (...) {
        return raise_internal(env, "unknown C++ exception");
    }
}

// client_new(Config :: map()) -> {ok, ClientRes} | {error, Reason}
ERL_NIF_TERM client_new(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    if (!enif_is_map(env, argv[0])) return enif_make_badarg(env);
    auto parsed = config_from_term(env, argv[0]);
    if (auto* err = std::get_if<Error>(&parsed)) return error_tuple(env, error_to_term(env, *err));
    Library* lib = library(env);
    auto& cfg = std::get<ClientConfig>(parsed);
    auto* res = static_cast<ClientRes*>(enif_alloc_resource(lib->client_type, sizeof(ClientRes)));
    if (!res) return raise_internal(env, "out of memory");
    long timeout_ms = cfg.timeout_ms;
    try {
        new (res) ClientRes{std::make_shared<Client>(std::move(cfg), lib->engine), timeout_ms};
    } catch (...) {
        // Not constructed: give the memory back without running the destructor.
        new (res) ClientRes{};
        enif_release_resource(res);
        throw;
    }
    ERL_NIF_TERM term = enif_make_resource(env, res);
    enif_release_resource(res);
    return ok_tuple(env, enif_make_tuple2(env, term, enif_make_long(env, timeout_ms)));
}

// Stops monitoring the caller and drops the reference the call kept on its resource.
// `env` is the calling scheduler's env, or null on the engine thread.
void release_call(ErlNifEnv* env, CallRes* call) {
    if (call->monitoring.exchange(false)) enif_demonitor_process(env, call, &call->monitor);
    enif_release_resource(call);
}

// Owns a call's resource reference from request() until the reply is sent, or until the call is
// dropped without one (cancelled): whichever happens, the reference is released exactly once.
struct PendingReply {
    CallRes* call;
    ErlNifPid caller;
    bool armed = true;  // request() disarms it when it cleans up a refused call itself
    bool sent = false;

    PendingReply(CallRes* c, ErlNifPid p) : call(c), caller(p) {}
    PendingReply(const PendingReply&) = delete;
    PendingReply& operator=(const PendingReply&) = delete;
    ~PendingReply() {
        if (armed && !sent) release_call(nullptr, call);  // cancelled: runs on the engine thread
    }

    // Sends {azmp_reply, CallRes, Result} to the caller. Runs on the engine thread.
    void send(CallResult&& result) noexcept {
        sent = true;
        call->replied.store(true);
        if (ErlNifEnv* msg_env = enif_alloc_env()) {
            ERL_NIF_TERM tag = atom(msg_env, "azmp_reply");
            ERL_NIF_TERM ref = enif_make_resource(msg_env, call);
            ERL_NIF_TERM body;
            try {
                body = result_to_term(msg_env, result);
            } catch (...) {
                body = error_tuple(msg_env, enif_make_tuple2(msg_env, atom(msg_env, "transport"),
                                                             atom(msg_env, "reply_too_large")));
            }
            enif_send(nullptr, &caller, msg_env, enif_make_tuple3(msg_env, tag, ref, body));
            enif_free_env(msg_env);
        }
        release_call(nullptr, call);
    }
};

// request(ClientRes, Op :: atom(), Args :: map()) -> {ok, CallRes} | {error, Reason}
ERL_NIF_TERM request(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    Library* lib = library(env);
    ClientRes* cres = nullptr;
    if (!enif_get_resource(env, argv[0], lib->client_type, reinterpret_cast<void**>(&cres)) || !cres->client)
        return enif_make_badarg(env);
    if (!enif_is_atom(env, argv[1]) || !enif_is_map(env, argv[2])) return enif_make_badarg(env);
    auto parsed = operation_from_terms(env, argv[1], argv[2]);
    if (auto* err = std::get_if<Error>(&parsed)) return error_tuple(env, error_to_term(env, *err));

    ErlNifPid caller;
    if (!enif_self(env, &caller)) return enif_make_badarg(env);
    auto* call = static_cast<CallRes*>(enif_alloc_resource(lib->call_type, sizeof(CallRes)));
    if (!call) return raise_internal(env, "out of memory");
    new (call) CallRes{};
    call->client = cres->client;
    ERL_NIF_TERM call_term = enif_make_resource(env, call);
    // Kept (one reference) until the reply is delivered.
    if (enif_monitor_process(env, call, &caller, &call->monitor) == 0) call->monitoring.store(true);
    auto pending = std::make_shared<PendingReply>(call, caller);
    auto started = cres->client->call(std::move(std::get<Operation>(parsed)),
                                      [pending](CallResult&& r) { pending->send(std::move(r)); });
    if (auto* err = std::get_if<Error>(&started)) {
        pending->armed = false;
        release_call(env, call);
        return error_tuple(env, error_to_term(env, *err));
    }
    call->id = std::get<Client::CallId>(started);
    return ok_tuple(env, call_term);
}

// cancel(CallRes) -> ok: the caller gave up waiting.
ERL_NIF_TERM cancel(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    CallRes* call = nullptr;
    if (!enif_get_resource(env, argv[0], library(env)->call_type, reinterpret_cast<void**>(&call)))
        return enif_make_badarg(env);
    if (!call->replied.load())
        if (auto client = call->client.lock()) client->cancel(call->id);
    return atom(env, "ok");
}

// info() -> map(): engine figures for operators and tests.
ERL_NIF_TERM info(ErlNifEnv* env, int, const ERL_NIF_TERM[]) {
    Library* lib = library(env);
    EngineStats s = lib->engine->stats();
    ERL_NIF_TERM keys[] = {atom(env, "abi"), atom(env, "transfers_started"), atom(env, "transfers_active"),
                           atom(env, "connections_opened"), atom(env, "module_refs")};
    ERL_NIF_TERM vals[] = {enif_make_int(env, lib->abi), enif_make_uint64(env, s.transfers_started),
                           enif_make_uint64(env, s.transfers_active), enif_make_uint64(env, s.connections_opened),
                           enif_make_int(env, lib->module_refs.load())};
    ERL_NIF_TERM m;
    enif_make_map_from_arrays(env, keys, vals, 5, &m);
    return m;
}

// client_stats(ClientRes) -> map()
ERL_NIF_TERM client_stats(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ClientRes* cres = nullptr;
    if (!enif_get_resource(env, argv[0], library(env)->client_type, reinterpret_cast<void**>(&cres)) ||
        !cres->client)
        return enif_make_badarg(env);
    ClientStats s = cres->client->stats();
    ERL_NIF_TERM keys[] = {atom(env, "token_requests"), atom(env, "in_flight")};
    ERL_NIF_TERM vals[] = {enif_make_uint64(env, s.token_requests), enif_make_uint64(env, s.in_flight)};
    ERL_NIF_TERM m;
    enif_make_map_from_arrays(env, keys, vals, 2, &m);
    return m;
}

ErlNifFunc nif_funcs[] = {
    {"client_new", 1, guarded<client_new>, 0},
    {"request", 3, guarded<request>, 0},
    {"cancel", 1, guarded<cancel>, 0},
    {"info", 0, guarded<info>, 0},
    {"client_stats", 1, guarded<client_stats>, 0},
};

}  // namespace
}  // namespace azmp::nif

ERL_NIF_INIT(emqx_azure_marketplace_nif, azmp::nif::nif_funcs, azmp::nif::on_load, nullptr, azmp::nif::on_upgrade,
             azmp::nif::on_unload)
