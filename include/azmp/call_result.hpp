// What became of a call to Azure, as the client reported it ({ok, Answer} | {error, Reason}): the
// one reading every workflow step's plan takes (the meter's, the webhook's, the linker's).
#pragma once

#include <boost/json/value.hpp>

namespace azmp {

// How a call went, as the client reported it.
enum class CallKind {
    Answered,  // 2xx with a body: `body`
    NotSent,   // never reached Azure (overloaded, no token, refused locally)
    Unknown,   // may have reached Azure: timeout, transport error, 5xx, 408, 429, an unreadable 2xx
    Refused,   // a 4xx for the whole request: Azure took none of it (`http_status`)
};

// A call that failed, as the client says (its `{error, Reason}`).
enum class Failure { Timeout, Transport, Http, BadResponse, Overloaded, Auth, Badarg, Other };

struct CallReport {
    CallKind kind = CallKind::Unknown;
    int http_status = 0;
    const boost::json::value* body = nullptr;  // Answered
    Failure failure = Failure::Other;           // otherwise: how it failed
};

// What such a failure says of Azure having the request: a 5xx, 408, 429, a timeout, a broken
// connection or an unreadable 2xx may have reached it (Unknown); other 4xx refused it whole;
// overload, token and argument errors never left us.
CallKind call_kind(Failure failure, int http_status) noexcept;

}  // namespace azmp
