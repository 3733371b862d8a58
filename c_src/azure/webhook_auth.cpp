// Authenticates Azure's webhook calls on the engine thread: the tenant's JWKS fetched once and cached,
// refreshed (single flight, rate-limited) when a token names a key the cache does not hold.
#include "azmp/webhook_auth.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <utility>

#include "azmp/url_policy.hpp"
#include "../core/text_util.hpp"

namespace azmp {
namespace {

// Callers waiting for one fetch beyond this are refused rather than queued without bound.
constexpr std::size_t kMaxWaiters = 10000;
// Entra rotates its signing keys; a key set this old is refreshed even when every kid is known, so
// keys Entra has withdrawn stop being trusted.
constexpr std::int64_t kMaxKeySetAgeMs = 24LL * 3600 * 1000;

std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// "Bearer xyz" (any case) -> "xyz"; a bare token stays as it is.
std::string_view strip_bearer(std::string_view v) {
    v = detail::trim(v);
    constexpr std::string_view scheme = "bearer";
    if (v.size() >= scheme.size() && detail::iequals(v.substr(0, scheme.size()), scheme) &&
        (v.size() == scheme.size() || v[scheme.size()] == ' ' || v[scheme.size()] == '\t'))
        v = detail::trim(v.substr(scheme.size()));
    return v;
}

std::string login_base(std::string url) {
    while (!url.empty() && url.back() == '/') url.pop_back();
    return url;
}

}  // namespace

std::string jwks_url(const WebhookAuthConfig& cfg) {
    return login_base(cfg.login_url) + "/" + detail::url_escape(cfg.tenant_id) + "/discovery/v2.0/keys";
}

std::optional<Error> validate_config(const WebhookAuthConfig& cfg) {
    if (auto bad = endpoint_error("login_url", cfg.login_url, cfg.allow_insecure_loopback)) return bad;
    if (cfg.tenant_id.empty()) return Error::badarg("tenant_id");
    if (cfg.audience.empty()) return Error::badarg("audience");
    if (cfg.authorized_apps.empty()) return Error::badarg("authorized_apps");
    for (const auto& a : cfg.authorized_apps)
        if (a.empty()) return Error::badarg("authorized_apps");
    if (cfg.timeout_ms <= 0) return Error::badarg("timeout_ms");
    if (cfg.min_refresh_interval_s < 0 || cfg.min_refresh_interval_s > 86400)
        return Error::badarg("min_refresh_interval_s");
    if (cfg.skew_s < 0 || cfg.skew_s > 3600) return Error::badarg("skew_s");
    return std::nullopt;
}

struct WebhookAuthenticator::State : std::enable_shared_from_this<State> {
    struct Waiter {
        std::string token;  // without "Bearer "
        std::int64_t now = 0;
        AuthDone done;
    };

    State(WebhookAuthConfig c, const std::shared_ptr<Engine>& e)
        : cfg(std::move(c)),
          url(jwks_url(cfg)),
          engine(e),
          expect{cfg.audience, cfg.tenant_id, login_base(cfg.login_url), cfg.authorized_apps, 0, cfg.skew_s} {}

    const WebhookAuthConfig cfg;
    const std::string url;
    // Weak: an authenticator kept by someone must not keep an unloaded library's engine alive.
    const std::weak_ptr<Engine> engine;
    std::atomic<std::uint64_t> fetches{0};

    // Engine thread only:
    std::shared_ptr<const KeySet> keys;  // null until a fetch has succeeded
    std::int64_t keys_at_ms = 0;         // when `keys` arrived
    std::optional<std::int64_t> last_fetch_ms;
    bool fetching = false;
    std::vector<Waiter> waiters;
    // What a token must say, made once (not its strings copied for every token): only `now` changes.
    JwtExpectations expect;

    const JwtExpectations& expectations(std::int64_t now) {
        expect.now = now;
        return expect;
    }

    bool may_fetch(std::int64_t now_ms) const {
        return !last_fetch_ms || now_ms - *last_fetch_ms >= cfg.min_refresh_interval_s * 1000;
    }

    static void finish(AuthDone& done, std::variant<boost::json::object, JwtError>&& r) {
        if (auto* claims = std::get_if<boost::json::object>(&r)) done(AuthResult(std::move(*claims)));
        else done(AuthResult(std::string(jwt_error_name(std::get<JwtError>(r)))));
    }

