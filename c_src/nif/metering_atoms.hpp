// The metering enums' atoms, shared by the metering entry points (one table per enum).
#pragma once

#include "azmp/metering.hpp"
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

}  // namespace azmp::nif
