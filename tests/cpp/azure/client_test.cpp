// The marketplace Client on the real engine against a real HTTP server on loopback that plays
// Entra's token endpoint and the fulfillment API.
#include "azmp/client.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "test_http_server.hpp"

namespace azmp {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// Generous: the machine may be busy; a bug fails the test instead of hanging it.
constexpr auto kWait = 30s;
const std::string kTokenPath = "/tenant-1/oauth2/v2.0/token";
const std::string kSubPath = "/api/saas/subscriptions/sub-1";
const std::string kListPath = "/api/saas/subscriptions";

test::Reply token_reply(int n) {
    return {200, {}, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"tok-" + std::to_string(n) + "\"}",
            {}, false};
}

test::Reply status(int s, std::vector<std::pair<std::string, std::string>> headers = {}) {
    return {s, std::move(headers), "{\"error\":{\"code\":\"x\"}}", {}, false};
}

const test::Reply kSubscription{200, {}, "{\"id\":\"sub-1\",\"saasSubscriptionStatus\":\"Subscribed  \"}", {}, false};
const test::Reply kStall{200, {}, {}, {}, true};

Operation get_sub() {
    Operation op;
    op.kind = OpKind::GetSubscription;
    op.subscription_id = "sub-1";
    return op;
}

// "ok:<id>" for a subscription, "ok:<n items>" for a list, else the error as kind/status.
std::string outcome(const CallResult& r) {
    if (auto* v = std::get_if<OpValue>(&r)) {
        if (v->value.is_object() && v->value.as_object().contains("id"))
            return "ok:" + std::string(v->value.as_object().at("id").as_string());
        if (v->value.is_array()) return "ok:" + std::to_string(v->value.as_array().size()) + " items";
        return "ok";
    }
    const Error& e = std::get<Error>(r);
    switch (e.kind) {
        case ErrorKind::Timeout: return "timeout";
        case ErrorKind::Overloaded: return "overloaded";
        case ErrorKind::Http: return "http " + std::to_string(e.status);
        case ErrorKind::Transport: return "transport";
        case ErrorKind::BadResponse: return "bad_response";
        case ErrorKind::Auth: return "auth " + e.detail;
        case ErrorKind::Badarg: return "badarg " + e.detail;
        case ErrorKind::InsecureEndpoint: return "insecure_endpoint " + e.detail;
    }
    return "?";
}

class ClientTest : public ::testing::Test {
protected:
    ClientTest() {
        // A fresh token per request, so a test can tell which token a request carried.
        server.route("POST", kTokenPath, [n = std::make_shared<std::atomic<int>>(0)](const test::Request&) {
            return token_reply(++*n);
        });
    }
    ~ClientTest() override { engine->stop(); }

    ClientConfig config() const {
        ClientConfig c;
        c.credentials = {server.base_url(), "tenant-1", "client-1", "secret-1", TokenEndpoint::V2};
        c.marketplace_url = server.base_url() + "/api";
        c.allow_insecure_loopback = true;  // the test server: plain http on loopback
        c.timeout_ms = 20000;
        c.retry = {4, 1, 10, 60000};  // quick backoff; Retry-After honoured up to a minute
        return c;
    }
    std::shared_ptr<Client> make(ClientConfig c) { return std::make_shared<Client>(std::move(c), engine); }
    std::shared_ptr<Client> make() { return make(config()); }

    struct Call {
        Client::CallId id = 0;
        std::future<std::string> outcome;
        std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
    };

    Call start(Client& c, Operation op) {
        Call call;
        auto p = std::make_shared<std::promise<std::string>>();
        call.outcome = p->get_future();
        auto started = c.call(std::move(op), [p, calls = call.calls](CallResult&& r) {
            if (++*calls == 1) p->set_value(outcome(r));
        });
        if (auto* e = std::get_if<Error>(&started)) p->set_value("refused " + outcome(*e));
        else call.id = std::get<Client::CallId>(started);
        return call;
    }

