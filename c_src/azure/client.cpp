// Executes marketplace operations: token, request, retry, paging. Runs on the engine thread except
// call()/cancel(), which only post work to it.
#include "azmp/client.hpp"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <vector>

#include "azmp/url_policy.hpp"

namespace azmp {
namespace {

using Clock = std::chrono::steady_clock;

std::int64_t steady_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count();
}

std::int64_t unix_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool is_list_op(OpKind k) {
    return k == OpKind::ListSubscriptions || k == OpKind::ListAvailablePlans || k == OpKind::ListOperations ||
           k == OpKind::GetUsageEvents;
}

// Whole milliseconds until `t`, rounded up so that a timer set for it never fires before it.
long ms_until(Clock::time_point t) {
    return static_cast<long>(std::chrono::ceil<std::chrono::milliseconds>(t - Clock::now()).count());
}

double jitter01() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

namespace {

void fill_random(unsigned char* b, int n) {
    if (RAND_bytes(b, n) != 1) {
        // Request ids are for tracing, not security: fall back to a PRNG rather than fail the call.
        thread_local std::mt19937_64 rng{std::random_device{}()};
        for (int i = 0; i < n; ++i) b[i] = static_cast<unsigned char>(rng());
    }
}

// Random bytes taken from a per-thread block of RAND_bytes output: one RAND_bytes call (a DRBG
// round, its locks and a getpid() fork check: about 1.5 us, most of a call's NIF entry point) per
// 64 calls instead of per call. The VM's threads never fork, so no two processes share a block.
void random_bytes(unsigned char* b, int n) {
    thread_local struct {
        unsigned char buf[2048];
        std::size_t used = sizeof buf;  // empty until first used
    } pool;
    const auto len = static_cast<std::size_t>(n);
    if (len > sizeof pool.buf) {
        fill_random(b, n);
        return;
    }
    if (sizeof pool.buf - pool.used < len) {
        fill_random(pool.buf, static_cast<int>(sizeof pool.buf));
        pool.used = 0;
    }
    std::memcpy(b, pool.buf + pool.used, len);
    pool.used += len;
}

std::string guid_from(unsigned char* b) {
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
    // 8-4-4-4-12 lowercase hex (two GUIDs per call: no printf).
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(36, '-');
    std::size_t o = 0;
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) ++o;
        out[o++] = kHex[b[i] >> 4];
        out[o++] = kHex[b[i] & 0x0f];
    }
    return out;
}

}  // namespace

std::string new_guid() {
    unsigned char b[16];
    random_bytes(b, sizeof b);
    return guid_from(b);
}

std::optional<Error> validate_config(const ClientConfig& cfg) {
    const auto& c = cfg.credentials;
    if (c.tenant_id.empty()) return Error::badarg("tenant_id");
    if (c.client_id.empty()) return Error::badarg("client_id");
    if (c.client_secret.empty()) return Error::badarg("client_secret");
    if (auto bad = endpoint_error("marketplace_url", cfg.marketplace_url, cfg.allow_insecure_loopback)) return bad;
    if (auto bad = endpoint_error("login_url", c.login_url, cfg.allow_insecure_loopback)) return bad;
    if (!cfg.proxy.empty() && !cfg.proxy.starts_with("http://") && !cfg.proxy.starts_with("https://"))
        return Error::badarg("proxy");
    if (cfg.timeout_ms <= 0) return Error::badarg("timeout_ms");
    if (cfg.connect_timeout_ms <= 0) return Error::badarg("connect_timeout_ms");
    if (cfg.max_in_flight == 0) return Error::badarg("max_in_flight");
    if (cfg.retry.max_attempts < 1 || cfg.retry.max_attempts > 100) return Error::badarg("retry");
    if (cfg.retry.base_delay_ms < 0 || cfg.retry.max_delay_ms < 0 || cfg.retry.max_retry_after_ms < 0)
        return Error::badarg("retry");
    return std::nullopt;
}

