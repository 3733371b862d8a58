// URLs from the network: an @nextLink judged against the marketplace base (same_origin), an
// endpoint (check_endpoint, with and without allow_insecure_loopback), and the Operation-Location of a 202 (through interpret_response).
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
    // The flag only ever lets more through, and only plain http.
    for (const std::string* u : {&a, &b}) {
        const EndpointVerdict strict = check_endpoint(*u, false);
        const EndpointVerdict test = check_endpoint(*u, true);
        if (strict == EndpointVerdict::Allowed && test != EndpointVerdict::Allowed) std::abort();
        if (test == EndpointVerdict::NeedsInsecureFlag) std::abort();
    }
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
