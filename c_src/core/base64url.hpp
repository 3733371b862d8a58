// base64url (RFC 4648 §5, unpadded as JWS uses it) decoding (not part of the public API).
#pragma once

#include <string>
#include <string_view>

namespace azmp::detail {

// Decodes canonical unpadded base64url (RFC 4648 §3.5 and §5): the alphabet A-Z a-z 0-9 - _ only (no
// padding, no whitespace, no standard-alphabet + /), and the bits of the last character that carry
// no data are zero. False (and `out` cleared) when `in` is not such text: each byte string has one
// encoding, so a token cannot be altered without the signature (or the signing input) changing.
bool base64url_decode(std::string_view in, std::string& out);

}  // namespace azmp::detail
