#include "base64url.hpp"

#include <openssl/evp.h>

#include <climits>

namespace azmp::detail {
namespace {

// The 6-bit value of a character of the standard alphabet (the input is checked before).
unsigned sextet(char c) {
    if (c >= 'A' && c <= 'Z') return static_cast<unsigned>(c - 'A');
    if (c >= 'a' && c <= 'z') return static_cast<unsigned>(c - 'a') + 26;
    if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0') + 52;
    return c == '+' ? 62U : 63U;
}

}  // namespace

bool base64url_decode(std::string_view in, std::string& out) {
    out.clear();
    // A lone trailing character carries only 6 bits: never valid.
    if (in.size() % 4 == 1 || in.size() > static_cast<std::size_t>(INT_MAX) - 3) return false;
    if (in.empty()) return true;
    // To the standard alphabet, rejecting anything outside base64url first (EVP_DecodeBlock would
    // otherwise accept + / = and trim surrounding whitespace).
    std::string b64;
    b64.reserve(in.size() + 3);
    for (char c : in) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) b64.push_back(c);
        else if (c == '-') b64.push_back('+');
        else if (c == '_') b64.push_back('/');
        else return false;
    }
    // EVP_DecodeBlock ignores the bits of a short last group that carry no data (4 of the last
    // character after 2, 2 after 3): RFC 4648 §3.5 lets a decoder refuse them unless zero, and we
    // must, or one token has several texts (and the text is what is signed).
    if (const std::size_t tail = b64.size() % 4; tail != 0) {
        const unsigned spare_mask = tail == 2 ? 0x0fU : 0x03U;
        if ((sextet(b64.back()) & spare_mask) != 0) return false;
    }
    const std::size_t pad = (4 - b64.size() % 4) % 4;
    b64.append(pad, '=');
    out.resize(b64.size() / 4 * 3);
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
    // EVP_DecodeBlock counts the padding as decoded zero bytes: drop them.
    if (n < 0 || static_cast<std::size_t>(n) < pad) {
        out.clear();
        return false;
    }
    out.resize(static_cast<std::size_t>(n) - pad);
    return true;
}

}  // namespace azmp::detail
