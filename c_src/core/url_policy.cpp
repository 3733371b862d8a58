#include "azmp/url_policy.hpp"

#include <curl/curl.h>

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

bool is_loopback_host(std::string_view host) {
    if (host == "localhost" || host == "[::1]") return true;
    return host.starts_with("127.");
}

}  // namespace

bool endpoint_allowed(std::string_view url) {
    std::unique_ptr<CURLU, UrlDeleter> u{curl_url()};
    if (!u) return false;
    const std::string s(url);
    // No scheme guessing: an URL without one is refused rather than assumed.
    if (curl_url_set(u.get(), CURLUPART_URL, s.c_str(), 0) != CURLUE_OK) return false;
    Part scheme = get_part(u.get(), CURLUPART_SCHEME);
    Part host = get_part(u.get(), CURLUPART_HOST);
    if (!scheme || !host) return false;
    std::string_view sc(scheme.get());
    if (sc == "https") return true;
    return sc == "http" && is_loopback_host(host.get());
}

}  // namespace azmp
