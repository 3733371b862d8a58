// libcurl multi engine: one thread, event-driven with curl_multi_socket_action over epoll, so that
// the work per wake-up follows the sockets that are ready, not the number of transfers in flight.
//
// Transfers beyond `max_active` wait in a queue of plain requests (no curl handle, no buffer): ten
// thousand calls in flight cost little memory, and libcurl only ever tracks a bounded set.
#include "azmp/engine.hpp"

#include "../core/text_util.hpp"

#include <curl/curl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <cstdlib>
#include <deque>
#include <optional>
#include <mutex>
#include <queue>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

namespace azmp {
namespace {

using Clock = std::chrono::steady_clock;

struct Timer {
    Clock::time_point at;
    std::uint64_t seq;  // FIFO among equal deadlines
    Engine::Task task;
    bool operator>(const Timer& o) const { return at != o.at ? at > o.at : seq > o.seq; }
};

// What an easy handle was set up for, beyond the options every transfer sets again: a reused handle
// whose setup matches skips curl_easy_reset() and the options that stay the same (a reset frees and
// re-makes every option string, and the setup is a dozen curl_easy_setopt calls per transfer).
struct HandleSetup {
    bool valid = false;  // false: reset before use (new, or left by a cancelled/failed transfer)
    Method method = Method::Get;
    std::string ca_file;
    std::string proxy;

    bool matches(Method m, const TransferOptions& o) const {
        return valid && method == m && ca_file == o.ca_file && proxy == o.proxy;
    }
};

struct PooledHandle {
    CURL* easy = nullptr;
    HandleSetup setup;
};

// One transfer: its request, what curl writes back, and (once admitted) its curl handle.
struct Transfer {
    Engine::TransferId id = 0;
    CURL* easy = nullptr;
    HandleSetup setup;  // of `easy`, handed back with it
    // The request headers as curl reads them: our own list nodes over one buffer of
    // "Name: value\0" lines (two allocations, where curl_slist_append makes two per header).
    std::string header_lines;
    std::vector<curl_slist> header_nodes;
    HttpRequest request;  // owns the body curl reads from
    TransferOptions opts;
    Clock::time_point queued_at;
    TransferResult result;
    Engine::TransferDone done;
    char error_buf[CURL_ERROR_SIZE] = {0};
};

// Builds t.header_nodes / t.header_lines from the request's headers, plus "Expect:" (Azure does
// not use 100-continue; waiting for it only adds a round trip).
curl_slist* build_headers(Transfer& t) {
    static constexpr std::string_view kExpect = "Expect:";
    std::size_t size = kExpect.size() + 1;
    for (const auto& [name, value] : t.request.headers) size += name.size() + 2 + value.size() + 1;
    t.header_lines.clear();
    t.header_lines.reserve(size);
    for (const auto& [name, value] : t.request.headers)
        t.header_lines.append(name).append(": ").append(value).push_back('\0');
    t.header_lines.append(kExpect).push_back('\0');
    // The buffer is complete (never reallocated from here): the nodes point into it.
    const std::size_t n = t.request.headers.size() + 1;
    t.header_nodes.assign(n, curl_slist{});
    char* at = t.header_lines.data();
    for (std::size_t i = 0; i < n; ++i) {
        t.header_nodes[i].data = at;
        t.header_nodes[i].next = i + 1 < n ? &t.header_nodes[i + 1] : nullptr;
        if (i + 1 < n) {
            const auto& [name, value] = t.request.headers[i];
            at += name.size() + 2 + value.size() + 1;
        }
    }
    return t.header_nodes.data();
}

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    auto& body = t->result.response.body;
    if (size * n > t->opts.max_response_bytes - std::min(body.size(), t->opts.max_response_bytes)) {
        // Returning less than given makes curl abort the transfer (CURLE_WRITE_ERROR).
        t->result.too_large = true;
        return 0;
    }
    body.append(data, size * n);
    return size * n;
}

// The response headers anything above the engine reads; the others are not copied (a dozen small
// allocations per response saved on the engine thread).
bool header_wanted(std::string_view name) {
    static constexpr std::string_view kWanted[] = {"operation-location", "retry-after", "content-type",
                                                   "location", "x-ms-requestid", "x-ms-correlationid"};
    for (auto w : kWanted)
        if (detail::iequals(name, w)) return true;
    return false;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    std::string_view line(data, size * n);
    if (line.starts_with("HTTP/")) {
        // A new response (after 100-continue or a retry inside curl): forget earlier headers.
        t->result.response.headers.clear();
    } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
        std::string_view name = detail::trim(line.substr(0, colon));
        if (header_wanted(name))
            t->result.response.headers.emplace_back(std::string(name), std::string(detail::trim(line.substr(colon + 1))));
    }
    return size * n;
}