struct Client::CallState {
    CallId id = 0;
    Operation op;
    CallDone done;
    std::string request_id;      // kept across retries of one request
    std::string correlation_id;  // kept for the whole call
    int attempt = 1;
    bool reauthenticated = false;  // a 401 forces one token refresh, once
    std::uint64_t token_generation = 0;
    Clock::time_point deadline;
    Engine::TransferId transfer = 0;
    std::optional<std::string> next_url;
    boost::json::array pages;
    bool finished = false;
    bool waiting_for_token = false;  // in its TokenState's waiters
    bool deadline_armed = false;     // a timer at `deadline` is pending (see arm_deadline)
};

// One cached token per tenant and client (and secret, endpoint and login URL): clients created with
// the same credentials share it, and its single refresh in flight. Engine thread only.
struct Client::TokenState {
    std::string access_token;  // empty: none
    std::string authorization = "Bearer ";  // "Bearer " + access_token, made once per token
    std::int64_t obtained_at_s = 0;
    std::atomic<std::int64_t> obtained_unix_s{0};  // read by stats() from any thread
    std::int64_t expires_in_s = 0;
    std::uint64_t generation = 0;
    bool refreshing = false;
    int attempt = 1;
    std::vector<std::pair<std::weak_ptr<Client>, std::weak_ptr<CallState>>> waiters;

    // The latest deadline of the calls still waiting (not finished, deadline not yet passed);
    // none if no such call is left. Drops entries of calls that are gone.
    std::optional<Clock::time_point> latest_deadline() {
        std::erase_if(waiters, [](const auto& w) {
            auto st = w.second.lock();
            return w.first.expired() || !st || st->finished || !st->waiting_for_token;
        });
        std::optional<Clock::time_point> latest;
        const auto now = Clock::now();
        for (const auto& w : waiters) {
            auto st = w.second.lock();
            if (st->deadline > now && (!latest || st->deadline > *latest)) latest = st->deadline;
        }
        return latest;
    }

    void remove_waiter(const std::shared_ptr<CallState>& st) {
        st->waiting_for_token = false;
        std::erase_if(waiters, [&](const auto& w) { return w.second.lock() == st; });
    }
};

namespace {

// The registry key: the secret enters it only as a SHA-256 digest.
std::string token_key(const Credentials& c) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(c.client_secret.data(), c.client_secret.size(), digest, &len, EVP_sha256(), nullptr);
    std::string key = c.login_url + '\n' + c.tenant_id + '\n' + c.client_id + '\n' +
                      (c.endpoint == TokenEndpoint::V1 ? "v1" : "v2") + '\n';
    key.append(reinterpret_cast<const char*>(digest), len);
    return key;
}

}  // namespace

std::shared_ptr<Client::TokenState> Client::shared_token_state(const Credentials& c) {
    static std::mutex mu;
    static std::unordered_map<std::string, std::weak_ptr<TokenState>> registry;
    std::lock_guard lk(mu);
    std::erase_if(registry, [](const auto& kv) { return kv.second.expired(); });
    auto& slot = registry[token_key(c)];
    auto state = slot.lock();
    if (!state) {
        state = std::make_shared<TokenState>();
        slot = state;
    }
    return state;
}

Client::Client(ClientConfig cfg, const std::shared_ptr<Engine>& engine) : cfg_(std::move(cfg)), engine_(engine) {
    while (!cfg_.marketplace_url.empty() && cfg_.marketplace_url.back() == '/') cfg_.marketplace_url.pop_back();
    auto& login = cfg_.credentials.login_url;
    while (!login.empty() && login.back() == '/') login.pop_back();
    token_ = shared_token_state(cfg_.credentials);
}

ClientStats Client::stats() const {
    return {token_requests_.load(std::memory_order_relaxed), in_flight_.load(std::memory_order_relaxed),
            retries_.load(std::memory_order_relaxed), token_->obtained_unix_s.load(std::memory_order_relaxed)};
}