    static std::string await(std::future<std::string>& f) {
        if (f.wait_for(kWait) != std::future_status::ready) return "test: no answer";
        return f.get();
    }

    std::string run(Client& c, Operation op) {
        auto call = start(c, std::move(op));
        return await(call.outcome);
    }

    // Waits until every task posted to the engine so far has run.
    void drain() {
        std::promise<void> p;
        auto f = p.get_future();
        ASSERT_TRUE(engine->post([&p] { p.set_value(); }));
        ASSERT_EQ(f.wait_for(kWait), std::future_status::ready);
    }

    test::TestHttpServer server;
    std::shared_ptr<Engine> engine = std::make_shared<Engine>();
};

// One call: a token first, then the request with the bearer token, request and correlation ids and
// the api-version; the value comes back.
TEST_F(ClientTest, CallGetsItsValue) {
    server.reply("GET", kSubPath, kSubscription);
    auto c = make();
    EXPECT_EQ(run(*c, get_sub()), "ok:sub-1");
    const auto token_reqs = server.received("POST", kTokenPath);
    ASSERT_EQ(token_reqs.size(), 1u);
    EXPECT_NE(token_reqs[0].body.find("client_secret=secret-1"), std::string::npos);
    const auto reqs = server.received("GET", kSubPath);
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].target, kSubPath + "?api-version=2018-08-31");
    EXPECT_EQ(reqs[0].header("authorization"), "Bearer tok-1");
    EXPECT_EQ(reqs[0].header("x-ms-requestid").value_or("").size(), 36u);
    EXPECT_EQ(reqs[0].header("x-ms-correlationid").value_or("").size(), 36u);
    EXPECT_EQ(c->stats().token_requests, 1u);
    EXPECT_EQ(c->stats().in_flight, 0u);
    // The token is cached: a second call asks for none.
    EXPECT_EQ(run(*c, get_sub()), "ok:sub-1");
    EXPECT_EQ(server.count("POST", kTokenPath), 1);
}

// A body over max_response_bytes ends the transfer as it arrives: a bad_response, not retried (the
// same request would get the same answer); a body of exactly the limit is read.
TEST_F(ClientTest, ResponseBodyOverTheLimitIsABadResponseNotRetried) {
    const std::string exact = "{\"id\":\"sub-1\",\"pad\":\"" + std::string(1000, 'x') + "\"}";
    auto c_config = config();
    c_config.max_response_bytes = exact.size();
    auto c = make(c_config);
    server.reply("GET", kSubPath, test::Reply{200, {}, exact, {}, false});
    EXPECT_EQ(run(*c, get_sub()), "ok:sub-1");
    server.reply("GET", kSubPath, test::Reply{200, {}, exact + " ", {}, false});
    EXPECT_EQ(run(*c, get_sub()), "bad_response");
    EXPECT_EQ(server.count("GET", kSubPath), 2);
    // A large body, many chunks over the limit: still refused, the engine serves the next call.
    server.reply("GET", kSubPath, test::Reply{200, {}, std::string(4 << 20, ' '), {}, false});
    EXPECT_EQ(run(*c, get_sub()), "bad_response");
    server.reply("GET", kSubPath, kSubscription);
    EXPECT_EQ(run(*c, get_sub()), "ok:sub-1");
}

