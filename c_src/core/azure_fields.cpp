// Reading single fields of Azure's answers (azure_fields.hpp).
#include "azmp/azure_fields.hpp"

#include <boost/json/object.hpp>
#include <boost/json/string.hpp>

#include <cmath>
#include <string_view>

#include "azmp/metering.hpp"
#include "azmp/metering_answer.hpp"
#include "azmp/rules.hpp"
#include "text_util.hpp"

namespace azmp {

namespace json = boost::json;

namespace {

constexpr std::int64_t kMaxQuantity = std::int64_t{1} << 53;

std::optional<std::string_view> text(const json::value* v) noexcept {
    if (!v || !v->is_string()) return std::nullopt;
    const json::string& s = v->get_string();
    return std::string_view(s.data(), s.size());
}

std::optional<std::int64_t> whole(std::string_view s) noexcept {
    s = detail::trim(s);
    if (s.empty() || s.size() > 16) return std::nullopt;
    std::int64_t n = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + (c - '0');
    }
    return n;
}

}  // namespace

const json::value* field(const json::value* v, std::string_view key) noexcept {
    if (!v || !v->is_object()) return nullptr;
    const json::value* f = v->get_object().if_contains(key);
    return f && !f->is_null() ? f : nullptr;
}

std::optional<std::string> read_id(const json::value* v) {
    const auto t = text(v);
    if (!t || !valid_id(*t)) return std::nullopt;
    return std::string(*t);
}

std::optional<std::int64_t> read_quantity(const json::value* v) noexcept {
    std::optional<std::int64_t> q;
    if (!v) return std::nullopt;
    if (v->is_int64()) q = v->get_int64();
    else if (v->is_uint64()) q = v->get_uint64() <= static_cast<std::uint64_t>(kMaxQuantity)
                                     ? std::optional<std::int64_t>(static_cast<std::int64_t>(v->get_uint64()))
                                     : std::nullopt;
    else if (v->is_double()) {
        const double d = v->get_double();
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) <= static_cast<double>(kMaxQuantity))
            q = static_cast<std::int64_t>(d);
    } else if (const auto t = text(v)) q = whole(*t);
    if (!q || *q < 1 || *q > kMaxQuantity) return std::nullopt;
    return q;
}

std::optional<TermFields> read_term(const json::value* v) {
    const auto start = text(field(v, "startDate")), end = text(field(v, "endDate")), unit = text(field(v, "termUnit"));
    if (!start || !end || !unit || !metering::parse_term(*start, *end, *unit)) return std::nullopt;
    return TermFields{std::string(*start), std::string(*end), std::string(*unit)};
}

std::optional<std::int64_t> read_time_ms(const json::value* v) noexcept {
    const auto t = text(v);
    if (!t) return std::nullopt;
    return metering::parse_azure_time_ms(*t);
}

}  // namespace azmp