struct CurlGlobal {
    CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

// Hands the free memory of the calling thread's malloc arena back to the system. glibc's
// malloc_trim() merges the free chunks of every arena and releases whole free pages inside them,
// but not the top chunk of a thread arena (only the main arena's top goes back, by systrim): what
// an engine freed at the end (connections, TLS state, transfer buffers: tens of MB after a burst
// of 1,000 calls) ends up merged into that top and stays resident. A free() of a chunk of 64 kB or
// more in the arena trims its top (heap_trim); 96 kB stays below the mmap threshold, so it comes
// from this arena.
void release_thread_arena() {
#if defined(__GLIBC__)
    malloc_trim(0);
    if (void* p = std::malloc(96 * 1024)) {
        static_cast<volatile char*>(p)[0] = 0;
        std::free(p);
    }
#endif
}

TransferResult failure(int code, std::string detail, bool timed_out = false) {
    TransferResult r;
    r.curl_code = code;
    r.timed_out = timed_out;
    r.detail = std::move(detail);
    return r;
}

}  // namespace

struct Engine::Impl {
    EngineConfig cfg;
    CURLM* multi = nullptr;
    int epfd = -1;
    int wakefd = -1;
    std::thread thread;
    std::thread::id thread_id;

    mutable std::mutex mu;  // guards `tasks`, `incoming_timers` and `stopping`
    std::vector<Task> tasks;
    std::vector<Task> batch;  // engine thread only: the tasks being run (both keep their capacity)
    std::vector<Timer> incoming_timers;
    std::uint64_t timer_seq = 0;
    bool stopping = false;

    // Engine thread only:
    std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers;
    std::unordered_map<TransferId, std::unique_ptr<Transfer>> transfers;  // waiting or active
    std::deque<TransferId> waiting;                                        // admission order
    std::size_t active = 0;
    std::vector<PooledHandle> idle_handles;  // easy handles, reused (see HandleSetup)
    // Per descriptor: the events it is registered for in epoll (0: not there), whether it is a
    // connection socket we opened (and will hear closed: on_close_socket), and whether libcurl has
    // stopped watching it (an idle keep-alive connection). Such a socket stays registered, parked,
    // so that a connection reused by the next transfer costs no epoll_ctl at all; should it become
    // ready while parked (the server closed it), it is removed then. Other descriptors libcurl
    // watches (a resolver's) are closed by libcurl itself: they leave epoll when it stops watching.
    struct FdState {
        std::uint32_t events = 0;
        bool ours = false;
        bool parked = false;
    };
    std::vector<FdState> fds;
    std::optional<Clock::time_point> curl_deadline;
    TransferId next_id = 1;

    std::atomic<std::uint64_t> started{0}, opened{0}, in_flight{0};

    void run();
    void wake();
    void drain_tasks();
    void run_due_timers();
    void admit();
    bool activate(Transfer& t);
    void finish(CURL* easy, CURLcode code);
    void complete(TransferId id, TransferResult&& r);
    void read_done();
    void fail_all(const std::string& why);
    int wait_ms();
    PooledHandle take_handle(Method m, const TransferOptions& o);
    void recycle(CURL* easy, HandleSetup setup = {});
    void watch(curl_socket_t s, std::uint32_t events);
    void park(curl_socket_t s);
    void forget(curl_socket_t s);
    FdState* fd_state(curl_socket_t s, bool grow);
    void opened_socket(curl_socket_t s);
    void on_ready(int fd, std::uint32_t events, int& running);
    void release_curl();
};

