// The NIF library: lifecycle (load / upgrade / unload), resource types, the entry point table.
// Entry points only convert terms and route calls; every one catches every C++ exception.
#include <erl_nif.h>

#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "nifs.hpp"
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include "resources.hpp"

namespace azmp::nif {

ERL_NIF_TERM raise_internal(ErlNifEnv* env, const char* what) {
    return enif_raise_exception(
        env, enif_make_tuple2(env, atoms::azmp_internal_error, encode(env, std::string_view(what ? what : ""))));
}

void release_call(ErlNifEnv* env, CallRes* call) {
    if (call->monitoring.exchange(false)) enif_demonitor_process(env, call, &call->monitor);
    enif_release_resource(call);
}

ErlNifEnv* reply_env() noexcept {
    // Replies are sent from the engine thread: its environment goes when the thread ends, which
    // is before the library image is unloaded (unload joins it).
    struct Holder {
        ErlNifEnv* env = enif_alloc_env();
        ~Holder() {
            if (env) enif_free_env(env);
        }
    };
    thread_local Holder holder;
    if (!holder.env) holder.env = enif_alloc_env();
    return holder.env;
}

NewCall new_call(ErlNifEnv* env) {
    NewCall c;
    ErlNifPid caller;
    if (!enif_self(env, &caller)) return c;
    auto* call = static_cast<CallRes*>(enif_alloc_resource(library(env)->call_type, sizeof(CallRes)));
    if (!call) return c;
    new (call) CallRes{};
    c.term = enif_make_resource(env, call);
    // The call keeps its one reference until the reply is delivered (see PendingReply).
    if (enif_monitor_process(env, call, &caller, &call->monitor) == 0) call->monitoring.store(true);
    c.pending = std::make_shared<PendingReply>(call, caller);
    c.call = call;
    return c;
}

void abandon_call(ErlNifEnv* env, NewCall& c) {
    c.pending->armed = false;
    release_call(env, c.call);
}

namespace {

const char kImageTag = 0;  // its address tells two loaded images apart

void client_dtor(ErlNifEnv*, void* obj) { static_cast<ClientRes*>(obj)->~ClientRes(); }
void auth_dtor(ErlNifEnv*, void* obj) { static_cast<AuthRes*>(obj)->~AuthRes(); }
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
    ErlNifResourceTypeInit auth_init{auth_dtor, nullptr, nullptr, 0, nullptr};
    ErlNifResourceTypeInit call_init{call_dtor, nullptr, call_down, 0, nullptr};
    lib->client_type = enif_open_resource_type_x(env, type_name("azmp_client").c_str(), &client_init, flags, nullptr);
    lib->auth_type = enif_open_resource_type_x(env, type_name("azmp_webhook_auth").c_str(), &auth_init, flags, nullptr);
    lib->call_type = enif_open_resource_type_x(env, type_name("azmp_call").c_str(), &call_init, flags, nullptr);
    return lib->client_type && lib->auth_type && lib->call_type;
}

bool abi_matches(ErlNifEnv* env, ERL_NIF_TERM load_info) {
    int abi = 0;
    return enif_get_int(env, load_info, &abi) && abi == kAbiVersion;
}

int on_load(ErlNifEnv* env, void** priv, ERL_NIF_TERM load_info) {
    if (!abi_matches(env, load_info)) return 1;
    try {
        atoms::make_all(env);
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
    atoms::make_all(env);  // once per image: a no-op when this image is already loaded
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
#if defined(__GLIBC__)
    // The joined engine thread's malloc arena keeps what it freed (TLS state, buffers) mapped, and
    // every plugin upgrade unloads an image: hand that memory back to the system.
    malloc_trim(0);
#endif
}


// Registered from the one table (nifs.def); every entry point runs inside guarded<> (no C++
// exception crosses the boundary).
ErlNifFunc nif_funcs[] = {
#define AZMP_NIF(name, arity) {#name, arity, guarded<nif_##name>, 0},
#include "nifs.def"
#undef AZMP_NIF
};

}  // namespace

// info() -> map(): engine figures for operators and tests.
ERL_NIF_TERM nif_info(ErlNifEnv* env, int, const ERL_NIF_TERM[]) {
    Library* lib = library(env);
    EngineStats s = lib->engine->stats();
    return make_map<5>(env, {{{atoms::abi, encode(env, lib->abi)},
                              {atoms::transfers_started, encode(env, std::uint64_t{s.transfers_started})},
                              {atoms::transfers_active, encode(env, std::uint64_t{s.transfers_active})},
                              {atoms::connections_opened, encode(env, std::uint64_t{s.connections_opened})},
                              {atoms::module_refs, encode(env, lib->module_refs.load())}}});
}

}  // namespace azmp::nif

ERL_NIF_INIT(emqx_azure_marketplace_nif, azmp::nif::nif_funcs, azmp::nif::on_load, nullptr, azmp::nif::on_upgrade,
             azmp::nif::on_unload)
