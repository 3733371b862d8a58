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
    X(bad_json, "bad_json") X(insecure_endpoint, "insecure_endpoint")                                  \
    /* webhook verdicts (azmp/webhook_auth.hpp, jwt_error_name) */                                     \
    X(no_token, "no_token") X(bad_algorithm, "bad_algorithm") X(unknown_key, "unknown_key")            \
    X(bad_signature, "bad_signature") X(wrong_audience, "wrong_audience")                              \
    X(wrong_tenant, "wrong_tenant") X(wrong_app, "wrong_app") X(expired, "expired")                    \
    X(unsupported_crit, "unsupported_crit") X(wrong_issuer, "wrong_issuer")                            \
    X(not_yet_valid, "not_yet_valid") X(jwks_unavailable, "jwks_unavailable")                          \
    /* info() and client_stats() keys */                                                               \
    X(abi, "abi") X(transfers_started, "transfers_started") X(transfers_active, "transfers_active")    \
    X(connections_opened, "connections_opened") X(module_refs, "module_refs")                          \
    X(token_requests, "token_requests") X(in_flight, "in_flight") X(retries, "retries")                \
    X(token_obtained_at, "token_obtained_at")                                                          \
    /* client config */                                                                                \
    X(tenant_id, "tenant_id") X(client_id, "client_id") X(client_secret, "client_secret")              \
    X(login_url, "login_url") X(marketplace_url, "marketplace_url") X(ca_file, "ca_file")              \
    X(proxy, "proxy") X(token_endpoint, "token_endpoint") X(v1, "v1") X(v2, "v2")                      \
    X(timeout_ms, "timeout_ms") X(connect_timeout_ms, "connect_timeout_ms")                            \
    X(max_in_flight, "max_in_flight") X(retry, "retry") X(max_attempts, "max_attempts")                \
    X(base_delay_ms, "base_delay_ms") X(max_delay_ms, "max_delay_ms")                                  \
    X(max_retry_after_ms, "max_retry_after_ms") X(allow_insecure_loopback, "allow_insecure_loopback")  \
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
    X(azure_subscription_id, "azure_subscription_id") X(recon_status, "recon_status")                  \
    /* product rules (rules_nif.cpp): link states and events */                                        \
    X(none, "none") X(pending, "pending") X(linked, "linked") X(suspended, "suspended")                \
    X(unsubscribed, "unsubscribed") X(activated, "activated") X(link_failed, "link_failed")            \
    X(renew, "renew") X(suspend, "suspend") X(reinstate, "reinstate") X(unsubscribe, "unsubscribe")    \
    /* product rules: verdicts and outcomes */                                                         \
    X(link, "link") X(already_linked, "already_linked") X(refuse, "refuse")                            \
    X(already_active, "already_active") X(ignore, "ignore") X(stale, "stale") X(keep, "keep")          \
    X(stop, "stop") X(delete_, "delete") X(need_payment_method, "need_payment_method")                 \
    X(mismatch, "mismatch") X(act, "act") X(refused, "refused") X(ignored, "ignored")                  \
    X(unknown, "unknown") X(bad_request, "bad_request") X(unavailable, "unavailable")                  \
    X(running, "running") X(stopped, "stopped") X(trial_ended, "trial_ended")                          \
    /* product rules: effects, payment methods, notices, refusals */                                   \
    X(answer_operation, "answer_operation") X(set_payment_method, "set_payment_method")                \
    X(notify, "notify") X(stop_deployment, "stop_deployment") X(start_deployment, "start_deployment")  \
    X(delete_deployment, "delete_deployment") X(schedule_deadline, "schedule_deadline")                \
    X(cancel_deadlines, "cancel_deadlines")                                                            \
    X(azure_marketplace_subscription, "azure_marketplace_subscription")                                \
    X(subscription_suspended, "subscription_suspended")                                                \
    X(subscription_reinstated, "subscription_reinstated")                                              \
    X(subscription_cancelled, "subscription_cancelled") X(link_pending, "link_pending")                \
    X(credit_card_on_file, "credit_card_on_file") X(uses_available_credits, "uses_available_credits")  \
    X(already_linked_to_marketplace, "already_linked_to_marketplace")                                  \
    X(subscription_linked_to_other_account, "subscription_linked_to_other_account")                    \
    X(subscription_unsubscribed, "subscription_unsubscribed") X(invalid_token, "invalid_token")        \
    /* product rules: map keys and the fields a {badarg, Field} names */                               \
    X(kind, "kind") X(reason, "reason") X(state, "state") X(cancelled_at, "cancelled_at")              \
    X(last_op_at, "last_op_at") X(marketplace_pays, "marketplace_pays") X(deployments, "deployments")  \
    X(id, "id") X(trial, "trial") X(trial_ends_at, "trial_ends_at") X(stopped_at, "stopped_at")        \
    X(credit_card, "credit_card") X(available_credits, "available_credits")                            \
    X(other_marketplace_link, "other_marketplace_link") X(holder, "holder")                            \
    X(seen_cancelled, "seen_cancelled") X(holds_other, "holds_other") X(action, "action")              \
    /* the webhook's steps */                                                                        \
    X(delivery, "delivery") X(operation, "operation") X(answered, "answered") X(body, "body")        \
    X(result, "result") X(need, "need") X(apply, "apply") X(record, "record") X(deferred, "deferred")  \
    X(reply, "reply") X(proceed, "proceed") X(info, "info") X(at, "at")                               \
    /* the linking job's steps */                                                                  \
    X(resolved, "resolved") X(checked, "checked") X(confirmed, "confirmed") X(next, "next")          \
    X(decide, "decide") X(confirm, "confirm") X(nothing, "nothing") X(retry_at, "retry_at")          \
    X(job_current, "job_current") X(effects, "effects") X(resolve_later, "resolve_later")            \
    X(tick_ms, "tick_ms")                                                                              \
    /* the reconciliation's step */                                                                 \
    X(list, "list") X(one, "one") X(links, "links") X(need_links, "need_links") X(repairs, "repairs")  \
    X(failed, "failed") X(subscription_ids, "subscription_ids")                                      \
    X(list_subscriptions_page, "list_subscriptions_page") X(continuation, "continuation")            \
    X(page, "page") X(next_in_ms, "next_in_ms") X(pace, "pace") X(now_ms, "now_ms")                  \
    X(started_ms, "started_ms") X(interval_ms, "interval_ms") X(pages_done, "pages_done")            \
    X(pages_last_pass, "pages_last_pass") X(max_calls_per_s, "max_calls_per_s")                      \
    X(took_ms, "took_ms") X(calls, "calls")                                                                            \
    X(foreign_continuation, "foreign_continuation") X(unreadable, "unreadable")                      \
    X(enforce_window_s, "enforce_window_s") X(enforce_changed_since, "enforce_changed_since")        \
    X(claim_cancelled, "claim_cancelled") X(names_subscription, "names_subscription")                \
    /* health */                                                                                     \
    X(reachable, "reachable") X(unreachable, "unreachable") X(alarms, "alarms") X(signatures, "signatures") \
    X(consecutive_unreachable, "consecutive_unreachable") X(last_reached_at, "last_reached_at")      \
    X(last_unreachable_at, "last_unreachable_at") X(signature_failures, "signature_failures")        \
    X(forget_before, "forget_before") X(enforce, "enforce")                                          \
    X(expired_before, "expired_before")                                                              \
    X(account_id, "account_id") X(step, "step") X(attempts, "attempts") X(base_s, "base_s")            \
    X(max_s, "max_s") X(now, "now") X(expires_at, "expires_at") X(op_at, "op_at")                      \
    X(deployment_id, "deployment_id") X(plan_known, "plan_known") X(pays_otherwise, "pays_otherwise")   \
    /* metering */                                                                                      \
    X(dimension_known, "dimension_known") X(at_ms, "at_ms") X(bucket_open, "bucket_open")               \
    X(grace_s, "grace_s") X(hour, "hour") X(carried_from, "carried_from") X(send, "send")               \
    X(carry, "carry") X(done, "done") X(carried, "carried") X(held, "held") X(dropped, "dropped")       \
    X(rejected, "rejected") X(unknown_dimension, "unknown_dimension") X(bad_quantity, "bad_quantity")   \
    X(not_linked, "not_linked") X(after_cancellation, "after_cancellation") X(hour_closed, "hour_closed") \
    X(recorded, "recorded") X(carried_in, "carried_in") X(included, "included")                         \
    X(term_start, "term_start") X(used, "used") X(months, "months") X(sent, "sent")                     \
    X(azure_quantity, "azure_quantity") X(closes_at, "closes_at") X(may_submit, "may_submit")          \
    X(start_date, "start_date") X(end_date, "end_date") X(term_unit, "term_unit")                     \
    X(overdue, "overdue") X(release, "release")            \
    X(billed, "billed") X(processed, "processed") X(agree, "agree") X(differ, "differ") X(alarm, "alarm") \
    X(history_days, "history_days") X(dedupe_window_s, "dedupe_window_s")                              \
    X(last_reconciled, "last_reconciled") X(retry_after, "retry_after") X(reconcile, "reconcile")       \
    X(wait, "wait") X(not_a_positive_integer, "not_a_positive_integer") X(at_least, "at_least")           \
    X(not_a_non_negative_integer, "not_a_non_negative_integer") X(at_most, "at_most")                   \
    X(dimensions, "dimensions") X(not_a_list, "not_a_list") X(repeated_id, "repeated_id")             \
    /* the meter's answers (azmp/metering_answer.hpp) and the record window */                       \
    X(lookup, "lookup") X(check, "check") X(batch, "batch") X(hours, "hours") X(reported, "reported")    \
    X(outcome, "outcome") X(outcome_unknown, "outcome_unknown") X(attempt_failed, "attempt_failed")      \
    X(next_attempt_at, "next_attempt_at") X(event_id, "event_id") X(message_time, "message_time")        \
    X(unmatched, "unmatched")             \
    X(refused_as, "refused_as") X(retry_base_s, "retry_base_s") X(retry_max_s, "retry_max_s")            \
    X(activated_at, "activated_at") X(lateness_s, "lateness_s") X(own_total, "own_total")                \
    X(current_total, "current_total") X(too_late, "too_late") X(in_future, "in_future")                  \
    X(before_subscription, "before_subscription") X(hour_total_too_large, "hour_total_too_large")        \
    X(oldest_accepted_ms, "oldest_accepted_ms") X(latest_accepted_ms, "latest_accepted_ms")              \
    X(activated_at_ms, "activated_at_ms") X(max, "max") X(answer, "answer")         \
    X(lease_s, "lease_s") X(call_timeout_ms, "call_timeout_ms") X(lease_until, "lease_until")             \
    X(in_flight_until, "in_flight_until") X(current_hour, "current_hour") X(settled, "settled")          \
    X(archive_last_hour, "archive_last_hour") X(submit_states, "submit_states")                         \
    X(first_kept_day, "first_kept_day") X(overdue_before, "overdue_before") X(releases, "releases")      \
    X(counter, "counter") X(term, "term") X(verdict, "verdict")   \
    X(open, "open") X(submitting, "submitting") X(day, "day") X(ledger, "ledger")                       \
    X(window_waves, "window_waves") X(lookups, "lookups") X(lookup_days, "lookup_days")                 \
    X(batch_size, "batch_size") X(drop, "drop") X(late, "late")

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