std::variant<Client::CallId, Error> Client::call(Operation op, CallDone done) {
    if (auto err = validate(op)) return *err;
    // A continuation (stored between pages) only ever goes where the marketplace is: our bearer
    // token goes with it.
    if (op.kind == OpKind::ListSubscriptionsPage && !op.continuation.empty() &&
        !same_origin(op.continuation, cfg_.marketplace_url))
        return Error::badarg("continuation");
    auto engine = this->engine();
    if (!engine) return Error::transport("the engine is stopped; reload the plugin");
    if (in_flight_.fetch_add(1, std::memory_order_acq_rel) >= cfg_.max_in_flight) {
        in_flight_.fetch_sub(1, std::memory_order_acq_rel);
        return Error::overloaded();
    }
    auto st = std::make_shared<CallState>();
    st->id = next_id_.fetch_add(1, std::memory_order_relaxed);
    st->op = std::move(op);
    st->done = std::move(done);
    unsigned char ids[32];  // both ids from one call of the random generator
    random_bytes(ids, sizeof ids);
    st->request_id = guid_from(ids);
    st->correlation_id = guid_from(ids + 16);
    st->deadline = Clock::now() + std::chrono::milliseconds(cfg_.timeout_ms);
    CallId id = st->id;
    auto self = shared_from_this();
    if (!engine->post([self, st] {
            self->calls_.emplace(st->id, st);
            self->with_token(st);
        })) {
        in_flight_.fetch_sub(1, std::memory_order_acq_rel);
        return Error::transport("the engine is stopped; reload the plugin");
    }
    return id;
}

void Client::cancel(CallId id) {
    auto engine = this->engine();
    if (!engine) return;
    auto self = shared_from_this();
    engine->post([self, engine, id] {
        auto it = self->calls_.find(id);
        if (it == self->calls_.end()) return;
        auto st = it->second;
        if (st->transfer) engine->cancel_transfer(st->transfer);
        if (st->waiting_for_token) self->token_->remove_waiter(st);
        st->finished = true;
        self->calls_.erase(it);
        self->in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    });
}

void Client::with_token(const std::shared_ptr<CallState>& st) {
    auto& t = *token_;
    if (!t.access_token.empty() && !token_needs_refresh(t.obtained_at_s, t.expires_in_s, steady_s())) {
        send(st);
        return;
    }
    if (Clock::now() >= st->deadline) {
        finish(st, Error::timeout());
        return;
    }
    st->waiting_for_token = true;
    t.waiters.emplace_back(weak_from_this(), st);
    arm_deadline(st);
    if (!t.refreshing) refresh_token();
}

// A waiting call has no transfer of its own whose timeout would end it, and the token request it
// waits for may serve calls with later deadlines: a timer at its deadline ends it. One per call is
// enough (the deadline never moves); it does nothing if the call is not waiting then.
void Client::arm_deadline(const std::shared_ptr<CallState>& st) {
    if (st->deadline_armed) return;
    auto engine = this->engine();
    if (!engine) return;  // the token request fails at once and ends the call
    std::weak_ptr<Client> wc = weak_from_this();
    std::weak_ptr<CallState> ws = st;  // weak: a cancelled call is not kept until its deadline
    st->deadline_armed = engine->post_after(std::chrono::milliseconds(std::max(0L, ms_until(st->deadline))), [wc, ws] {
        auto client = wc.lock();
        auto st = ws.lock();
        if (client && st) client->on_deadline(st);
    });
}

void Client::on_deadline(const std::shared_ptr<CallState>& st) {
    st->deadline_armed = false;
    if (st->finished || !st->waiting_for_token) return;
    if (Clock::now() < st->deadline) {
        // Early: a stopping engine runs its timers at once. Wait again; a stopped one refuses.
        arm_deadline(st);
        if (!st->deadline_armed) finish(st, Error::transport("the engine is shutting down"));
        return;
    }
    finish(st, Error::timeout());  // finish() removes it from the waiters
}

TransferOptions Client::transfer_options(long timeout_ms) const {
    return TransferOptions{cfg_.ca_file, cfg_.proxy, std::min(cfg_.connect_timeout_ms, timeout_ms), timeout_ms,
                           cfg_.max_response_bytes};
}

