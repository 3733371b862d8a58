#include "json_util.hpp"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cmath>
#include <system_error>

#include "text_util.hpp"

namespace azmp::detail {

namespace json = boost::json;

namespace {
// Numbers beyond a double's range (1e999) parse as infinities, which no Erlang float can hold:
// enif_make_double refuses them, and the term built around that refusal is not a term (a fuzz
// finding: json_decode(<<"77e777">>) raised badarg). Recursion is bounded by the parser's depth limit.
bool finite_numbers(const json::value& v) {
    if (v.is_double()) return std::isfinite(v.get_double());
    if (const auto* a = v.if_array()) {
        for (const auto& e : *a)
            if (!finite_numbers(e)) return false;
    } else if (const auto* o = v.if_object()) {
        for (const auto& kv : *o)
            if (!finite_numbers(kv.value())) return false;
    }
    return true;
}
}  // namespace

std::optional<json::value> parse_json(std::string_view body) {
    // A monotonic arena per document: one allocation per block instead of one per string, array
    // and object (these documents are small, read once, and dropped whole).
    // Its first block is sized from the body (a parsed document takes a few times its text), so a
    // small answer takes one allocation, not one per doubling of the arena.
    const std::size_t first_block = std::clamp<std::size_t>(body.size() * 4, 1024, 64 * 1024);
    return parse_json(body, json::make_shared_resource<json::monotonic_resource>(first_block));
}

std::optional<json::value> parse_json(std::string_view body, json::storage_ptr sp) {
    json::error_code ec;
    json::value v = json::parse(json::string_view(body.data(), body.size()), ec, std::move(sp));
    if (ec || !finite_numbers(v)) return std::nullopt;
    return v;
}

namespace {

// "5" -> 5, "2.5" -> 2.5; integers stay integers so seat counts read back as integers.
std::optional<json::value> number_from_string(std::string_view s) {
    std::int64_t i = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
    if (ec == std::errc() && p == s.data() + s.size()) return json::value(i);
    double d = 0;
    auto [p2, ec2] = std::from_chars(s.data(), s.data() + s.size(), d);
    if (ec2 == std::errc() && p2 == s.data() + s.size() && std::isfinite(d)) return json::value(d);
    return std::nullopt;
}

bool is_status_key(std::string_view k) {
    return k == "saasSubscriptionStatus" || k == "status" || k == "reconStatus";
}

}  // namespace

std::optional<std::string> normalise(json::value& v) {
    if (auto* arr = v.if_array()) {
        for (auto& item : *arr) {
            if (auto err = normalise(item)) return err;
        }
        return std::nullopt;
    }
    auto* obj = v.if_object();
    if (obj == nullptr) return std::nullopt;
    for (auto& kv : *obj) {
        std::string_view key(kv.key().data(), kv.key().size());
        json::value& val = kv.value();
        if (is_status_key(key) && val.is_string()) {
            const auto& s = val.get_string();
            std::string_view t = trim(std::string_view(s.data(), s.size()));
            if (t.size() != s.size()) val = json::string(t);
        } else if (key == "quantity" && val.is_string()) {
            const auto& s = val.get_string();
            std::string_view t = trim(std::string_view(s.data(), s.size()));
            if (t.empty()) {
                val = nullptr;
            } else if (auto n = number_from_string(t)) {
                val = std::move(*n);
            } else {
                return std::string("quantity is not a number");
            }
        } else if (auto err = normalise(val)) {
            return err;
        }
    }
    return std::nullopt;
}

std::optional<std::int64_t> as_int64(const json::value& v) {
    if (v.is_int64()) return v.get_int64();
    if (v.is_uint64()) {
        if (v.get_uint64() > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
        return static_cast<std::int64_t>(v.get_uint64());
    }
    if (v.is_double()) {
        double d = v.get_double();
        if (!std::isfinite(d) || d < -9.2e18 || d > 9.2e18) return std::nullopt;
        return static_cast<std::int64_t>(d);
    }
    if (v.is_string()) {
        const auto& s = v.get_string();
        std::string_view t = trim(std::string_view(s.data(), s.size()));
        if (auto n = number_from_string(t)) return as_int64(*n);
    }
    return std::nullopt;
}

}  // namespace azmp::detail
