// An Azure Marketplace client: credentials, a token cache, and the execution of operations with
// retries on the engine thread. Thread-safe entry points; all mutable state lives on the engine thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <variant>

#include "azmp/engine.hpp"
#include "azmp/error.hpp"
#include "azmp/operations.hpp"
#include "azmp/retry_policy.hpp"
#include "azmp/token.hpp"

namespace azmp {

inline constexpr std::string_view kDefaultMarketplaceUrl = "https://marketplaceapi.microsoft.com/api";
inline constexpr std::string_view kDefaultLoginUrl = "https://login.microsoftonline.com";

struct ClientConfig {
    Credentials credentials;
    std::string marketplace_url{kDefaultMarketplaceUrl};
    std::string ca_file;               // empty: system trust store
    std::string proxy;                 // empty: none (see TransferOptions::proxy)
    long timeout_ms = 30000;           // the most one call may take, retries included
    long connect_timeout_ms = 5000;
    std::size_t max_in_flight = 10000;  // calls beyond this are refused with `overloaded`
    std::size_t max_response_bytes = kMaxResponseBytes;  // a longer body is a bad_response
    RetryConfig retry;
    // Plain http to a loopback address is allowed only with this set: test endpoints (an emulator).
    bool allow_insecure_loopback = false;
};

// Checks a configuration before any request is made: URLs must be https, or http on a loopback
// address with allow_insecure_loopback (test endpoints); numbers in range. Returns the offending
// field (insecure_endpoint: plain http to loopback without the flag).
std::optional<Error> validate_config(const ClientConfig& cfg);

using CallResult = std::variant<OpValue, Error>;
using CallDone = std::function<void(CallResult&&)>;

struct ClientStats {
    std::uint64_t token_requests = 0;
    std::uint64_t in_flight = 0;
    std::uint64_t retries = 0;            // attempts after a first one (calls and token requests)
    std::int64_t token_obtained_at = 0;   // unix seconds of the current access token; 0: none yet
};

class Client : public std::enable_shared_from_this<Client> {
public:
    using CallId = std::uint64_t;

    Client(ClientConfig cfg, const std::shared_ptr<Engine>& engine);

    // Starts `op`; `done` runs exactly once on the engine thread unless the call is cancelled.
    // Refusals (badarg, overloaded, engine stopped) are returned at once and `done` never runs.
    std::variant<CallId, Error> call(Operation op, CallDone done);

    // Abandons a call (its caller has gone): its transfer is dropped and `done` never runs.
    void cancel(CallId id);

    ClientStats stats() const;

private:
    struct CallState;
    struct TokenState;

    static std::shared_ptr<TokenState> shared_token_state(const Credentials& c);
    void with_token(const std::shared_ptr<CallState>& st);
    void arm_deadline(const std::shared_ptr<CallState>& st);
    void on_deadline(const std::shared_ptr<CallState>& st);
    void refresh_token();
    void request_token();
    void on_token(TransferResult&& r);
    void release_waiters(const Error* failure);
    void send(const std::shared_ptr<CallState>& st);
    void on_response(const std::shared_ptr<CallState>& st, TransferResult&& r);
    void retry_or_fail(const std::shared_ptr<CallState>& st, Error err, std::optional<std::int64_t> retry_after);
    void finish(const std::shared_ptr<CallState>& st, CallResult&& result);
    TransferOptions transfer_options(long timeout_ms) const;

    // The engine this client runs on; null once the library is unloading.
    std::shared_ptr<Engine> engine() const { return engine_.lock(); }

    ClientConfig cfg_;
    const std::weak_ptr<Engine> engine_;
    std::atomic<std::uint64_t> next_id_{1};
    std::atomic<std::uint64_t> in_flight_{0};
    std::atomic<std::uint64_t> token_requests_{0};
    std::atomic<std::uint64_t> retries_{0};
    // Engine thread only:
    std::shared_ptr<TokenState> token_;
    std::unordered_map<CallId, std::shared_ptr<CallState>> calls_;
};

// A random (v4) GUID, as Azure wants for x-ms-requestid / x-ms-correlationid.
std::string new_guid();

}  // namespace azmp
