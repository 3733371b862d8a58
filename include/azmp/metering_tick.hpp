// The meter's workflow steps other than reading Azure's answers (azmp/metering_answer.hpp): what one
// tick does when (leases, the hour a carry goes into, what leaves RAM, which day to reconcile, which
// hours are overdue, what becomes of held hours), what a closing hour bills, and what a day's
// reconciliation finds. Pure: the meter gathers the facts, commits and performs.
#pragma once

#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "azmp/decisions.hpp"
#include "azmp/metering.hpp"
#include "azmp/metering_answer.hpp"

namespace azmp::metering {

// An hour held because its subscription could not be billed (suspended).
struct HeldHour {
    std::int64_t hour = 0;
    LinkState state = LinkState::None;  // the link now
    bool outcome_unknown = false;       // an attempt before the hold may have reached Azure
};

// What becomes of a held hour at this tick.
enum class HeldRelease {
    Keep,    // still not billable
    Send,    // billable again, within Azure's window: sent as it is
    Carry,   // billable again, too late for its own hour: carried into the current hour
    Lookup,  // billable again, too late, but an earlier attempt may be billed: ask usageEvents first
    Drop,    // its subscription has no link any more: never billable; settled (dropped), alarmed
};

struct TickFacts {
    std::int64_t now = 0;
    std::int64_t grace_s = kDefaultGraceS;
    std::int64_t lease_s = 30;              // how long the emitter's lease lasts unrenewed
    std::int64_t call_timeout_ms = 30000;   // the most one call to Azure takes, retries included
    std::int64_t history_days = kDefaultHistoryDays;
    std::int64_t last_reconciled = 0;       // the day last reconciled (0: none)
    std::int64_t reconcile_retry_after = 0; // after a failed reconciliation, not before this
    std::int64_t window_waves = 1;          // calls one after another to send what one marking marked
    std::vector<HeldHour> held;
    std::vector<std::int64_t> lookups;      // hours to look up in Azure's usageEvents
};

struct TickPlan {
    std::int64_t lease_until = 0;        // the lease, taken or renewed now, lasts until then
    // An hour marked `submitting' now is not taken over by another emitter before this: the call
    // that sends it has ended by then, answered or not (no hour is sent by two emitters at once).
    std::int64_t in_flight_until = 0;
    std::int64_t current_hour = 0;       // where carried quantities go
    std::int64_t current_closes_at = 0;
    std::int64_t archive_last_hour = 0;  // settled hours up to this hour start leave RAM
    std::int64_t first_kept_day = 0;     // the history's days before it are dropped
    std::int64_t overdue_before = 0;     // an unsettled hour that began before this is overdue: alarm
    std::optional<std::int64_t> reconcile_day;  // the day to reconcile now
    std::int64_t reconcile_retry_at = 0;        // when to try again if that fails
    std::vector<HeldRelease> releases;          // one per held hour, in order
    // Per hour to look up: the UTC day it is in, first and last second (usageEvents is per day).
    std::vector<std::pair<std::int64_t, std::int64_t>> lookup_days;
    std::size_t batch_size = 0;                 // events per batchUsageEvent call (Azure's most)
};

TickPlan plan_tick(const TickFacts& facts);

// A held hour's fate at `now` (see HeldRelease).
HeldRelease plan_held(const HeldHour& h, std::int64_t now) noexcept;

// A sample that arrived after its own hour had closed, recorded in the closing hour.
struct LateSample {
    std::int64_t from_hour = 0;
    Micros quantity = 0;
};

// A closing hour: `term` is Azure's subscription term, when the link has one; else the term runs
// monthly from the activation (`activated_at`), and failing that, calendar months. `recorded`
// includes the `late` samples. Each sample counts against the term of its own hour: a late sample
// of the term before the hour's is billed against that term's included quantity (what the counter
// keeps of it), not absorbed by the new term's. The plan's included quantity is the plan's in force
// when the hour closes; a plan change starts no term of its own (Azure's term decides): the term's
// usage so far counts against the new plan's allowance.
struct CloseFacts {
    Micros recorded = 0;
    Micros carried_in = 0;
    Micros included = 0;
    TermCounter counter;
    std::int64_t hour = 0;
    std::optional<Term> term;
    std::optional<std::int64_t> activated_at;
    std::vector<LateSample> late;
};
ClosePlan plan_close_hour(const CloseFacts& facts) noexcept;

// A day's reconciliation: what our ledger's hours of the day say Azure took (known_taken), per
// resource and dimension, against Azure's usageEvents rows for the day (summed over plans; any
// case). Every pair that does not agree, or nothing when the call failed (try again at the tick
// plan's reconcile_retry_at).
struct ReconDifference {
    std::string resource_id;
    std::string dimension;
    ReconVerdict verdict = ReconVerdict::Differ;
    Micros billed = 0;
    std::optional<Micros> processed;
    std::string recon_status;
};
std::optional<std::vector<ReconDifference>> plan_reconcile(const std::vector<LedgerHour>& ours, const CallResult& rows);

}  // namespace azmp::metering
