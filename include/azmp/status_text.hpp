// What a customer is shown: the linking modal's words for a link status, and the landing page's
// for a landing that failed. The wording is the product's (the product documentation's sentences
// where it has them), so it lives here, in one table each; Erlang passes the facts and shows the
// result. Pure and total: an unknown status or error is `std::nullopt`.
#pragma once

#include <optional>
#include <string_view>

namespace azmp {

struct ShownText {
    std::string_view reason;   // stable name a console may switch on (an atom in Erlang)
    std::string_view title;    // a short heading
    std::string_view message;  // what happened and what to do
};

// status: none | resolving | activating | linked | suspended | unsubscribed | failed.
// refusal: for `failed`, the refusal's name (refusal_name()); empty otherwise.
// retrying: a pending link whose last call to Azure failed (Azure unreachable, retried).
std::optional<ShownText> link_status_text(std::string_view status, std::string_view refusal, bool retrying) noexcept;

struct LandingErrorText {
    int http_status;
    ShownText text;
};

// error: missing_token | invalid_token | too_many_landings | busy.
std::optional<LandingErrorText> landing_error_text(std::string_view error) noexcept;

}  // namespace azmp
