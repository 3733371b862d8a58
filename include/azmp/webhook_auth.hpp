// Authenticates Azure's webhook calls: the bearer JWT checked against the tenant's JWKS, which is
// fetched from the configured login URL on the engine and cached.
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "azmp/engine.hpp"
#include "azmp/error.hpp"
#include "azmp/jwt.hpp"

namespace azmp {

struct WebhookAuthConfig {
    std::string login_url;  // e.g. https://login.microsoftonline.com (no trailing slash)
    std::string tenant_id;  // tid expected, and whose JWKS is fetched
    std::string audience;   // aud expected: our client (app) id
    std::vector<std::string> authorized_apps{std::string(kMarketplaceAppIdForWebhooks)};
    std::string ca_file;
    long timeout_ms = 10000;
    std::int64_t min_refresh_interval_s = 60;  // an unknown kid refreshes the JWKS at most this often
    std::int64_t skew_s = 300;
    // Plain http to a loopback login_url is allowed only with this set: test endpoints (an emulator).
    bool allow_insecure_loopback = false;

    static constexpr std::string_view kMarketplaceAppIdForWebhooks = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";
};

// JWKS URL: {login_url}/{tenant_id}/discovery/v2.0/keys (trailing slashes of login_url dropped, the
// tenant percent-encoded).
std::string jwks_url(const WebhookAuthConfig& cfg);

// Checks a configuration before use: login_url https (or http on loopback with
// allow_insecure_loopback: insecure_endpoint without it), tenant_id, audience and
// authorized_apps present, numbers in range. Returns the offending field as Error::badarg.
std::optional<Error> validate_config(const WebhookAuthConfig& cfg);

// Success: the token's claims. Failure: a reason name — "no_token", a jwt_error_name
// ("malformed", "bad_algorithm", "unsupported_crit", "unknown_key", "bad_signature", "wrong_audience",
// "wrong_tenant", "wrong_issuer", "wrong_app", "expired", "not_yet_valid") or "jwks_unavailable" (the
// key set could not be fetched). The v2 iss expected is {login_url}/{tenant_id}/v2.0.
using AuthResult = std::variant<boost::json::object, std::string>;
using AuthDone = std::function<void(AuthResult&&)>;

class WebhookAuthenticator : public std::enable_shared_from_this<WebhookAuthenticator> {
public:
    WebhookAuthenticator(WebhookAuthConfig cfg, const std::shared_ptr<Engine>& engine);

    // Thread-safe. `token` is the Authorization header's value ("Bearer ..." with the scheme in any
    // case, or the bare token). `done` runs exactly once, on the engine thread. The JWKS is fetched on
    // first use; a kid not in the cached set triggers one refresh. Fetches (first, refresh, failed
    // or not) start at most once per min_refresh_interval_s and one at a time: callers arriving while
    // one is in flight wait for it; an unknown kid inside the interval is "unknown_key" at once, and
    // with no key set at all (the last fetch failed) "jwks_unavailable" at once. A key set older than
    // 24 h is refreshed in the background on the next call. Returns false (and never calls `done`)
    // when the engine is stopped or gone.
    bool authenticate(std::string token, std::int64_t now_unix_s, AuthDone done);

    // JWKS fetches started so far.
    std::uint64_t jwks_fetches() const;

private:
    struct State;
    std::shared_ptr<State> state_;
};

}  // namespace azmp
