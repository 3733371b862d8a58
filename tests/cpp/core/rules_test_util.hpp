// Shared by the rules' table tests: effects printed the way a reader checks them.
#pragma once

#include <string>

#include "azmp/rules.hpp"

namespace azmp::test {

inline std::string show(const Effect& e) {
    switch (e.kind) {
        case EffectKind::Activate: return "activate";
        case EffectKind::AnswerOperation: return e.success ? "answer(success)" : "answer(failure)";
        case EffectKind::SetPaymentMethod: return "payment(" + std::string(payment_method_name(e.method)) + ")";
        case EffectKind::Notify:
            return "notify(" + std::string(notice_kind_name(e.notice)) +
                   (e.reason ? "," + std::string(refusal_name(*e.reason)) : "") + ")";
        case EffectKind::StopDeployment: return "stop(" + e.deployment_id + ")";
        case EffectKind::StartDeployment: return "start(" + e.deployment_id + ")";
        case EffectKind::DeleteDeployment: return "delete(" + e.deployment_id + ")";
        case EffectKind::ScheduleDeadline:
            return "schedule(" + e.deployment_id + "," + std::string(deadline_kind_name(e.deadline)) + "," +
                   std::to_string(e.at) + ")";
        case EffectKind::CancelDeadlines: return "cancel_deadlines";
    }
    return "?";
}

inline std::string show(const Effects& es) {
    std::string s = "[";
    for (const auto& e : es) s += (s.size() > 1 ? " " : "") + show(e);
    return s + "]";
}

}  // namespace azmp::test
