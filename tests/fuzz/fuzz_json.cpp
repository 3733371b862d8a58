// JSON decoding as the NIF's json_decode does it (the webhook body, the landing answers): the same
// size limit, Boost.JSON's parser, then a walk over every value as json_to_term makes terms of
// them; and the core's own parse_json + normalise used on Azure's answers.
#include <boost/json.hpp>

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
        if (ec || again != v) std::abort();
    }
    if (auto parsed = azmp::detail::parse_json(text)) (void)azmp::detail::normalise(*parsed);
    return 0;
}
