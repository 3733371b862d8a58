// base64url (RFC 4648 §5, unpadded as JWS uses it) decoding via OpenSSL (not part of the public API).
#pragma once

#include <string>
#include <string_view>

namespace azmp::detail {

// Decodes unpadded base64url (the alphabet A-Z a-z 0-9 - _ only: no padding, no whitespace, no
// standard-alphabet + /). False (and `out` cleared) when `in` is not valid base64url.
bool base64url_decode(std::string_view in, std::string& out);

}  // namespace azmp::detail
