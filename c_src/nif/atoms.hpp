// Every atom the NIF glue uses, made once when the library is loaded or upgraded (atoms are global
// in the VM and never go away, so a term made at load stays valid in every env, on every thread).
// Use `atoms::timeout_ms` instead of enif_make_atom(env, "timeout_ms") in a conversion.
#pragma once

#include <erl_nif.h>

#include <string_view>

namespace azmp::nif {

// X(identifier, "name"). Add a name here, and it exists as atoms::identifier after load.
#define AZMP_NIF_ATOMS(X)                                                                              \
    /* results and errors */                                                                        \
    X(ok, "ok") X(error, "error") X(true_, "true") X(false_, "false") X(null, "null")                  \
    X(undefined, "undefined") X(badarg, "badarg") X(timeout, "timeout") X(overloaded, "overloaded")    \
    X(http, "http") X(transport, "transport") X(bad_response, "bad_response") X(auth, "auth")          \
    X(azmp_reply, "azmp_reply") X(azmp_internal_error, "azmp_internal_error")                          \
    X(reply_too_large, "reply_too_large") X(malformed, "malformed") X(too_large, "too_large")          \
    X(bad_json, "bad_json")                                                                            \
    /* webhook verdicts (azmp/webhook_auth.hpp, jwt_error_name) */                                     \
    X(no_token, "no_token") X(bad_algorithm, "bad_algorithm") X(unknown_key, "unknown_key")            \
    X(bad_signature, "bad_signature") X(wrong_audience, "wrong_audience")                              \
    X(wrong_tenant, "wrong_tenant") X(wrong_app, "wrong_app") X(expired, "expired")                    \
    X(not_yet_valid, "not_yet_valid") X(jwks_unavailable, "jwks_unavailable")                          \
    /* info() and client_stats() keys */                                                               \
    X(abi, "abi") X(transfers_started, "transfers_started") X(transfers_active, "transfers_active")    \
    X(connections_opened, "connections_opened") X(module_refs, "module_refs")                          \
    X(token_requests, "token_requests") X(in_flight, "in_flight")                                      \
    /* client config */                                                                                \
    X(tenant_id, "tenant_id") X(client_id, "client_id") X(client_secret, "client_secret")              \
    X(login_url, "login_url") X(marketplace_url, "marketplace_url") X(ca_file, "ca_file")              \
    X(proxy, "proxy") X(token_endpoint, "token_endpoint") X(v1, "v1") X(v2, "v2")                      \
    X(timeout_ms, "timeout_ms") X(connect_timeout_ms, "connect_timeout_ms")                            \
    X(max_in_flight, "max_in_flight") X(retry, "retry") X(max_attempts, "max_attempts")                \
    X(base_delay_ms, "base_delay_ms") X(max_delay_ms, "max_delay_ms")                                  \
    X(max_retry_after_ms, "max_retry_after_ms")                                                        \
    /* webhook authenticator config */                                                                 \
    X(audience, "audience") X(min_refresh_interval_s, "min_refresh_interval_s") X(skew_s, "skew_s")    \
    X(authorized_apps, "authorized_apps")                                                              \
    /* operations and their arguments */                                                               \
    X(resolve, "resolve") X(activate, "activate") X(get_subscription, "get_subscription")              \
    X(list_subscriptions, "list_subscriptions") X(list_available_plans, "list_available_plans")        \
    X(change_plan, "change_plan") X(change_quantity, "change_quantity")                                \
    X(delete_subscription, "delete_subscription") X(list_operations, "list_operations")                \
    X(get_operation, "get_operation") X(update_operation, "update_operation")                          \
    X(post_usage, "post_usage") X(post_usage_batch, "post_usage_batch")                                \
    X(get_usage_events, "get_usage_events") X(subscription_id, "subscription_id")                      \
    X(plan_id, "plan_id") X(operation_id, "operation_id") X(token, "token") X(quantity, "quantity")    \
    X(status, "status") X(success, "success") X(failure, "failure") X(event, "event")                  \
    X(events, "events") X(filter, "filter") X(resource_id, "resource_id") X(dimension, "dimension")    \
    X(effective_start_time, "effective_start_time") X(usage_start_date, "usage_start_date")            \
    X(usage_end_date, "usage_end_date") X(offer_id, "offer_id")                                        \
    X(azure_subscription_id, "azure_subscription_id") X(recon_status, "recon_status")

namespace atoms {
#define AZMP_NIF_DECLARE_ATOM(id, name) extern ERL_NIF_TERM id;
AZMP_NIF_ATOMS(AZMP_NIF_DECLARE_ATOM)
#undef AZMP_NIF_DECLARE_ATOM

// Makes every atom above. Called from the load and upgrade callbacks, before any entry point runs.
void make_all(ErlNifEnv* env) noexcept;

// The table's atom called `name`, or 0 (never a valid term) when the table has none.
ERL_NIF_TERM find(std::string_view name) noexcept;
}  // namespace atoms

}  // namespace azmp::nif
