// JSON decoding as the NIF's json_decode does it (the webhook body, the landing answers): the same
// size limit, Boost.JSON's parser, then a walk over every value as json_to_term makes terms of
// them; and the core's own parse_json + normalise used on Azure's answers.
#include <boost/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "json_util.hpp"

namespace {
constexpr std::size_t kMaxJsonBytes = 256 * 1024;  // json_nif.cpp's limit

std::size_t walk(const boost::json::value& v) {
    std::size_t n = 1;
    if (const auto* a = v.if_array())
        for (const auto& e : *a) n += walk(e);
    if (const auto* o = v.if_object())
        for (const auto& kv : *o) n += kv.key().size() + walk(kv.value());
    if (const auto* s = v.if_string()) n += s->size();
    return n;
}
// Equal, but for doubles within a few ulps: Boost.JSON 1.81 parses numbers the fast, not exactly
// rounded way, so a double written out and read back may move by one ulp (a fuzz finding:
// 999999950000950050000060.999999994). Quantities are rounded to micro-units, so that is harmless.
bool same(const boost::json::value& a, const boost::json::value& b) {
    if (a.is_double() && b.is_double())
        return a.get_double() == b.get_double() ||
               std::fabs(a.get_double() - b.get_double()) <= 1e-15 * std::fabs(a.get_double());
    if (a.kind() != b.kind()) return false;
    if (const auto* x = a.if_array()) {
        const auto& y = b.get_array();
        if (x->size() != y.size()) return false;
        for (std::size_t i = 0; i < x->size(); ++i)
            if (!same((*x)[i], y[i])) return false;
        return true;
    }
    if (const auto* x = a.if_object()) {
        const auto& y = b.get_object();
        if (x->size() != y.size()) return false;
        for (const auto& kv : *x) {
            const auto* other = y.if_contains(kv.key());
            if (other == nullptr || !same(kv.value(), *other)) return false;
        }
        return true;
    }
    return a == b;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > kMaxJsonBytes) return 0;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(boost::json::string_view(text.data(), text.size()), ec);
    if (!ec) {
        (void)walk(v);
        // What json_encode would send back must parse again to the same value.
        auto again = boost::json::parse(boost::json::serialize(v), ec);
        if (ec || !same(again, v)) std::abort();
    }
    if (auto parsed = azmp::detail::parse_json(text)) (void)azmp::detail::normalise(*parsed);
    return 0;
}
