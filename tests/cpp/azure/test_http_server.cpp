#include "test_http_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace azmp::test {
namespace {

bool iequal(const std::string& a, const std::string& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

bool send_all(int fd, const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
        const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return false;
        off += static_cast<std::size_t>(n);
    }
    return true;
}

// Reads into `buf` until it holds `want` bytes (or the head's end when `want` is 0); gives up after
// 5 s of silence, at EOF, or when `stop` is set.
bool read_more(int fd, std::string& buf, std::size_t want, const std::atomic<bool>& stop) {
    char chunk[4096];
    int silent_ms = 0;
    while (want ? buf.size() < want : buf.find("\r\n\r\n") == std::string::npos) {
        if (stop || silent_ms >= 5000 || buf.size() > (1u << 20)) return false;
        pollfd p{fd, POLLIN, 0};
        const int r = ::poll(&p, 1, 50);
        if (r < 0) return false;
        if (r == 0) {
            silent_ms += 50;
            continue;
        }
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) return false;
        buf.append(chunk, static_cast<std::size_t>(n));
        silent_ms = 0;
    }
    return true;
}

std::optional<Request> read_request(int fd, const std::atomic<bool>& stop) {
    std::string buf;
    if (!read_more(fd, buf, 0, stop)) return std::nullopt;
    const auto head_end = buf.find("\r\n\r\n");
    Request req;
    std::size_t pos = buf.find("\r\n");
    const std::string line = buf.substr(0, pos);  // "GET /path?q HTTP/1.1"
    const auto sp1 = line.find(' ');
    const auto sp2 = line.find(' ', sp1 == std::string::npos ? sp1 : sp1 + 1);
    if (sp1 == std::string::npos || sp2 == std::string::npos) return std::nullopt;
    req.method = line.substr(0, sp1);
    req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    req.path = req.target.substr(0, req.target.find('?'));
    while (pos < head_end) {
        const auto next = buf.find("\r\n", pos + 2);
        const std::string h = buf.substr(pos + 2, next - pos - 2);
        if (const auto colon = h.find(':'); colon != std::string::npos)
            req.headers.emplace_back(trim(h.substr(0, colon)), trim(h.substr(colon + 1)));
        pos = next;
    }
    std::size_t length = 0;
    if (auto cl = req.header("content-length")) length = std::stoul(*cl);
    if (auto expect = req.header("expect"); expect && iequal(*expect, "100-continue") && length > 0)
        send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n");
    const std::size_t body_start = head_end + 4;
    if (length > 0 && !read_more(fd, buf, body_start + length, stop)) return std::nullopt;
    req.body = buf.substr(body_start, length);
    return req;
}

}  // namespace

std::optional<std::string> Request::header(const std::string& name) const {
    for (const auto& [k, v] : headers)
        if (iequal(k, name)) return v;
    return std::nullopt;
}

TestHttpServer::TestHttpServer() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw std::runtime_error("socket failed");
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;  // any free port
    socklen_t len = sizeof addr;
    // A deep backlog: tests open hundreds of connections at once.
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 1024) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(listen_fd_);
        throw std::runtime_error(std::string("bind/listen failed: ") + std::strerror(errno));
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
}

TestHttpServer::TestHttpServer(std::string tenant) : TestHttpServer() {
    route("GET", "/" + tenant + "/discovery/v2.0/keys", [this](const Request&) {
        ++key_requests_;
        std::lock_guard lk(mu_);
        Reply r;
        r.status = status_;
        r.body = status_ == 200 ? jwks_ : "{\"error\":\"server_error\"}";
        r.delay = delay_;
        return r;
    });
}

TestHttpServer::~TestHttpServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (auto& t : connections_) t.join();
    ::close(listen_fd_);
}

std::string TestHttpServer::base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

void TestHttpServer::route(std::string method, std::string path, Handler h) {
    std::lock_guard lk(mu_);
    routes_[{std::move(method), std::move(path)}] = std::move(h);
}

void TestHttpServer::reply(std::string method, std::string path, Reply r) {
    route(std::move(method), std::move(path), [r = std::move(r)](const Request&) { return r; });
}

