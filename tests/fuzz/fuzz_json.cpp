// JSON decoding as the NIF's json_decode does it (the webhook body, the landing answers): the same
// size limit and parser (the core's parse_json, also used on every Azure answer), then a walk over
// every value as json_to_term makes terms of them, the round trip through json_encode's serializer,
// and normalise as the response interpreters apply it.
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
    // The parser json_decode uses (it refuses numbers beyond a double: a finding of this target).
    auto v = azmp::detail::parse_json(text);
    if (!v) return 0;
    (void)walk(*v);
    // What json_encode would send back must parse again to the same value.
    auto again = azmp::detail::parse_json(boost::json::serialize(*v));
    if (!again || !same(*again, *v)) std::abort();
    (void)azmp::detail::normalise(*v);
    return 0;
}
