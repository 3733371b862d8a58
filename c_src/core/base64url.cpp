#include "base64url.hpp"

#include <array>
#include <climits>
#include <cstdint>

namespace azmp::detail {
namespace {

constexpr std::uint8_t kInvalid = 0xff;

// The 6-bit value of each byte of the base64url alphabet (A-Z a-z 0-9 - _); kInvalid for any other
// byte, including the standard alphabet's + / and the padding =.
constexpr std::array<std::uint8_t, 256> make_sextets() {
    std::array<std::uint8_t, 256> t{};
    for (auto& v : t) v = kInvalid;
    for (int i = 0; i < 26; ++i) {
        t[static_cast<std::size_t>('A' + i)] = static_cast<std::uint8_t>(i);
        t[static_cast<std::size_t>('a' + i)] = static_cast<std::uint8_t>(26 + i);
    }
    for (int i = 0; i < 10; ++i) t[static_cast<std::size_t>('0' + i)] = static_cast<std::uint8_t>(52 + i);
    t[static_cast<std::size_t>('-')] = 62;
    t[static_cast<std::size_t>('_')] = 63;
    return t;
}
constexpr std::array<std::uint8_t, 256> kSextets = make_sextets();

std::uint32_t sextet(char c) { return kSextets[static_cast<unsigned char>(c)]; }

}  // namespace

// One pass, straight into `out` (no standard-alphabet copy, no padding appended): every JWT
// verification decodes its three parts.
bool base64url_decode(std::string_view in, std::string& out) {
    out.clear();
    // A lone trailing character carries only 6 bits: never valid.
    if (in.size() % 4 == 1 || in.size() > static_cast<std::size_t>(INT_MAX) - 3) return false;
    if (in.empty()) return true;
    const std::size_t full = in.size() / 4;
    const std::size_t tail = in.size() % 4;
    out.resize(full * 3 + (tail == 0 ? 0 : tail - 1));
    char* o = out.data();
    const char* p = in.data();
    for (std::size_t g = 0; g < full; ++g, p += 4, o += 3) {
        const std::uint32_t a = sextet(p[0]), b = sextet(p[1]), c = sextet(p[2]), d = sextet(p[3]);
        if (((a | b | c | d) & 0xc0U) != 0) {  // kInvalid has these bits; no sextet does
            out.clear();
            return false;
        }
        const std::uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;
        o[0] = static_cast<char>(v >> 16);
        o[1] = static_cast<char>(v >> 8);
        o[2] = static_cast<char>(v);
    }
    if (tail != 0) {
        const std::uint32_t a = sextet(p[0]), b = sextet(p[1]), c = tail == 3 ? sextet(p[2]) : 0;
        // The bits of a short last group that carry no data (4 of the last character after 2, 2
        // after 3) must be zero (RFC 4648 §3.5 lets a decoder refuse them, and we must: otherwise one
        // token has several texts, and the text is what is signed).
        const std::uint32_t last = tail == 2 ? b : c;
        const std::uint32_t spare_mask = tail == 2 ? 0x0fU : 0x03U;
        if (((a | b | c) & 0xc0U) != 0 || (last & spare_mask) != 0) {
            out.clear();
            return false;
        }
        const std::uint32_t v = (a << 18) | (b << 12) | (c << 6);
        o[0] = static_cast<char>(v >> 16);
        if (tail == 3) o[1] = static_cast<char>(v >> 8);
    }
    return true;
}

}  // namespace azmp::detail
