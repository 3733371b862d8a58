// Plain HTTP request/response values exchanged between the pure core and the I/O layer.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace azmp {

enum class Method { Get, Post, Patch, Delete };

std::string_view method_name(Method m) noexcept;

using Headers = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive header lookup (HTTP header names are case-insensitive). The first match wins; its
// value comes back without surrounding whitespace.
std::optional<std::string> find_header(const Headers& headers, std::string_view name);

struct HttpRequest {
    Method method = Method::Get;
    std::string url;   // absolute URL
    Headers headers;   // without Authorization / request ids: the executor adds those
    std::string body;  // empty: no body
};

struct HttpResponse {
    long status = 0;
    Headers headers;
    std::string body;

    std::optional<std::string> header(std::string_view name) const { return find_header(headers, name); }
};

}  // namespace azmp