    static void refuse(AuthDone& done, std::string_view reason) { done(AuthResult(std::string(reason))); }

    void wait(std::string_view token, std::int64_t now, AuthDone&& done) {
        if (waiters.size() >= kMaxWaiters) {
            refuse(done, "jwks_unavailable");
            return;
        }
        waiters.push_back(Waiter{std::string(token), now, std::move(done)});
    }

    void handle(const std::string& header, std::int64_t now, AuthDone&& done) {
        const std::string_view token = strip_bearer(header);
        if (token.empty()) {
            refuse(done, "no_token");
            return;
        }
        const std::int64_t now_ms = steady_ms();
        if (!keys) {
            // Nothing to check against yet: wait for the fetch, or start one.
            if (fetching) {
                wait(token, now, std::move(done));
            } else if (may_fetch(now_ms)) {
                wait(token, now, std::move(done));
                fetch(now_ms);
            } else {
                refuse(done, "jwks_unavailable");  // the last fetch failed a moment ago
            }
            return;
        }
        auto result = verify_jwt(token, *keys, expectations(now));
        const auto* err = std::get_if<JwtError>(&result);
        if (err != nullptr && *err == JwtError::UnknownKey && jwt_kid(token)) {
            // A kid we do not know: Entra may have rotated its keys. A fetch in flight may bring it;
            // otherwise one refresh, unless one happened within the interval.
            if (fetching) {
                wait(token, now, std::move(done));
                return;
            }
            if (may_fetch(now_ms)) {
                wait(token, now, std::move(done));
                fetch(now_ms);
                return;
            }
        } else if (!fetching && now_ms - keys_at_ms >= kMaxKeySetAgeMs && may_fetch(now_ms)) {
            fetch(now_ms);  // in the background: this call is answered from the cache
        }
        finish(done, std::move(result));
    }

    void fetch(std::int64_t now_ms) {
        auto eng = engine.lock();
        if (!eng) {
            fail_waiters();
            return;
        }
        fetching = true;
        last_fetch_ms = now_ms;
        fetches.fetch_add(1, std::memory_order_relaxed);
        HttpRequest req;
        req.method = Method::Get;
        req.url = url;
        req.headers.emplace_back("Accept", "application/json");
        TransferOptions opts{.ca_file = cfg.ca_file, .connect_timeout_ms = std::min<long>(5000, cfg.timeout_ms), .timeout_ms = cfg.timeout_ms};
        eng->start_transfer(std::move(req), opts,
                            [self = shared_from_this()](TransferResult&& r) { self->on_fetch(std::move(r)); });
    }

    void on_fetch(TransferResult&& r) {
        fetching = false;
        std::optional<KeySet> fresh;
        if (r.curl_code == 0 && r.response.status == 200) fresh = parse_jwks(r.response.body);
        if (!fresh) {
            // Whoever waited for these keys cannot be checked; the cache (if any) stays as it was and
            // the next fetch waits for the interval.
            fail_waiters();
            return;
        }
        keys = std::make_shared<const KeySet>(std::move(*fresh));
        keys_at_ms = steady_ms();
        auto ready = std::move(waiters);
        waiters.clear();
        for (auto& w : ready) finish(w.done, verify_jwt(w.token, *keys, expectations(w.now)));
    }

    void fail_waiters() {
        auto failed = std::move(waiters);
        waiters.clear();
        for (auto& w : failed) refuse(w.done, "jwks_unavailable");
    }
};

WebhookAuthenticator::WebhookAuthenticator(WebhookAuthConfig cfg, const std::shared_ptr<Engine>& engine)
    : state_(std::make_shared<State>(std::move(cfg), engine)) {}

bool WebhookAuthenticator::authenticate(std::string token, std::int64_t now_unix_s, AuthDone done) {
    auto eng = state_->engine.lock();
    if (!eng) return false;
    return eng->post([st = state_, token = std::move(token), now_unix_s, done = std::move(done)]() mutable {
        st->handle(token, now_unix_s, std::move(done));
    });
}

std::uint64_t WebhookAuthenticator::jwks_fetches() const {
    return state_->fetches.load(std::memory_order_relaxed);
}

}  // namespace azmp
