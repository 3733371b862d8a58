// JSON helpers for reading Azure answers (not part of the public API).
#pragma once

#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace azmp::detail {

// Parses `body`; nothing when it is not one complete JSON text, or holds a number too large for a
// double (1e999). Never throws on bad input.
std::optional<boost::json::value> parse_json(std::string_view body);
// The same, its storage from `sp` (a caller's arena for a document that does not outlive it).
std::optional<boost::json::value> parse_json(std::string_view body, boost::json::storage_ptr sp);

// Brings what Azure really sends to one shape, in place and recursively: status strings
// (saasSubscriptionStatus, status, reconStatus) are trimmed; `quantity` given as a string becomes a
// number (blank becomes null). Returns a short description when a quantity string is not a number.
std::optional<std::string> normalise(boost::json::value& v);

// A number given as a JSON number or a numeric string, as an integer (fraction dropped).
std::optional<std::int64_t> as_int64(const boost::json::value& v);

}  // namespace azmp::detail
