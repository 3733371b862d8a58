// The error vocabulary shared by every layer; maps 1:1 onto the Erlang error terms
// timeout | overloaded | {http, Status, Body} | {transport, Detail} | {bad_response, Detail}
// | {auth, Detail} | {badarg, Field}.
#pragma once

#include <string>

namespace azmp {

enum class ErrorKind { Timeout, Overloaded, Http, Transport, BadResponse, Auth, Badarg };

struct Error {
    ErrorKind kind = ErrorKind::Transport;
    long status = 0;     // Http only
    std::string detail;  // Http: response body; Badarg: field name; others: human-readable detail

    static Error timeout() { return {ErrorKind::Timeout, 0, {}}; }
    static Error overloaded() { return {ErrorKind::Overloaded, 0, {}}; }
    static Error http(long status, std::string body) { return {ErrorKind::Http, status, std::move(body)}; }
    static Error transport(std::string d) { return {ErrorKind::Transport, 0, std::move(d)}; }
    static Error bad_response(std::string d) { return {ErrorKind::BadResponse, 0, std::move(d)}; }
    static Error auth(std::string d) { return {ErrorKind::Auth, 0, std::move(d)}; }
    static Error badarg(std::string field) { return {ErrorKind::Badarg, 0, std::move(field)}; }
};

}  // namespace azmp
