#include "azmp/http.hpp"

#include "text_util.hpp"

namespace azmp {

std::string_view method_name(Method m) noexcept {
    switch (m) {
        case Method::Get: return "GET";
        case Method::Post: return "POST";
        case Method::Patch: return "PATCH";
        case Method::Delete: return "DELETE";
    }
    return "GET";
}

std::optional<std::string> find_header(const Headers& headers, std::string_view name) {
    for (const auto& [k, v] : headers) {
        // Surrounding whitespace (and a stray CRLF from a raw header line) is not part of the value.
        if (detail::iequals(detail::trim(k), name)) return std::string(detail::trim(v));
    }
    return std::nullopt;
}

}  // namespace azmp
