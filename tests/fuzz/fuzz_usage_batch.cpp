// The metering answers: the usage batch response (result array, count), a single usage event
// (including 409 with the accepted event) and the usageEvents list. Input: [kind][status]body.
#include <cstdint>
#include <cstdlib>

#include "azmp/operations.hpp"
#include "fuzz_input.hpp"

using namespace azmp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    static constexpr OpKind kKinds[] = {OpKind::PostUsageBatch, OpKind::PostUsage, OpKind::GetUsageEvents};
    static constexpr long kStatuses[] = {200, 409, 400, 403, 500};
    Operation op;
    op.kind = kKinds[in.byte() % std::size(kKinds)];
    HttpResponse resp;
    resp.status = kStatuses[in.byte() % std::size(kStatuses)];
    resp.body = std::string(in.rest());
    Interpretation r = interpret_response(op, resp);
    // A batch answer the interpreter accepts always has its result array and an integer count.
    if (auto* v = std::get_if<OpValue>(&r.result); v && op.kind == OpKind::PostUsageBatch && resp.status == 200) {
        const auto* obj = v->value.if_object();
        if (obj == nullptr || !obj->contains("result") || !obj->at("result").is_array() || !obj->contains("count") ||
            !obj->at("count").is_int64())
            std::abort();
    }
    return 0;
}
