// What Azure's answers to the meter's calls mean. See azmp/metering_answer.hpp.
#include "azmp/metering_answer.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "azmp/rules.hpp"
#include "civil_time.hpp"
#include "metering_json.hpp"
#include "text_util.hpp"

namespace azmp::metering {

namespace json = boost::json;
using detail_json::lower;
using detail_json::quantity_of;
using detail_json::str;

namespace {

using detail::all_digits;

int number(std::string_view s) noexcept { return static_cast<int>(detail::number(s)); }
std::int64_t floor_hour(std::int64_t t) noexcept { return detail::floor_to(t, kHourS); }
std::int64_t floor_day(std::int64_t t) noexcept { return detail::floor_to(t, kDayS); }

std::optional<std::string> opt_str(const json::object& o, std::string_view key) {
    const std::string_view s = str(o, key);
    if (s.empty() || s.size() > 256) return std::nullopt;
    return std::string(s);
}

const json::object* object_at(const json::object& o, std::string_view key) {
    const json::value* v = o.if_contains(json::string_view(key.data(), key.size()));
    return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
}

std::int64_t back_off(std::uint32_t attempts, const RetrySettings& r, std::int64_t now) noexcept {
    return now + link_retry_delay_s(attempts, r.base_s, r.max_s);
}

HourDecision again(ItemOutcome step, std::string_view reason, const SentHour& h, const RetrySettings& r,
                   std::int64_t now, bool alarm) {
    HourDecision d;
    d.outcome = step;
    d.reason = reason;
    d.alarm = alarm;
    d.attempt_failed = true;
    d.outcome_unknown = h.outcome_unknown;
    d.next_attempt_at = back_off(h.attempts, r, now);
    return d;
}

// The whole call failed: every hour is sent again later.
HourDecision call_failed(const SentHour& h, const CallResult& answer, const RetrySettings& r, std::int64_t now) {
    switch (answer.kind) {
        case CallKind::NotSent: return again(ItemOutcome::Retry, "not_sent", h, r, now, false);
        case CallKind::Refused: return again(ItemOutcome::Retry, "refused_request", h, r, now, true);
        case CallKind::Unknown:
        case CallKind::Answered: break;
    }
    // Azure may have taken it.
    HourDecision d = again(ItemOutcome::Retry, answer.kind == CallKind::Answered ? "bad_response" : "unavailable", h,
                           r, now, answer.kind == CallKind::Answered);
    d.outcome_unknown = true;
    return d;
}

// Azure's record of the event: the item itself when Accepted, the accepted message of a Duplicate.
const json::object& accepted_message(const json::object& item) {
    if (const json::object* err = object_at(item, "error"))
        if (const json::object* info = object_at(*err, "additionalInfo"))
            if (const json::object* m = object_at(*info, "acceptedMessage")) return *m;
    return item;
}

HourDecision one_item(const SentHour& h, const json::object& item, const RetrySettings& r, std::int64_t now) {
    const auto status = item_status_from_name(str(item, "status")).value_or(ItemStatus::Unknown);
    HourDecision d;
    d.outcome_unknown = h.outcome_unknown;
    if (status == ItemStatus::Accepted || status == ItemStatus::Duplicate) {
        const json::object& m = status == ItemStatus::Accepted ? item : accepted_message(item);
        d.event_id = opt_str(m, "usageEventId");
        d.message_time = opt_str(m, "messageTime");
        d.azure_quantity = quantity_of(m.if_contains("quantity"));
        // Azure holds an event for the slot: whatever an earlier attempt did is known now.
        d.outcome_unknown = false;
    }
    switch (status) {
        case ItemStatus::Accepted: d.outcome = ItemOutcome::Done; return d;
        case ItemStatus::Duplicate:
            d.reason = "Duplicate";
            if (d.azure_quantity == h.quantity) {
                d.outcome = ItemOutcome::Done;
                return d;
            }
            // Another quantity for the slot: whatever Azure holds less is still owed.
            d.outcome = ItemOutcome::Mismatch;
            d.carry = d.azure_quantity && *d.azure_quantity < h.quantity ? h.quantity - *d.azure_quantity : 0;
            d.alarm = true;
            return d;
        case ItemStatus::Expired:
            d.reason = "Expired";
            if (h.outcome_unknown) {
                // An earlier attempt may be billed already: ask Azure before billing it anew.
                d.outcome = ItemOutcome::Lookup;
                d.next_attempt_at = now;
                return d;
            }
            d.outcome = ItemOutcome::Carried;
            d.carry = h.quantity;
            d.alarm = true;
            return d;
        case ItemStatus::ResourceNotActive:
            d.reason = "ResourceNotActive";
            switch (h.state) {
                case LinkState::Unsubscribed:
                    d.outcome = ItemOutcome::Dropped;
                    d.alarm = true;
                    return d;
                case LinkState::Suspended:
                case LinkState::Pending: d.outcome = ItemOutcome::Held; return d;
                case LinkState::Linked:
                case LinkState::None: return again(ItemOutcome::Check, "ResourceNotActive", h, r, now, true);
            }
            return d;
        case ItemStatus::ResourceNotFound: return again(ItemOutcome::Check, "ResourceNotFound", h, r, now, true);
        case ItemStatus::ResourceNotAuthorized:
            return again(ItemOutcome::Check, "ResourceNotAuthorized", h, r, now, true);
        case ItemStatus::BadArgument:
            // Most often our plan lags Azure's: read it at once.
            d.outcome = ItemOutcome::Check;
            d.reason = "BadArgument";
            d.next_attempt_at = now;
            return d;
        case ItemStatus::InvalidDimension:
        case ItemStatus::InvalidQuantity:
            d.outcome = ItemOutcome::Rejected;
            d.reason = status == ItemStatus::InvalidDimension ? "InvalidDimension" : "InvalidQuantity";
            d.alarm = true;
            return d;
        case ItemStatus::Error: return again(ItemOutcome::Retry, "Error", h, r, now, false);
        case ItemStatus::Unknown: return again(ItemOutcome::Retry, "unknown_status", h, r, now, true);
    }
    return d;
}

using SlotKey = std::tuple<std::string, std::string, std::int64_t>;

std::optional<SlotKey> item_key(const json::object& item) {
    const std::string_view rid = str(item, "resourceId"), dim = str(item, "dimension");
    const auto t = parse_azure_time(str(item, "effectiveStartTime"));
    if (rid.empty() || dim.empty() || !t) return std::nullopt;
    return SlotKey{lower(rid), lower(dim), floor_hour(*t)};
}

}  // namespace


std::optional<std::int64_t> parse_azure_time_ms(std::string_view s) noexcept {
    s = detail::trim(s);
    if (s.size() < 19 || s.size() > 40 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':')
        return std::nullopt;
    const auto y = s.substr(0, 4), mo = s.substr(5, 2), d = s.substr(8, 2), h = s.substr(11, 2), mi = s.substr(14, 2),
               se = s.substr(17, 2);
    if (!all_digits(y) || !all_digits(mo) || !all_digits(d) || !all_digits(h) || !all_digits(mi) || !all_digits(se)) return std::nullopt;
    const int yy = number(y), mm = number(mo), dd = number(d), hh = number(h), mn = number(mi), ss = number(se);
    if (mm < 1 || mm > 12 || dd < 1 || dd > static_cast<int>(detail::last_day(yy, static_cast<unsigned>(mm))) ||
        hh > 23 || mn > 59 || ss > 59)
        return std::nullopt;
    std::string_view rest = s.substr(19);
    std::int64_t ms = 0;
    if (!rest.empty() && rest.front() == '.') {
        std::size_t n = 1;
        while (n < rest.size() && rest[n] >= '0' && rest[n] <= '9') {
            if (n <= 3) ms = ms * 10 + (rest[n] - '0');
            ++n;
        }
        if (n == 1) return std::nullopt;
        for (std::size_t k = n; k <= 3; ++k) ms *= 10;  // ".5" is 500 ms
        rest.remove_prefix(n);
    }
    std::int64_t offset = 0;
    if (rest == "Z" || rest == "z") {
        rest = {};
    } else if (!rest.empty()) {
        // +HH:MM or -HH:MM
        if (rest.size() != 6 || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':' || !all_digits(rest.substr(1, 2)) ||
            !all_digits(rest.substr(4, 2)))
            return std::nullopt;
        const int oh = number(rest.substr(1, 2)), om = number(rest.substr(4, 2));
        if (oh > 23 || om > 59) return std::nullopt;
        offset = (oh * kHourS + om * 60) * (rest[0] == '+' ? 1 : -1);
    }
    const std::int64_t t = detail::days_from_civil(yy, static_cast<unsigned>(mm), static_cast<unsigned>(dd)) * kDayS +
                           hh * kHourS + mn * 60 + ss;
    return (t - offset) * 1000 + ms;
}

std::optional<std::int64_t> parse_azure_time(std::string_view s) noexcept {
    const auto ms = parse_azure_time_ms(s);
    if (!ms) return std::nullopt;
    return *ms >= 0 ? *ms / 1000 : -((-*ms + 999) / 1000);  // the second it falls in
}

BatchPlan plan_batch_answer(const std::vector<SentHour>& sent, const CallResult& answer, const RetrySettings& retry,
                            std::int64_t now) {
    BatchPlan plan;
    plan.hours.reserve(sent.size());
    const json::array* items = nullptr;
    if (answer.kind == CallKind::Answered && answer.body != nullptr && answer.body->is_object()) {
        const json::value* r = answer.body->get_object().if_contains("result");
        if (r != nullptr && r->is_array()) items = &r->get_array();
    }
    if (items == nullptr) {
        for (const auto& h : sent) plan.hours.push_back(call_failed(h, answer, retry, now));
        return plan;
    }
    std::map<SlotKey, std::size_t> ours;
    for (std::size_t i = 0; i < sent.size(); ++i)
        ours.emplace(SlotKey{lower(sent[i].resource_id), lower(sent[i].dimension), sent[i].hour}, i);
    std::vector<const json::object*> answered(sent.size(), nullptr);
    for (const auto& v : *items) {
        const auto key = v.is_object() ? item_key(v.get_object()) : std::nullopt;
        const auto it = key ? ours.find(*key) : ours.end();
        if (it == ours.end() || answered[it->second] != nullptr) {
            ++plan.unmatched;
            continue;
        }
        answered[it->second] = &v.get_object();
    }
    for (std::size_t i = 0; i < sent.size(); ++i) {
        if (answered[i] != nullptr) {
            plan.hours.push_back(one_item(sent[i], *answered[i], retry, now));
        } else {
            // Azure answered without naming this hour: it may hold it.
            HourDecision d = again(ItemOutcome::Retry, "no_answer", sent[i], retry, now, true);
            d.outcome_unknown = true;
            plan.hours.push_back(std::move(d));
        }
    }
    return plan;
}

Micros known_taken(const LedgerHour& h) noexcept {
    switch (h.status) {
        case LedgerStatus::Done: return h.reported;
        case LedgerStatus::Mismatch: return h.azure_quantity.value_or(0);
        default: return 0;
    }
}

namespace {

// Not settled: the hour may still be billed (or be billed already, unknown to us).
bool in_play(LedgerStatus s) noexcept {
    switch (s) {
        case LedgerStatus::Pending:
        case LedgerStatus::Submitting:
        case LedgerStatus::Held:
        case LedgerStatus::Lookup:
        case LedgerStatus::Check: return true;
        default: return false;
    }
}

}  // namespace

std::vector<HourDecision> plan_lookups(const std::vector<SentHour>& hours, const std::vector<LedgerHour>& ledger,
                                       const CallResult& answer, const RetrySettings& retry, std::int64_t now) {
    std::vector<HourDecision> out(hours.size());
    if (answer.kind != CallKind::Answered || answer.body == nullptr || !answer.body->is_array()) {
        for (std::size_t i = 0; i < hours.size(); ++i)
            out[i] = again(ItemOutcome::Lookup, "lookup_failed", hours[i], retry, now, true);
        return out;
    }
    using Group = std::tuple<std::string, std::string, std::int64_t>;
    struct Facts {
        Micros azure = 0, known = 0, pending_doubt = 0;
        bool unreadable = false;
        std::vector<std::size_t> members;  // indexes into `hours`, in hour order once sorted
    };
    std::map<Group, Facts> groups;
    std::set<SlotKey> looked_up;
    for (std::size_t i = 0; i < hours.size(); ++i) {
        const auto& h = hours[i];
        groups[Group{lower(h.resource_id), lower(h.dimension), floor_day(h.hour)}].members.push_back(i);
        looked_up.insert(SlotKey{lower(h.resource_id), lower(h.dimension), h.hour});
    }
    for (const auto& v : answer.body->get_array()) {
        if (!v.is_object()) continue;
        const json::object& row = v.get_object();
        const auto date = parse_azure_time(str(row, "usageDate"));
        if (!date) continue;
        const auto it = groups.find(Group{lower(str(row, "usageResourceId")), lower(str(row, "dimension")), floor_day(*date)});
        if (it == groups.end()) continue;
        const auto q = quantity_of(row.if_contains("processedQuantity"));
        if (!q) it->second.unreadable = true;
        else it->second.azure += *q;
    }
    for (const auto& d : ledger) {
        const auto it = groups.find(Group{lower(d.resource_id), lower(d.dimension), floor_day(d.hour)});
        if (it == groups.end() || looked_up.count(SlotKey{lower(d.resource_id), lower(d.dimension), d.hour}) != 0)
            continue;
        it->second.known += known_taken(d);
        if (d.outcome_unknown && in_play(d.status)) it->second.pending_doubt += d.reported;
    }
    for (auto& [key, g] : groups) {
        std::sort(g.members.begin(), g.members.end(),
                  [&](std::size_t a, std::size_t b) { return hours[a].hour < hours[b].hour; });
        if (g.unreadable || g.pending_doubt > 0) {
            // Unreadable: an alarm. Another hour in doubt not yet looked up: wait for it, quietly.
            for (const std::size_t i : g.members)
                out[i] = again(ItemOutcome::Lookup, g.unreadable ? "lookup_unreadable" : "waiting_for_hours_in_doubt",
                               hours[i], retry, now, g.unreadable);
            continue;
        }
        // What Azure holds of the group's hours in doubt, given to them in hour order.
        Micros held = g.azure - g.known;
        for (const std::size_t i : g.members) {
            const SentHour& h = hours[i];
            const Micros cover = std::clamp<Micros>(held, 0, h.quantity);
            held -= cover;
            HourDecision& d = out[i];
            d.outcome_unknown = false;
            if (cover == h.quantity) {
                d.outcome = ItemOutcome::Done;
                d.reason = "found_in_usage_events";
                d.azure_quantity = h.quantity;
            } else if (cover == 0) {
                d.outcome = ItemOutcome::Carried;  // Azure holds none of it: billed now, in the current hour
                d.reason = "Expired";
                d.carry = h.quantity;
                d.alarm = true;
            } else {
                d.outcome = ItemOutcome::Mismatch;  // Azure holds part of it: only the rest is still owed
                d.reason = "found_in_usage_events";
                d.azure_quantity = cover;
                d.carry = h.quantity - cover;
                d.alarm = true;
            }
        }
        // Azure holds more than every hour in doubt sent: reported, nothing billed anew.
        if (held > 0 && !g.members.empty()) out[g.members.back()].alarm = true;
    }
    return out;
}

HourDecision plan_subscription_check(const SentHour& h, std::string_view refused_as, const CallResult& answer,
                                     const RetrySettings& retry, std::int64_t now) {
    const bool bad_argument = refused_as == "BadArgument";
    const std::string_view why = bad_argument ? std::string_view("BadArgument")
                                 : refused_as == "ResourceNotFound" ? std::string_view("ResourceNotFound")
                                 : refused_as == "ResourceNotAuthorized" ? std::string_view("ResourceNotAuthorized")
                                                                          : std::string_view("ResourceNotActive");
    HourDecision d;
    d.outcome_unknown = h.outcome_unknown;
    if (answer.kind == CallKind::Refused && answer.http_status == 404) {
        d.outcome = ItemOutcome::Dropped;
        d.reason = "subscription_not_found";
        d.alarm = true;
        return d;
    }
    if (answer.kind != CallKind::Answered || answer.body == nullptr || !answer.body->is_object())
        return again(ItemOutcome::Check, why, h, retry, now, true);
    const json::object& sub = answer.body->get_object();
    if (detail::iequals(detail::trim(str(sub, "saasSubscriptionStatus")), "Unsubscribed")) {
        d.outcome = ItemOutcome::Dropped;
        d.reason = "subscription_unsubscribed";
        d.alarm = true;
        return d;
    }
    const std::string_view plan = detail::trim(str(sub, "planId"));
    if (!plan.empty() && plan.size() <= 256 && !detail::iequals(plan, h.plan_id)) {
        // Our plan lagged Azure's (a deferred or redelivered ChangePlan): the hour goes with Azure's.
        d.outcome = ItemOutcome::Retry;
        d.reason = "plan_changed";
        d.plan_id = std::string(plan);
        d.next_attempt_at = now;
        return d;
    }
    if (bad_argument) {
        d.outcome = ItemOutcome::Rejected;
        d.reason = "BadArgument";
        d.alarm = true;
        return d;
    }
    // Azure still has the subscription: its refusal is passing (or ours to look at), not final.
    return again(ItemOutcome::Retry, why, h, retry, now, true);
}

}  // namespace azmp::metering
