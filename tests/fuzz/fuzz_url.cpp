// URLs from the network: an @nextLink judged against the marketplace base (same_origin), an
// endpoint (endpoint_allowed), and the Operation-Location of a 202 (through interpret_response).
// Input: first line a URL, the rest another.
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "azmp/operations.hpp"
#include "azmp/url_policy.hpp"
#include "fuzz_input.hpp"

using namespace azmp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    const std::string a(in.line());
    const std::string b(in.rest());
    (void)endpoint_allowed(a);
    (void)endpoint_allowed(b);
    (void)same_origin(a, b);
    // Against the real base: a link the check lets through must name the marketplace host (host
    // names compare case-insensitively; a %-escaped host is libcurl's to decode).
    std::string lower = a;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (same_origin(a, "https://marketplaceapi.microsoft.com/api") &&
        lower.find("marketplaceapi.microsoft.com") == std::string::npos && lower.find('%') == std::string::npos)
        std::abort();
    Operation op;
    op.kind = OpKind::ChangePlan;
    op.subscription_id = "sub";
    HttpResponse resp;
    resp.status = 202;
    resp.headers.emplace_back("Operation-Location", a);
    (void)interpret_response(op, resp);
    return 0;
}
