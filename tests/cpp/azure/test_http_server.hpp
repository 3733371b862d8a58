// A tiny single-threaded HTTP/1.1 server on 127.0.0.1 for tests: it plays Entra's JWKS endpoint
// (GET /{tenant}/discovery/v2.0/keys) with a document the test controls, can be told to fail with a
// status or to answer late, and counts what it was asked. One request per connection.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

namespace azmp::test {

class TestHttpServer {
public:
    explicit TestHttpServer(std::string tenant);
    ~TestHttpServer();  // stops and joins
    TestHttpServer(const TestHttpServer&) = delete;
    TestHttpServer& operator=(const TestHttpServer&) = delete;

    // http://127.0.0.1:{port}: the login_url to configure.
    std::string base_url() const;
    int port() const { return port_; }

    void set_jwks(std::string body);
    // Answer the keys path with this status (200: the JWKS; anything else: a small error body).
    void set_status(int status);
    // Wait this long before answering (to hold a fetch in flight).
    void set_delay(std::chrono::milliseconds d);

    int key_requests() const { return key_requests_.load(); }  // GETs of the keys path
    int requests() const { return requests_.load(); }          // everything

private:
    void run();
    void serve(int fd);

    const std::string keys_path_;
    int listen_fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> key_requests_{0};
    std::atomic<int> requests_{0};
    mutable std::mutex mu_;
    std::string jwks_ = "{\"keys\":[]}";
    int status_ = 200;
    std::chrono::milliseconds delay_{0};
    std::thread thread_;
};

}  // namespace azmp::test