void Client::refresh_token() {
    token_->refreshing = true;
    request_token();
}

// One request to Entra (the first, or a retry), for the calls waiting now. Engine thread only.
void Client::request_token() {
    auto& t = *token_;
    auto latest = t.latest_deadline();
    if (!latest) {
        // The calls that waited have ended or passed their deadlines during a backoff: nobody to ask
        // for. Those past their deadline end now rather than when their timers run.
        const Error timeout = Error::timeout();
        release_waiters(&timeout);
        return;
    }
    token_requests_.fetch_add(1, std::memory_order_relaxed);
    auto engine = this->engine();
    if (!engine) {
        on_token(TransferResult{CURLE_ABORTED_BY_CALLBACK, false, "the engine is stopped", {}});
        return;
    }
    // No longer than the last waiting call may still wait: a token arriving later serves no one
    // of them (calls arriving meanwhile get a retry if there is time left for them).
    const long bound = std::max(1L, std::min(cfg_.timeout_ms, ms_until(*latest)));
    auto self = shared_from_this();
    engine->start_transfer(build_token_request(cfg_.credentials), transfer_options(bound),
                           [self](TransferResult&& r) { self->on_token(std::move(r)); });
}

void Client::on_token(TransferResult&& r) {
    auto& t = *token_;
    std::variant<Token, Error> outcome = Error::transport(r.detail);
    std::optional<std::int64_t> retry_after;
    bool retryable = false;
    if (r.curl_code != 0) {
        outcome = r.timed_out ? Error::timeout() : Error::transport(r.detail);
        retryable = true;
    } else {
        outcome = parse_token_response(r.response);
        retryable = is_retryable_status(r.response.status);
        retry_after = retry_after_ms(r.response, unix_s());
    }
    if (std::holds_alternative<Error>(outcome) && retryable && t.attempt < cfg_.retry.max_attempts) {
        auto delay = backoff_ms(cfg_.retry, t.attempt, jitter01(), retry_after);
        // As for calls: no retry that could not finish before the last waiting call's deadline.
        auto latest = t.latest_deadline();
        if (latest && Clock::now() + std::chrono::milliseconds(delay) < *latest) {
            ++t.attempt;
            retries_.fetch_add(1, std::memory_order_relaxed);
            auto self = shared_from_this();
            auto engine = this->engine();
            if (engine && engine->post_after(std::chrono::milliseconds(delay), [self] { self->request_token(); }))
                return;
        }
    }
    auto* tok = std::get_if<Token>(&outcome);
    if (tok) {
        t.access_token = std::move(tok->access_token);
        t.authorization = "Bearer " + t.access_token;
        t.expires_in_s = tok->expires_in_s;
        t.obtained_at_s = steady_s();
        t.obtained_unix_s.store(unix_s(), std::memory_order_relaxed);
        ++t.generation;
    }
    release_waiters(std::get_if<Error>(&outcome));
}

// Ends the refresh: without a `failure` the waiting calls are sent with the new token, else they
// fail with it (or with a timeout, past their deadline).
void Client::release_waiters(const Error* failure) {
    auto& t = *token_;
    t.refreshing = false;
    t.attempt = 1;
    auto waiters = std::move(t.waiters);
    t.waiters.clear();
    for (auto& [wc, ws] : waiters) {
        auto client = wc.lock();
        auto st = ws.lock();
        if (!client || !st || st->finished || !st->waiting_for_token) continue;
        st->waiting_for_token = false;
        if (!failure) client->send(st);  // send() ends a call whose deadline has passed with a timeout
        else client->finish(st, Clock::now() >= st->deadline ? Error::timeout() : *failure);
    }
}

