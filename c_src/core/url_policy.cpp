#include "azmp/url_policy.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>

#include <memory>
#include <string>

namespace azmp {
namespace {

struct UrlDeleter {
    void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct PartDeleter {
    void operator()(char* p) const { curl_free(p); }
};
using Part = std::unique_ptr<char, PartDeleter>;

Part get_part(CURLU* u, CURLUPart which) {
    char* out = nullptr;
    if (curl_url_get(u, which, &out, 0) != CURLUE_OK) return Part{};
    return Part{out};
}

// localhost, [::1], or an IPv4 address literal in 127.0.0.0/8 (a name that merely starts with
// "127." is a DNS name like any other).
bool is_loopback_host(std::string_view host) {
    if (host == "localhost" || host == "[::1]") return true;
    in_addr addr{};
    const std::string h(host);
    return inet_pton(AF_INET, h.c_str(), &addr) == 1 && (ntohl(addr.s_addr) >> 24) == 127;
}

}  // namespace

EndpointVerdict check_endpoint(std::string_view url, bool allow_insecure_loopback) {
    std::unique_ptr<CURLU, UrlDeleter> u{curl_url()};
    if (!u) return EndpointVerdict::Refused;
    const std::string s(url);
    // No scheme guessing: an URL without one is refused rather than assumed.
    if (curl_url_set(u.get(), CURLUPART_URL, s.c_str(), 0) != CURLUE_OK) return EndpointVerdict::Refused;
    Part scheme = get_part(u.get(), CURLUPART_SCHEME);
    Part host = get_part(u.get(), CURLUPART_HOST);
    if (!scheme || !host) return EndpointVerdict::Refused;
    std::string_view sc(scheme.get());
    if (sc == "https") return EndpointVerdict::Allowed;
    if (sc != "http" || !is_loopback_host(host.get())) return EndpointVerdict::Refused;
    return allow_insecure_loopback ? EndpointVerdict::Allowed : EndpointVerdict::NeedsInsecureFlag;
}

std::optional<Error> endpoint_error(std::string_view field, std::string_view url, bool allow_insecure_loopback) {
    switch (check_endpoint(url, allow_insecure_loopback)) {
        case EndpointVerdict::Allowed: return std::nullopt;
        case EndpointVerdict::NeedsInsecureFlag: return Error::insecure_endpoint(std::string(field));
        case EndpointVerdict::Refused: break;
    }
    return Error::badarg(std::string(field));
}

}  // namespace azmp