namespace {

// libcurl tells which sockets to watch for what. Whether a socket is already in the epoll set is
// kept as its curl_multi_assign() pointer, so each change is one epoll_ctl.
int on_socket(CURL*, curl_socket_t s, int what, void*user, void*) {
    auto* impl = static_cast<Engine::Impl*>(user);
    if (what == CURL_POLL_REMOVE) impl->park(s);
    else impl->watch(s, ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u));
    return 0;
}

int on_open_socket(void* user, curlsocktype, curl_sockaddr* addr) {
    auto* impl = static_cast<Engine::Impl*>(user);
    impl->opened.fetch_add(1, std::memory_order_relaxed);
    int fd = ::socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (fd >= 0) impl->opened_socket(fd);
    return fd;
}

int on_close_socket(void* user, curl_socket_t s) {
    static_cast<Engine::Impl*>(user)->forget(s);
    return ::close(s);
}

int on_timer(CURLM*, long timeout_ms, void* user) {
    auto* impl = static_cast<Engine::Impl*>(user);
    if (timeout_ms < 0) impl->curl_deadline.reset();
    else impl->curl_deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    return 0;
}

}  // namespace

Engine::Engine(EngineConfig cfg) : impl_(std::make_unique<Impl>()) {
    static CurlGlobal global;  // curl_global_init once per library image, before any thread
    impl_->cfg = cfg;
    impl_->multi = curl_multi_init();
    impl_->epfd = epoll_create1(EPOLL_CLOEXEC);
    impl_->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!impl_->multi || impl_->epfd < 0 || impl_->wakefd < 0) {
        if (impl_->multi) curl_multi_cleanup(impl_->multi);
        if (impl_->epfd >= 0) close(impl_->epfd);
        if (impl_->wakefd >= 0) close(impl_->wakefd);
        throw std::runtime_error("cannot create the HTTP engine (curl multi, epoll or eventfd)");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = impl_->wakefd;
    epoll_ctl(impl_->epfd, EPOLL_CTL_ADD, impl_->wakefd, &ev);
    curl_multi_setopt(impl_->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(impl_->multi, CURLMOPT_SOCKETDATA, impl_.get());
    curl_multi_setopt(impl_->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(impl_->multi, CURLMOPT_TIMERDATA, impl_.get());
    curl_multi_setopt(impl_->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    // A fixed idle-connection cache: libcurl's default follows the number of active transfers, so it
    // shrinks (closing good connections) whenever load dips.
    curl_multi_setopt(impl_->multi, CURLMOPT_MAXCONNECTS, static_cast<long>(cfg.max_idle_connections));
    impl_->thread = std::thread([this] { impl_->run(); });
    impl_->thread_id = impl_->thread.get_id();
}

Engine::~Engine() {
    stop();
    impl_->release_curl();  // already done by the engine thread as it ended
    close(impl_->epfd);
    close(impl_->wakefd);
}

bool Engine::on_engine_thread() const { return std::this_thread::get_id() == impl_->thread_id; }

void Engine::Impl::wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wakefd, &one, sizeof one);
}

// Only the first task queued since the engine last drained wakes it: it drains everything at once,
// so a burst of calls costs one wake-up (a syscall on a scheduler thread), not one per call.
bool Engine::post(Task task) {
    bool first;
    {
        std::lock_guard lk(impl_->mu);
        if (impl_->stopping) return false;
        first = impl_->tasks.empty() && impl_->incoming_timers.empty();
        impl_->tasks.push_back(std::move(task));
    }
    if (first) impl_->wake();
    return true;
}

bool Engine::post_after(std::chrono::milliseconds delay, Task task) {
    bool first;
    {
        std::lock_guard lk(impl_->mu);
        if (impl_->stopping) return false;
        first = impl_->tasks.empty() && impl_->incoming_timers.empty();
        impl_->incoming_timers.push_back(Timer{Clock::now() + delay, impl_->timer_seq++, std::move(task)});
    }
    if (first) impl_->wake();
    return true;
}

void Engine::stop() {
    {
        std::lock_guard lk(impl_->mu);
        impl_->stopping = true;
    }
    impl_->wake();
    if (impl_->thread.joinable()) impl_->thread.join();
}

EngineStats Engine::stats() const {
    EngineStats s;
    s.transfers_started = impl_->started.load(std::memory_order_relaxed);
    s.connections_opened = impl_->opened.load(std::memory_order_relaxed);
    s.transfers_active = impl_->in_flight.load(std::memory_order_relaxed);
    return s;
}

Engine::TransferId Engine::start_transfer(HttpRequest req, const TransferOptions& opts, TransferDone done) {
    auto t = std::make_unique<Transfer>();
    t->id = impl_->next_id++;
    t->request = std::move(req);
    t->opts = opts;
    t->done = std::move(done);
    t->queued_at = Clock::now();
    TransferId id = t->id;
    impl_->transfers.emplace(id, std::move(t));
    impl_->waiting.push_back(id);
    impl_->in_flight.store(impl_->transfers.size(), std::memory_order_relaxed);
    impl_->started.fetch_add(1, std::memory_order_relaxed);
    impl_->admit();
    return id;
}

void Engine::cancel_transfer(TransferId id) {
    auto it = impl_->transfers.find(id);
    if (it == impl_->transfers.end()) return;
    Transfer& t = *it->second;
    if (t.easy) {
        curl_multi_remove_handle(impl_->multi, t.easy);
        impl_->recycle(t.easy);
        --impl_->active;
    }
    // A waiting entry stays in `waiting` and is skipped when its turn comes.
    impl_->transfers.erase(it);
    impl_->in_flight.store(impl_->transfers.size(), std::memory_order_relaxed);
    impl_->admit();
}

// A handle set up for the same method, CA file and proxy keeps its options; any other is reset.
PooledHandle Engine::Impl::take_handle(Method m, const TransferOptions& o) {
    if (!idle_handles.empty()) {
        PooledHandle h = std::move(idle_handles.back());
        idle_handles.pop_back();
        if (!h.setup.matches(m, o)) {
            curl_easy_reset(h.easy);
            h.setup = HandleSetup{};
        }
        return h;
    }
    return PooledHandle{curl_easy_init(), {}};
}

// A kept handle keeps its allocations (buffers, DNS and TLS session caches) and, with a valid
// setup, its options: cheaper than a new one, and than a reset one.
void Engine::Impl::recycle(CURL* easy, HandleSetup setup) {
    if (idle_handles.size() < cfg.max_active_transfers) {
        // No pointer into the transfer that owned it outlives that transfer.
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, nullptr);
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, nullptr);
        idle_handles.push_back(PooledHandle{easy, std::move(setup)});
    } else {
        curl_easy_cleanup(easy);
    }
}

