// The I/O engine: one library-owned thread driving a libcurl multi handle. Everything that touches
// curl or per-client mutable state runs on that thread, so callers (NIF calls on schedulers) only
// enqueue work and return at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "azmp/http.hpp"

namespace azmp {

// How one HTTP exchange went at the transport level. `curl_code` 0 means a response arrived
// (whatever its status); otherwise `detail` names the failure.
// The most bytes of a response body the engine keeps: past it the transfer is aborted and
// `too_large' set. Azure's largest answer is a day of usageEvents (about 450 bytes per
// subscription and dimension, queried one dimension at a time): 256 MiB is room for 500,000
// subscriptions, and still a bound on what a faulty or hostile server can make us hold.
inline constexpr std::size_t kMaxResponseBytes = 256u << 20;

struct TransferResult {
    int curl_code = 0;
    bool timed_out = false;
    std::string detail;
    HttpResponse response;
    bool too_large = false;  // the body went over the transfer's max_response_bytes
};

struct TransferOptions {
    std::string ca_file;  // empty: the system trust store
    // An explicit proxy (e.g. http://proxy:3128); empty: none. Proxy environment variables are
    // ignored on purpose: they must not silently reroute the plugin's TLS traffic.
    std::string proxy;
    long connect_timeout_ms = 5000;
    long timeout_ms = 30000;  // whole exchange
    std::size_t max_response_bytes = kMaxResponseBytes;
};

struct EngineStats {
    std::uint64_t transfers_started = 0;
    std::uint64_t transfers_active = 0;  // in flight: waiting for a slot or in libcurl
    std::uint64_t connections_opened = 0;  // new TCP connections (reuse shows as fewer)
};

struct EngineConfig {
    // Transfers handed to libcurl at once; more wait in the engine's own queue (cheap: no handle,
    // no buffer), so a burst of calls costs little memory and libcurl's work stays bounded.
    std::size_t max_active_transfers = 1024;
    // Idle connections kept for reuse: as many as can be active, so that a burst reuses what it opened.
    std::size_t max_idle_connections = 1024;
};

class Engine {
public:
    using TransferId = std::uint64_t;
    using Task = std::function<void()>;
    using TransferDone = std::function<void(TransferResult&&)>;

    explicit Engine(EngineConfig cfg = {});
    ~Engine();  // stop() + join
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Runs `task` on the engine thread. False once stopping (the task is dropped).
    bool post(Task task);
    // Runs `task` on the engine thread after `delay`.
    bool post_after(std::chrono::milliseconds delay, Task task);

    // Engine thread only: starts an HTTP exchange; `done` runs on the engine thread.
    TransferId start_transfer(HttpRequest req, const TransferOptions& opts, TransferDone done);
    // Engine thread only: abandons a transfer; its `done` never runs.
    void cancel_transfer(TransferId id);

    // Stops accepting work, aborts transfers still running (their `done` runs with an error so
    // every caller hears back), runs pending tasks, and joins the thread. Idempotent.
    void stop();

    EngineStats stats() const;
    bool on_engine_thread() const;

    struct Impl;  // opaque; public only so that libcurl's C callbacks can reach it

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace azmp
