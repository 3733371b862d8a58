// What link state follows an Azure event. Linking itself (None -> Pending) is started by Erlang, not
// by an event; everything else is this table. Events that do not apply are ignored (nothing), since
// webhooks are redelivered and may arrive out of order.
#include "azmp/decisions.hpp"

#include <array>
#include <utility>

namespace azmp {

namespace {

constexpr std::array<std::pair<LinkState, std::string_view>, 5> kStateNames{{
    {LinkState::None, "none"},
    {LinkState::Pending, "pending"},
    {LinkState::Linked, "linked"},
    {LinkState::Suspended, "suspended"},
    {LinkState::Unsubscribed, "unsubscribed"},
}};

constexpr std::array<std::pair<LinkEvent, std::string_view>, 8> kEventNames{{
    {LinkEvent::Activated, "activated"},
    {LinkEvent::LinkFailed, "link_failed"},
    {LinkEvent::ChangePlan, "change_plan"},
    {LinkEvent::ChangeQuantity, "change_quantity"},
    {LinkEvent::Renew, "renew"},
    {LinkEvent::Suspend, "suspend"},
    {LinkEvent::Reinstate, "reinstate"},
    {LinkEvent::Unsubscribe, "unsubscribe"},
}};

template <typename E, std::size_t N>
std::string_view name_of(const std::array<std::pair<E, std::string_view>, N>& table, E v) noexcept {
    for (const auto& [e, n] : table)
        if (e == v) return n;
    return "unknown";
}

template <typename E, std::size_t N>
std::optional<E> parse(const std::array<std::pair<E, std::string_view>, N>& table, std::string_view name) noexcept {
    for (const auto& [e, n] : table)
        if (n == name) return e;
    return std::nullopt;
}

}  // namespace

std::optional<LinkState> next_link_state(LinkState state, LinkEvent event) noexcept {
    using S = LinkState;
    using E = LinkEvent;
    switch (state) {
        case S::None:
            return std::nullopt;  // no link: nothing of ours to change
        case S::Pending:
            if (event == E::Activated) return S::Linked;
            if (event == E::LinkFailed) return S::None;
            if (event == E::Unsubscribe) return S::Unsubscribed;
            return std::nullopt;
        case S::Linked:
            if (event == E::ChangePlan || event == E::ChangeQuantity || event == E::Renew) return S::Linked;
            if (event == E::Suspend) return S::Suspended;
            if (event == E::Unsubscribe) return S::Unsubscribed;
            return std::nullopt;
        case S::Suspended:
            if (event == E::Reinstate) return S::Linked;
            if (event == E::Renew) return S::Suspended;  // renewal does not lift a suspension
            if (event == E::Unsubscribe) return S::Unsubscribed;
            return std::nullopt;
        case S::Unsubscribed:
            return std::nullopt;  // final
    }
    return std::nullopt;
}

std::string_view link_state_name(LinkState s) noexcept { return name_of(kStateNames, s); }
std::string_view link_event_name(LinkEvent e) noexcept { return name_of(kEventNames, e); }
std::optional<LinkState> link_state_from_name(std::string_view name) noexcept { return parse(kStateNames, name); }
std::optional<LinkEvent> link_event_from_name(std::string_view name) noexcept { return parse(kEventNames, name); }

}  // namespace azmp