Engine::Impl::FdState* Engine::Impl::fd_state(curl_socket_t s, bool grow) {
    if (s < 0) return nullptr;
    const auto i = static_cast<std::size_t>(s);
    if (i >= fds.size()) {
        if (!grow) return nullptr;
        fds.resize(i + 1024);
    }
    return &fds[i];
}

void Engine::Impl::opened_socket(curl_socket_t s) {
    forget(s);  // a new socket: whatever had this number before is gone
    if (FdState* f = fd_state(s, true)) f->ours = true;
}

void Engine::Impl::watch(curl_socket_t s, std::uint32_t events) {
    FdState* f = fd_state(s, true);
    if (!f) return;
    f->parked = false;
    if (f->events == events) return;  // a parked socket taken up again as it was
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = s;
    if (f->events == 0) {
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, s, &ev) != 0 && errno == EEXIST) epoll_ctl(epfd, EPOLL_CTL_MOD, s, &ev);
    } else {
        epoll_ctl(epfd, EPOLL_CTL_MOD, s, &ev);
    }
    f->events = events;
}

void Engine::Impl::park(curl_socket_t s) {
    FdState* f = fd_state(s, false);
    if (!f || f->events == 0) return;
    // Not ours (closed without telling us), or always writable (it would wake the loop at once).
    if (!f->ours || (f->events & EPOLLOUT)) {
        bool ours = f->ours;
        forget(s);
        f->ours = ours;
        return;
    }
    f->parked = true;
}

