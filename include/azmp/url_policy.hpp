// Which endpoints the plugin may talk to: TLS always; plain http only to a loopback test endpoint,
// and only when the configuration says it is one (allow_insecure_loopback).
#pragma once

#include <optional>
#include <string_view>

#include "azmp/error.hpp"

namespace azmp {

enum class EndpointVerdict {
    Allowed,          // https://…; or http://… to loopback with allow_insecure_loopback
    Refused,          // not a URL, no host, another scheme, or http://… to a host not on loopback
    NeedsInsecureFlag // http://… to loopback (127.0.0.0/8, ::1, localhost) without allow_insecure_loopback
};

EndpointVerdict check_endpoint(std::string_view url, bool allow_insecure_loopback);

// The configuration error for the field `field` holding `url`: none (allowed), badarg (refused) or
// insecure_endpoint (needs the flag).
std::optional<Error> endpoint_error(std::string_view field, std::string_view url, bool allow_insecure_loopback);

}  // namespace azmp
