// Every Azure response interpreter (interpret_response for each OpKind), fed what the network sends:
// status, Operation-Location header and body. Input: [kind byte][status byte]Operation-Location\nbody.
#include <cstdint>
#include <cstdlib>

#include "azmp/operations.hpp"
#include "fuzz_input.hpp"

using namespace azmp;

namespace {
// The statuses the interpreters tell apart, plus whatever else Azure might answer.
constexpr long kStatuses[] = {200, 201, 202, 204, 400, 401, 403, 404, 409, 429, 500, 503, 302, 0};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    Operation op;
    op.kind = static_cast<OpKind>(in.byte() % (static_cast<int>(OpKind::ListSubscriptionsPage) + 1));
    op.subscription_id = "sub";
    op.operation_id = "op";
    HttpResponse resp;
    const std::uint8_t s = in.byte();
    resp.status = s < 2 * std::size(kStatuses) ? kStatuses[s % std::size(kStatuses)] : 100 + s;
    resp.headers.emplace_back("Operation-Location", std::string(in.line()));
    resp.body = std::string(in.rest());
    Interpretation r = interpret_response(op, resp);
    // The list pages are what the client accumulates: exercise that too.
    if (auto* v = std::get_if<OpValue>(&r.result); v && v->kind == OpValue::Kind::Value) {
        boost::json::array acc;
        append_page(acc, std::move(v->value));
    }
    if (auto* v = std::get_if<OpValue>(&r.result); v && v->kind == OpValue::Kind::OperationId && v->operation_id.empty())
        std::abort();  // an operation id is never empty
    return 0;
}
