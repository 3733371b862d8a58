// The metering enums' atoms and the ledger's hours as terms, shared by the metering entry points
// (one table per enum).
#pragma once

#include <limits>
#include <optional>
#include <string>

#include "args.hpp"
#include "azmp/metering.hpp"
#include "azmp/metering_answer.hpp"
#include "codec.hpp"

namespace azmp::nif {

template <>
struct EnumAtoms<metering::RecordRefusal> {
    using R = metering::RecordRefusal;
    static constexpr EnumAtom<R> table[] = {
        {&atoms::unknown_dimension, R::UnknownDimension},
        {&atoms::bad_quantity, R::BadQuantity},
        {&atoms::not_linked, R::NotLinked},
        {&atoms::after_cancellation, R::AfterCancellation},
        {&atoms::hour_closed, R::HourClosed},
        {&atoms::too_late, R::TooLate},
        {&atoms::in_future, R::InFuture},
        {&atoms::before_subscription, R::BeforeSubscription},
        {&atoms::hour_total_too_large, R::HourTotalTooLarge}};
};

template <>
struct EnumAtoms<metering::ItemOutcome> {
    using O = metering::ItemOutcome;
    static constexpr EnumAtom<O> table[] = {
        {&atoms::done, O::Done},         {&atoms::mismatch, O::Mismatch}, {&atoms::carried, O::Carried},
        {&atoms::held, O::Held},         {&atoms::dropped, O::Dropped},   {&atoms::rejected, O::Rejected},
        {&atoms::retry, O::Retry},       {&atoms::lookup, O::Lookup},     {&atoms::check, O::Check}};
};

template <>
struct EnumAtoms<metering::LedgerStatus> {
    using L = metering::LedgerStatus;
    static constexpr EnumAtom<L> table[] = {
        {&atoms::open, L::Open},       {&atoms::pending, L::Pending}, {&atoms::submitting, L::Submitting},
        {&atoms::held, L::Held},       {&atoms::lookup, L::Lookup},   {&atoms::check, L::Check},
        {&atoms::done, L::Done},       {&atoms::mismatch, L::Mismatch}, {&atoms::carried, L::Carried},
        {&atoms::dropped, L::Dropped}, {&atoms::rejected, L::Rejected}};
};

// An hour of the ledger as emqx_azure_marketplace_store:usage_map/1 gives it (other keys ignored).
template <>
struct Codec<metering::LedgerHour> {
    static std::optional<metering::LedgerHour> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
        MapFields f(env, t, "ledger");
        metering::LedgerHour h;
        std::optional<IntIn<0, std::numeric_limits<std::int64_t>::max()>> azure;
        f.require(atoms::subscription_id, h.resource_id);
        f.require(atoms::dimension, h.dimension);
        f.require(atoms::hour, h.hour);
        f.require(atoms::status, h.status);
        f.require<IntIn<0, std::numeric_limits<std::int64_t>::max()>>(atoms::reported, h.reported);
        f.get(atoms::azure_quantity, azure);
        f.get(atoms::outcome_unknown, h.outcome_unknown);
        if (f.error()) return std::nullopt;
        if (azure) h.azure_quantity = azure->value;
        return h;
    }
};

}  // namespace azmp::nif
