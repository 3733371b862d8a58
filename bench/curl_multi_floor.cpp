// libcurl's own cost per call, for the engine bench (azmp_bench_engine, `make bench`): the same
// GET as the NIF's, on the same keep-alive connections to the same nginx, made by a bare libcurl
// multi loop in a process of its own: no Erlang, no NIF, no JSON, no hand-off between threads. It
// is the floor under any client built on libcurl (the library the stack fixes), printed beside
// `wrk` (the C ceiling): NIF / wrk can come down to this / wrk at best. The loop is
// curl_multi_perform + curl_multi_poll, the cheaper of libcurl's two ways here (a
// curl_multi_socket_action + epoll loop, as the engine's, measured 29.7 us a call against 22.9).
//
// Usage: azmp_curl_multi_floor URL TOKEN CONNECTIONS CALLS
// Prints one line: calls=N errors=E cpu_us=C wall_us=W (CPU: this process's user + system time).
#include <curl/curl.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct Transfer {
    CURL* easy = nullptr;
    std::string body;  // kept, as a client keeps the answer it decodes
};

size_t keep(char* data, size_t size, size_t n, void* user) {
    static_cast<Transfer*>(user)->body.append(data, size * n);
    return size * n;
}

double cpu_us() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s URL TOKEN CONNECTIONS CALLS\n", argv[0]);
        return 2;
    }
    const std::string url = argv[1];
    const std::string auth = std::string("Authorization: Bearer ") + argv[2];
    const long connections = std::strtol(argv[3], nullptr, 10);
    const long calls = std::strtol(argv[4], nullptr, 10);
    if (connections < 1 || calls < connections) {
        std::fprintf(stderr, "CONNECTIONS must be at least 1 and CALLS at least CONNECTIONS\n");
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 2;
    CURLM* multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, connections);
    curl_slist* headers = nullptr;
    for (const char* h : {auth.c_str(), "x-ms-requestid: 0f8fad5b-d9cb-469f-a165-70867728950e",
                          "x-ms-correlationid: 7c9e6679-7425-40de-944b-e07fc1f90ae7", "Accept: application/json"})
        headers = curl_slist_append(headers, h);

    std::vector<Transfer> transfers(static_cast<size_t>(connections));
    const double cpu0 = cpu_us();
    const auto wall0 = std::chrono::steady_clock::now();
    for (Transfer& t : transfers) {
        t.easy = curl_easy_init();
        curl_easy_setopt(t.easy, CURLOPT_URL, url.c_str());
        curl_easy_setopt(t.easy, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(t.easy, CURLOPT_WRITEFUNCTION, keep);
        curl_easy_setopt(t.easy, CURLOPT_WRITEDATA, &t);
        curl_easy_setopt(t.easy, CURLOPT_PRIVATE, &t);
        curl_easy_setopt(t.easy, CURLOPT_NOSIGNAL, 1L);
        curl_multi_add_handle(multi, t.easy);
    }
    long started = connections, done = 0, errors = 0;
    while (done < calls) {
        int running = 0;
        curl_multi_perform(multi, &running);
        int queued = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL* easy = msg->easy_handle;
            long status = 0;
            curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result != CURLE_OK || status != 200) ++errors;
            ++done;
            curl_multi_remove_handle(multi, easy);
            if (started < calls) {
                void* priv = nullptr;
                curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
                static_cast<Transfer*>(priv)->body.clear();
                curl_multi_add_handle(multi, easy);  // the same handle: its connection is reused
                ++started;
            }
        }
        if (done < calls) curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    }
    const double wall = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - wall0).count();
    const double cpu = cpu_us() - cpu0;
    std::printf("calls=%ld errors=%ld cpu_us=%.0f wall_us=%.0f\n", done, errors, cpu, wall);
    for (Transfer& t : transfers) curl_easy_cleanup(t.easy);
    curl_slist_free_all(headers);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    return errors == 0 ? 0 : 1;
}