void Client::send(const std::shared_ptr<CallState>& st) {
    if (st->finished) return;
    auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(st->deadline - Clock::now()).count();
    if (remaining <= 0) {
        finish(st, Error::timeout());
        return;
    }
    HttpRequest req;
    if (st->next_url) {
        req.method = Method::Get;
        req.url = *st->next_url;
    } else {
        req = build_request(st->op, cfg_.marketplace_url);
    }
    req.headers.reserve(req.headers.size() + 4);
    req.headers.emplace_back("Authorization", token_->authorization);
    req.headers.emplace_back("x-ms-requestid", st->request_id);
    req.headers.emplace_back("x-ms-correlationid", st->correlation_id);
    req.headers.emplace_back("Accept", "application/json");
    st->token_generation = token_->generation;
    auto self = shared_from_this();
    auto engine = this->engine();
    if (!engine) {
        finish(st, Error::transport("the engine is stopped; reload the plugin"));
        return;
    }
    st->transfer = engine->start_transfer(std::move(req), transfer_options(static_cast<long>(remaining)),
                                          [self, st](TransferResult&& r) { self->on_response(st, std::move(r)); });
}

void Client::on_response(const std::shared_ptr<CallState>& st, TransferResult&& r) {
    st->transfer = 0;
    if (st->finished) return;
    if (r.too_large) {
        // Not retried: the same request would get the same answer.
        finish(st, Error::bad_response("response body over " + std::to_string(cfg_.max_response_bytes) + " bytes"));
        return;
    }
    if (r.curl_code != 0) {
        if (r.timed_out && Clock::now() >= st->deadline) {
            finish(st, Error::timeout());
            return;
        }
        retry_or_fail(st, r.timed_out ? Error::timeout() : Error::transport(r.detail), std::nullopt);
        return;
    }
    const HttpResponse& resp = r.response;
    if (resp.status == 401 && !st->reauthenticated) {
        // Azure no longer accepts our token (revoked, clock skew): refresh once, then retry once.
        st->reauthenticated = true;
        if (st->token_generation == token_->generation) {
            token_->access_token.clear();
            token_->authorization = "Bearer ";
        }
        with_token(st);
        return;
    }
    if (is_retryable_status(resp.status)) {
        retry_or_fail(st, Error::http(resp.status, resp.body), retry_after_ms(resp, unix_s()));
        return;
    }
    Interpretation in = interpret_response(st->op, resp);
    if (auto* err = std::get_if<Error>(&in.result)) {
        finish(st, std::move(*err));
        return;
    }
    auto& value = std::get<OpValue>(in.result);
    if (!is_list_op(st->op.kind)) {
        finish(st, std::move(value));
        return;
    }
    append_page(st->pages, std::move(value.value));
    if (in.next_link) {
        if (!same_origin(*in.next_link, cfg_.marketplace_url)) {
            finish(st, Error::bad_response("@nextLink points outside the configured marketplace_url"));
            return;
        }
        st->next_url = std::move(in.next_link);
        st->request_id = new_guid();  // a new page is a new request
        st->attempt = 1;
        send(st);
        return;
    }
    OpValue all;
    all.kind = OpValue::Kind::Value;
    all.value = std::move(st->pages);
    finish(st, std::move(all));
}

void Client::retry_or_fail(const std::shared_ptr<CallState>& st, Error err, std::optional<std::int64_t> retry_after) {
    if (st->attempt < cfg_.retry.max_attempts) {
        auto delay = backoff_ms(cfg_.retry, st->attempt, jitter01(), retry_after);
        if (Clock::now() + std::chrono::milliseconds(delay) < st->deadline) {
            ++st->attempt;
            retries_.fetch_add(1, std::memory_order_relaxed);
            auto self = shared_from_this();
            auto engine = this->engine();
            if (engine && engine->post_after(std::chrono::milliseconds(delay), [self, st] { self->send(st); })) return;
        }
    }
    finish(st, std::move(err));
}

void Client::finish(const std::shared_ptr<CallState>& st, CallResult&& result) {
    if (st->finished) return;
    if (st->waiting_for_token) token_->remove_waiter(st);
    st->finished = true;
    calls_.erase(st->id);
    in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    auto done = std::move(st->done);
    done(std::move(result));
}

}  // namespace azmp