void TestHttpServer::script(std::string method, std::string path, std::vector<Reply> replies) {
    if (replies.empty()) throw std::invalid_argument("script: no reply");
    auto next = std::make_shared<std::atomic<std::size_t>>(0);
    route(std::move(method), std::move(path), [replies = std::move(replies), next](const Request&) {
        return replies[std::min((*next)++, replies.size() - 1)];
    });
}

int TestHttpServer::count(const std::string& method, const std::string& path) const {
    std::lock_guard lk(mu_);
    return static_cast<int>(std::count_if(log_.begin(), log_.end(), [&](const Request& r) {
        return r.method == method && r.path == path;
    }));
}

std::vector<Request> TestHttpServer::received(const std::string& method, const std::string& path) const {
    std::lock_guard lk(mu_);
    std::vector<Request> out;
    for (const auto& r : log_)
        if (r.method == method && r.path == path) out.push_back(r);
    return out;
}

bool TestHttpServer::wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) const {
    std::unique_lock lk(mu_);
    return changed_.wait_for(lk, timeout, pred);
}

bool TestHttpServer::wait_for_count(const std::string& method, const std::string& path, int n,
                                    std::chrono::milliseconds timeout) const {
    return wait_until(
        [&] {
            return std::count_if(log_.begin(), log_.end(),
                                 [&](const Request& r) { return r.method == method && r.path == path; }) >= n;
        },
        timeout);
}

bool TestHttpServer::wait_for_abandoned(int n, std::chrono::milliseconds timeout) const {
    return wait_until([&] { return abandoned_.load() >= n; }, timeout);
}

void TestHttpServer::set_jwks(std::string body) {
    std::lock_guard lk(mu_);
    jwks_ = std::move(body);
}

void TestHttpServer::set_status(int status) {
    std::lock_guard lk(mu_);
    status_ = status;
}

void TestHttpServer::set_delay(std::chrono::milliseconds d) {
    std::lock_guard lk(mu_);
    delay_ = d;
}

void TestHttpServer::run() {
    while (!stop_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        connections_.emplace_back([this, fd] {
            serve(fd);
            ::close(fd);
        });
    }
}

bool TestHttpServer::hold(int fd, std::optional<std::chrono::steady_clock::time_point> until) {
    char c;
    while (!stop_ && (!until || std::chrono::steady_clock::now() < *until)) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 20) > 0 && ::recv(fd, &c, 1, MSG_PEEK) <= 0) {
            ++abandoned_;
            std::lock_guard lk(mu_);
            changed_.notify_all();
            return false;
        }
    }
    return !stop_;
}

void TestHttpServer::serve(int fd) {
    auto req = read_request(fd, stop_);
    if (!req) return;
    ++requests_;
    Handler handler;
    {
        std::lock_guard lk(mu_);
        log_.push_back(*req);
        changed_.notify_all();
        if (auto it = routes_.find({req->method, req->path}); it != routes_.end()) handler = it->second;
    }
    Reply r;
    if (handler) {
        r = handler(*req);
    } else {
        r.status = 404;
        r.body = "{\"error\":\"not_found\"}";
    }
    if (r.stall) {
        hold(fd, std::nullopt);
        return;
    }
    if (r.delay.count() > 0 && !hold(fd, std::chrono::steady_clock::now() + r.delay)) return;
    const char* reason = r.status == 200 ? "OK" : r.status == 404 ? "Not Found" : "Error";
    std::string resp = "HTTP/1.1 " + std::to_string(r.status) + " " + reason + "\r\n";
    bool has_type = false;
    for (const auto& [k, v] : r.headers) {
        has_type = has_type || iequal(k, "content-type");
        resp += k + ": " + v + "\r\n";
    }
    if (!has_type) resp += "Content-Type: application/json; charset=utf-8\r\n";
    resp += "Content-Length: " + std::to_string(r.body.size()) + "\r\nConnection: close\r\n\r\n" + r.body;
    send_all(fd, resp);
}

}  // namespace azmp::test
