// Reading the fields of Azure's metering answers (not part of the public API): strings, quantities
// as Azure writes them, ids compared in any case.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>

#include "azmp/metering.hpp"
#include "text_util.hpp"

namespace azmp::metering::detail_json {

namespace json = boost::json;

// A string member of an object, or empty.
inline std::string_view str(const json::object& o, std::string_view key) {
    const json::value* v = o.if_contains(json::string_view(key.data(), key.size()));
    if (v == nullptr || !v->is_string()) return {};
    const json::string& s = v->get_string();
    return {s.data(), s.size()};
}

inline std::string lower(std::string_view s) {
    std::string out(azmp::detail::trim(s));
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

// A quantity as Azure writes it: a number, or a numeric string.
inline std::optional<Micros> quantity_of(const json::value* v) {
    if (v == nullptr) return std::nullopt;
    if (v->is_int64()) {
        const auto i = v->get_int64();
        if (i < 0 || i > kMaxSample / kUnit) return std::nullopt;
        return i * kUnit;
    }
    if (v->is_uint64()) {
        if (v->get_uint64() > static_cast<std::uint64_t>(kMaxSample / kUnit)) return std::nullopt;
        return static_cast<Micros>(v->get_uint64()) * kUnit;
    }
    if (v->is_double()) return from_double(v->get_double());
    if (v->is_string()) return parse_decimal(azmp::detail::trim({v->get_string().data(), v->get_string().size()}));
    return std::nullopt;
}

}  // namespace azmp::metering::detail_json
