#include "azmp/token.hpp"

#include <boost/json/object.hpp>

#include <algorithm>

#include "json_util.hpp"
#include "text_util.hpp"

namespace azmp {

namespace json = boost::json;

HttpRequest build_token_request(const Credentials& c) {
    HttpRequest req;
    req.method = Method::Post;
    req.url = c.login_url + "/" + detail::url_escape(c.tenant_id) +
              (c.endpoint == TokenEndpoint::V1 ? "/oauth2/token" : "/oauth2/v2.0/token");
    std::string body = "grant_type=client_credentials&client_id=" + detail::url_escape(c.client_id) +
                       "&client_secret=" + detail::url_escape(c.client_secret);
    if (c.endpoint == TokenEndpoint::V1) {
        body += "&resource=" + detail::url_escape(kMarketplaceAppId);
    } else {
        body += "&scope=" + detail::url_escape(std::string(kMarketplaceAppId) + "/.default");
    }
    req.body = std::move(body);
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    req.headers.emplace_back("Accept", "application/json");
    return req;
}

namespace {

// Token bodies carry the access token: no error built here ever quotes a 2xx body.
std::variant<Token, Error> parse(const HttpResponse& resp) {
    const bool success = resp.status >= 200 && resp.status < 300;
    auto v = detail::parse_json(resp.body);
    if (!success) {
        if (resp.status >= 400 && resp.status < 500 && v && v->is_object()) {
            const auto* err = v->get_object().if_contains("error");
            if (err != nullptr && err->is_string() && !err->get_string().empty())
                return Error::auth(detail::truncated(std::string_view(err->get_string()), 100));
        }
        return Error::http(resp.status, resp.body);
    }
    if (!v) return Error::bad_response("token: invalid JSON");
    if (!v->is_object()) return Error::bad_response("token: expected a JSON object");
    const auto& obj = v->get_object();
    const auto* at = obj.if_contains("access_token");
    if (at == nullptr || !at->is_string() || at->get_string().empty())
        return Error::bad_response("token: no access_token");
    const auto* exp = obj.if_contains("expires_in");
    const auto secs = exp != nullptr ? detail::as_int64(*exp) : std::nullopt;
    if (!secs || *secs <= 0) return Error::bad_response("token: no usable expires_in");
    return Token{std::string(at->get_string()), *secs};
}

}  // namespace

std::variant<Token, Error> parse_token_response(const HttpResponse& resp) {
    try {
        return parse(resp);
    } catch (...) {
        return Error::bad_response("token: unreadable answer");
    }
}

bool token_needs_refresh(std::int64_t obtained_at_s, std::int64_t expires_in_s, std::int64_t now_s) noexcept {
    if (expires_in_s <= 0) return true;  // no lifetime: nothing to keep
    // A short-lived token is refreshed halfway through rather than at once.
    const std::int64_t margin = std::min(kTokenRefreshMarginS, expires_in_s / 2);
    // Subtracting first keeps this free of overflow for any sane timestamps.
    return now_s - obtained_at_s >= expires_in_s - margin;
}

}  // namespace azmp
