// How a failed call reads: may Azure have taken it?
#include "azmp/call_result.hpp"

namespace azmp {

CallKind call_kind(Failure failure, int http_status) noexcept {
    switch (failure) {
        case Failure::Overloaded:
        case Failure::Auth:
        case Failure::Badarg: return CallKind::NotSent;
        case Failure::Http:
            if (http_status >= 400 && http_status < 500 && http_status != 408 && http_status != 429)
                return CallKind::Refused;
            return CallKind::Unknown;
        case Failure::Timeout:
        case Failure::Transport:
        case Failure::BadResponse:
        case Failure::Other: return CallKind::Unknown;
    }
    return CallKind::Unknown;
}

}  // namespace azmp
