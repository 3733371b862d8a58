// What a confirmed webhook operation does, and gating with the account's other payment method.
#include <gtest/gtest.h>

#include "azmp/rules.hpp"
#include "rules_test_util.hpp"

namespace azmp {
namespace {

using test::show;

WebhookOperation op(const char* action, std::optional<std::string> plan = std::nullopt,
                    std::optional<std::int64_t> q = std::nullopt) {
    return WebhookOperation{action, "sub-1", std::move(plan), q};
}

TEST(RulesPlanWebhook, EveryAction) {
    struct Row {
        const char* sentence;
        const char* hook_action;
        WebhookOperation op;
        bool plan_known;
        WebhookOutcome outcome;
        std::optional<LinkEvent> event;
        std::string effects;
    };
    const Row rows[] = {
        {"a plan the platform sells is accepted before Azure's 10 s run out", "ChangePlan", op("ChangePlan", "premium"),
         true, WebhookOutcome::Act, LinkEvent::ChangePlan, "[answer(success)]"},
        {"an unknown plan is refused", "ChangePlan", op("ChangePlan", "gold"), false, WebhookOutcome::Refused,
         std::nullopt, "[answer(failure)]"},
        {"a plan change without a plan is refused", "ChangePlan", op("ChangePlan"), true, WebhookOutcome::Refused,
         std::nullopt, "[answer(failure)]"},
        {"a positive quantity is accepted", "ChangeQuantity", op("ChangeQuantity", std::nullopt, 7), false,
         WebhookOutcome::Act, LinkEvent::ChangeQuantity, "[answer(success)]"},
        {"a zero quantity is refused", "ChangeQuantity", op("ChangeQuantity", std::nullopt, 0), false,
         WebhookOutcome::Refused, std::nullopt, "[answer(failure)]"},
        {"a renewal changes the link's term", "Renew", op("Renew"), false, WebhookOutcome::Act, LinkEvent::Renew, "[]"},
        {"a suspension suspends", "Suspend", op("Suspend"), false, WebhookOutcome::Act, LinkEvent::Suspend, "[]"},
        {"a reinstatement reinstates", "Reinstate", op("Reinstate"), false, WebhookOutcome::Act, LinkEvent::Reinstate,
         "[]"},
        {"a cancellation unlinks", "Unsubscribe", op("Unsubscribe"), false, WebhookOutcome::Act, LinkEvent::Unsubscribe,
         "[]"},
        {"an action we do not know is acknowledged and ignored", "Transfer", op("Transfer"), false,
         WebhookOutcome::Ignored, std::nullopt, "[]"},
        {"a webhook whose action Azure does not confirm is not acted on", "Unsubscribe", op("Suspend"), false,
         WebhookOutcome::Mismatch, std::nullopt, "[]"},
    };
    for (const auto& r : rows) {
        const WebhookPlan p = plan_webhook(r.hook_action, "sub-1", r.op, r.plan_known);
        EXPECT_EQ(p.outcome, r.outcome) << r.sentence;
        EXPECT_EQ(p.event, r.event) << r.sentence;
        EXPECT_EQ(show(p.effects), r.effects) << r.sentence;
    }
    EXPECT_EQ(plan_webhook("Suspend", "sub-2", op("Suspend"), false).outcome, WebhookOutcome::Mismatch)
        << "a webhook naming another subscription than its operation";
}

TEST(RulesGateCreate, PaysOtherwiseIsAskedOnlyWhenItMatters) {
    using S = LinkState;
    struct Row {
        const char* sentence;
        S state;
        bool trial;
        std::optional<bool> pays;
        GateVerdict verdict;
        std::optional<CreateRefusal> refusal;
    };
    const Row rows[] = {
        {"a linked account creates paid deployments", S::Linked, false, std::nullopt, GateVerdict::Allow, std::nullopt},
        {"a suspended account does not", S::Suspended, false, std::nullopt, GateVerdict::Refuse,
         CreateRefusal::SubscriptionSuspended},
        {"a cancelled account: ask how it pays", S::Unsubscribed, false, std::nullopt, GateVerdict::NeedPaymentMethod,
         std::nullopt},
        {"a cancelled account paying another way is not ours to gate", S::Unsubscribed, false, true, GateVerdict::Allow,
         std::nullopt},
        {"a cancelled account paying nothing is refused", S::Unsubscribed, false, false, GateVerdict::Refuse,
         CreateRefusal::SubscriptionCancelled},
        {"a trial is always allowed", S::Unsubscribed, true, std::nullopt, GateVerdict::Allow, std::nullopt},
    };
    for (const auto& r : rows) {
        const Gate g = gate_create(r.state, r.trial, r.pays);
        EXPECT_EQ(g.verdict, r.verdict) << r.sentence;
        EXPECT_EQ(g.refusal, r.refusal) << r.sentence;
    }
}

TEST(RulesGateDeployment, CancelledStopsUnlessPaidOtherwise) {
    const Deployment paid{false, std::nullopt, DeploymentState::Running, std::nullopt};
    const std::int64_t now = 1'750'000'000;
    auto g = gate_deployment(LinkState::Unsubscribed, paid, now, now, std::nullopt);
    EXPECT_TRUE(g.need_payment_method);
    g = gate_deployment(LinkState::Unsubscribed, paid, now, now, true);
    EXPECT_EQ(g.action.kind, ActionKind::Keep);
    g = gate_deployment(LinkState::Unsubscribed, paid, now, now, false);
    EXPECT_EQ(g.action.kind, ActionKind::Stop);
    g = gate_deployment(LinkState::Suspended, paid, now, std::nullopt, std::nullopt);
    EXPECT_FALSE(g.need_payment_method) << "a suspension is ours whatever else pays";
    EXPECT_EQ(g.action.kind, ActionKind::Stop);
    const Deployment stopped{false, std::nullopt, DeploymentState::Stopped, now - 10 * 86400};
    g = gate_deployment(LinkState::Unsubscribed, stopped, now, now - 86400, std::nullopt);
    EXPECT_EQ(g.action.kind, ActionKind::Delete);
    EXPECT_EQ(g.action.delete_at, now - 86400 + 3 * 86400) << "3 days after the cancellation";
}

}  // namespace
}  // namespace azmp
