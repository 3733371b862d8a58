%% @doc The NIF stubs. Every function here is replaced by the C++ library at load time (the C++ side
%% declares the same list once, in c_src/nif/nifs.def; the build checks the two agree); callers use
%% `emqx_azure_marketplace_client', which turns the asynchronous replies into plain results.
-module(emqx_azure_marketplace_nif).

-export([client_new/1, request/3, cancel/1, info/0, client_stats/1]).
-export([webhook_auth_new/1, webhook_authenticate/3]).
-export([json_decode/1, json_encode/1]).
-export([valid_id/1, plan_link/1, plan_link_step/1, plan_landing/1, landing_usable/2, marketplace_pays/1]).
-export([link_status_text/3, landing_error_text/1, plan_health/1]).
-export([plan_event/1, plan_reconcile/1, plan_deadline/1, plan_webhook/1]).
-export([gate_create/3, gate_deployment/5]).
-export([usage_quantity/1, usage_format/1, usage_hour/1, usage_plan_record/1]).
-export([usage_tick/1, usage_close/1, usage_answer/2, usage_reconcile_answer/2]).
-export([usage_sweep/1, usage_settings/1]).
-on_load(init/0).

%% Must equal kAbiVersion in c_src/nif/library.cpp: the library refuses to load otherwise.
-define(ABI_VERSION, 4).

-type client_res() :: reference().
-type auth_res() :: reference().
-type link_state() :: none | pending | linked | suspended | unsubscribed.
-type link_event() :: change_plan | change_quantity | renew | suspend | reinstate | unsubscribe.
-type refusal() :: credit_card_on_file | uses_available_credits | already_linked_to_marketplace
                 | subscription_linked_to_other_account | subscription_unsubscribed | invalid_token.
%% What the rules ask Erlang to do (see c_src/nif/rules_nif.cpp).
-type effect() :: activate
                | {answer_operation, success | failure}
                | {set_payment_method, azure_marketplace_subscription | none}
                | {notify, #{kind := atom(), reason => atom(), names_subscription => boolean()}}
                | {stop_deployment | start_deployment | delete_deployment, binary()}
                | {schedule_deadline, binary(), stop | delete, integer()}
                | cancel_deadlines
                | close_usage.
%% What the store and the platform say of a linked account (plan_event/1).
-type account_facts() :: #{state := link_state(), suspended := [binary()],
                           cancelled_at := integer() | undefined, last_op_at := integer() | undefined,
                           marketplace_pays := boolean(), deployments := [map()]}.
%% `claim_cancelled': the claim on the subscription records its cancellation (never linked again).
-type link_change() :: #{state := link_state(), suspended := [binary()],
                         cancelled_at := integer() | undefined, last_op_at := integer() | undefined,
                         claim_cancelled := boolean()}.
