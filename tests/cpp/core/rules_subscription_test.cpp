// Subscription events and their effects, deadlines and reconciliation, row by row as the product
// documentation says them ("Canceling the subscription will stop your running deployments except
// for the trial deployment ... The stopped deployment will be deleted after 3 days.").
#include <gtest/gtest.h>

#include "azmp/rules.hpp"
#include "rules_test_util.hpp"

namespace azmp {
namespace {

using test::show;
using S = LinkState;
using E = LinkEvent;

constexpr std::int64_t kNow = 1'750'000'000;
constexpr std::int64_t kDay = 24 * 3600;

DeploymentFact paid(const char* id) { return {id, {false, std::nullopt, DeploymentState::Running, std::nullopt}}; }
DeploymentFact paid_stopped(const char* id, std::optional<std::int64_t> at) {
    return {id, {false, std::nullopt, DeploymentState::Stopped, at}};
}
DeploymentFact trial(const char* id, std::optional<std::int64_t> ends) {
    return {id, {true, ends, DeploymentState::Running, std::nullopt}};
}

AccountFacts account(S state, std::vector<DeploymentFact> ds, bool marketplace_pays = true) {
    AccountFacts f;
    f.state = state;
    f.deployments = std::move(ds);
    f.marketplace_pays = marketplace_pays;
    return f;
}

std::string n(std::int64_t v) { return std::to_string(v); }

struct EventRow {
    const char* sentence;
    E event;
    AccountFacts facts;
    bool applies;
    S state;
    std::string effects;
    std::vector<std::string> suspended;
};

TEST(RulesPlanEvent, WhatEachEventDoes) {
    AccountFacts suspended_two = account(S::Suspended, {paid_stopped("p", kNow - 10), trial("t", kNow + kDay)});
    suspended_two.suspended = {"p"};
    const EventRow rows[] = {
        {"suspension stops the paid deployments, keeps trials, and tells the account", E::Suspend,
         account(S::Linked, {paid("p"), trial("t", kNow + kDay)}), true, S::Suspended,
         "[stop(p) notify(subscription_suspended)]", {"p"}},
        {"suspension leaves trials alone, even one that has ended (reinstatement must not restart it)", E::Suspend,
         account(S::Linked, {trial("t", kNow - 1)}), true, S::Suspended, "[notify(subscription_suspended)]", {}},
        {"reinstatement starts what the suspension stopped", E::Reinstate, suspended_two, true, S::Linked,
         "[start(p) notify(subscription_reinstated)]", {}},
        {"cancellation stops running deployments except the trial, which stops when it ends; stopped ones are "
         "deleted 3 days later; the marketplace no longer pays",
         E::Unsubscribe, account(S::Linked, {paid("p"), trial("t", kNow + 2 * kDay), paid_stopped("s", kNow - kDay)}),
         true, S::Unsubscribed,
         "[payment(none) stop(p) schedule(p,delete," + n(kNow + 3 * kDay) + ") schedule(t,stop," + n(kNow + 2 * kDay) +
             ") schedule(s,delete," + n(kNow + 3 * kDay) + ") notify(subscription_cancelled)]",
         {}},
        {"a deployment stopped long before the cancellation still gets its 3 days", E::Unsubscribe,
         account(S::Linked, {paid_stopped("s", kNow - 30 * kDay)}), true, S::Unsubscribed,
         "[payment(none) schedule(s,delete," + n(kNow + 3 * kDay) + ") notify(subscription_cancelled)]", {}},
        {"a cancelled account that pays another way keeps its payment method", E::Unsubscribe,
         account(S::Linked, {}, false), true, S::Unsubscribed, "[notify(subscription_cancelled)]", {}},
        {"cancellation of a suspended account: what the suspension stopped is deleted 3 days later", E::Unsubscribe,
         suspended_two, true, S::Unsubscribed,
         "[payment(none) schedule(p,delete," + n(kNow + 3 * kDay) + ") schedule(t,stop," + n(kNow + kDay) +
             ") notify(subscription_cancelled)]",
         {}},
        {"a plan change changes the link only", E::ChangePlan, account(S::Linked, {paid("p")}), true, S::Linked, "[]", {}},
        {"a renewal of a suspended link does not lift the suspension", E::Renew, suspended_two, true, S::Suspended, "[]",
         {"p"}},
        {"unsubscribed is final: a late reinstatement is ignored", E::Reinstate, account(S::Unsubscribed, {paid("p")}),
         false, S::Unsubscribed, "[]", {}},
        {"a redelivered suspension changes nothing", E::Suspend, suspended_two, false, S::Suspended, "[]", {"p"}},
    };
    for (const auto& r : rows) {
        const EventPlan p = plan_event(r.event, r.facts, kNow, std::nullopt);
        EXPECT_EQ(p.applies, r.applies) << r.sentence;
        EXPECT_EQ(p.state, r.state) << r.sentence;
        EXPECT_EQ(show(p.effects), r.effects) << r.sentence;
        EXPECT_EQ(p.suspended, r.suspended) << r.sentence;
    }
}

TEST(RulesPlanEvent, CancellationIsRecordedWithItsTime) {
    struct Row {
        const char* sentence;
        std::optional<std::int64_t> op_at_ms;
        std::int64_t cancelled_at;
    };
    const Row rows[] = {
        {"no operation behind it (reconciliation): now", std::nullopt, kNow},
        {"Azure's time of the operation, processed 40 minutes later", (kNow - 2400) * 1000 + 999, kNow - 2400},
        {"an operation timed ahead of our clock: now", (kNow + 60) * 1000, kNow},
    };
    for (const auto& r : rows)
        EXPECT_EQ(plan_event(E::Unsubscribe, account(S::Linked, {}), kNow, r.op_at_ms).cancelled_at, r.cancelled_at)
            << r.sentence;
}

TEST(RulesPlanEvent, CancelledStaysCancelledForLinking) {
    struct Row {
        const char* sentence;
        E event;
        S from;
        bool claim_cancelled;
    };
    const Row rows[] = {
        {"a cancellation marks the claim: the subscription is never linked again", E::Unsubscribe, S::Linked, true},
        {"so does a cancellation of a suspended link", E::Unsubscribe, S::Suspended, true},
        {"a suspension does not", E::Suspend, S::Linked, false},
        {"a reinstatement does not", E::Reinstate, S::Suspended, false},
        {"an event that does not apply changes nothing", E::Reinstate, S::Linked, false},
    };
    for (const auto& r : rows)
        EXPECT_EQ(plan_event(r.event, account(r.from, {}), kNow, std::nullopt).claim_cancelled, r.claim_cancelled)
            << r.sentence;
}

TEST(RulesPlanEvent, AnOlderOperationDoesNotUndoANewerOne) {
    struct Row {
        const char* sentence;
        std::optional<std::int64_t> last, op;
        bool applies, stale;
        std::optional<std::int64_t> last_after;
    };
    const Row rows[] = {
        {"a delayed Suspend older than the applied Reinstate is stale", 2000, 1000, false, true, 2000},
        {"a newer Suspend applies and becomes the latest", 1000, 2000, true, false, 2000},
        {"the same time is not older", 1000, 1000, true, false, 1000},
        {"no time known for the operation: applies, the latest stays", 1000, std::nullopt, true, false, 1000},
        {"no operation applied yet: applies", std::nullopt, 1000, true, false, 1000},
    };
    for (const auto& r : rows) {
        AccountFacts f = account(S::Linked, {paid("p")});
        f.last_op_at = r.last;
        const EventPlan p = plan_event(E::Suspend, f, kNow, r.op);
        EXPECT_EQ(p.applies, r.applies) << r.sentence;
        EXPECT_EQ(p.stale, r.stale) << r.sentence;
        EXPECT_EQ(p.last_op_at, r.last_after) << r.sentence;
        if (r.stale) {
            EXPECT_EQ(p.state, S::Linked) << r.sentence;
            EXPECT_TRUE(p.effects.empty()) << r.sentence;
        }
    }
}

TEST(RulesPlanEnforce, CatchingUpIsTheSameRuleAsTheEvent) {
    AccountFacts cancelled = account(S::Unsubscribed, {paid("p"), trial("t", kNow + kDay)});
    cancelled.cancelled_at = kNow - kDay;
    AccountFacts cancelled_trial_over = account(S::Unsubscribed, {trial("t", kNow - 60)}, false);
    cancelled_trial_over.cancelled_at = kNow - kDay;
    struct Row {
        const char* sentence;
        AccountFacts facts;
        std::string effects;
    };
    const Row rows[] = {
        {"a suspended account whose paid deployment still runs: stopped", account(S::Suspended, {paid("p")}),
         "[stop(p)]"},
        {"a cancelled account: deletion 3 days after the stop, the trial's stop at its end", cancelled,
         "[payment(none) stop(p) schedule(p,delete," + n(kNow + 3 * kDay) + ") schedule(t,stop," + n(kNow + kDay) + ")]"},
        {"a linked account: nothing to do", account(S::Linked, {paid("p")}), "[]"},
        {"a cancelled account whose trial ended but runs: left to its stop deadline (again if lost), never "
         "stopped by both",
         cancelled_trial_over, "[schedule(t,stop," + n(kNow - 60) + ")]"},
    };
    for (const auto& r : rows) EXPECT_EQ(show(plan_enforce(r.facts, kNow).effects), r.effects) << r.sentence;
}

TEST(RulesDeletionAt, ThreeDaysAfterTheStopNeverSoonerThanAfterTheCancellation) {
    struct Row {
        const char* sentence;
        std::optional<std::int64_t> stopped, cancelled;
        std::int64_t expected;
    };
    const Row rows[] = {
        {"stopped by the cancellation", kNow, kNow, kNow + 3 * kDay},
        {"stopped before the cancellation", kNow - 10 * kDay, kNow, kNow + 3 * kDay},
        {"a trial stopped at its end after the cancellation", kNow + 2 * kDay, kNow, kNow + 5 * kDay},
        {"stop time unknown: from the cancellation", std::nullopt, kNow - kDay, kNow + 2 * kDay},
        {"nothing known: from now", std::nullopt, std::nullopt, kNow + 3 * kDay},
        {"saturates", INT64_MAX - 1, std::nullopt, INT64_MAX},
    };
    for (const auto& r : rows) EXPECT_EQ(deletion_at(r.stopped, r.cancelled, kNow), r.expected) << r.sentence;
}

TEST(RulesPlanDeadline, DueDeadlines) {
    struct Row {
        const char* sentence;
        DeadlineKind kind;
        S state;
        std::string effects;
    };
    const Row rows[] = {
        {"a trial of a cancelled account stops when its trial ends, and is deleted 3 days later", DeadlineKind::Stop,
         S::Unsubscribed, "[stop(d) schedule(d,delete," + n(kNow + 3 * kDay) + ")]"},
        {"a stopped deployment is deleted on its day", DeadlineKind::Delete, S::Unsubscribed, "[delete(d)]"},
        {"linked again since: the deletion is called off", DeadlineKind::Delete, S::Linked, "[]"},
        {"linked again since: the trial's stop is called off", DeadlineKind::Stop, S::Linked, "[]"},
    };
    for (const auto& r : rows)
        EXPECT_EQ(show(plan_deadline(r.kind, "d", r.state, kNow - kDay, kNow)), r.effects) << r.sentence;
}

TEST(RulesRepair, AzureIsTheTruth) {
    struct Row {
        const char* sentence;
        const char* azure;
        S local;
        std::optional<E> event;
    };
    const Row rows[] = {
        {"a lost cancellation is applied", "Unsubscribed", S::Linked, E::Unsubscribe},
        {"a lost cancellation of a suspended link", "Unsubscribed", S::Suspended, E::Unsubscribe},
        {"a lost suspension", "Suspended", S::Linked, E::Suspend},
        {"a lost reinstatement", " Subscribed ", S::Suspended, E::Reinstate},
        {"agreeing: nothing", "Subscribed", S::Linked, std::nullopt},
        {"cancelled on both sides: nothing", "Unsubscribed", S::Unsubscribed, std::nullopt},
        {"Azure never revives a cancelled link", "Subscribed", S::Unsubscribed, std::nullopt},
    };
    for (const auto& r : rows) EXPECT_EQ(repair_event(r.azure, r.local), r.event) << r.sentence;
}

}  // namespace
}  // namespace azmp