// 429 and 5xx are retried (Retry-After honoured) up to max_attempts (4), other statuses are final.
// A Retry-After reaching past the call's deadline ends the call at once: proof that it was read.
TEST_F(ClientTest, RetriesRetryableStatusesAndGivesUp) {
    struct Case {
        std::string name;
        std::vector<test::Reply> replies;
        std::string outcome;
        int requests;
    };
    const std::vector<Case> cases = {
        {"503 then ok", {status(503), kSubscription}, "ok:sub-1", 2},
        {"429 with Retry-After then ok", {status(429, {{"Retry-After", "1"}}), kSubscription}, "ok:sub-1", 2},
        {"500, 502, 504 then ok", {status(500), status(502), status(504), kSubscription}, "ok:sub-1", 4},
        {"always 503: gives up", {status(503)}, "http 503", 4},
        {"always 429: gives up", {status(429)}, "http 429", 4},
        {"404 is final", {status(404), kSubscription}, "http 404", 1},
        {"400 is final", {status(400), kSubscription}, "http 400", 1},
        {"Retry-After past the deadline", {status(429, {{"Retry-After", "50"}}), kSubscription}, "http 429", 1},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        test::TestHttpServer s;
        s.reply("POST", kTokenPath, token_reply(1));
        s.script("GET", kSubPath, c.replies);
        auto cfg = config();
        cfg.credentials.login_url = s.base_url();
        cfg.marketplace_url = s.base_url() + "/api";
        cfg.allow_insecure_loopback = true;  // the test server: plain http on loopback
        cfg.timeout_ms = 30000;
        auto client = make(cfg);
        EXPECT_EQ(run(*client, get_sub()), c.outcome);
        EXPECT_EQ(s.count("GET", kSubPath), c.requests);
        // A retry is the same request: one request id throughout.
        const auto reqs = s.received("GET", kSubPath);
        for (const auto& r : reqs) EXPECT_EQ(r.header("x-ms-requestid"), reqs[0].header("x-ms-requestid"));
    }
}

// Many callers at once, on two clients with the same credentials, while the token request is slow:
// one token request serves them all.
TEST_F(ClientTest, ConcurrentCallersShareOneTokenRequest) {
    server.reply("POST", kTokenPath, test::Reply{token_reply(1).status, {}, token_reply(1).body, 300ms, false});
    server.reply("GET", kSubPath, kSubscription);
    auto a = make();
    auto b = make();
    constexpr int kN = 200;
    std::vector<Call> calls;
    for (int i = 0; i < kN; ++i) calls.push_back(start(i % 2 ? *a : *b, get_sub()));
    int ok = 0;
    for (auto& c : calls) ok += await(c.outcome) == "ok:sub-1";
    EXPECT_EQ(ok, kN);
    EXPECT_EQ(server.count("POST", kTokenPath), 1);
    EXPECT_EQ(a->stats().token_requests + b->stats().token_requests, 1u);
    EXPECT_EQ(server.count("GET", kSubPath), kN);
}

