// WebhookAuthenticator end to end on the real engine against a real HTTP server on loopback.
#include "azmp/webhook_auth.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "../core/jwt_test_util.hpp"
#include "test_http_server.hpp"

namespace azmp {
namespace {

namespace json = boost::json;
using namespace jwt_test;
using namespace std::chrono_literals;

const TestKey& key_a() {
    static const TestKey k = make_key("kid-A");
    return k;
}
const TestKey& key_b() {
    static const TestKey k = make_key("kid-B");
    return k;
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// "ok" for claims, the reason otherwise.
std::string outcome(const AuthResult& r) {
    if (std::holds_alternative<json::object>(r)) return "ok";
    return std::get<std::string>(r);
}

class WebhookAuthTest : public ::testing::Test {
protected:
    WebhookAuthTest() { server.set_jwks(jwks({&key_a()})); }
    ~WebhookAuthTest() override { engine->stop(); }

    WebhookAuthConfig config() const {
        WebhookAuthConfig c;
        c.login_url = server.base_url();
        c.allow_insecure_loopback = true;  // the test server: plain http on loopback
        c.tenant_id = std::string(kTenant);
        c.audience = std::string(kAudience);
        c.timeout_ms = 5000;
        return c;
    }

    std::shared_ptr<WebhookAuthenticator> make(WebhookAuthConfig c) {
        return std::make_shared<WebhookAuthenticator>(std::move(c), engine);
    }
    std::shared_ptr<WebhookAuthenticator> make() { return make(config()); }

    // Starts one authentication; its outcome arrives through the future.
    std::future<std::string> start(WebhookAuthenticator& a, std::string header) {
        auto p = std::make_shared<std::promise<std::string>>();
        auto f = p->get_future();
        Engine* eng = engine.get();  // not a shared_ptr: the callback must never own the engine
        const bool posted = a.authenticate(std::move(header), unix_now(), [p, eng](AuthResult&& r) {
            p->set_value(eng->on_engine_thread() ? outcome(r) : "done called off the engine thread");
        });
        if (!posted) p->set_value("not posted");
        return f;
    }

    // Waits with a timeout so a bug fails the test instead of hanging it.
    static std::string await(std::future<std::string>& f) {
        if (f.wait_for(10s) != std::future_status::ready) return "timed out";
        return f.get();
    }

    std::string auth(WebhookAuthenticator& a, std::string header) {
        auto f = start(a, std::move(header));
        return await(f);
    }

    static std::string bearer(const std::string& token) { return "Bearer " + token; }

    test::TestHttpServer server{std::string(kTenant)};
    std::shared_ptr<Engine> engine = std::make_shared<Engine>();
};

TEST_F(WebhookAuthTest, FirstUseFetchesOnce) {
    auto a = make();
    EXPECT_EQ(a->jwks_fetches(), 0u);
    EXPECT_EQ(auth(*a, bearer(sign_token(key_a(), entra_claims(unix_now())))), "ok");
    EXPECT_EQ(a->jwks_fetches(), 1u);
    EXPECT_EQ(server.key_requests(), 1);
    EXPECT_EQ(server.requests(), 1);
}

TEST_F(WebhookAuthTest, HundredAuthenticationsWithAKnownKidFetchOnce) {
    auto a = make();
    const std::string token = bearer(sign_token(key_a(), entra_claims(unix_now(), true, server.base_url())));
    for (int i = 0; i < 100; ++i) ASSERT_EQ(auth(*a, token), "ok") << i;
    EXPECT_EQ(a->jwks_fetches(), 1u);
    EXPECT_EQ(server.key_requests(), 1);
}

TEST_F(WebhookAuthTest, ConcurrentFirstUseSharesOneFetch) {
    server.set_delay(300ms);  // hold the fetch in flight while the others arrive
    auto a = make();
    const std::string token = bearer(sign_token(key_a(), entra_claims(unix_now())));
    std::vector<std::future<std::string>> pending;
    std::vector<std::thread> callers;
    std::mutex mu;
    for (int t = 0; t < 4; ++t) {
        callers.emplace_back([&] {
            for (int i = 0; i < 25; ++i) {
                auto f = start(*a, token);
                std::lock_guard lk(mu);
                pending.push_back(std::move(f));
            }
        });
    }
    for (auto& c : callers) c.join();
    for (auto& f : pending) EXPECT_EQ(await(f), "ok");
    EXPECT_EQ(a->jwks_fetches(), 1u);
    EXPECT_EQ(server.key_requests(), 1);
}

TEST_F(WebhookAuthTest, RotatedKeyRefreshesOnceThenUnknownKidsWaitForTheInterval) {
    auto cfg = config();
    cfg.min_refresh_interval_s = 1;
    auto a = make(cfg);
    ASSERT_EQ(auth(*a, bearer(sign_token(key_a(), entra_claims(unix_now())))), "ok");
    ASSERT_EQ(a->jwks_fetches(), 1u);

    // Entra rotates: key B appears. Past the interval, B's first token refreshes once.
    server.set_jwks(jwks({&key_a(), &key_b()}));
    std::this_thread::sleep_for(1100ms);
    const std::string token_b = bearer(sign_token(key_b(), entra_claims(unix_now(), true, server.base_url())));
    EXPECT_EQ(auth(*a, token_b), "ok");
    EXPECT_EQ(a->jwks_fetches(), 2u);
    for (int i = 0; i < 20; ++i) ASSERT_EQ(auth(*a, token_b), "ok");
    EXPECT_EQ(auth(*a, bearer(sign_token(key_a(), entra_claims(unix_now())))), "ok");
    EXPECT_EQ(a->jwks_fetches(), 2u);

    // Another unknown kid right after that refresh: refused at once, no fetch.
    EXPECT_EQ(auth(*a, bearer(sign_token(key_b(), entra_claims(unix_now()), "kid-C"))), "unknown_key");
    EXPECT_EQ(a->jwks_fetches(), 2u);
    EXPECT_EQ(server.key_requests(), 2);
}

TEST_F(WebhookAuthTest, UnknownKidWithinTheIntervalIsUnknownKeyWithoutAFetch) {
    auto a = make();  // 60 s interval
    ASSERT_EQ(auth(*a, bearer(sign_token(key_a(), entra_claims(unix_now())))), "ok");
    for (int i = 0; i < 10; ++i)
        EXPECT_EQ(auth(*a, bearer(sign_token(key_a(), entra_claims(unix_now()), "kid-X" + std::to_string(i)))),
                  "unknown_key");
    EXPECT_EQ(a->jwks_fetches(), 1u);
    EXPECT_EQ(server.key_requests(), 1);
}

TEST_F(WebhookAuthTest, UnknownKidStillUnknownAfterTheRefresh) {
    auto cfg = config();
    cfg.min_refresh_interval_s = 0;
    auto a = make(cfg);
    EXPECT_EQ(auth(*a, bearer(sign_token(key_b(), entra_claims(unix_now())))), "unknown_key");
    EXPECT_EQ(a->jwks_fetches(), 1u);  // the first fetch already was the refresh
}

TEST_F(WebhookAuthTest, ServerErrorIsJwksUnavailableAndRateLimited) {
    server.set_status(500);
    auto cfg = config();
    cfg.min_refresh_interval_s = 1;
    auto a = make(cfg);
    const std::string token = bearer(sign_token(key_a(), entra_claims(unix_now())));
    EXPECT_EQ(auth(*a, token), "jwks_unavailable");
    EXPECT_EQ(a->jwks_fetches(), 1u);
    // No retry storm: within the interval, refused without asking again.
    for (int i = 0; i < 10; ++i) EXPECT_EQ(auth(*a, token), "jwks_unavailable");
    EXPECT_EQ(a->jwks_fetches(), 1u);
    EXPECT_EQ(server.key_requests(), 1);
    // Once the server recovers and the interval has passed, the next call fetches and succeeds.
    server.set_status(200);
    std::this_thread::sleep_for(1100ms);
    EXPECT_EQ(auth(*a, token), "ok");
    EXPECT_EQ(a->jwks_fetches(), 2u);
}

TEST_F(WebhookAuthTest, FailedRefreshKeepsTheCachedKeys) {
    auto cfg = config();
    cfg.min_refresh_interval_s = 0;
    auto a = make(cfg);
    const std::string token_a = bearer(sign_token(key_a(), entra_claims(unix_now())));
    ASSERT_EQ(auth(*a, token_a), "ok");
    server.set_status(500);
    EXPECT_EQ(auth(*a, bearer(sign_token(key_b(), entra_claims(unix_now())))), "jwks_unavailable");
    EXPECT_EQ(a->jwks_fetches(), 2u);
    EXPECT_EQ(auth(*a, token_a), "ok");
    EXPECT_EQ(a->jwks_fetches(), 2u);
}

TEST_F(WebhookAuthTest, GarbageJwksIsJwksUnavailable) {
    server.set_jwks("<html>maintenance</html>");
    auto a = make();
    EXPECT_EQ(auth(*a, bearer(sign_token(key_a(), entra_claims(unix_now())))), "jwks_unavailable");
}

TEST_F(WebhookAuthTest, UnreachableServerIsJwksUnavailable) {
    auto cfg = config();
    {
        test::TestHttpServer gone{std::string(kTenant)};
        cfg.login_url = gone.base_url();
        cfg.allow_insecure_loopback = true;  // the test server: plain http on loopback
    }  // closed: nothing listens on that port any more
    auto a = make(cfg);
    EXPECT_EQ(auth(*a, bearer(sign_token(key_a(), entra_claims(unix_now())))), "jwks_unavailable");
}

TEST_F(WebhookAuthTest, BearerSchemeIsStrippedInAnyCase) {
    auto a = make();
    const std::string token = sign_token(key_a(), entra_claims(unix_now()));
    EXPECT_EQ(auth(*a, "Bearer " + token), "ok");
    EXPECT_EQ(auth(*a, "bearer " + token), "ok");
    EXPECT_EQ(auth(*a, "BEARER   " + token + "  "), "ok");
    EXPECT_EQ(auth(*a, "\tBearer\t" + token), "ok");
    EXPECT_EQ(auth(*a, token), "ok");  // bare
    EXPECT_EQ(auth(*a, "Basic " + token), "malformed");
    EXPECT_EQ(auth(*a, "Bearer" + token), "malformed");
    EXPECT_EQ(a->jwks_fetches(), 1u);
}

TEST_F(WebhookAuthTest, MissingTokenIsNoToken) {
    auto a = make();
    EXPECT_EQ(auth(*a, ""), "no_token");
    EXPECT_EQ(auth(*a, "Bearer"), "no_token");
    EXPECT_EQ(auth(*a, "Bearer "), "no_token");
    EXPECT_EQ(auth(*a, "  bearer   "), "no_token");
    EXPECT_EQ(a->jwks_fetches(), 0u);  // nothing to check: no fetch
    EXPECT_EQ(server.requests(), 0);
}

TEST_F(WebhookAuthTest, ForgedTokensAreRefusedWithTheirReason) {
    auto a = make();
    const auto now = unix_now();
    ASSERT_EQ(auth(*a, bearer(sign_token(key_a(), entra_claims(now)))), "ok");

    json::object none_header{{"alg", "none"}, {"kid", "kid-unknown"}};
    EXPECT_EQ(auth(*a, bearer(signing_input(none_header, entra_claims(now)) + ".")), "bad_algorithm");
    json::object hs_header{{"alg", "HS256"}, {"kid", key_a().kid}};
    const std::string hs_input = signing_input(hs_header, entra_claims(now));
    EXPECT_EQ(auth(*a, bearer(hs_input + "." + b64url(hmac_sha256(public_key_pem(key_a().pkey.get()), hs_input)))),
              "bad_algorithm");
    EXPECT_EQ(auth(*a, bearer(sign_token(key_b(), entra_claims(now), key_a().kid))), "bad_signature");
    auto c = entra_claims(now);
    c["aud"] = "someone-else";
    EXPECT_EQ(auth(*a, bearer(sign_token(key_a(), c))), "wrong_audience");
    c = entra_claims(now);
    c["tid"] = "another-tenant";
    EXPECT_EQ(auth(*a, bearer(sign_token(key_a(), c))), "wrong_tenant");
    c = entra_claims(now);
    c["appid"] = "another-app";
    EXPECT_EQ(auth(*a, bearer(sign_token(key_a(), c))), "wrong_app");
    // A v2 token's issuer is the authority we are configured with, not Entra's public one.
    EXPECT_EQ(auth(*a, bearer(sign_token(key_a(), entra_claims(now, true, server.base_url())))), "ok");
    EXPECT_EQ(auth(*a, bearer(sign_token(key_a(), entra_claims(now, true, "https://login.example.com")))),
              "wrong_issuer");
    json::object crit_header = rs256_header(key_a().kid);
    crit_header["crit"] = json::array{"exp"};
    crit_header["exp"] = now + 60;
    const std::string crit_input = signing_input(crit_header, entra_claims(now));
    EXPECT_EQ(auth(*a, bearer(crit_input + "." + b64url(sign_rs256(key_a().pkey.get(), crit_input)))),
              "unsupported_crit");
    c = entra_claims(now);
    c["exp"] = now - 3600;
    EXPECT_EQ(auth(*a, bearer(sign_token(key_a(), c))), "expired");
    c = entra_claims(now);
    c["nbf"] = now + 3600;
    EXPECT_EQ(auth(*a, bearer(sign_token(key_a(), c))), "not_yet_valid");
    EXPECT_EQ(auth(*a, "Bearer not.a.jwt"), "malformed");
    // None of these needed the keys again.
    EXPECT_EQ(a->jwks_fetches(), 1u);
}

TEST_F(WebhookAuthTest, StoppingTheEngineAnswersWaitersAndRefusesNewCalls) {
    server.set_delay(2000ms);
    auto a = make();
    auto f = start(*a, bearer(sign_token(key_a(), entra_claims(unix_now()))));
    std::this_thread::sleep_for(100ms);  // let the fetch start
    engine->stop();
    EXPECT_EQ(await(f), "jwks_unavailable");
    EXPECT_EQ(auth(*a, "Bearer x"), "not posted");
}

TEST_F(WebhookAuthTest, DoesNotKeepTheEngineAlive) {
    auto a = make();
    ASSERT_EQ(auth(*a, bearer(sign_token(key_a(), entra_claims(unix_now())))), "ok");
    std::weak_ptr<Engine> weak = engine;
    engine->stop();
    engine.reset();
    EXPECT_TRUE(weak.expired());
    bool called = false;
    EXPECT_FALSE(a->authenticate("Bearer x", unix_now(), [&](AuthResult&&) { called = true; }));
    EXPECT_FALSE(called);
    engine = std::make_shared<Engine>();  // for the fixture's teardown
}

TEST(WebhookAuthConfigTest, JwksUrl) {
    WebhookAuthConfig c;
    c.login_url = "https://login.microsoftonline.com/";
    c.tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    EXPECT_EQ(jwks_url(c), "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/discovery/v2.0/keys");
    c.tenant_id = "a/../b?x";
    EXPECT_EQ(jwks_url(c), "https://login.microsoftonline.com/a%2F..%2Fb%3Fx/discovery/v2.0/keys");
}

TEST(WebhookAuthConfigTest, Validation) {
    WebhookAuthConfig c;
    c.login_url = "https://login.microsoftonline.com";
    c.tenant_id = std::string(kTenant);
    c.audience = std::string(kAudience);
    EXPECT_FALSE(validate_config(c));
    EXPECT_EQ(c.authorized_apps, std::vector<std::string>{std::string(kMarketplaceApp)});
    auto bad = [&](auto mutate, std::string field) {
        WebhookAuthConfig d = c;
        mutate(d);
        auto err = validate_config(d);
        ASSERT_TRUE(err) << field;
        EXPECT_EQ(err->kind, ErrorKind::Badarg);
        EXPECT_EQ(err->detail, field);
    };
    bad([](WebhookAuthConfig& d) { d.login_url = "http://login.example.com"; }, "login_url");
    bad([](WebhookAuthConfig& d) { d.tenant_id.clear(); }, "tenant_id");
    bad([](WebhookAuthConfig& d) { d.audience.clear(); }, "audience");
    bad([](WebhookAuthConfig& d) { d.authorized_apps.clear(); }, "authorized_apps");
    bad([](WebhookAuthConfig& d) { d.timeout_ms = 0; }, "timeout_ms");
    bad([](WebhookAuthConfig& d) { d.min_refresh_interval_s = -1; }, "min_refresh_interval_s");
    bad([](WebhookAuthConfig& d) { d.skew_s = -5; }, "skew_s");
    // Plain http to loopback: only a configuration that says it is a test endpoint.
    WebhookAuthConfig local = c;
    local.login_url = "http://127.0.0.1:8443";
    auto err = validate_config(local);
    ASSERT_TRUE(err);
    EXPECT_EQ(err->kind, ErrorKind::InsecureEndpoint);
    EXPECT_EQ(err->detail, "login_url");
    local.allow_insecure_loopback = true;
    EXPECT_FALSE(validate_config(local));
    bad([](WebhookAuthConfig& d) { d.login_url = "http://login.example.com"; d.allow_insecure_loopback = true; },
        "login_url");
}

}  // namespace
}  // namespace azmp
