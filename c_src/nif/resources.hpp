// What the NIF entry points share: the library's state, its resource objects, and the delivery of
// asynchronous replies. Internal to the NIF layer.
#pragma once

#include <erl_nif.h>

#include <atomic>
#include <exception>
#include <memory>
#include <new>
#include <utility>

#include "azmp/client.hpp"
#include "azmp/engine.hpp"
#include "azmp/webhook_auth.hpp"
#include "terms.hpp"

namespace azmp::nif {

// Bumped whenever the Erlang stubs and this library stop agreeing on functions, terms or resource
// layouts. The Erlang module passes the number it was written for as load_info.
inline constexpr int kAbiVersion = 4;

// Library-wide state, shared by every module instance that loaded this very image (a reload of the
// same file reuses the same image, so an upgrade keeps the engine and its in-flight calls).
struct Library {
    int abi = kAbiVersion;
    const void* image = nullptr;  // identifies this loaded image
    std::atomic<int> module_refs{1};
    std::shared_ptr<Engine> engine;
    ErlNifResourceType* client_type = nullptr;
    ErlNifResourceType* call_type = nullptr;
    ErlNifResourceType* auth_type = nullptr;
};

inline Library* library(ErlNifEnv* env) { return static_cast<Library*>(enif_priv_data(env)); }

// Resource: a client (config, token cache), owned jointly with in-flight calls.
struct ClientRes {
    std::shared_ptr<Client> client;
    long timeout_ms = 0;
};

// Resource: a webhook authenticator (expectations, JWKS cache).
struct AuthRes {
    std::shared_ptr<WebhookAuthenticator> auth;
};

// Resource: one asynchronous call; monitors its caller so that a caller that dies cancels it.
struct CallRes {
    std::weak_ptr<Client> client;  // empty for calls that cannot be cancelled
    Client::CallId id = 0;
    ErlNifMonitor monitor;
    std::atomic<bool> monitoring{false};
    std::atomic<bool> replied{false};
};

// Raises erlang:error({azmp_internal_error, What}).
ERL_NIF_TERM raise_internal(ErlNifEnv* env, const char* what);

// Keeps C++ exceptions off the VM boundary: every entry point runs in it, and so does every half
// scheduled with enif_schedule_nif (which bypasses the entry table).
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

// Stops monitoring the caller and drops the reference the call kept on its resource.
// `env` is the calling scheduler's env, or null on the engine thread.
void release_call(ErlNifEnv* env, CallRes* call);

// The sending thread's message environment, made once and cleared after each reply (an
// environment per reply was an allocation and a heap set-up per call). Null if none can be made.
ErlNifEnv* reply_env() noexcept;

// Owns a call's resource reference from the NIF call until the reply is sent, or until the call is
// dropped without one (cancelled): whichever happens, the reference is released exactly once.
struct PendingReply {
    CallRes* call;
    ErlNifPid caller;
    bool armed = true;  // disarmed when the NIF call cleans up a refused call itself
    bool sent = false;

    PendingReply(CallRes* c, ErlNifPid p) : call(c), caller(p) {}
    PendingReply(const PendingReply&) = delete;
    PendingReply& operator=(const PendingReply&) = delete;
    ~PendingReply() {
        if (armed && !sent) release_call(nullptr, call);  // cancelled: runs on the engine thread
    }

    // Sends {azmp_reply, CallRes, build(Env)} to the caller. Runs on the engine thread.
    template <typename Build>
    void send(Build&& build) noexcept {
        sent = true;
        call->replied.store(true);
        if (ErlNifEnv* msg_env = reply_env()) {
            ERL_NIF_TERM tag = atoms::azmp_reply;
            ERL_NIF_TERM ref = enif_make_resource(msg_env, call);
            ERL_NIF_TERM body;
            try {
                body = build(msg_env);
            } catch (...) {
                body = error_tuple(msg_env, enif_make_tuple2(msg_env, atoms::transport, atoms::reply_too_large));
            }
            enif_send(nullptr, &caller, msg_env, enif_make_tuple3(msg_env, tag, ref, body));
            enif_clear_env(msg_env);  // kept for the thread's next reply
        }
        release_call(nullptr, call);
    }
};

// A new call resource monitoring the calling process, with its pending reply. Null when the
// caller cannot be monitored or memory is short.
struct NewCall {
    CallRes* call = nullptr;
    ERL_NIF_TERM term = 0;
    std::shared_ptr<PendingReply> pending;
};
NewCall new_call(ErlNifEnv* env);

// A new resource of `type` holding T{args...}, as a term. The object is constructed in place; if
// its constructor throws, the memory goes back with an empty T for the destructor to run on.
template <typename T, typename... Args>
ERL_NIF_TERM make_resource(ErlNifEnv* env, ErlNifResourceType* type, Args&&... args) {
    auto* res = static_cast<T*>(enif_alloc_resource(type, sizeof(T)));
    if (!res) throw std::bad_alloc();  // the entry point's guard raises it as an Erlang error
    try {
        new (res) T{std::forward<Args>(args)...};
    } catch (...) {
        new (res) T{};
        enif_release_resource(res);
        throw;
    }
    ERL_NIF_TERM term = enif_make_resource(env, res);
    enif_release_resource(res);
    return term;
}

// Undoes new_call() for a call that was refused before it started.
void abandon_call(ErlNifEnv* env, NewCall& c);

}  // namespace azmp::nif
