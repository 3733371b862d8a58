// The plugin's health as operators see it: whether Azure is reachable from the last calls, and
// which alarms are raised. Pure: metrics keeps the counts and raises what this says.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace azmp::health {

// Consecutive calls that did not reach Azure before it counts as unreachable (one is a blip).
inline constexpr std::int64_t kUnreachableAfter = 3;
// Webhooks refused for their signature within the window that raise the alarm.
inline constexpr std::int64_t kSignatureFailures = 10;
inline constexpr std::int64_t kSignatureWindowS = 60;

enum class Reachability { Reachable, Unreachable, Unknown };

struct Facts {
    std::int64_t now = 0;
    std::int64_t consecutive_unreachable = 0;  // calls in a row that did not reach Azure
    std::optional<std::int64_t> last_reached_at, last_unreachable_at;
    // Webhooks refused for their signature, counted per second: {second, count}.
    std::vector<std::pair<std::int64_t, std::int64_t>> signature_failures;
};

struct Plan {
    Reachability state = Reachability::Unknown;
    std::int64_t signature_failures = 0;  // within the window
    std::int64_t forget_before = 0;       // seconds of failures before this left the window
    bool unreachable_alarm = false;
    bool signatures_alarm = false;
};

Plan plan_health(const Facts& facts) noexcept;

}  // namespace azmp::health
