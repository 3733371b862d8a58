#include "text_util.hpp"

#include <curl/curl.h>

#include <climits>
#include <new>

namespace azmp::detail {

std::string url_escape(std::string_view s) {
    // curl_easy_escape treats length 0 as "use strlen", which would read past a string_view.
    if (s.empty()) return {};
    if (s.size() > static_cast<std::size_t>(INT_MAX)) throw std::bad_alloc();
    // Since 7.82 the handle is ignored, so no easy handle is needed for pure encoding.
    char* enc = curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size()));
    if (enc == nullptr) throw std::bad_alloc();
    std::string out(enc);
    curl_free(enc);
    return out;
}

bool url_unescape(std::string_view s, std::string& out) {
    out.clear();
    if (s.empty()) return true;
    if (s.size() > static_cast<std::size_t>(INT_MAX)) return false;
    int len = 0;
    char* dec = curl_easy_unescape(nullptr, s.data(), static_cast<int>(s.size()), &len);
    if (dec == nullptr) return false;
    out.assign(dec, static_cast<std::size_t>(len));
    curl_free(dec);
    return true;
}

std::string_view trim(std::string_view s) noexcept {
    constexpr std::string_view ws = " \t\r\n";
    const auto b = s.find_first_not_of(ws);
    if (b == std::string_view::npos) return {};
    const auto e = s.find_last_not_of(ws);
    return s.substr(b, e - b + 1);
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

std::string truncated(std::string_view s, std::size_t max) {
    if (s.size() <= max) return std::string(s);
    std::string out(s.substr(0, max));
    out += "...";
    return out;
}

}  // namespace azmp::detail
