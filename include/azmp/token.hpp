// Microsoft Entra client-credentials tokens: the request to ask for one and the meaning of the answer.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "azmp/error.hpp"
#include "azmp/http.hpp"

namespace azmp {

// The Azure Marketplace SaaS application id: resource (v1) / scope (v2) of our tokens.
inline constexpr std::string_view kMarketplaceAppId = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";

enum class TokenEndpoint { V1, V2 };

struct Credentials {
    std::string login_url;  // e.g. https://login.microsoftonline.com, no trailing slash
    std::string tenant_id;
    std::string client_id;
    std::string client_secret;  // never logged, never in an error
    TokenEndpoint endpoint = TokenEndpoint::V2;
};

// v1: POST {login}/{tenant}/oauth2/token, form resource=<app id>;
// v2: POST {login}/{tenant}/oauth2/v2.0/token, form scope=<app id>/.default.
HttpRequest build_token_request(const Credentials& c);

struct Token {
    std::string access_token;
    std::int64_t expires_in_s = 0;  // `expires_in`, which Entra may send as a string
};

// 200 with access_token and expires_in: Token. 4xx with an Entra error body: Auth carrying the Entra
// error code (e.g. "invalid_client"), never the secret. Other non-2xx: Http. Malformed 2xx: BadResponse.
std::variant<Token, Error> parse_token_response(const HttpResponse& resp);

// Refresh this long before expiry, so that no call goes out with a token about to lapse.
inline constexpr std::int64_t kTokenRefreshMarginS = 300;

// True when a token obtained at `obtained_at_s` lasting `expires_in_s` must be refreshed at `now_s`.
bool token_needs_refresh(std::int64_t obtained_at_s, std::int64_t expires_in_s, std::int64_t now_s) noexcept;

}  // namespace azmp
