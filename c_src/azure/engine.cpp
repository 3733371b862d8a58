// libcurl multi engine: one thread, curl_multi_poll, woken by curl_multi_wakeup when work is queued.
#include "azmp/engine.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <queue>
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

// One transfer's curl handle and the buffers curl writes into.
struct Transfer {
    Engine::TransferId id = 0;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    HttpRequest request;  // owns the body curl reads from
    TransferResult result;
    Engine::TransferDone done;
    char error_buf[CURL_ERROR_SIZE] = {0};

    ~Transfer() {
        if (easy) curl_easy_cleanup(easy);
        if (headers) curl_slist_free_all(headers);
    }
};

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    t->result.response.body.append(data, size * n);
    return size * n;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
        s.remove_suffix(1);
    return s;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    std::string_view line(data, size * n);
    if (line.starts_with("HTTP/")) {
        // A new response (after 100-continue or a retry inside curl): forget earlier headers.
        t->result.response.headers.clear();
    } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
        t->result.response.headers.emplace_back(std::string(trim(line.substr(0, colon))),
                                                std::string(trim(line.substr(colon + 1))));
    }
    return size * n;
}

struct CurlGlobal {
    CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

}  // namespace

struct Engine::Impl {
    CURLM* multi = nullptr;
    std::thread thread;
    std::thread::id thread_id;

    mutable std::mutex mu;  // guards the two queues and `stopping`
    std::deque<Task> tasks;
    std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers;  // engine thread only
    std::vector<Timer> incoming_timers;
    std::uint64_t timer_seq = 0;
    bool stopping = false;

    std::unordered_map<TransferId, std::unique_ptr<Transfer>> active;  // engine thread only
    TransferId next_id = 1;

    std::atomic<std::uint64_t> started{0}, opened{0}, active_count{0};

    void run();
    void drain_tasks();
    void run_due_timers();
    void finish(CURL* easy, CURLcode code);
    void fail_all_active(const std::string& why);
    long poll_timeout_ms();
};

namespace {
int on_open_socket(void* user, curlsocktype, curl_sockaddr* addr) {
    static_cast<std::atomic<std::uint64_t>*>(user)->fetch_add(1, std::memory_order_relaxed);
    return static_cast<int>(::socket(addr->family, addr->socktype, addr->protocol));
}
}  // namespace

Engine::Engine() : impl_(std::make_unique<Impl>()) {
    static CurlGlobal global;  // curl_global_init once per library instance, before any thread
    impl_->multi = curl_multi_init();
    if (!impl_->multi) throw std::runtime_error("curl_multi_init failed");
    curl_multi_setopt(impl_->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    impl_->thread = std::thread([this] { impl_->run(); });
    impl_->thread_id = impl_->thread.get_id();
}

Engine::~Engine() {
    stop();
    if (impl_->multi) curl_multi_cleanup(impl_->multi);
}

bool Engine::on_engine_thread() const { return std::this_thread::get_id() == impl_->thread_id; }

bool Engine::post(Task task) {
    {
        std::lock_guard lk(impl_->mu);
        if (impl_->stopping) return false;
        impl_->tasks.push_back(std::move(task));
    }
    curl_multi_wakeup(impl_->multi);
    return true;
}

bool Engine::post_after(std::chrono::milliseconds delay, Task task) {
    {
        std::lock_guard lk(impl_->mu);
        if (impl_->stopping) return false;
        impl_->incoming_timers.push_back(Timer{Clock::now() + delay, impl_->timer_seq++, std::move(task)});
    }
    curl_multi_wakeup(impl_->multi);
    return true;
}

void Engine::stop() {
    {
        std::lock_guard lk(impl_->mu);
        if (impl_->stopping && !impl_->thread.joinable()) return;
        impl_->stopping = true;
    }
    curl_multi_wakeup(impl_->multi);
    if (impl_->thread.joinable()) impl_->thread.join();
}


EngineStats Engine::stats() const {
    EngineStats s;
    s.transfers_started = impl_->started.load(std::memory_order_relaxed);
    s.connections_opened = impl_->opened.load(std::memory_order_relaxed);
    s.transfers_active = impl_->active_count.load(std::memory_order_relaxed);
    return s;
}

Engine::TransferId Engine::start_transfer(HttpRequest req, const TransferOptions& opts, TransferDone done) {
    auto t = std::make_unique<Transfer>();
    t->id = impl_->next_id++;
    t->request = std::move(req);
    t->done = std::move(done);
    CURL* e = curl_easy_init();
    if (!e) {
        TransferResult r;
        r.curl_code = CURLE_OUT_OF_MEMORY;
        r.detail = "curl_easy_init failed";
        t->done(std::move(r));
        return 0;
    }
    t->easy = e;
    const HttpRequest& rq = t->request;
    curl_easy_setopt(e, CURLOPT_URL, rq.url.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!opts.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, opts.ca_file.c_str());
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, opts.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, opts.timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error_buf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &impl_->opened);
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
    for (const auto& [name, value] : rq.headers) {
        std::string line = name + ": " + value;
        t->headers = curl_slist_append(t->headers, line.c_str());
    }
    // Azure does not use 100-continue; waiting for it only adds a round trip.
    t->headers = curl_slist_append(t->headers, "Expect:");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);

    TransferId id = t->id;
    if (CURLMcode mc = curl_multi_add_handle(impl_->multi, e); mc != CURLM_OK) {
        TransferResult r;
        r.curl_code = CURLE_FAILED_INIT;
        r.detail = curl_multi_strerror(mc);
        t->done(std::move(r));
        return 0;
    }
    impl_->started.fetch_add(1, std::memory_order_relaxed);
    impl_->active.emplace(id, std::move(t));
    impl_->active_count.store(impl_->active.size(), std::memory_order_relaxed);
    return id;
}

