// What Azure's answers to the meter's calls mean, read once, here: the batchUsageEvent answer item
// by item, the usageEvents rows that settle an hour whose earlier send has an unknown outcome, and
// the subscription (Get Subscription) read when Azure refuses an hour for its plan or resource.
// Pure: the meter performs the calls and commits what these plans say.
#pragma once

#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "azmp/call_result.hpp"
#include "azmp/decisions.hpp"
#include "azmp/metering.hpp"

namespace azmp::metering {

// Azure's date-times as Microsoft writes them: "2018-12-01T08:30:14" (no offset: UTC),
// "...Z", "...+01:00", with or without fractional seconds ("...14.1234567Z"). Unix seconds (the
// fraction dropped), or nothing when it is not such a time.
std::optional<std::int64_t> parse_azure_time(std::string_view text) noexcept;
// The same, in unix milliseconds (the fraction's first three digits kept).
std::optional<std::int64_t> parse_azure_time_ms(std::string_view text) noexcept;

// One hour as the meter sent it (or is about to look up).
struct SentHour {
    std::string resource_id;   // the SaaS subscription id
    std::string dimension;
    std::int64_t hour = 0;     // unix s, the hour's start
    Micros quantity = 0;       // what was reported
    std::string plan_id;       // the plan the event carried
    std::uint32_t attempts = 0;  // attempts that ended without a final answer, before this one
    // An earlier attempt may have been taken by Azure without us hearing it (a lost reply, a
    // timeout, a crash mid-call): until Azure shows what it holds, the hour must not be billed anew.
    bool outcome_unknown = false;
    LinkState state = LinkState::None;  // the link as we know it
};

// How a call went (azmp/call_result.hpp), as the metering rules name it.
using azmp::call_kind;
using azmp::CallKind;
using CallResult = azmp::CallReport;
using azmp::Failure;

// Back-off between attempts (the metering config's retry_base_s, retry_max_s).
struct RetrySettings {
    std::int64_t base_s = 60;
    std::int64_t max_s = 3600;
};

// What becomes of one hour after an answer. `outcome` is the ledger's new status: the settled
// ones (done, mismatch, carried, dropped, rejected), `held` (not billable now), or one of the
// steps still to take at `next_attempt_at`: `retry` (send again), `lookup` (ask usageEvents what
// Azure holds), `check` (read the subscription).
struct HourDecision {
    ItemOutcome outcome = ItemOutcome::Retry;
    std::string_view reason;           // why, for the ledger ("" when billed as sent)
    Micros carry = 0;                  // billable in the current hour (goes there)
    bool alarm = false;
    std::int64_t next_attempt_at = 0;  // retry, lookup, check
    bool outcome_unknown = false;      // after this answer
    bool attempt_failed = false;       // counts toward the back-off
    std::optional<std::string> plan_id;  // send again with this plan (Azure's)
    std::optional<std::string> event_id, message_time;  // Azure's record of the event
    std::optional<Micros> azure_quantity;               // what Azure holds for the slot
};

struct BatchPlan {
    std::vector<HourDecision> hours;  // one per sent hour, in order
    std::size_t unmatched = 0;        // items of Azure's answer that match no hour sent: alarm
};

// Azure's answer to a batchUsageEvent of `sent`, item by item. Items are matched to hours by
// resource id and dimension (any case) and the hour of effectiveStartTime; an hour Azure's answer
// does not name is retried as one whose outcome is unknown, with an alarm.
BatchPlan plan_batch_answer(const std::vector<SentHour>& sent, const CallResult& answer, const RetrySettings& retry,
                            std::int64_t now);

// An hour of our ledger, as a fact: its status (the ledger's), what it reported, what Azure holds.
enum class LedgerStatus { Open, Pending, Submitting, Held, Lookup, Check, Done, Mismatch, Carried, Dropped, Rejected };
struct LedgerHour {
    std::string resource_id;
    std::string dimension;
    std::int64_t hour = 0;
    LedgerStatus status = LedgerStatus::Open;
    Micros reported = 0;
    std::optional<Micros> azure_quantity;
    bool outcome_unknown = false;
};

// What Azure took of an hour, as our ledger knows it: what was reported once billed (done), what
// Azure holds when it held another quantity (mismatch), nothing otherwise.
Micros known_taken(const LedgerHour& h) noexcept;

// Hours whose earlier send has an unknown outcome, Azure now refusing them as Expired: what does
// Azure hold? usageEvents gives per-day totals per resource and dimension, so hours are settled
// per group (resource, dimension, UTC day): `ledger` is our ledger's hours of those days (the hours
// looked up among them or not). What Azure holds beyond what the ledger knows it took is the
// group's hours in doubt's. While another hour of the group is still in doubt and not yet looked
// up (its send being retried), the group waits for it: it may still be answered. Then Azure's
// share is given to the hours in hour order: an hour it covers is done, one it covers in part has
// the rest carried, one it does not cover is carried whole: exactly what Azure does not hold is
// billed anew, once. A failed call keeps every hour in `lookup`, with back-off and an alarm.
std::vector<HourDecision> plan_lookups(const std::vector<SentHour>& hours, const std::vector<LedgerHour>& ledger,
                                       const CallResult& answer, const RetrySettings& retry, std::int64_t now);

// Why an hour's subscription is read before going on: Azure refused the hour for its plan
// (BadArgument), or its resource (ResourceNotFound, ResourceNotAuthorized, or ResourceNotActive
// while we think it active).
// `answer` is Get Subscription's. Azure says the subscription is gone (404, Unsubscribed):
// dropped, with its reason. Azure's plan differs from the one sent: sent again now with Azure's.
// Otherwise the refusal stands: BadArgument is rejected, the others retried with back-off and
// an alarm. A failed read is tried again with back-off.
HourDecision plan_subscription_check(const SentHour& hour, std::string_view refused_as, const CallResult& answer,
                                     const RetrySettings& retry, std::int64_t now);

}  // namespace azmp::metering
