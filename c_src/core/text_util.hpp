// Small text helpers shared by the core's translation units (not part of the public API).
#pragma once

#include <string>
#include <string_view>

namespace azmp::detail {

// Percent-encodes everything but RFC 3986 unreserved characters, via libcurl, so that path
// segments, query values and form fields are encoded one way everywhere.
// Throws std::bad_alloc only when libcurl cannot allocate.
std::string url_escape(std::string_view s);

// Decodes %XX sequences via libcurl. Nothing (empty + false) when decoding fails.
bool url_unescape(std::string_view s, std::string& out);

// Strips leading and trailing spaces, tabs, CR and LF.
std::string_view trim(std::string_view s) noexcept;

// ASCII case-insensitive equality (header names, schemes, hosts).
bool iequals(std::string_view a, std::string_view b) noexcept;

// At most `max` characters of `s`, marked when cut: enough context for a log line, never a whole body.
std::string truncated(std::string_view s, std::size_t max = 200);

}  // namespace azmp::detail
