// The plugin's health (health.hpp).
#include "azmp/health.hpp"

namespace azmp::health {

Plan plan_health(const Facts& f) noexcept {
    Plan p;
    if (f.consecutive_unreachable >= kUnreachableAfter) p.state = Reachability::Unreachable;
    else if (!f.last_reached_at && !f.last_unreachable_at) p.state = Reachability::Unknown;
    else if (!f.last_reached_at) p.state = Reachability::Unreachable;  // never reached at all
    else p.state = Reachability::Reachable;
    p.forget_before = f.now - kSignatureWindowS;
    for (const auto& [second, count] : f.signature_failures)
        if (second >= p.forget_before && count > 0) p.signature_failures += count;
    p.unreachable_alarm = p.state == Reachability::Unreachable;
    p.signatures_alarm = p.signature_failures >= kSignatureFailures;
    return p;
}

}  // namespace azmp::health
