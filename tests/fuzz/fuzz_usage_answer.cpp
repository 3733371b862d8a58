// The meter's reading of Azure's answers (azmp/metering_answer.hpp, metering_tick.hpp): a batch
// answer against the hours sent, a usageEvents answer for an hour in doubt and for a day's
// reconciliation, a subscription read after a refusal, Azure's times. Input: [step][flags] body.
// Whatever Azure sends: one decision per hour sent, never a carry larger than what was sent.
#include <boost/json/parse.hpp>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "azmp/metering_answer.hpp"
#include "azmp/metering_tick.hpp"
#include "fuzz_input.hpp"

using namespace azmp;
using namespace azmp::metering;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    const std::uint8_t step = in.byte();
    const std::uint8_t flags = in.byte();
    const std::string_view text = in.rest();
    (void)parse_azure_time(text);
    boost::json::error_code ec;
    const boost::json::value body = boost::json::parse(text, ec);
    const CallResult answer{ec ? CallKind::Unknown : CallKind::Answered, 200, ec ? nullptr : &body};
    const LinkState states[] = {LinkState::Linked, LinkState::Suspended, LinkState::Unsubscribed, LinkState::Pending};
    const std::vector<SentHour> sent = {
        {"sub-1", "gb", 1764756000, 7 * kUnit, "payg", flags % 8u, (flags & 8) != 0, states[(flags >> 4) % 4]},
        {"SUB-2", "Sessions", 1764759600, kMaxHourTotal, "gold", 0, (flags & 64) != 0, LinkState::Linked}};
    const RetrySettings retry{60, 3600};
    const std::int64_t now = 1764766800;
    switch (step % 4) {
        case 0: {
            const BatchPlan p = plan_batch_answer(sent, answer, retry, now);
            if (p.hours.size() != sent.size()) std::abort();
            for (std::size_t i = 0; i < sent.size(); ++i)
                if (p.hours[i].carry < 0 || p.hours[i].carry > sent[i].quantity) std::abort();
            break;
        }
        case 1: {
            const LedgerHour other{"sub-1", "gb", 1764752400, LedgerStatus::Done, 3 * kUnit, std::nullopt, false};
            const auto d = plan_lookups(sent, {other}, answer, retry, now);
            if (d.size() != sent.size()) std::abort();
            for (std::size_t i = 0; i < sent.size(); ++i)
                if (d[i].carry < 0 || d[i].carry > sent[i].quantity) std::abort();
            break;
        }
        case 2: (void)plan_subscription_check(sent[flags % 2], flags & 1 ? "BadArgument" : "ResourceNotFound", answer,
                                              retry, now);
            break;
        default: {
            const std::vector<LedgerHour> ours = {
                {"sub-1", "gb", 1764756000, LedgerStatus::Done, 7 * kUnit, std::nullopt, false},
                {"sub-1", "gb", 1764759600, LedgerStatus::Mismatch, 2 * kUnit, kUnit, false}};
            (void)plan_reconcile(ours, answer);
        }
    }
    return 0;
}
