// Pay-as-you-go metering rules, as pure functions: exact quantities, UTC hours, what a sample
// does, what an hour reports above the plan's included quantity for the term, and what each of
// Azure's per-item answers means. Erlang keeps the ledger and performs the calls.
#pragma once

#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "azmp/decisions.hpp"

namespace azmp::metering {

// ---------------------------------------------------------------------------------------------
// Quantities: exact decimals with 6 places, held as integer micro-units (no float drift).

using Micros = std::int64_t;
inline constexpr Micros kUnit = 1'000'000;
// The largest quantity one sample may carry (a trillion units).
inline constexpr Micros kMaxSample = 1'000'000'000'000LL * kUnit;
// The most one hour of one subscription and dimension may total (4 trillion units): a sample that
// would take it further is refused when it is recorded, so that every sum the meter makes later
// (an hour with what is carried into it, a term's usage) stays exact in 64 bits.
inline constexpr Micros kMaxHourTotal = 4 * kMaxSample;
// A term's usage is counted up to this (beyond any included quantity an offer has).
inline constexpr Micros kMaxTermUsed = 4 * kMaxSample;

// "12", "0.5", "3.141592" (at most 6 decimals, no sign, no exponent) -> micro-units.
std::optional<Micros> parse_decimal(std::string_view text) noexcept;
// A finite non-negative double rounded to 6 decimals (Azure's quantities are doubles).
std::optional<Micros> from_double(double v) noexcept;
// The shortest exact decimal text: 12500000 -> "12.5".
std::string format_decimal(Micros m);

// ---------------------------------------------------------------------------------------------
// Hours (UTC: unix time has no time zone)

inline constexpr std::int64_t kHourS = 3600;
inline constexpr std::int64_t kDefaultGraceS = 300;
// An hour closes at most a day after it ends: Azure takes an hour's usage up to 24 h after it began.
inline constexpr std::int64_t kMaxGraceS = 24 * kHourS;
// Azure takes usage up to 24 h after its hour began; we carry forward a little before that.
inline constexpr std::int64_t kAzureWindowS = 24 * kHourS;
inline constexpr std::int64_t kExpiryMarginS = 10 * 60;
// An hour still unsent this long after it closed raises an alarm.
inline constexpr std::int64_t kOverdueS = 12 * kHourS;
// A sample timed more than this ahead of the plugin's clock is refused (clocks differ a little;
// Azure refuses events in the future).
inline constexpr std::int64_t kFutureSkewS = 5 * 60;
// How late a sample may arrive: at most a day (Azure's window); by default the day less the grace,
// so that its hour can still be closed and sent within the window.
inline constexpr std::int64_t kMaxLatenessS = kAzureWindowS;
std::int64_t default_lateness_s(std::int64_t grace_s) noexcept;

// The unix second at which the UTC hour holding `at_ms` began.
std::int64_t hour_of(std::int64_t at_ms) noexcept;
// An hour closes `grace_s` after it ends.
std::int64_t closes_at(std::int64_t hour, std::int64_t grace_s) noexcept;
// Is it too late to report `hour` at `now` (Azure would answer Expired)?
bool expired(std::int64_t hour, std::int64_t now) noexcept;
// Unsent this long after it closed: alarm.
bool overdue(std::int64_t hour, std::int64_t grace_s, std::int64_t now) noexcept;

// ---------------------------------------------------------------------------------------------
// Recording a sample

enum class RecordRefusal {
    UnknownDimension,    // unknown_dimension
    BadQuantity,         // bad_quantity: not a number, <= 0, more than 6 decimals, too large
    NotLinked,           // not_linked: no live marketplace link
    AfterCancellation,   // after_cancellation: timed at or after the subscription's cancellation
    HourClosed,          // hour_closed: the cancellation already closed and reported that hour
    TooLate,             // {too_late, #{oldest_accepted_ms}}: older than the lateness allowed
    InFuture,            // {in_future, #{latest_accepted_ms}}: ahead of the clock by more than the skew
    BeforeSubscription,  // {before_subscription, #{activated_at_ms}}: before the link was activated
    HourTotalTooLarge,   // {hour_total_too_large, #{max}}: the hour would total more than kMaxHourTotal
};

struct SampleFacts {
    bool dimension_known = false;
    Micros quantity = 0;
    std::int64_t at_ms = 0;
    LinkState state = LinkState::None;
    std::optional<std::int64_t> cancelled_at;  // unix s
    std::optional<std::int64_t> activated_at;  // unix s: when the link was activated (unknown for old links)
    bool bucket_open = true;  // the sample's hour has not been closed by us (cancellation, closer)
    std::int64_t now = 0;     // unix s
    std::int64_t grace_s = kDefaultGraceS;
    std::int64_t lateness_s = kAzureWindowS - kDefaultGraceS;
    Micros own_total = 0;      // what the sample's own hour holds already
    Micros current_total = 0;  // what the current hour holds already (a late sample goes there)
};

struct RecordPlan {
    std::optional<RecordRefusal> refusal;
    std::int64_t bound = 0;                  // the refusal's limit (ms, or micro-units)
    std::int64_t hour = 0;                   // where the quantity goes
    std::optional<std::int64_t> carried_from;  // the sample's own hour, when it was closed already
    std::int64_t closes_at = 0;              // when `hour' closes
};

// Usage is summed per subscription, dimension and UTC hour. A sample for an hour already closed is
// carried into the current hour, marked with its origin (nothing is lost, nothing reported twice).
// A sample is refused, nothing stored, when it is older than the lateness allowed, ahead of the
// clock by more than kFutureSkewS, timed before the link was activated, or would take its hour
// beyond kMaxHourTotal.
RecordPlan plan_record(const SampleFacts& f) noexcept;

std::string_view record_refusal_name(RecordRefusal r) noexcept;

// ---------------------------------------------------------------------------------------------
// Closing an hour: only usage above the plan's included quantity for the current term is billed

// The term an hour belongs to: terms start at `start` (unix s) and renew every `months` months
// (1: monthly, 12: yearly) on the same day of the month (the last day when the month is shorter).
std::int64_t term_start_for(std::int64_t hour, std::int64_t start, int months) noexcept;

// A subscription's term as Azure gives it (SaaS Fulfillment v2 `term`: startDate, endDate,
// termUnit), read: when it starts (unix s, UTC) and how many months it lasts. Empty unless both
// dates are dates (YYYY-MM-DD, a time of day after a `T` allowed) and termUnit is P<n>M or P<n>Y
// (n 1..99). A link without a term counts calendar months (start 0, 1 month).
struct Term {
    std::int64_t start = 0;
    int months = 1;
    bool operator==(const Term&) const = default;
};
std::optional<Term> parse_term(std::string_view start_date, std::string_view end_date,
                               std::string_view term_unit) noexcept;

struct TermCounter {
    std::int64_t term_start = 0;  // which term `used` counts
    Micros used = 0;              // recorded usage of the term's hours closed so far
    // The term before it, kept while samples of its last hours may still arrive late (a day).
    std::int64_t prev_term_start = 0;
    Micros prev_used = 0;
};

struct ClosePlan {
    bool too_large = false;  // the hour with what was carried into it exceeds kMaxHourTotal: not sent, alarm
    Micros reported = 0;   // what Azure is told for the hour (0: nothing is sent)
    Micros absorbed = 0;   // what the included quantity covered
    TermCounter counter;   // after this hour
};

// `recorded`: the hour's usage; `carried_in`: quantities already billable (carried forward from
// an expired or short-counted hour), reported as they are. An hour (or what is carried into it)
// beyond kMaxHourTotal is `too_large`: not sent, alarmed, the other hours unaffected.
ClosePlan plan_close(Micros recorded, Micros carried_in, Micros included, const TermCounter& before,
                     std::int64_t hour_term_start) noexcept;

// ---------------------------------------------------------------------------------------------
// Submission: who may be billed now

// Suspension holds submission (Azure answers ResourceNotActive); a cancelled subscription's usage
// up to its cancellation still goes out within Azure's 24 h.
bool may_submit(LinkState state) noexcept;

// What Azure's answer to one item of a batch means.
enum class ItemStatus {
    Accepted, Duplicate, Expired, ResourceNotFound, ResourceNotActive, InvalidDimension, InvalidQuantity,
    BadArgument, ResourceNotAuthorized, Error, Unknown,
};
std::optional<ItemStatus> item_status_from_name(std::string_view name) noexcept;  // trimmed, any case

// What becomes of a sent hour (azmp/metering_answer.hpp decides which).
enum class ItemOutcome {
    Done,       // billed: Accepted, or Duplicate with our quantity (an earlier reply was lost)
    Mismatch,   // Duplicate with another quantity: alarm; what Azure holds less is carried forward
    Carried,    // Expired: the quantity goes into the current hour, flagged, alarm
    Held,       // ResourceNotActive while suspended or pending: kept until reinstated
    Dropped,    // ResourceNotActive once unsubscribed: dropped, with a ledger entry
    Rejected,   // ResourceNotFound, ResourceNotAuthorized, InvalidDimension, InvalidQuantity, BadArgument
    Retry,      // Error, an unknown status, or the whole call failed: again, with back-off
    Lookup,     // Expired after an attempt with an unknown outcome: ask usageEvents what Azure holds
    Check,      // refused for its plan or resource: read the subscription before going on
};

std::string_view item_outcome_name(ItemOutcome o) noexcept;

// ---------------------------------------------------------------------------------------------
// The ledger's history: what leaves the hours in play, and how long it is kept

// An outcome nothing changes again (billed, carried on, rejected, dropped): the hour is settled.
// Held and Retry hours are still in play.
bool settled(ItemOutcome o) noexcept;

// The latest hour start that may be archived at `now`: a settled hour leaves the hours in play
// once it has closed for good (its end plus the grace has passed, as closes_at says).
std::int64_t last_archivable_hour(std::int64_t now, std::int64_t grace_s) noexcept;

inline constexpr std::int64_t kDayS = 24 * kHourS;
// The product requires at least 35 days of ledger history; 40 unless configured.
inline constexpr std::int64_t kMinHistoryDays = 35;
inline constexpr std::int64_t kDefaultHistoryDays = 40;

// The first UTC day (unix s of its start) the history keeps at `now`: today and the `history_days`
// - 1 days before it (at least today); the days before it are dropped.
std::int64_t first_kept_day(std::int64_t now, std::int64_t history_days) noexcept;

// ---------------------------------------------------------------------------------------------
// Deduplication of samples by source id

inline constexpr std::int64_t kDefaultDedupeWindowS = 3600;
// The recorded-at time (unix s) before which a source id has expired: it counts once for
// `window_s` after it was recorded.
std::int64_t dedupe_cutoff(std::int64_t now, std::int64_t window_s) noexcept;
// How often expired source ids are swept: a tenth of the window, 1 to 60 s (entries live at most
// the window plus this).
std::int64_t sweep_interval_ms(std::int64_t window_s) noexcept;

// ---------------------------------------------------------------------------------------------
// Settings an operator gives (the application env `metering`)

enum class SettingProblem {
    NotAPositiveInteger,     // not_a_positive_integer
    NotANonNegativeInteger,  // not_a_non_negative_integer
    BelowMinimum,            // {at_least, Bound}
    AboveMaximum,            // {at_most, Bound}
};
struct SettingVerdict {
    SettingProblem problem;
    std::int64_t bound = 1;  // the least (BelowMinimum) or the most (AboveMaximum) accepted
};
// `value`: the setting, or nothing when it is not an integer (or too large to be one).
std::optional<SettingVerdict> check_history_days(std::optional<std::int64_t> value) noexcept;
std::optional<SettingVerdict> check_dedupe_window_s(std::optional<std::int64_t> value) noexcept;
// 0 (an hour closes when it ends) to kMaxGraceS.
std::optional<SettingVerdict> check_grace_s(std::optional<std::int64_t> value) noexcept;
// 0 (only samples of the current hour) to kMaxLatenessS.
std::optional<SettingVerdict> check_lateness_s(std::optional<std::int64_t> value) noexcept;
// Every timing of metering, the operator's where given and accepted, else the default: the one
// place the defaults live.
enum class Setting { GraceS, LatenessS, LeaseS, TickMs, RetryBaseS, RetryMaxS, HistoryDays, DedupeWindowS };
inline constexpr Setting kSettings[] = {Setting::GraceS,     Setting::LatenessS,   Setting::LeaseS,
                                        Setting::TickMs,     Setting::RetryBaseS,  Setting::RetryMaxS,
                                        Setting::HistoryDays, Setting::DedupeWindowS};
// The setting's name in the application env and the config (grace_s, lateness_s, ...).
std::string_view setting_name(Setting s) noexcept;
struct SettingValue {
    std::optional<std::int64_t> value;  // nothing: not an integer
    bool given = false;                 // the operator set it
};
struct ResolvedSettings {
    std::int64_t values[std::size(kSettings)] = {};  // by Setting
    // The given settings refused, in kSettings' order: one that is not a number of the right sign
    // is replaced by its default; one beyond its bounds is kept (the config refuses it before it
    // reaches the env).
    std::vector<std::pair<Setting, SettingVerdict>> refused;
    std::int64_t operator[](Setting s) const noexcept { return values[static_cast<std::size_t>(s)]; }
};
// `given`: by Setting. The lateness' default follows the grace (a day less it).
ResolvedSettings resolve_settings(const SettingValue (&given)[std::size(kSettings)]) noexcept;

// The billing dimensions' ids, in the configured order: the index of the first one that repeats
// an earlier one, or nothing. A dimension is configured once (its included quantity would count
// twice, and Azure knows one meter per id).
std::optional<std::size_t> repeated_dimension(const std::vector<std::string_view>& ids);

// ---------------------------------------------------------------------------------------------
// Daily reconciliation: our ledger against Azure's usageEvents, per day, subscription, dimension

enum class ReconVerdict {
    Agree,     // Azure processed what we billed
    Differ,    // the quantities differ (reported), or one side has nothing
    Alarm,     // Azure says Rejected or Mismatch
};
// `billed`: what our ledger says Azure took for the day; `processed`: Azure's processedQuantity
// (nothing when Azure has no row); `recon_status`: Azure's reconStatus.
ReconVerdict reconcile_day(Micros billed, std::optional<Micros> processed, std::string_view recon_status) noexcept;

// When: a day is reconciled once its hours are all out, after 01:00 UTC the day after (the last
// hour closed and was sent); one that could not be made (Azure unreachable) is tried an hour later.
inline constexpr std::int64_t kReconcileAfterS = kHourS;
inline constexpr std::int64_t kReconcileRetryS = kHourS;

struct DailyFacts {
    std::int64_t now = 0;
    std::int64_t last_reconciled = 0;  // the day last reconciled (unix s of its start; 0: none yet)
    std::int64_t retry_after = 0;      // after a failure, not before this (0: no failure)
};
// The day to reconcile now (yesterday, unless already done or not yet due), or nothing: wait.
std::optional<std::int64_t> day_to_reconcile(const DailyFacts& f) noexcept;
// After a reconciliation failed at `now`: not again before this.
std::int64_t reconcile_retry_at(std::int64_t now) noexcept;

}  // namespace azmp::metering