-type call_res() :: reference().
%% A term's usage counter: {TermStart, Used, PrevTermStart, PrevUsed} (usage_close/1).
-type term_counter() :: {integer(), non_neg_integer(), integer(), non_neg_integer()}.
%% A refused sample (usage_plan_record/1).
-type usage_refusal() :: unknown_dimension | bad_quantity | not_linked | after_cancellation | hour_closed
                       | {too_late, #{oldest_accepted_ms := integer()}}
                       | {in_future, #{latest_accepted_ms := integer()}}
                       | {before_subscription, #{activated_at_ms := integer()}}
                       | {hour_total_too_large, #{max := pos_integer()}}.
%% What becomes of one hour after an answer (usage_answer/2).
-type usage_decision() :: #{outcome := done | mismatch | carried | held | dropped | rejected | retry | lookup | check,
                            reason := atom(), carry := non_neg_integer(), alarm := boolean(),
                            next_attempt_at := integer(), outcome_unknown := boolean(),
                            attempt_failed := boolean(), plan_id := binary() | undefined,
                            event_id := binary() | undefined, message_time := binary() | undefined,
                            azure_quantity := non_neg_integer() | undefined}.
-export_type([usage_refusal/0, usage_decision/0]).
%% The webhook's steps (plan_webhook/1). Results are the client's, as it returned them.
-type webhook_delivery() :: #{operation_id := binary(), subscription_id := binary(), action := binary(),
                              term := #{binary() => binary()} | undefined}.
-type webhook_facts() :: #{step := delivery, body := binary()}
                       | #{step := operation, operation_id := binary(), subscription_id := binary(),
                           action := binary(), term := #{binary() => binary()} | undefined,
                           result := {ok, term()} | {error, term()}, plan_known => boolean()}
                       | #{step := answered, answer := success | failure, result := ok | {error, term()}}.
-type webhook_reply() :: {100..599, #{error | status := atom()}}.
-type webhook_plan() :: #{need := none | {plan_known, binary()}, answer := none | success | failure,
                          apply := none | #{event := link_event(), at := integer() | undefined,
                                            info := #{plan_id := binary() | undefined,
                                                      quantity := pos_integer() | undefined,
                                                      term := #{binary() => binary()} | undefined}},
                          record := none | refused | ignored, release := boolean(), deferred := boolean(),
                          reply := none | webhook_reply()}.
-export_type([webhook_delivery/0, webhook_plan/0]).
-export_type([client_res/0, call_res/0, auth_res/0, link_state/0, link_event/0, refusal/0, effect/0,
              account_facts/0, link_change/0]).

-spec init() -> ok | {error, term()}.
init() ->
    case code:priv_dir(emqx_azure_marketplace) of
        {error, bad_name} ->
            {error, {priv_dir_not_found, emqx_azure_marketplace}};
        Priv ->
            erlang:load_nif(filename:join(Priv, "emqx_azure_marketplace_nif"), ?ABI_VERSION)
    end.

%% @doc Creates a client from a config map. `{ok, {ClientRes, TimeoutMs}}'.
-spec client_new(map()) -> {ok, {client_res(), pos_integer()}} | {error, term()}.
client_new(_Config) -> erlang:nif_error(nif_not_loaded).

%% @doc Starts an operation; the result arrives as `{azmp_reply, CallRes, Result}'.
-spec request(client_res(), atom(), map()) -> {ok, call_res()} | {error, term()}.
request(_Client, _Op, _Args) -> erlang:nif_error(nif_not_loaded).

%% @doc Abandons a call whose caller stopped waiting.
-spec cancel(call_res()) -> ok.
cancel(_Call) -> erlang:nif_error(nif_not_loaded).

%% @doc Engine figures: ABI, transfers started/active, connections opened, module instances.
-spec info() -> map().
info() -> erlang:nif_error(nif_not_loaded).

%% @doc Client figures: token requests made, calls in flight.
-spec client_stats(client_res()) -> map().
client_stats(_Client) -> erlang:nif_error(nif_not_loaded).

%% @doc Creates a webhook authenticator: `login_url', `tenant_id', `audience' (our client id),
%% optional `ca_file', `timeout_ms' (> 0), `min_refresh_interval_s' (0..86400), `skew_s' (0..3600),
%% `authorized_apps' (1..16 non-empty binaries). A wrong field: `{error, {badarg, Field}}'.
-spec webhook_auth_new(map()) -> {ok, auth_res()} | {error, term()}.
webhook_auth_new(_Config) -> erlang:nif_error(nif_not_loaded).

%% @doc Checks an Authorization header; the verdict arrives as
%% `{azmp_reply, CallRes, {ok, Claims} | {error, Reason}}'.
-spec webhook_authenticate(auth_res(), binary(), integer()) -> {ok, call_res()} | {error, term()}.
webhook_authenticate(_Auth, _Header, _Now) -> erlang:nif_error(nif_not_loaded).

-spec json_decode(binary()) -> {ok, term()} | {error, bad_json | too_large}.
json_decode(_Bin) -> erlang:nif_error(nif_not_loaded).

-spec json_encode(term()) -> {ok, binary()} | {error, term()}.
json_encode(_Term) -> erlang:nif_error(nif_not_loaded).

%% The product rules (azmp/rules.hpp). A wrong shape raises `{badarg, Field}'.

%% @doc A usable account, subscription or operation id: a binary, non-empty, at most 1 KiB.
-spec valid_id(term()) -> boolean().
valid_id(_Id) -> erlang:nif_error(nif_not_loaded).

%% @doc May the account link the subscription, given its billing profile (the platform's) and the
%% claim on the subscription (the store's, in the claiming transaction): the verdict and its effects.
-spec plan_link(#{account_id := binary(), credit_card := boolean(), available_credits := boolean(),
                  other_marketplace_link := boolean(), status := binary(), holder => binary() | undefined,
                  seen_cancelled := boolean(), holds_other := boolean()}) ->
    {link | already_linked | {refuse, refusal()}, [effect()]}.
plan_link(_Facts) -> erlang:nif_error(nif_not_loaded).

%% @doc One step of a linking job, planned on Azure's answer (`result', the client's): Resolve's
%% (`resolved'), Get Subscription's before activating (`checked'), Activate's (`activated'), Get
%% Subscription's after it (`confirmed'). `resolved': the job's Resolve answer; `job_current': the
%% job is still ours and activating (after a failed Activate).
-spec plan_link_step(#{step := resolved | checked | activated | confirmed, result := ok | {ok, term()} | {error, term()},
                       resolved => map() | undefined, attempts := non_neg_integer(), retry_base_s := integer(),
                       retry_max_s := integer(), now := integer(), job_current => boolean()}) ->
    #{next := decide | activate | confirm | linked | refuse | retry | nothing,
      subscription_id := binary() | undefined, status := binary() | undefined, plan_id := binary() | undefined,
      quantity := pos_integer() | undefined, term := #{binary() => binary()} | undefined,
      reason := refusal() | undefined, effects := [effect()], retry_at := integer(), attempts := non_neg_integer()}.
plan_link_step(_Facts) -> erlang:nif_error(nif_not_loaded).

%% @doc A landing's Resolve answer (the client's result): keep the answer, keep the token to resolve
%% later, or refuse it; and until when the landing is kept.
-spec plan_landing(#{result := {ok, term()} | {error, term()}, now := integer()}) ->
    #{outcome := resolved | resolve_later | invalid_token, expires_at := integer()}.
plan_landing(_Facts) -> erlang:nif_error(nif_not_loaded).

-spec landing_usable(integer(), integer()) -> boolean().
landing_usable(_ExpiresAt, _Now) -> erlang:nif_error(nif_not_loaded).

%% @doc What the linking modal shows for a status (the core's words): Refusal for `failed',
%% Retrying for a pending link whose last call to Azure failed. `undefined' for an unknown status.
-spec link_status_text(atom(), atom() | undefined, boolean()) ->
    #{reason := atom(), title := binary(), message := binary()} | undefined.
link_status_text(_Status, _Refusal, _Retrying) -> erlang:nif_error(nif_not_loaded).

%% @doc The plugin's health on the metrics' facts: Azure's reachability from the last calls, the
%% webhooks refused for their signature within the window (per second before it may be forgotten)
%% and the alarms to raise (3 unanswered calls in a row; 10 signature failures in a minute).
-spec plan_health(#{now := integer(), consecutive_unreachable := non_neg_integer(),
                    last_reached_at := integer() | undefined, last_unreachable_at := integer() | undefined,
                    signature_failures => [{integer(), non_neg_integer()}]}) ->
    #{state := reachable | unreachable | unknown, signature_failures := non_neg_integer(),
      forget_before := integer(), alarms := [unreachable | signatures]}.
plan_health(_Facts) -> erlang:nif_error(nif_not_loaded).

%% @doc The landing page's HTTP status and words for a landing that failed (the core's).
-spec landing_error_text(atom()) ->
    #{reason := atom(), status := 400..599, title := binary(), message := binary()} | undefined.
landing_error_text(_Error) -> erlang:nif_error(nif_not_loaded).

%% @doc Is the marketplace the payment method of an account whose link is in State?
-spec marketplace_pays(link_state()) -> boolean().
marketplace_pays(_State) -> erlang:nif_error(nif_not_loaded).

%% @doc An event applied to a link: its new state and the effects, or why it does not apply.
%% `enforce': the effects of being in the link's state, again (reconciliation's catch-up).
%% `op_at': Azure's time (ms) of the operation behind the event.
-spec plan_event(account_facts() | #{event := link_event() | enforce, now := integer(),
                                     op_at => integer() | undefined}) ->
    ignore | stale | {ok, link_change(), [effect()]}.
plan_event(_Facts) -> erlang:nif_error(nif_not_loaded).

%% @doc The reconciliation's step: Azure's list of subscriptions (`list'), one page of it (`page':
%% its repairs, the continuation to go on with or `done', and when the next call is made, paced over
%% `pace''s interval from call start to call start: `took_ms', this step's calls' time, is
%% counted, and the ceiling holds over the step's `calls'), or one subscription (`one', an operator's resync or a subscription in doubt),
%% against our links to the subscriptions it names (asked for with `need_links' when `links' is
%% absent): the events that repair each link, and since when changed links get their effects planned
%% again (`enforce_window_s', a week by default). On a dirty scheduler.
-spec plan_reconcile(#{step := list | one | page, subscription_id => binary(), result := {ok, term()} | {error, term()},
                       now := integer(), enforce_window_s => non_neg_integer() | undefined,
                       links => #{binary() => #{account_id := binary(), state := link_state()}},
                       marketplace_url => binary() | undefined,
                       pace => #{now_ms := integer(), started_ms := integer(), interval_ms := pos_integer(),
                                 pages_done := non_neg_integer(), pages_last_pass := non_neg_integer(),
                                 max_calls_per_s => number(), took_ms => integer(),
                                 calls => pos_integer()}}) ->
    #{outcome := failed | bad_response, next_in_ms => non_neg_integer(),
      reason => unreadable | foreign_continuation}
    | #{outcome := need_links, subscription_ids := [binary()]}
    | #{outcome := repairs, repairs := [#{account_id := binary(), subscription_id := binary(), event := link_event()}],
        enforce_changed_since := integer(), continuation => binary() | done, next_in_ms => non_neg_integer()}.
plan_reconcile(_Facts) -> erlang:nif_error(nif_not_loaded).

%% @doc A due deadline's effects (none: called off).
-spec plan_deadline(#{kind := stop | delete, deployment_id := binary(), state := link_state(),
                      cancelled_at := integer() | undefined, now := integer()}) -> [effect()].
plan_deadline(_Facts) -> erlang:nif_error(nif_not_loaded).

%% @doc One step of a webhook delivery, planned: the body read (`delivery'), Get Operation's answer
%% (`operation'; `need' asks for the platform's `plan_known' first), our PATCH's answer (`answered').
-spec plan_webhook(webhook_facts()) ->
    {act, webhook_delivery()} | {reply, webhook_reply()} | webhook_plan() | proceed.
plan_webhook(_Facts) -> erlang:nif_error(nif_not_loaded).

%% @doc May the account create a deployment? `need_payment_method': ask again with it known.
-spec gate_create(link_state(), boolean(), boolean() | unknown) -> ok | {error, atom()} | need_payment_method.
gate_create(_State, _Trial, _PaysOtherwise) -> erlang:nif_error(nif_not_loaded).

%% @doc What to do with a deployment now. `need_payment_method': ask again with it known.
-spec gate_deployment(link_state(), map(), integer(), integer() | undefined, boolean() | unknown) ->
    need_payment_method | keep | {stop, atom()} | {delete, integer()}.
gate_deployment(_State, _Deployment, _Now, _CancelledAt, _PaysOtherwise) -> erlang:nif_error(nif_not_loaded).

%% Metering rules (azmp/metering.hpp). Quantities are integer micro-units (6 exact decimals).

%% @doc A quantity (a number, or an exact decimal binary) in micro-units; `error' when it is not one.
-spec usage_quantity(term()) -> {ok, non_neg_integer()} | error.
usage_quantity(_Q) -> erlang:nif_error(nif_not_loaded).

%% @doc Micro-units as exact decimal text.
-spec usage_format(integer()) -> binary().
usage_format(_Micros) -> erlang:nif_error(nif_not_loaded).

%% @doc The UTC hour (unix s) holding a time in unix milliseconds.
-spec usage_hour(integer()) -> integer().
usage_hour(_AtMs) -> erlang:nif_error(nif_not_loaded).

%% @doc Where a sample goes: its hour (or the current one, carried from its own) and when that
%% hour closes, or a refusal.
-spec usage_plan_record(map()) -> {ok, integer(), integer() | undefined, integer()} | {error, usage_refusal()}.
usage_plan_record(_Facts) -> erlang:nif_error(nif_not_loaded).

%% @doc What Azure's answer to one of the meter's calls means for each hour it was about: the
%% batchUsageEvent (step batch), the usageEvents lookup of an hour in doubt (lookup), the
%% subscription read after a refusal (check). Result is the client's, as it returned it.
-spec usage_answer(#{step := batch | lookup | check, hours := [map()], now := integer(), atom() => term()},
                   {ok, term()} | {error, term()}) -> {[usage_decision()], non_neg_integer()}.
usage_answer(_Facts, _Result) -> erlang:nif_error(nif_not_loaded).

%% @doc The meter's plan for one tick on its facts (now, grace_s, lease_s, call_timeout_ms,
%% history_days, last_reconciled, retry_after, window_waves, held hours, hours to look up): the
%% lease, the in-flight guard, where carries go, what leaves RAM, what is overdue, which day to
%% reconcile, what becomes of each held hour, each lookup's UTC day, the batch size.
-spec usage_tick(map()) -> #{lease_until := integer(), in_flight_until := integer(), current_hour := integer(),
                             closes_at := integer(), archive_last_hour := integer(), settled := [atom()],
                             submit_states := [link_state()], first_kept_day := integer(),
                             overdue_before := integer(), reconcile := {integer(), integer()} | undefined,
                             retry_after := integer(), releases := [keep | send | carry | lookup | drop],
                             lookup_days := [{integer(), integer()}], batch_size := pos_integer()}.
usage_tick(_Facts) -> erlang:nif_error(nif_not_loaded).

%% @doc What closing hours report above the included quantity for their term:
%% {Reported, Absorbed, Counter}, or {too_large, Counter} when the hour with what was carried into
%% it is more than may be sent.
-spec usage_close([map()]) -> [{non_neg_integer(), non_neg_integer(), term_counter()} | {too_large, term_counter()}].
usage_close(_Hours) -> erlang:nif_error(nif_not_loaded).

%% @doc A day's ledger hours against Azure's usageEvents answer (the client's result): the pairs of
%% subscription and dimension that do not agree, or retry when the call failed.
-spec usage_reconcile_answer([map()], {ok, term()} | {error, term()}) -> {ok, [map()]} | retry.
usage_reconcile_answer(_Ledger, _Result) -> erlang:nif_error(nif_not_loaded).

%% @doc The recorder's sweep of source ids: those recorded before `expired_before' count no more
%% (each counts once for the dedupe window), and the next sweep in `next_in_ms' (1 to 60 s).
-spec usage_sweep(#{now := integer(), dedupe_window_s := pos_integer()}) ->
    #{expired_before := integer(), next_in_ms := 1000..60000}.
usage_sweep(_Facts) -> erlang:nif_error(nif_not_loaded).

%% @doc The metering settings an operator gives (the application env `metering'), resolved: every
%% timing the operator's where given and accepted, else the core's default (the one place the
%% defaults live); and what was refused, in a fixed order. `{repeated_id, N}': the Nth dimension
%% (1-based) has the id of an earlier one.
-spec usage_settings(map()) ->
    {#{grace_s := non_neg_integer(), lateness_s := non_neg_integer(), lease_s := pos_integer(),
       tick_ms := pos_integer(), retry_base_s := pos_integer(), retry_max_s := pos_integer(),
       history_days := pos_integer(), dedupe_window_s := pos_integer()},
     [{grace_s | lateness_s | lease_s | tick_ms | retry_base_s | retry_max_s | history_days | dedupe_window_s,
       not_a_positive_integer | not_a_non_negative_integer | {at_least, pos_integer()} | {at_most, pos_integer()}}
      | {dimensions, {repeated_id, pos_integer()} | not_a_list | {at_most, pos_integer()}}]}.
usage_settings(_Metering) -> erlang:nif_error(nif_not_loaded).
