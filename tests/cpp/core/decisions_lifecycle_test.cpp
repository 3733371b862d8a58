#include "azmp/decisions.hpp"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <utility>

namespace azmp {
namespace {

using S = LinkState;
using E = LinkEvent;

constexpr S kStates[] = {S::None, S::Pending, S::Linked, S::Suspended, S::Unsubscribed};
constexpr E kEvents[] = {E::Activated, E::LinkFailed, E::ChangePlan, E::ChangeQuantity,
                         E::Renew,     E::Suspend,    E::Reinstate,  E::Unsubscribe};

// The whole transition table; any (state, event) pair not listed is ignored.
const std::map<std::pair<S, E>, S>& transitions() {
    static const std::map<std::pair<S, E>, S> t = {
        {{S::Pending, E::Activated}, S::Linked},
        {{S::Pending, E::LinkFailed}, S::None},
        {{S::Pending, E::Unsubscribe}, S::Unsubscribed},
        {{S::Linked, E::ChangePlan}, S::Linked},
        {{S::Linked, E::ChangeQuantity}, S::Linked},
        {{S::Linked, E::Renew}, S::Linked},
        {{S::Linked, E::Suspend}, S::Suspended},
        {{S::Linked, E::Unsubscribe}, S::Unsubscribed},
        {{S::Suspended, E::Reinstate}, S::Linked},
        {{S::Suspended, E::Renew}, S::Suspended},
        {{S::Suspended, E::Unsubscribe}, S::Unsubscribed},
    };
    return t;
}

std::string show(std::optional<S> s) { return s ? std::string(link_state_name(*s)) : "ignored"; }

TEST(LinkLifecycle, FullTransitionTable) {
    int applied = 0;
    int ignored = 0;
    for (S s : kStates) {
        for (E e : kEvents) {
            auto it = transitions().find({s, e});
            std::optional<S> want = it == transitions().end() ? std::nullopt : std::optional<S>(it->second);
            auto got = next_link_state(s, e);
            EXPECT_EQ(got, want) << link_state_name(s) << " --" << link_event_name(e) << "--> " << show(got)
                                 << ", expected " << show(want);
            (want ? applied : ignored)++;
        }
    }
    EXPECT_EQ(applied, 11);
    EXPECT_EQ(ignored, 5 * 8 - 11);
}

TEST(LinkLifecycle, UnsubscribedIsFinal) {
    for (E e : kEvents) EXPECT_FALSE(next_link_state(S::Unsubscribed, e).has_value()) << link_event_name(e);
}

TEST(LinkLifecycle, NoneIgnoresEveryEvent) {
    // None -> Pending is Erlang starting a link, never an event; Activated cannot link from None.
    for (E e : kEvents) EXPECT_FALSE(next_link_state(S::None, e).has_value()) << link_event_name(e);
}

TEST(LinkLifecycle, RenewDoesNotLiftSuspension) { EXPECT_EQ(next_link_state(S::Suspended, E::Renew), S::Suspended); }

TEST(LinkLifecycle, RedeliveredEventsAreIdempotentOrIgnored) {
    // Applying an event twice never moves further than applying it once.
    for (S s : kStates) {
        for (E e : kEvents) {
            auto once = next_link_state(s, e);
            if (!once) continue;
            auto twice = next_link_state(*once, e);
            EXPECT_TRUE(!twice || *twice == *once) << link_state_name(s) << " " << link_event_name(e);
        }
    }
}

TEST(LinkLifecycle, StoryFromPendingToUnsubscribed) {
    S s = S::Pending;
    for (E e : {E::Activated, E::ChangePlan, E::ChangeQuantity, E::Suspend, E::Renew, E::Reinstate, E::Renew,
                E::Unsubscribe}) {
        auto n = next_link_state(s, e);
        ASSERT_TRUE(n.has_value()) << link_state_name(s) << " " << link_event_name(e);
        s = *n;
    }
    EXPECT_EQ(s, S::Unsubscribed);
}

TEST(LinkLifecycle, OutOfRangeValuesAreIgnored) {
    EXPECT_FALSE(next_link_state(static_cast<S>(42), E::Activated).has_value());
    EXPECT_FALSE(next_link_state(S::Linked, static_cast<E>(42)).has_value());
}

TEST(LinkLifecycleNames, StateNames) {
    EXPECT_EQ(link_state_name(S::None), "none");
    EXPECT_EQ(link_state_name(S::Pending), "pending");
    EXPECT_EQ(link_state_name(S::Linked), "linked");
    EXPECT_EQ(link_state_name(S::Suspended), "suspended");
    EXPECT_EQ(link_state_name(S::Unsubscribed), "unsubscribed");
    EXPECT_EQ(link_state_name(static_cast<S>(42)), "unknown");
}

TEST(LinkLifecycleNames, EventNames) {
    EXPECT_EQ(link_event_name(E::Activated), "activated");
    EXPECT_EQ(link_event_name(E::LinkFailed), "link_failed");
    EXPECT_EQ(link_event_name(E::ChangePlan), "change_plan");
    EXPECT_EQ(link_event_name(E::ChangeQuantity), "change_quantity");
    EXPECT_EQ(link_event_name(E::Renew), "renew");
    EXPECT_EQ(link_event_name(E::Suspend), "suspend");
    EXPECT_EQ(link_event_name(E::Reinstate), "reinstate");
    EXPECT_EQ(link_event_name(E::Unsubscribe), "unsubscribe");
    EXPECT_EQ(link_event_name(static_cast<E>(42)), "unknown");
}

TEST(LinkLifecycleNames, RoundTrip) {
    for (S s : kStates) EXPECT_EQ(link_state_from_name(link_state_name(s)), s);
    for (E e : kEvents) EXPECT_EQ(link_event_from_name(link_event_name(e)), e);
    EXPECT_FALSE(link_state_from_name("unknown").has_value());
    EXPECT_FALSE(link_state_from_name("Linked").has_value());
    EXPECT_FALSE(link_state_from_name("").has_value());
    EXPECT_FALSE(link_event_from_name("unknown").has_value());
    EXPECT_FALSE(link_event_from_name("ChangePlan").has_value());
    EXPECT_FALSE(link_event_from_name("").has_value());
}

}  // namespace
}  // namespace azmp
