// A tiny HTTP/1.1 server on 127.0.0.1 for tests, one thread per connection and one request per
// connection. Routes answer by method and path (the query is ignored) with a handler, a fixed reply
// or a script of replies; a reply can come late or never (a stall, held until the client goes or the
// server stops). It records and counts what it was asked. Constructed with a tenant, it also plays
// Entra's JWKS endpoint (GET /{tenant}/discovery/v2.0/keys) with a document the test controls.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace azmp::test {

struct Request {
    std::string method;
    std::string target;  // as sent: path and query
    std::string path;    // without the query
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::optional<std::string> header(const std::string& name) const;  // case-insensitive
};

struct Reply {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::chrono::milliseconds delay{0};  // wait this long before answering
    bool stall = false;                  // never answer
};

class TestHttpServer {
public:
    using Handler = std::function<Reply(const Request&)>;

    TestHttpServer();
    explicit TestHttpServer(std::string tenant);
    ~TestHttpServer();  // stops (stalled and delayed answers end at once) and joins
    TestHttpServer(const TestHttpServer&) = delete;
    TestHttpServer& operator=(const TestHttpServer&) = delete;

    // http://127.0.0.1:{port}: the login_url to configure.
    std::string base_url() const;
    int port() const { return port_; }

    // Handlers run on connection threads, possibly at once. Unrouted requests get 404.
    void route(std::string method, std::string path, Handler h);
    void reply(std::string method, std::string path, Reply r);
    // These replies in order; the last one then answers every later request.
    void script(std::string method, std::string path, std::vector<Reply> replies);

    int count(const std::string& method, const std::string& path) const;
    std::vector<Request> received(const std::string& method, const std::string& path) const;
    // Waits until `count(method, path) >= n`; false after `timeout`.
    bool wait_for_count(const std::string& method, const std::string& path, int n,
                        std::chrono::milliseconds timeout) const;
    // Delayed or stalled requests whose client closed the connection before the answer.
    int abandoned() const { return abandoned_.load(); }
    bool wait_for_abandoned(int n, std::chrono::milliseconds timeout) const;

    // The JWKS endpoint (tenant constructor only).
    void set_jwks(std::string body);
    // Answer the keys path with this status (200: the JWKS; anything else: a small error body).
    void set_status(int status);
    // Wait this long before answering the keys path (to hold a fetch in flight).
    void set_delay(std::chrono::milliseconds d);
    int key_requests() const { return key_requests_.load(); }  // GETs of the keys path
    int requests() const { return requests_.load(); }          // everything

private:
    void run();
    void serve(int fd);
    // Holds the connection until `until` (or forever): false when the client went or the server stops.
    bool hold(int fd, std::optional<std::chrono::steady_clock::time_point> until);
    bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) const;

    int listen_fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> key_requests_{0};
    std::atomic<int> requests_{0};
    std::atomic<int> abandoned_{0};
    mutable std::mutex mu_;
    mutable std::condition_variable changed_;
    std::map<std::pair<std::string, std::string>, Handler> routes_;
    std::vector<Request> log_;
    std::string jwks_ = "{\"keys\":[]}";
    int status_ = 200;
    std::chrono::milliseconds delay_{0};
    std::vector<std::thread> connections_;
    std::thread thread_;
};

}  // namespace azmp::test
