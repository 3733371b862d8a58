// The fulfillment reconciliation's step: Azure's list of subscriptions (or one subscription, for an
// operator's resync) against our links; the events that bring each link to Azure's state (a lost
// webhook repaired). Pure: the reconciler gathers the links the answer names, applies the events.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "azmp/call_result.hpp"
#include "azmp/decisions.hpp"

namespace azmp::reconcile {

// A subscription as Azure lists it: its id and saasSubscriptionStatus.
struct Seen {
    std::string subscription_id;
    std::string status;
};

// The subscriptions in a List Subscriptions answer (those with an id and a status), or in a Get
// Subscription answer for `one_id` (non-empty). Nothing when the answer cannot be read, or a
// single subscription has no status.
std::optional<std::vector<Seen>> read_subscriptions(const CallReport& answer, const std::string& one_id);

// Our link to a subscription.
struct Local {
    std::string account_id;
    LinkState state = LinkState::None;
};

struct Repair {
    std::string account_id, subscription_id;
    LinkEvent event;
};

// Each linked subscription whose state Azure says otherwise, with the event that repairs it
// (repair_event's rule), in Azure's order. Subscriptions we hold no link to are not ours.
std::vector<Repair> plan_repairs(const std::vector<Seen>& seen, const std::unordered_map<std::string, Local>& links);

// After a pass, the effects of every link whose state changed since this time are planned again
// (plan_enforce): what a crash or an operator undid is redone. A week unless configured.
inline constexpr std::int64_t kDefaultEnforceWindowS = 7 * 24 * 3600;
std::int64_t enforce_changed_since(std::int64_t now, std::optional<std::int64_t> window_s) noexcept;

// ---- A pass in pages (List Subscriptions one page at a time, spread over the interval) ----------

// A page of List Subscriptions as Azure answers it: {"subscriptions": [...], "@nextLink": URL}.
struct Page {
    std::vector<Seen> seen;
    std::optional<std::string> continuation;  // the next page's URL; none: the last page
};

// A continuation longer than this is no continuation Azure would give (it is stored in Mnesia).
inline constexpr std::size_t kMaxContinuationBytes = 4096;

// Why a page cannot be read (the pass ends there; the next one starts from the first page).
enum class PageFault { None, Unreadable, ForeignContinuation };

// The page's subscriptions and continuation. A page is unreadable unless it is an object whose
// "subscriptions" is an array (absent or null: an empty page); a "@nextLink" that is not a string,
// is longer than kMaxContinuationBytes, or is not at `marketplace_base`'s scheme, host and port is
// never followed (our bearer token goes with it): ForeignContinuation.
struct PageReading {
    PageFault fault = PageFault::None;
    Page page;
};
PageReading read_page(const CallReport& answer, std::string_view marketplace_base);

// Pacing: a pass is spread over its interval, at no more than max_calls_per_s calls (the ceiling)
// and never slower than one page every kMaxGapMs (the floor). The pass aims to end at
// kPassShare of its interval (slack for retries and for a list that grew). Gaps are between call
// starts: a step's calls take time (took_ms), and the wait after them is the gap less that time, so
// a slow Azure does not stretch the pass (nor a fast one exceed the ceiling).
inline constexpr double kDefaultMaxCallsPerS = 10.0;
inline constexpr std::int64_t kMaxGapMs = 60'000;
inline constexpr double kPassShare = 0.8;
// A page that failed (Azure unreachable, 5xx) is asked again after this (within the ceiling).
inline constexpr std::int64_t kRetryPageMs = 5'000;

struct Pace {
    std::int64_t now_ms = 0;
    std::int64_t started_ms = 0;       // when the pass's first page was asked for
    std::int64_t interval_ms = 300'000;
    std::int64_t pages_done = 0;       // pages of this pass read so far (this one included)
    std::int64_t pages_last_pass = 0;  // 0: unknown (the first pass: at the ceiling)
    double max_calls_per_s = kDefaultMaxCallsPerS;
    // How long this step's calls took, from the first one's start to now_ms (the page's, and the
    // subscriptions in doubt read before it). Negative (a clock that stepped back): none.
    std::int64_t took_ms = 0;
    // How many calls this step made (the subscriptions in doubt read, and the page): the ceiling
    // holds over the step and the wait after it, so the next call waits that many gaps from the
    // step's start. Less than 1: 1.
    std::int64_t calls = 1;
};

// The least time between two calls: 1 / max_calls_per_s (a ceiling <= 0 or not finite: the default).
std::int64_t min_gap_ms(double max_calls_per_s) noexcept;
// The least time from a step's start to the next call: min_gap_ms for each of the step's calls.
std::int64_t step_gap_ms(const Pace& pace) noexcept;
// The wait from now_ms before the next page is asked for. The gap from this step's start to the
// next: the time from that start to the pass's target end shared among the pages still expected
// (from the last pass's count), between step_gap_ms and kMaxGapMs; at the ceiling when the count is
// unknown or already passed (the list grew). The wait is that gap less took_ms, and never
// negative: calls slower than the pace follow one another at once.
std::int64_t next_page_in_ms(const Pace& pace) noexcept;
// After the last page: when the next pass starts (one interval after this one started; at once,
// but not before step_gap_ms after this step's start, when the pass took longer than its interval).
std::int64_t next_pass_in_ms(const Pace& pace) noexcept;
// After a failed page: kRetryPageMs after the failure, but never sooner than the ceiling allows
// (step_gap_ms after this step's start) nor later than the interval.
std::int64_t retry_page_in_ms(const Pace& pace) noexcept;

}  // namespace azmp::reconcile
