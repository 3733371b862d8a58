#include "azmp/decisions.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace azmp {
namespace {

using S = LinkState;

constexpr S kStates[] = {S::None, S::Pending, S::Linked, S::Suspended, S::Unsubscribed};
constexpr std::int64_t kNow = 1'750'000'000;
constexpr std::int64_t kDay = 24 * 3600;

std::string show(const DeploymentAction& a) {
    switch (a.kind) {
        case ActionKind::Keep: return "keep";
        case ActionKind::Stop:
            return "stop(" + (a.stop_reason ? std::string(stop_reason_name(*a.stop_reason)) : "?") + ")";
        case ActionKind::Delete: return "delete(" + std::to_string(a.delete_at) + ")";
    }
    return "?";
}

void expect_keep(const DeploymentAction& a) { EXPECT_EQ(a.kind, ActionKind::Keep) << show(a); }
void expect_stop(const DeploymentAction& a, StopReason r) {
    EXPECT_EQ(a.kind, ActionKind::Stop) << show(a);
    EXPECT_EQ(a.stop_reason, r) << show(a);
}
void expect_delete(const DeploymentAction& a, std::int64_t at) {
    EXPECT_EQ(a.kind, ActionKind::Delete) << show(a);
    EXPECT_FALSE(a.stop_reason.has_value());
    EXPECT_EQ(a.delete_at, at) << show(a);
}

Deployment paid_running() { return {false, std::nullopt, DeploymentState::Running, std::nullopt}; }
Deployment paid_stopped(std::optional<std::int64_t> at) { return {false, std::nullopt, DeploymentState::Stopped, at}; }
Deployment trial_running(std::optional<std::int64_t> ends) { return {true, ends, DeploymentState::Running, std::nullopt}; }
Deployment trial_stopped(std::optional<std::int64_t> ends, std::optional<std::int64_t> at) {
    return {true, ends, DeploymentState::Stopped, at};
}

// ---------------------------------------------------------------------------------------------
// decide_create

TEST(GatingCreate, EveryStateTrialAndPaid) {
    struct Row {
        S state;
        std::optional<CreateRefusal> paid;
    };
    const Row rows[] = {
        {S::None, std::nullopt},
        {S::Pending, CreateRefusal::LinkPending},
        {S::Linked, std::nullopt},
        {S::Suspended, CreateRefusal::SubscriptionSuspended},
        {S::Unsubscribed, CreateRefusal::SubscriptionCancelled},
    };
    for (const auto& r : rows) {
        EXPECT_EQ(decide_create(r.state, false), r.paid) << link_state_name(r.state) << " paid";
        EXPECT_EQ(decide_create(r.state, true), std::nullopt) << link_state_name(r.state) << " trial";
    }
}

TEST(GatingCreate, RefusalNames) {
    EXPECT_EQ(create_refusal_name(CreateRefusal::LinkPending), "link_pending");
    EXPECT_EQ(create_refusal_name(CreateRefusal::SubscriptionSuspended), "subscription_suspended");
    EXPECT_EQ(create_refusal_name(CreateRefusal::SubscriptionCancelled), "subscription_cancelled");
    EXPECT_EQ(create_refusal_name(static_cast<CreateRefusal>(9)), "unknown");
}

TEST(GatingCreate, OutOfRangeStateRefusesPaid) {
    EXPECT_TRUE(decide_create(static_cast<S>(42), false).has_value());
    EXPECT_FALSE(decide_create(static_cast<S>(42), true).has_value());
}

// ---------------------------------------------------------------------------------------------
// decide_deployment: every state x trial/paid x running/stopped (trial still on)

TEST(GatingDeployment, EveryStateTrialPaidRunningStopped) {
    const std::int64_t stopped_at = kNow - kDay;
    const std::int64_t trial_end = kNow + kDay;
    for (S s : kStates) {
        SCOPED_TRACE(std::string(link_state_name(s)));
        auto pr = decide_deployment(s, paid_running(), kNow);
        auto ps = decide_deployment(s, paid_stopped(stopped_at), kNow);
        auto tr = decide_deployment(s, trial_running(trial_end), kNow);
        auto ts = decide_deployment(s, trial_stopped(trial_end, stopped_at), kNow);
        switch (s) {
            case S::None:
            case S::Pending:
            case S::Linked:
                expect_keep(pr);
                expect_keep(ps);
                expect_keep(tr);
                expect_keep(ts);
                break;
            case S::Suspended:
                expect_stop(pr, StopReason::Suspended);
                expect_keep(ps);  // kept for reinstatement, never deleted
                expect_keep(tr);
                expect_keep(ts);
                break;
            case S::Unsubscribed:
                expect_stop(pr, StopReason::Unsubscribed);
                expect_delete(ps, stopped_at + 3 * kDay);
                expect_keep(tr);
                expect_delete(ts, stopped_at + 3 * kDay);
                break;
        }
    }
}

TEST(GatingDeployment, EndedTrialInEveryState) {
    const Deployment ended = trial_running(kNow - 1);
    expect_keep(decide_deployment(S::None, ended, kNow));
    expect_keep(decide_deployment(S::Pending, ended, kNow));
    expect_keep(decide_deployment(S::Linked, ended, kNow));
    expect_stop(decide_deployment(S::Suspended, ended, kNow), StopReason::TrialEnded);
    expect_stop(decide_deployment(S::Unsubscribed, ended, kNow), StopReason::TrialEnded);
}

TEST(GatingDeployment, TrialEndBoundary) {
    const std::int64_t end = kNow;
    for (S s : {S::Suspended, S::Unsubscribed}) {
        SCOPED_TRACE(std::string(link_state_name(s)));
        expect_keep(decide_deployment(s, trial_running(end), end - 1));
        expect_stop(decide_deployment(s, trial_running(end), end), StopReason::TrialEnded);
        expect_stop(decide_deployment(s, trial_running(end), end + 1), StopReason::TrialEnded);
    }
}

TEST(GatingDeployment, TrialWithoutEndCountsAsEnded) {
    expect_stop(decide_deployment(S::Unsubscribed, trial_running(std::nullopt), kNow), StopReason::TrialEnded);
    expect_stop(decide_deployment(S::Suspended, trial_running(std::nullopt), kNow), StopReason::TrialEnded);
    expect_keep(decide_deployment(S::Linked, trial_running(std::nullopt), kNow));
}

TEST(GatingDeployment, PaidDeploymentIgnoresTrialEnd) {
    // trial_ends_at on a paid deployment is meaningless: it stops regardless.
    Deployment d = paid_running();
    d.trial_ends_at = kNow + 10 * kDay;
    expect_stop(decide_deployment(S::Unsubscribed, d, kNow), StopReason::Unsubscribed);
    expect_stop(decide_deployment(S::Suspended, d, kNow), StopReason::Suspended);
}

TEST(GatingDeployment, DeletionThreeDaysAfterStop) {
    EXPECT_EQ(kDeleteAfterStopS, 259200);
    const std::int64_t stopped_at = kNow;
    // Whatever `now` is, the deadline is stopped_at + 3 days exactly (future: schedule; past: due).
    for (std::int64_t now : {stopped_at, stopped_at + 3 * kDay - 1, stopped_at + 3 * kDay, stopped_at + 3 * kDay + 1,
                             stopped_at + 30 * kDay}) {
        auto a = decide_deployment(S::Unsubscribed, paid_stopped(stopped_at), now);
        expect_delete(a, stopped_at + 3 * kDay);
        EXPECT_EQ(a.delete_at > now, now < stopped_at + 3 * kDay) << now;
    }
}

TEST(GatingDeployment, StoppedWithoutStoppedAtDeletesThreeDaysFromNow) {
    expect_delete(decide_deployment(S::Unsubscribed, paid_stopped(std::nullopt), kNow), kNow + 3 * kDay);
    expect_delete(decide_deployment(S::Unsubscribed, trial_stopped(kNow + kDay, std::nullopt), kNow),
                  kNow + 3 * kDay);
    expect_keep(decide_deployment(S::Suspended, paid_stopped(std::nullopt), kNow));
}

TEST(GatingDeployment, DeleteDeadlineSaturates) {
    constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
    expect_delete(decide_deployment(S::Unsubscribed, paid_stopped(kMax - 1), kNow), kMax);
    expect_delete(decide_deployment(S::Unsubscribed, paid_stopped(std::nullopt), kMax), kMax);
    expect_delete(decide_deployment(S::Unsubscribed, paid_stopped(-5), kNow), -5 + 3 * kDay);
}

TEST(GatingDeployment, StopReasonNames) {
    EXPECT_EQ(stop_reason_name(StopReason::Suspended), "suspended");
    EXPECT_EQ(stop_reason_name(StopReason::Unsubscribed), "unsubscribed");
    EXPECT_EQ(stop_reason_name(StopReason::TrialEnded), "trial_ended");
    EXPECT_EQ(stop_reason_name(static_cast<StopReason>(9)), "unknown");
}

TEST(GatingDeployment, UnsubscriptionStory) {
    // Cancelled at T: the paid deployment stops, the trial runs to its end then stops; each stopped
    // deployment is deleted 3 days after it stopped.
    const std::int64_t t = kNow;
    const std::int64_t trial_end = t + 5 * kDay;
    expect_stop(decide_deployment(S::Unsubscribed, paid_running(), t), StopReason::Unsubscribed);
    expect_delete(decide_deployment(S::Unsubscribed, paid_stopped(t), t + 1), t + 3 * kDay);
    expect_keep(decide_deployment(S::Unsubscribed, trial_running(trial_end), t + 4 * kDay));
    expect_stop(decide_deployment(S::Unsubscribed, trial_running(trial_end), trial_end), StopReason::TrialEnded);
    expect_delete(decide_deployment(S::Unsubscribed, trial_stopped(trial_end, trial_end), trial_end + 1),
                  trial_end + 3 * kDay);
}

}  // namespace
}  // namespace azmp
