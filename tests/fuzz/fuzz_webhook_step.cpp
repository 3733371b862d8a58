// The webhook's steps fed what Azure (or a forger who got past authentication) sends: a body, and
// Get Operation's answer. Input: [flags byte]body\nanswer.
#include <boost/json/value.hpp>

#include <cstdint>
#include <cstdlib>
#include <optional>

#include "azmp/webhook_step.hpp"
#include "fuzz_input.hpp"
#include "json_util.hpp"

using namespace azmp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    const std::uint8_t flags = in.byte();
    const std::string_view body = in.line();
    const auto delivery = webhook::read_delivery(body);
    std::optional<boost::json::value> answer = detail::parse_json(in.rest());
    const webhook::Delivery d = delivery ? *delivery : webhook::Delivery{"op", "sub", "ChangePlan", std::nullopt};
    const std::optional<bool> plan_known = (flags & 1) ? std::optional<bool>((flags & 2) != 0) : std::nullopt;
    const CallReport report{(flags & 4) ? CallKind::Refused : CallKind::Answered, (flags & 8) ? 404 : 200,
                            answer ? &*answer : nullptr};
    const webhook::StepPlan p = webhook::plan_operation(d, report, plan_known);
    // A plan either asks, answers now, or applies: never none of them.
    if (!p.need_plan_known && !p.reply && !p.event) std::abort();
    (void)webhook::plan_answered((flags & 16) != 0, report);
    return 0;
}