// Out of epoll and out of the table (the socket is closing, or new under a reused number).
void Engine::Impl::forget(curl_socket_t s) {
    FdState* f = fd_state(s, false);
    if (!f) return;
    if (f->events != 0) epoll_ctl(epfd, EPOLL_CTL_DEL, s, nullptr);
    *f = FdState{};
}

void Engine::Impl::on_ready(int fd, std::uint32_t events, int& running) {
    if (FdState* f = fd_state(fd, false); f && f->parked) {
        // libcurl is not watching it: it notices when it next tries the connection.
        bool ours = f->ours;
        forget(fd);
        f->ours = ours;
        return;
    }
    int flags = 0;
    if (events & EPOLLIN) flags |= CURL_CSELECT_IN;
    if (events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
    if (events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(multi, fd, flags, &running);
}

// Moves waiting transfers into libcurl while fewer than max_active are there.
void Engine::Impl::admit() {
    while (active < cfg.max_active_transfers && !waiting.empty()) {
        TransferId id = waiting.front();
        waiting.pop_front();
        auto it = transfers.find(id);
        if (it == transfers.end()) continue;  // cancelled while waiting
        if (!activate(*it->second)) continue;
    }
}

bool Engine::Impl::activate(Transfer& t) {
    // The time spent waiting for admission counts against the transfer's own timeout.
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t.queued_at).count();
    long remaining = t.opts.timeout_ms - static_cast<long>(waited);
    if (remaining <= 0) {
        complete(t.id, failure(CURLE_OPERATION_TIMEDOUT, "timed out waiting for a connection slot", true));
        return false;
    }
    const HttpRequest& rq = t.request;
    PooledHandle h = take_handle(rq.method, t.opts);
    CURL* e = h.easy;
    if (!e) {
        complete(t.id, failure(CURLE_OUT_OF_MEMORY, "curl_easy_init failed"));
        return false;
    }
    t.easy = e;
    t.setup = std::move(h.setup);
    if (!t.setup.valid) {
        // What stays the same for every transfer of this method, CA file and proxy.
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
        if (!t.opts.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, t.opts.ca_file.c_str());
        curl_easy_setopt(e, CURLOPT_PROXY, t.opts.proxy.c_str());  // "" = no proxy, and no env lookup
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, this);
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, this);
        t.setup = HandleSetup{true, rq.method, t.opts.ca_file, t.opts.proxy};
    }
    curl_easy_setopt(e, CURLOPT_URL, rq.url.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, std::min(t.opts.connect_timeout_ms, remaining));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, remaining);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error_buf);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    switch (rq.method) {
        case Method::Get: curl_easy_setopt(e, CURLOPT_HTTPGET, 1L); break;
        case Method::Post: curl_easy_setopt(e, CURLOPT_POST, 1L); break;
        case Method::Patch:
        case Method::Delete:
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, std::string(method_name(rq.method)).c_str());
            break;
    }
    if (rq.method != Method::Get) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq.body.c_str());
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(rq.body.size()));
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, build_headers(t));

    if (CURLMcode mc = curl_multi_add_handle(multi, e); mc != CURLM_OK) {
        t.easy = nullptr;
        recycle(e);
        complete(t.id, failure(CURLE_FAILED_INIT, curl_multi_strerror(mc)));
        return false;
    }
    ++active;
    return true;
}

// Hands the result to the transfer's owner and forgets the transfer.
void Engine::Impl::complete(TransferId id, TransferResult&& r) {
    auto it = transfers.find(id);
    if (it == transfers.end()) return;
    std::unique_ptr<Transfer> t = std::move(it->second);
    transfers.erase(it);
    in_flight.store(transfers.size(), std::memory_order_relaxed);
    auto done = std::move(t->done);
    t.reset();
    done(std::move(r));
}

void Engine::Impl::finish(CURL* easy, CURLcode code) {
    Transfer* t = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &t);
    curl_multi_remove_handle(multi, easy);
    --active;
    TransferResult r = std::move(t->result);
    r.curl_code = code;
    if (code == CURLE_OK) {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r.response.status);
    } else {
        r.timed_out = code == CURLE_OPERATION_TIMEDOUT;
        r.detail = t->error_buf[0] ? t->error_buf : curl_easy_strerror(code);
    }
    t->easy = nullptr;
    recycle(easy, std::move(t->setup));
    complete(t->id, std::move(r));
}