// A 401 drops the token, fetches one new token and retries once; a second 401 is final.
TEST_F(ClientTest, Unauthorized401RefreshesTheTokenOnceAndRetriesOnce) {
    struct Case {
        std::string name;
        std::vector<test::Reply> replies;
        std::string outcome;
    };
    const std::vector<Case> cases = {
        {"401 then ok", {status(401), kSubscription}, "ok:sub-1"},
        {"always 401", {status(401)}, "http 401"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        test::TestHttpServer s;
        s.route("POST", kTokenPath, [n = std::make_shared<std::atomic<int>>(0)](const test::Request&) {
            return token_reply(++*n);
        });
        s.script("GET", kSubPath, c.replies);
        auto cfg = config();
        cfg.credentials.login_url = s.base_url();
        cfg.marketplace_url = s.base_url() + "/api";
        cfg.allow_insecure_loopback = true;  // the test server: plain http on loopback
        auto client = make(cfg);
        EXPECT_EQ(run(*client, get_sub()), c.outcome);
        EXPECT_EQ(s.count("POST", kTokenPath), 2);
        const auto reqs = s.received("GET", kSubPath);
        ASSERT_EQ(reqs.size(), 2u);
        EXPECT_EQ(reqs[0].header("authorization"), "Bearer tok-1");
        EXPECT_EQ(reqs[1].header("authorization"), "Bearer tok-2");
    }
}

// List calls follow @nextLink while it stays on the configured origin and return every item; a
// link elsewhere (other port, scheme or host) ends the call without sending our token there.
TEST_F(ClientTest, PagingFollowsNextLinkOnTheSameOriginOnly) {
    test::TestHttpServer elsewhere;
    elsewhere.reply("GET", kListPath, test::Reply{200, {}, "{\"subscriptions\":[]}", {}, false});
    const std::string query = "?api-version=2018-08-31&continuationToken=";
    struct Case {
        std::string name;
        std::string next;  // where page 2 says page 3 is
        std::string outcome;
        int requests;
    };
    const std::vector<Case> cases = {
        {"same origin", server.base_url() + kListPath + query + "3", "ok:4 items", 3},
        {"other port", elsewhere.base_url() + kListPath + query + "3", "bad_response", 2},
        {"other scheme", "https://127.0.0.1:" + std::to_string(server.port()) + kListPath + query + "3",
         "bad_response", 2},
        {"other host", "http://localhost:" + std::to_string(server.port()) + kListPath + query + "3", "bad_response",
         2},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const int before = server.count("GET", kListPath);
        server.route("GET", kListPath, [&](const test::Request& r) {
            const std::string page = r.target.substr(r.target.find("continuationToken=") + 18);
            std::string body;
            if (r.target.find("continuationToken=") == std::string::npos)
                body = "{\"subscriptions\":[{\"id\":\"a\"},{\"id\":\"b\"}],\"@nextLink\":\"" + server.base_url() +
                       kListPath + query + "2\"}";
            else if (page == "2")
                body = "{\"subscriptions\":[{\"id\":\"c\"}],\"@nextLink\":\"" + c.next + "\"}";
            else
                body = "{\"subscriptions\":[{\"id\":\"d\"}]}";
            return test::Reply{200, {}, body, {}, false};
        });
        auto client = make();
        Operation op;
        op.kind = OpKind::ListSubscriptions;
        EXPECT_EQ(run(*client, op), c.outcome);
        EXPECT_EQ(server.count("GET", kListPath) - before, c.requests);
        for (const auto& r : server.received("GET", kListPath)) EXPECT_TRUE(r.header("authorization").has_value());
    }
    EXPECT_EQ(elsewhere.requests(), 0);
}

// With 100 attempts allowed, only timeout_ms can end a call to a stalling server before the test
// gives up (30 s). The client under test, configured against `s`, stalls on `method path`.
class ClientTimeoutTest : public ClientTest {
protected:
    std::string call_with_stall(const std::string& method, const std::string& path) {
        test::TestHttpServer s;
        s.reply("POST", kTokenPath, token_reply(1));
        s.reply("GET", kSubPath, kSubscription);
        s.reply(method, path, kStall);
        auto cfg = config();
        cfg.credentials.login_url = s.base_url();
        cfg.marketplace_url = s.base_url() + "/api";
        cfg.allow_insecure_loopback = true;  // the test server: plain http on loopback
        cfg.timeout_ms = 1000;
        cfg.retry.max_attempts = 100;
        auto client = make(cfg);
        std::string out = run(*client, get_sub());
        EXPECT_EQ(client->stats().in_flight, 0u);
        return out;
    }
};

// timeout_ms bounds a call, retries included, when the API stalls.
TEST_F(ClientTimeoutTest, TimeoutBoundsACallToAStallingApi) {
    EXPECT_EQ(call_with_stall("GET", kSubPath), "timeout");
}

// timeout_ms bounds a call, token retries included, when Entra stalls: a waiting call ends at its
// own deadline (before the fix it waited for max_attempts whole-timeout_ms token requests).
TEST_F(ClientTimeoutTest, TimeoutBoundsACallWhoseTokenRequestStalls) {
    EXPECT_EQ(call_with_stall("POST", kTokenPath), "timeout");
}

// Calls of two clients with the same credentials wait for one token request: while Entra stalls,
// the call with the short timeout_ms ends as a timeout at its own deadline, and the token request is
// retried for the call that still has time, which then gets its value.
TEST_F(ClientTimeoutTest, WaitingCallsEndAtTheirOwnDeadlinesAndARetryServesTheRest) {
    test::TestHttpServer s;
    s.script("POST", kTokenPath, {kStall, token_reply(1)});
    s.reply("GET", kSubPath, kSubscription);
    auto cfg = config();
    cfg.credentials.login_url = s.base_url();
    cfg.marketplace_url = s.base_url() + "/api";
    cfg.allow_insecure_loopback = true;  // the test server: plain http on loopback
    auto short_cfg = cfg;
    short_cfg.timeout_ms = 500;
    auto shorter = make(short_cfg);
    auto longer = make(cfg);
    auto a = start(*shorter, get_sub());
    ASSERT_TRUE(s.wait_for_count("POST", kTokenPath, 1, kWait));
    auto b = start(*longer, get_sub());
    EXPECT_EQ(await(a.outcome), "timeout");
    EXPECT_EQ(await(b.outcome), "ok:sub-1");
    EXPECT_EQ(s.count("POST", kTokenPath), 2);
    EXPECT_EQ(shorter->stats().token_requests + longer->stats().token_requests, 2u);
    EXPECT_EQ(shorter->stats().in_flight + longer->stats().in_flight, 0u);
}

// A cancelled call never calls back (not even when stopping the engine later aborts what still
// runs) and no longer counts as in flight; its request in flight is dropped.
TEST_F(ClientTest, CancelledCallNeverCallsBack) {
    struct Case {
        std::string name;
        std::string stalling_path;
        std::string method;
    };
    const std::vector<Case> cases = {
        {"request in flight", kSubPath, "GET"},
        {"waiting for the token", kTokenPath, "POST"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto eng = std::make_shared<Engine>();
        test::TestHttpServer s;
        s.reply("POST", kTokenPath, token_reply(1));
        s.reply(c.method, c.stalling_path, kStall);
        auto cfg = config();
        cfg.credentials.login_url = s.base_url();
        cfg.marketplace_url = s.base_url() + "/api";
        cfg.allow_insecure_loopback = true;  // the test server: plain http on loopback
        auto client = std::make_shared<Client>(cfg, eng);
        auto call = start(*client, get_sub());
        ASSERT_TRUE(s.wait_for_count(c.method, c.stalling_path, 1, kWait));
        client->cancel(call.id);
        std::promise<void> p;
        auto drained = p.get_future();
        ASSERT_TRUE(eng->post([&p] { p.set_value(); }));  // the cancel has run
        ASSERT_EQ(drained.wait_for(kWait), std::future_status::ready);
        EXPECT_EQ(client->stats().in_flight, 0u);
        if (c.method == "GET") {
            EXPECT_TRUE(s.wait_for_abandoned(1, kWait));
        }
        eng->stop();
        EXPECT_EQ(call.calls->load(), 0);
    }
}

// Calls beyond max_in_flight are refused at once with `overloaded`; a refused call never calls back.
TEST_F(ClientTest, CallsBeyondMaxInFlightAreOverloaded) {
    server.reply("GET", kSubPath, kStall);
    auto cfg = config();
    cfg.max_in_flight = 2;
    auto client = make(cfg);
    auto a = start(*client, get_sub());
    auto b = start(*client, get_sub());
    auto refused = start(*client, get_sub());
    EXPECT_EQ(await(refused.outcome), "refused overloaded");
    EXPECT_EQ(client->stats().in_flight, 2u);
    client->cancel(a.id);
    drain();
    auto again = start(*client, get_sub());  // the cancel made room
    EXPECT_NE(again.id, 0u);
    engine->stop();
    EXPECT_EQ(refused.calls->load(), 0);
}

}  // namespace
}  // namespace azmp
