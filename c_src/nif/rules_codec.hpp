// The product rules' types as terms (azmp/rules.hpp): the atoms of the core's enums and the
// effects' shapes, shared by the rules' and the workflow steps' glue.
#pragma once

#include <optional>
#include <vector>
#include <string_view>

#include "args.hpp"
#include "azmp/azure_fields.hpp"
#include "azmp/rules.hpp"
#include "codec.hpp"
#include "terms.hpp"

namespace azmp::nif {
// Lists the rules take (deployments of one account, suspended ids) stay far below this; a longer
// one is refused, which keeps every call short.
inline constexpr unsigned kMaxListLen = 4096;

// A binary of at most kMaxIdBytes: ids, Azure statuses, webhook actions. Valid during the call.
struct ShortBinary {
    std::string_view value;
    operator std::string_view() const { return value; }
};

// boolean() | unknown
struct MaybeBool {
    std::optional<bool> value;
};

template <>
struct Codec<ShortBinary> {
    static std::optional<ShortBinary> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
        auto s = nif::decode<std::string_view>(env, t);
        if (!s || s->size() > kMaxIdBytes) return std::nullopt;
        return ShortBinary{*s};
    }
};

template <>
struct Codec<MaybeBool> {
    static std::optional<MaybeBool> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
        if (enif_is_identical(t, atoms::unknown)) return MaybeBool{};
        auto b = nif::decode<bool>(env, t);
        if (!b) return std::nullopt;
        return MaybeBool{*b};
    }
};

// The atoms of the core's enums: the names azmp/rules.hpp and azmp/decisions.hpp give them
// (link_state_name, refusal_name, ...).
template <>
struct EnumAtoms<LinkEvent> {
    static constexpr EnumAtom<LinkEvent> table[] = {
        {&atoms::activated, LinkEvent::Activated},     {&atoms::link_failed, LinkEvent::LinkFailed},
        {&atoms::change_plan, LinkEvent::ChangePlan},  {&atoms::change_quantity, LinkEvent::ChangeQuantity},
        {&atoms::renew, LinkEvent::Renew},             {&atoms::suspend, LinkEvent::Suspend},
        {&atoms::reinstate, LinkEvent::Reinstate},     {&atoms::unsubscribe, LinkEvent::Unsubscribe}};
};
template <>
struct EnumAtoms<LinkRefusal> {
    static constexpr EnumAtom<LinkRefusal> table[] = {
        {&atoms::credit_card_on_file, LinkRefusal::CreditCardOnFile},
        {&atoms::uses_available_credits, LinkRefusal::UsesAvailableCredits},
        {&atoms::already_linked_to_marketplace, LinkRefusal::AlreadyLinkedToMarketplace},
        {&atoms::subscription_linked_to_other_account, LinkRefusal::SubscriptionLinkedToOtherAccount},
        {&atoms::subscription_unsubscribed, LinkRefusal::SubscriptionUnsubscribed},
        {&atoms::invalid_token, LinkRefusal::InvalidToken}};
};
template <>
struct EnumAtoms<LinkStep> {
    static constexpr EnumAtom<LinkStep> table[] = {{&atoms::resolve, LinkStep::Resolve},
                                                   {&atoms::activate, LinkStep::Activate}};
};
template <>
struct EnumAtoms<DeadlineKind> {
    static constexpr EnumAtom<DeadlineKind> table[] = {{&atoms::stop, DeadlineKind::Stop},
                                                       {&atoms::delete_, DeadlineKind::Delete}};
};
template <>
struct EnumAtoms<DeploymentState> {
    static constexpr EnumAtom<DeploymentState> table[] = {{&atoms::running, DeploymentState::Running},
                                                          {&atoms::stopped, DeploymentState::Stopped}};
};
template <>
struct EnumAtoms<PaymentMethod> {
    static constexpr EnumAtom<PaymentMethod> table[] = {
        {&atoms::azure_marketplace_subscription, PaymentMethod::AzureMarketplaceSubscription},
        {&atoms::none, PaymentMethod::None}};
};
template <>
struct EnumAtoms<NoticeKind> {
    static constexpr EnumAtom<NoticeKind> table[] = {
        {&atoms::linked, NoticeKind::Linked},
        {&atoms::link_failed, NoticeKind::LinkFailed},
        {&atoms::subscription_suspended, NoticeKind::SubscriptionSuspended},
        {&atoms::subscription_reinstated, NoticeKind::SubscriptionReinstated},
        {&atoms::subscription_cancelled, NoticeKind::SubscriptionCancelled}};
};
template <>
struct EnumAtoms<CreateRefusal> {
    static constexpr EnumAtom<CreateRefusal> table[] = {
        {&atoms::link_pending, CreateRefusal::LinkPending},
        {&atoms::subscription_suspended, CreateRefusal::SubscriptionSuspended},
        {&atoms::subscription_cancelled, CreateRefusal::SubscriptionCancelled}};
};
template <>
struct EnumAtoms<StopReason> {
    static constexpr EnumAtom<StopReason> table[] = {{&atoms::suspended, StopReason::Suspended},
                                                     {&atoms::unsubscribed, StopReason::Unsubscribed},
                                                     {&atoms::trial_ended, StopReason::TrialEnded}};
};
template <>
struct EnumAtoms<ActivationVerdict> {
    static constexpr EnumAtom<ActivationVerdict> table[] = {
        {&atoms::activate, ActivationVerdict::Activate},
        {&atoms::already_active, ActivationVerdict::AlreadyActive},
        {&atoms::refuse, ActivationVerdict::Refuse}};
};
template <>
struct EnumAtoms<WebhookOutcome> {
    static constexpr EnumAtom<WebhookOutcome> table[] = {
        {&atoms::mismatch, WebhookOutcome::Mismatch}, {&atoms::act, WebhookOutcome::Act},
        {&atoms::refused, WebhookOutcome::Refused},   {&atoms::ignored, WebhookOutcome::Ignored}};
};