void Engine::cancel_transfer(TransferId id) {
    auto it = impl_->active.find(id);
    if (it == impl_->active.end()) return;
    curl_multi_remove_handle(impl_->multi, it->second->easy);
    impl_->active.erase(it);
    impl_->active_count.store(impl_->active.size(), std::memory_order_relaxed);
}

long Engine::Impl::poll_timeout_ms() {
    long curl_ms = -1;
    curl_multi_timeout(multi, &curl_ms);
    long ms = curl_ms < 0 ? 1000 : curl_ms;
    if (!timers.empty()) {
        auto until = std::chrono::duration_cast<std::chrono::milliseconds>(timers.top().at - Clock::now()).count();
        ms = std::min<long>(ms, std::max<long>(0, until));
    }
    return std::min<long>(ms, 1000);
}

void Engine::Impl::drain_tasks() {
    std::deque<Task> batch;
    {
        std::lock_guard lk(mu);
        batch.swap(tasks);
        for (auto& t : incoming_timers) timers.push(std::move(t));
        incoming_timers.clear();
    }
    for (auto& task : batch) task();
}

void Engine::Impl::run_due_timers() {
    auto now = Clock::now();
    while (!timers.empty() && timers.top().at <= now) {
        Task task = std::move(const_cast<Timer&>(timers.top()).task);
        timers.pop();
        task();
    }
}

void Engine::Impl::finish(CURL* easy, CURLcode code) {
    Transfer* raw = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &raw);
    auto it = active.find(raw->id);
    std::unique_ptr<Transfer> t = std::move(it->second);
    active.erase(it);
    active_count.store(active.size(), std::memory_order_relaxed);
    curl_multi_remove_handle(multi, easy);
    t->result.curl_code = code;
    if (code == CURLE_OK) {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &t->result.response.status);
    } else {
        t->result.timed_out = code == CURLE_OPERATION_TIMEDOUT;
        t->result.detail = t->error_buf[0] ? t->error_buf : curl_easy_strerror(code);
    }
    t->done(std::move(t->result));
}

void Engine::Impl::fail_all_active(const std::string& why) {
    auto victims = std::move(active);
    active.clear();
    active_count.store(0, std::memory_order_relaxed);
    for (auto& [id, t] : victims) {
        curl_multi_remove_handle(multi, t->easy);
        TransferResult r;
        r.curl_code = CURLE_ABORTED_BY_CALLBACK;
        r.detail = why;
        t->done(std::move(r));
    }
}

void Engine::Impl::run() {
    for (;;) {
        drain_tasks();
        run_due_timers();
        int running = 0;
        curl_multi_perform(multi, &running);
        int left = 0;
        while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
            if (m->msg == CURLMSG_DONE) finish(m->easy_handle, m->data.result);
        }
        bool stop_now;
        {
            std::lock_guard lk(mu);
            stop_now = stopping;
        }
        if (stop_now) break;
        int numfds = 0;
        curl_multi_poll(multi, nullptr, 0, static_cast<int>(poll_timeout_ms()), &numfds);
    }
    // Shutting down: every caller still waiting hears back. Completions may queue follow-up work
    // (a retry), which post() now refuses, so this converges.
    for (int round = 0; round < 8; ++round) {
        fail_all_active("the engine is shutting down");
        drain_tasks();
        while (!timers.empty()) {
            Task task = std::move(const_cast<Timer&>(timers.top()).task);
            timers.pop();
            task();
        }
        if (active.empty()) break;
    }
    fail_all_active("the engine is shutting down");
}

}  // namespace azmp