void Engine::Impl::read_done() {
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left))
        if (m->msg == CURLMSG_DONE) finish(m->easy_handle, m->data.result);
}

int Engine::Impl::wait_ms() {
    auto now = Clock::now();
    auto until = now + std::chrono::seconds(1);
    if (curl_deadline) until = std::min(until, *curl_deadline);
    if (!timers.empty()) until = std::min(until, timers.top().at);
    if (!waiting.empty() && active < cfg.max_active_transfers) until = now;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
    return static_cast<int>(std::clamp<long long>(ms, 0, 1000));
}

void Engine::Impl::drain_tasks() {
    {
        std::lock_guard lk(mu);
        batch.swap(tasks);
        for (auto& t : incoming_timers) timers.push(std::move(t));
        incoming_timers.clear();
    }
    for (auto& task : batch) task();
    batch.clear();
}

void Engine::Impl::run_due_timers() {
    auto now = Clock::now();
    while (!timers.empty() && timers.top().at <= now) {
        Task task = std::move(const_cast<Timer&>(timers.top()).task);
        timers.pop();
        task();
    }
}

void Engine::Impl::fail_all(const std::string& why) {
    std::vector<TransferId> ids;
    ids.reserve(transfers.size());
    for (auto& [id, t] : transfers) ids.push_back(id);
    for (TransferId id : ids) {
        auto it = transfers.find(id);
        if (it == transfers.end()) continue;
        if (CURL* e = it->second->easy) {
            curl_multi_remove_handle(multi, e);
            it->second->easy = nullptr;
            recycle(e);
            --active;
        }
        complete(id, failure(CURLE_ABORTED_BY_CALLBACK, why));
    }
    waiting.clear();
}

void Engine::Impl::run() {
    // Named for operators: `top -H` and `ps -L` show the engine apart from the VM's own threads.
    pthread_setname_np(pthread_self(), "azmp_engine");
    constexpr int kMaxEvents = 256;
    epoll_event events[kMaxEvents];
    int running = 0;
    for (;;) {
        drain_tasks();
        run_due_timers();
        admit();
        {
            std::lock_guard lk(mu);
            if (stopping) break;
        }
        int n = epoll_wait(epfd, events, kMaxEvents, wait_ms());
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (fd == wakefd) {
                // One read takes the whole counter (not EFD_SEMAPHORE): a second one only fails with EAGAIN.
                std::uint64_t count;
                [[maybe_unused]] auto got = ::read(wakefd, &count, sizeof count);  // level-triggered: a failed read is retried
                continue;
            }
            on_ready(fd, events[i].events, running);
        }
        if (curl_deadline && Clock::now() >= *curl_deadline) {
            curl_deadline.reset();
            curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        read_done();
    }
    // Shutting down: every caller still waiting hears back. Completions may queue follow-up work
    // (a retry), which post() now refuses, so this converges.
    for (int round = 0; round < 8 && !(transfers.empty() && timers.empty()); ++round) {
        fail_all("the engine is shutting down");
        drain_tasks();
        while (!timers.empty()) {
            Task task = std::move(const_cast<Timer&>(timers.top()).task);
            timers.pop();
            task();
        }
    }
    fail_all("the engine is shutting down");
    // libcurl's state (connection cache, TLS sessions and contexts, reset handles) is freed here,
    // on the thread that made it, and the thread's arena is trimmed before the thread ends: freed
    // later from another thread, it went back to this arena after its last trim and stayed resident
    // (an idle arena is only trimmed again when the next engine thread reuses it).
    release_curl();
    release_thread_arena();
}

void Engine::Impl::release_curl() {
    for (auto& h : idle_handles) curl_easy_cleanup(h.easy);
    idle_handles.clear();
    idle_handles.shrink_to_fit();
    if (multi) curl_multi_cleanup(multi);
    multi = nullptr;
}

}  // namespace azmp