// Effects are lists of:
//   activate | {answer_operation, success | failure} | {set_payment_method, Method}
//   | {notify, #{kind := Kind, reason => Reason, names_subscription := boolean()}} | {stop_deployment | start_deployment | delete_deployment, Id}
//   | {schedule_deadline, Id, stop | delete, At} | cancel_deadlines
template <>
struct Codec<Effect> {
    static ERL_NIF_TERM encode(ErlNifEnv* env, const Effect& e) {
        auto with_id = [&](ERL_NIF_TERM tag) { return enif_make_tuple2(env, tag, nif::encode(env, e.deployment_id)); };
        switch (e.kind) {
            case EffectKind::Activate: return atoms::activate;
            case EffectKind::AnswerOperation:
                return enif_make_tuple2(env, atoms::answer_operation, e.success ? atoms::success : atoms::failure);
            case EffectKind::SetPaymentMethod:
                return enif_make_tuple2(env, atoms::set_payment_method, nif::encode(env, e.method));
            case EffectKind::Notify: {
                const ERL_NIF_TERM kind = nif::encode(env, e.notice);
                const ERL_NIF_TERM names = nif::encode(env, e.names_subscription);
                const ERL_NIF_TERM notice =
                    e.reason ? make_map<3>(env, {{{atoms::kind, kind}, {atoms::reason, nif::encode(env, *e.reason)},
                                                  {atoms::names_subscription, names}}})
                             : make_map<2>(env, {{{atoms::kind, kind}, {atoms::names_subscription, names}}});
                return enif_make_tuple2(env, atoms::notify, notice);
            }
            case EffectKind::StopDeployment: return with_id(atoms::stop_deployment);
            case EffectKind::StartDeployment: return with_id(atoms::start_deployment);
            case EffectKind::DeleteDeployment: return with_id(atoms::delete_deployment);
            case EffectKind::ScheduleDeadline:
                return enif_make_tuple4(env, atoms::schedule_deadline, nif::encode(env, e.deployment_id),
                                        nif::encode(env, e.deadline), nif::encode(env, e.at));
            case EffectKind::CancelDeadlines: return atoms::cancel_deadlines;
        }
        return atoms::unknown;
    }
};

// [encode(Item), ...]
template <typename T>
ERL_NIF_TERM encode_list(ErlNifEnv* env, const std::vector<T>& items) {
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (auto it = items.rbegin(); it != items.rend(); ++it) list = enif_make_list_cell(env, encode(env, *it), list);
    return list;
}

// A subscription's term as the link keeps it, in Azure's spelling (the store's format since the
// first version): #{<<"startDate">>, <<"endDate">>, <<"termUnit">>} | undefined.
inline ERL_NIF_TERM encode_term_fields(ErlNifEnv* env, const std::optional<TermFields>& t) {
    if (!t) return atoms::undefined;
    return make_map<3>(env, {{{encode(env, std::string_view("startDate")), encode(env, std::string_view(t->start_date))},
                              {encode(env, std::string_view("endDate")), encode(env, std::string_view(t->end_date))},
                              {encode(env, std::string_view("termUnit")), encode(env, std::string_view(t->term_unit))}}});
}

// A term as the link keeps it, read back: `shaped` false when `t` is not such a map; `term` empty
// too when its dates do not read as a term (read_term's rule).
struct StoredTerm {
    bool shaped = false;
    std::optional<TermFields> term;
};
inline StoredTerm decode_term_fields(ErlNifEnv* env, ERL_NIF_TERM t) {
    JsonBudget budget{16, 1024};  // three short dates and a unit
    const auto v = enif_is_map(env, t) ? term_to_json(env, t, budget) : std::nullopt;
    if (!v) return StoredTerm{};
    return StoredTerm{true, read_term(&*v)};
}

}  // namespace azmp::nif
