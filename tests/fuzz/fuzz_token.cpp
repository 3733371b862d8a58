// Entra's token answer (parse_token_response). Input: [status byte]body.
#include <cstdint>
#include <cstdlib>

#include "azmp/token.hpp"
#include "fuzz_input.hpp"

using namespace azmp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    static constexpr long kStatuses[] = {200, 400, 401, 403, 429, 500, 201, 302};
    HttpResponse resp;
    resp.status = kStatuses[in.byte() % std::size(kStatuses)];
    resp.body = std::string(in.rest());
    auto r = parse_token_response(resp);
    if (auto* t = std::get_if<Token>(&r); t && (t->access_token.empty() || t->expires_in_s <= 0)) std::abort();
    // A 2xx body (it carries the token) is never quoted in an error.
    if (auto* e = std::get_if<Error>(&r); e && resp.status == 200 && resp.body.size() > 40 &&
                                          e->detail.find(resp.body) != std::string::npos)
        std::abort();
    return 0;
}
