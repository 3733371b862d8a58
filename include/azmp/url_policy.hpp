// Which endpoints the plugin may talk to: TLS always, plain http only to loopback test endpoints.
#pragma once

#include <string_view>

namespace azmp {

// https://… anywhere; http://… only when the host is 127.0.0.0/8, ::1 or localhost.
bool endpoint_allowed(std::string_view url);

}  // namespace azmp
