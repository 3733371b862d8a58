// same_origin: whether an @nextLink may receive our bearer token.
#include <curl/curl.h>

#include <memory>
#include <optional>
#include <string>

#include "azmp/operations.hpp"
#include "text_util.hpp"

namespace azmp {

namespace {

struct Origin {
    std::string scheme, host, port;
};

struct UrlDeleter {
    void operator()(CURLU* u) const noexcept { curl_url_cleanup(u); }
};

std::optional<std::string> part(CURLU* u, CURLUPart what, unsigned int flags) {
    char* s = nullptr;
    if (curl_url_get(u, what, &s, flags) != CURLUE_OK || s == nullptr) return std::nullopt;
    std::string out(s);
    curl_free(s);
    return out;
}

std::string lower(std::string s) {
    for (auto& c : s) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return s;
}

// Parsed by libcurl, the same parser that will fetch the URL, so we judge what it will connect to.
std::optional<Origin> origin_of(std::string_view url) {
    std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
    if (!u) return std::nullopt;
    const std::string s(url);  // curl_url_set needs a NUL-terminated string
    if (s.find('\0') != std::string::npos) return std::nullopt;
    // No default/guessed scheme: a link without one is not absolute and is refused.
    if (curl_url_set(u.get(), CURLUPART_URL, s.c_str(), 0) != CURLUE_OK) return std::nullopt;
    auto scheme = part(u.get(), CURLUPART_SCHEME, 0);
    auto host = part(u.get(), CURLUPART_HOST, 0);
    auto port = part(u.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);  // https://h and https://h:443 match
    if (!scheme || !host || !port || host->empty()) return std::nullopt;
    Origin o{lower(*scheme), lower(*host), *port};
    if (o.scheme != "https" && o.scheme != "http") return std::nullopt;
    return o;
}

}  // namespace

bool same_origin(std::string_view next_link, std::string_view marketplace_base) {
    try {
        auto a = origin_of(next_link);
        auto b = origin_of(marketplace_base);
        return a && b && a->scheme == b->scheme && a->host == b->host && a->port == b->port;
    } catch (...) {
        return false;  // out of memory: refuse rather than risk the token
    }
}

}  // namespace azmp
