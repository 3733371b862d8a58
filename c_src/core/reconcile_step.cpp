// The fulfillment reconciliation's step (reconcile_step.hpp).
#include "azmp/reconcile_step.hpp"

#include <boost/json/array.hpp>

#include "azmp/azure_fields.hpp"
#include "azmp/rules.hpp"

namespace azmp::reconcile {

namespace {

std::optional<std::string> status_of(const boost::json::value* sub) {
    const boost::json::value* s = field(sub, "saasSubscriptionStatus");
    if (!s || !s->is_string() || s->get_string().size() > kMaxIdBytes) return std::nullopt;
    return std::string(s->get_string().data(), s->get_string().size());
}

}  // namespace

std::optional<std::vector<Seen>> read_subscriptions(const CallReport& answer, const std::string& one_id) {
    if (answer.kind != CallKind::Answered || !answer.body) return std::nullopt;
    std::vector<Seen> seen;
    if (!one_id.empty()) {
        auto status = status_of(answer.body);
        if (!status) return std::nullopt;
        seen.push_back(Seen{one_id, std::move(*status)});
        return seen;
    }
    if (!answer.body->is_array()) return std::nullopt;
    seen.reserve(answer.body->get_array().size());
    for (const boost::json::value& sub : answer.body->get_array()) {
        auto id = read_id(field(&sub, "id"));
        auto status = status_of(&sub);
        if (id && status) seen.push_back(Seen{std::move(*id), std::move(*status)});
    }
    return seen;
}

std::vector<Repair> plan_repairs(const std::vector<Seen>& seen, const std::unordered_map<std::string, Local>& links) {
    std::vector<Repair> repairs;
    for (const Seen& s : seen) {
        const auto it = links.find(s.subscription_id);
        if (it == links.end()) continue;
        if (const auto event = repair_event(s.status, it->second.state))
            repairs.push_back(Repair{it->second.account_id, s.subscription_id, *event});
    }
    return repairs;
}

std::int64_t enforce_changed_since(std::int64_t now, std::optional<std::int64_t> window_s) noexcept {
    const std::int64_t w = window_s && *window_s >= 0 ? *window_s : kDefaultEnforceWindowS;
    return now - w;
}

}  // namespace azmp::reconcile
