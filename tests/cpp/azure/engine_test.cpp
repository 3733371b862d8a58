// The libcurl engine against a real HTTP server on loopback.
#include "azmp/engine.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "test_http_server.hpp"

namespace azmp {
namespace {

using namespace std::chrono_literals;

// Generous: the machine may be busy; a bug fails the test instead of hanging it.
constexpr auto kWait = 30s;

HttpRequest get(const std::string& url) {
    HttpRequest r;
    r.url = url;
    return r;
}

// Runs `fn` on the engine thread and waits for it: every task posted before has run.
template <typename Fn>
auto on_engine(Engine& e, Fn fn) {
    using R = decltype(fn());
    auto p = std::make_shared<std::promise<R>>();
    auto f = p->get_future();
    EXPECT_TRUE(e.post([p, fn]() mutable {
        if constexpr (std::is_void_v<R>) {
            fn();
            p->set_value();
        } else {
            p->set_value(fn());
        }
    }));
    EXPECT_EQ(f.wait_for(kWait), std::future_status::ready);
    return f.get();
}

struct Started {
    Engine::TransferId id;
    std::future<TransferResult> result;
    std::shared_ptr<std::atomic<int>> calls;  // how often `done` ran
};

Started start(Engine& e, HttpRequest req, TransferOptions opts = {}) {
    auto p = std::make_shared<std::promise<TransferResult>>();
    auto calls = std::make_shared<std::atomic<int>>(0);
    Started s{0, p->get_future(), calls};
    Engine* eng = &e;
    s.id = on_engine(e, [&e, req = std::move(req), opts, p, calls, eng]() mutable {
        return e.start_transfer(std::move(req), opts, [p, calls, eng](TransferResult&& r) {
            if (++*calls == 1) {
                // The promise carries the engine-thread check too: a callback elsewhere is a bug.
                if (!eng->on_engine_thread()) r.detail = "done ran off the engine thread";
                p->set_value(std::move(r));
            }
        });
    });
    return s;
}

TransferResult await(std::future<TransferResult>& f) {
    if (f.wait_for(kWait) != std::future_status::ready) {
        TransferResult r;
        r.curl_code = -1;
        r.detail = "test: no answer";
        return r;
    }
    return f.get();
}

class EngineTest : public ::testing::Test {
protected:
    ~EngineTest() override { engine->stop(); }
    test::TestHttpServer server;
    std::shared_ptr<Engine> engine = std::make_shared<Engine>();
};

// Each method reaches the server with its body and headers; status, headers (those the engine
// keeps, e.g. x-ms-correlationid) and body come back whatever the status is (curl_code 0 means a
// response arrived).
TEST_F(EngineTest, RequestGetsItsResponse) {
    server.route("GET", "/echo", [](const test::Request& r) {
        return test::Reply{200, {{"x-ms-correlationid", r.header("x-test").value_or("none")}}, "get:" + r.target, {}, false};
    });
    for (const char* m : {"POST", "PATCH", "DELETE"}) {
        server.route(m, "/echo", [](const test::Request& r) {
            int status = r.body == "fail" ? 503 : 201;
            return test::Reply{status, {{"x-ms-correlationid", r.header("x-test").value_or("none")}}, r.method + ":" + r.body, {},
                               false};
        });
    }
    struct Case {
        Method method;
        std::string body;
        long status;
        std::string answer;
    };
    const std::vector<Case> cases = {
        {Method::Get, "", 200, "get:/echo?q=1"},
        {Method::Post, "{\"a\":1}", 201, "POST:{\"a\":1}"},
        {Method::Patch, "x=y", 201, "PATCH:x=y"},
        {Method::Delete, "", 201, "DELETE:"},
        {Method::Post, "fail", 503, "POST:fail"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(std::string(method_name(c.method)) + " " + c.body);
        HttpRequest req = get(server.base_url() + "/echo?q=1");
        req.method = c.method;
        req.body = c.body;
        req.headers = {{"X-Test", "hello"}};
        auto s = start(*engine, req);
        TransferResult r = await(s.result);
        EXPECT_EQ(r.curl_code, 0) << r.detail;
        EXPECT_FALSE(r.timed_out);
        EXPECT_EQ(r.response.status, c.status);
        EXPECT_EQ(r.response.header("X-MS-CorrelationId"), "hello");
        EXPECT_EQ(r.response.header("Content-Type"), "application/json; charset=utf-8");
        EXPECT_EQ(r.response.body, c.answer);
    }
    const auto posts = server.received("POST", "/echo");
    ASSERT_EQ(posts.size(), 2u);
    EXPECT_EQ(posts[0].body, "{\"a\":1}");
    EXPECT_EQ(posts[0].target, "/echo?q=1");
}

// Easy handles are reused, and one set up for the same method keeps its options: every transfer
// still goes out with its own method, body, URL and headers, whatever ran on the handle before.
TEST_F(EngineTest, ReusedHandlesSendEachTransferAsItIs) {
    for (const char* m : {"GET", "POST", "PATCH", "DELETE"}) {
        server.route(m, "/m", [](const test::Request& r) {
            return test::Reply{200, {}, r.method + " " + r.target + " " + r.header("x-n").value_or("-") + " " + r.body,
                               {}, false};
        });
    }
    const std::vector<std::pair<Method, std::string>> seq = {
        {Method::Post, "a"},   {Method::Post, "bb"}, {Method::Get, ""},     {Method::Get, ""},
        {Method::Patch, "c"},  {Method::Patch, "dd"}, {Method::Delete, ""}, {Method::Delete, ""},
        {Method::Get, ""},     {Method::Post, "e"},  {Method::Get, ""},
    };
    for (std::size_t i = 0; i < seq.size(); ++i) {
        const auto& [method, body] = seq[i];
        SCOPED_TRACE(i);
        HttpRequest req = get(server.base_url() + "/m?i=" + std::to_string(i));
        req.method = method;
        req.body = body;
        if (i % 2 == 0) req.headers = {{"x-n", std::to_string(i)}};  // every other one without
        auto s = start(*engine, req);
        TransferResult r = await(s.result);
        ASSERT_EQ(r.curl_code, 0) << r.detail;
        EXPECT_EQ(r.response.body, std::string(method_name(method)) + " /m?i=" + std::to_string(i) + " " +
                                       (i % 2 == 0 ? std::to_string(i) : "-") + " " + body);
    }
}

// Every transfer completes with its own answer, also when most of them wait for a slot; no more
// than max_active_transfers reach the server at once.
TEST_F(EngineTest, ManyConcurrentTransfersAllComplete) {
    std::atomic<int> now_serving{0};
    std::atomic<int> most{0};
    server.route("GET", "/item", [&](const test::Request& r) {
        const int n = ++now_serving;
        int seen = most.load();
        while (n > seen && !most.compare_exchange_weak(seen, n)) {
        }
        std::this_thread::sleep_for(10ms);  // overlap the transfers
        --now_serving;
        return test::Reply{200, {}, r.target, {}, false};
    });
    for (std::size_t limit : {std::size_t{1024}, std::size_t{4}}) {
        SCOPED_TRACE("max_active_transfers " + std::to_string(limit));
        auto eng = std::make_shared<Engine>(EngineConfig{limit, limit});
        most = 0;
        constexpr int kN = 200;
        std::vector<Started> started;
        for (int i = 0; i < kN; ++i) started.push_back(start(*eng, get(server.base_url() + "/item?i=" + std::to_string(i))));
        int ok = 0;
        for (int i = 0; i < kN; ++i) {
            TransferResult r = await(started[i].result);
            ok += r.curl_code == 0 && r.response.status == 200 && r.response.body == "/item?i=" + std::to_string(i);
        }
        EXPECT_EQ(ok, kN);
        EXPECT_EQ(eng->stats().transfers_started, static_cast<std::uint64_t>(kN));
        EXPECT_EQ(eng->stats().transfers_active, 0u);
        EXPECT_LE(most.load(), static_cast<int>(limit));
        eng->stop();
        for (auto& s : started) EXPECT_EQ(s.calls->load(), 1);
    }
}

// cancel_transfer: `done` never runs, not even when stop() later aborts what is still running; an
// in-flight transfer's connection is dropped; a queued one never reaches the server.
TEST_F(EngineTest, CancelledTransfersNeverCallBack) {
    server.reply("GET", "/stall", test::Reply{200, {}, {}, {}, true});
    auto eng = std::make_shared<Engine>(EngineConfig{1, 1});  // one slot: the second transfer queues
    auto running = start(*eng, get(server.base_url() + "/stall"));
    auto queued = start(*eng, get(server.base_url() + "/queued"));
    ASSERT_TRUE(server.wait_for_count("GET", "/stall", 1, kWait));
    on_engine(*eng, [&] { eng->cancel_transfer(queued.id); });
    on_engine(*eng, [&] { eng->cancel_transfer(running.id); });
    EXPECT_TRUE(server.wait_for_abandoned(1, kWait));
    EXPECT_EQ(eng->stats().transfers_active, 0u);
    on_engine(*eng, [&] { eng->cancel_transfer(running.id); });  // twice: nothing happens
    eng->stop();
    EXPECT_EQ(running.calls->load(), 0);
    EXPECT_EQ(queued.calls->load(), 0);
    EXPECT_EQ(server.count("GET", "/queued"), 0);
}

// stop() answers every transfer still running with an error, then refuses new work.
TEST_F(EngineTest, StopAnswersRunningTransfersAndRefusesNewWork) {
    server.reply("GET", "/stall", test::Reply{200, {}, {}, {}, true});
    auto s = start(*engine, get(server.base_url() + "/stall"));
    ASSERT_TRUE(server.wait_for_count("GET", "/stall", 1, kWait));
    engine->stop();
    ASSERT_EQ(s.result.wait_for(0s), std::future_status::ready);  // stop() joined: done has run
    TransferResult r = s.result.get();
    EXPECT_NE(r.curl_code, 0);
    EXPECT_FALSE(r.detail.empty());
    EXPECT_EQ(s.calls->load(), 1);
    EXPECT_FALSE(engine->post([] {}));
    EXPECT_FALSE(engine->post_after(1ms, [] {}));
    engine->stop();  // idempotent
}

// Transport failures come back as failures: a stalling server within timeout_ms (timed_out), and a
// port nobody listens on (not a timeout).
TEST_F(EngineTest, TransportFailures) {
    server.reply("GET", "/stall", test::Reply{200, {}, {}, {}, true});
    int closed_port = 0;
    {
        test::TestHttpServer gone;
        closed_port = gone.port();
    }
    struct Case {
        std::string name;
        std::string url;
        bool timed_out;
    };
    const std::vector<Case> cases = {
        {"stall", server.base_url() + "/stall", true},
        {"refused", "http://127.0.0.1:" + std::to_string(closed_port) + "/x", false},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        TransferOptions opts;
        opts.timeout_ms = 1000;
        auto s = start(*engine, get(c.url), opts);
        TransferResult r = await(s.result);
        EXPECT_NE(r.curl_code, 0);
        EXPECT_NE(r.detail, "test: no answer");
        EXPECT_FALSE(r.detail.empty());
        EXPECT_EQ(r.timed_out, c.timed_out) << r.detail;
    }
}

// Tasks run on the engine thread; post_after runs them after their delay, in order of due time.
TEST_F(EngineTest, PostAfterRunsInOrderOfDueTime) {
    std::vector<int> order;
    std::promise<void> last;
    auto f = last.get_future();
    Engine* eng = engine.get();
    std::atomic<bool> all_on_engine{true};
    ASSERT_TRUE(engine->post_after(1000ms, [&] {
        order.push_back(3);
        all_on_engine = all_on_engine && eng->on_engine_thread();
        last.set_value();
    }));
    ASSERT_TRUE(engine->post_after(50ms, [&] {
        order.push_back(2);
        all_on_engine = all_on_engine && eng->on_engine_thread();
    }));
    ASSERT_TRUE(engine->post([&] {
        order.push_back(1);
        all_on_engine = all_on_engine && eng->on_engine_thread();
    }));
    ASSERT_EQ(f.wait_for(kWait), std::future_status::ready);
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
    EXPECT_TRUE(all_on_engine);
    EXPECT_FALSE(engine->on_engine_thread());
}

}  // namespace
}  // namespace azmp
