// The error vocabulary shared by every layer; maps 1:1 onto the Erlang error terms
// timeout | overloaded | {http, Status, Body} | {transport, Detail} | {bad_response, Detail}
// | {auth, Detail} | {badarg, Field} | {insecure_endpoint, Field, Hint}.
#pragma once

#include <string>

namespace azmp {

enum class ErrorKind { Timeout, Overloaded, Http, Transport, BadResponse, Auth, Badarg, InsecureEndpoint };

struct Error {
    ErrorKind kind = ErrorKind::Transport;
    long status = 0;     // Http only
    std::string detail;  // Http: response body; Badarg, InsecureEndpoint: field name; others: human-readable detail

    static Error timeout() { return {ErrorKind::Timeout, 0, {}}; }
    static Error overloaded() { return {ErrorKind::Overloaded, 0, {}}; }
    static Error http(long status, std::string body) { return {ErrorKind::Http, status, std::move(body)}; }
    static Error transport(std::string d) { return {ErrorKind::Transport, 0, std::move(d)}; }
    static Error bad_response(std::string d) { return {ErrorKind::BadResponse, 0, std::move(d)}; }
    static Error auth(std::string d) { return {ErrorKind::Auth, 0, std::move(d)}; }
    static Error badarg(std::string field) { return {ErrorKind::Badarg, 0, std::move(field)}; }
    // A plain http URL to loopback in a configuration that does not say it is a test endpoint.
    static Error insecure_endpoint(std::string field) { return {ErrorKind::InsecureEndpoint, 0, std::move(field)}; }
    static constexpr const char* kInsecureEndpointHint =
        "plain http is refused: use https, or set allow_insecure_loopback => true (loopback test endpoints only)";
};

}  // namespace azmp
