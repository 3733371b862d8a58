%% PropEr throws random terms at every NIF function: the answer is a result or badarg, never a crash.
-module(azmp_nif_prop_tests).

-include_lib("proper/include/proper.hrl").
-include_lib("eunit/include/eunit.hrl").

-define(NIF, emqx_azure_marketplace_nif).
-define(NUMTESTS, list_to_integer(os:getenv("AZMP_PROPER_NUMTESTS", "100000"))).

-define(OPS, [resolve, activate, get_subscription, list_subscriptions, list_available_plans, change_plan,
              change_quantity, delete_subscription, list_operations, get_operation, update_operation,
              post_usage, post_usage_batch, get_usage_events]).
-define(KEYS, [subscription_id, plan_id, operation_id, token, quantity, status, event, events, filter,
               tenant_id, client_id, client_secret, login_url, marketplace_url, ca_file, token_endpoint,
               timeout_ms, connect_timeout_ms, max_in_flight, retry, resource_id, dimension,
               effective_start_time, usage_start_date]).

%% The metering steps' facts (emqx_azure_marketplace_nif: usage_tick/1, usage_close/1, usage_plan_record/1,
%% usage_answer/2, usage_reconcile_answer/2).
-define(HOUR_KEYS, [subscription_id, dimension, hour, reported, plan_id, attempts, outcome_unknown, state, status,
                    azure_quantity]).
-define(TICK_KEYS, [now, grace_s, lease_s, call_timeout_ms, history_days, last_reconciled, retry_after, window_waves,
                    held, lookups]).
-define(CLOSE_KEYS, [recorded, carried_in, included, counter, hour, term, activated_at, late]).
-define(RECORD_KEYS, [dimension_known, quantity, at_ms, state, cancelled_at, activated_at, bucket_open, now, grace_s,
                      lateness_s, own_total, current_total]).
-define(ANSWER_KEYS, [step, hours, now, retry_base_s, retry_max_s, day, refused_as]).
%% The webhook's steps (plan_webhook/1).
-define(WEBHOOK_KEYS, [step, body, operation_id, subscription_id, action, term, result, plan_known, answer]).

nif_fuzz_test_() ->
    {setup,
     fun() ->
         %% A client whose calls can only fail fast: nothing listens on port 1.
         {ok, {Client, _}} = ?NIF:client_new(#{
             tenant_id => <<"t">>, client_id => <<"c">>, client_secret => <<"s">>,
             login_url => <<"http://127.0.0.1:1">>, marketplace_url => <<"http://127.0.0.1:1/api">>, allow_insecure_loopback => true,
             retry => #{max_attempts => 1}, timeout_ms => 1000}),
         {ok, Auth} = ?NIF:webhook_auth_new(#{tenant_id => <<"t">>, audience => <<"c">>,
                                              login_url => <<"http://127.0.0.1:1">>, allow_insecure_loopback => true, timeout_ms => 1000}),
         {Client, Auth}
     end,
     fun(_) -> flush() end,
     fun({Client, Auth}) ->
         [{atom_to_list(Name), {timeout, 600, fun() -> check(Name, Prop) end}}
          || {Name, Prop} <- [
                 {client_new, prop_client_new()},
                 {request_any, prop_request_term()},
                 {request_shaped, prop_request_shaped(Client)},
                 {cancel, prop_one_arg(fun ?NIF:cancel/1)},
                 {client_stats, prop_one_arg(fun ?NIF:client_stats/1)},
                 {info, prop_info()},
                 {webhook_auth_new, ?FORALL(T, oneof([random_term(), shaped_map()]),
                                            acceptable(fun() -> ?NIF:webhook_auth_new(T) end))},
                 {webhook_authenticate, prop_authenticate(Auth)},
                 {json_decode, ?FORALL(T, oneof([random_term(), binary(), json_text()]),
                                       acceptable(fun() -> ?NIF:json_decode(T) end))},
                 {json_encode, prop_one_arg(fun ?NIF:json_encode/1)},
                 {valid_id, prop_one_arg(fun ?NIF:valid_id/1)},
                 {plan_link, ?FORALL({A, P, F}, {oneof([binary(), random_term()]), decision_arg(), decision_arg()},
                                     pure(fun() -> ?NIF:plan_link(case {P, F} of
                                                                      {#{}, #{}} -> (maps:merge(P, F))#{account_id => A};
                                                                      _ -> P
                                                                  end) end))},
                 {plan_link_step, ?FORALL(F, link_step_facts(), pure(fun() -> ?NIF:plan_link_step(F) end))},
                 {plan_landing, ?FORALL({R, N}, {oneof([call_result(), random_term()]), oneof([integer(), random_term()])},
                                        pure(fun() -> ?NIF:plan_landing(#{result => R, now => N}) end))},
                 {landing, ?FORALL({E, N}, {oneof([integer(), random_term()]), oneof([integer(), random_term()])},
                                   pure(fun() -> ?NIF:landing_usable(E, N) end))},
                 {marketplace_pays, ?FORALL(S, oneof([state(), random_term()]),
                                            pure(fun() -> ?NIF:marketplace_pays(S) end))},
                 {plan_event, ?FORALL({E, F, N, T}, {oneof([event(), exactly(enforce), random_term()]), account_facts(),
                                                    oneof([integer(), random_term()]),
                                                    oneof([integer(), exactly(undefined), random_term()])},
                                      pure(fun() -> ?NIF:plan_event(case F of
                                                                        #{} -> F#{event => E, now => N, op_at => T};
                                                                        _ -> F
                                                                    end) end))},
                 {plan_reconcile, ?FORALL(F, reconcile_facts(), pure(fun() -> ?NIF:plan_reconcile(F) end))},
                 {plan_health, ?FORALL({N, C, R, U, B, Drop},
                                       {oneof([time_arg(), random_term()]), oneof([time_arg(), random_term()]),
                                        oneof([time_arg(), exactly(undefined), random_term()]),
                                        oneof([time_arg(), exactly(undefined), random_term()]),
                                        oneof([list({time_arg(), time_arg()}), random_term()]),
                                        list(elements([now, consecutive_unreachable, last_reached_at,
                                                       last_unreachable_at, signature_failures]))},
                                       pure(fun() -> ?NIF:plan_health(maps:without(Drop,
                                           #{now => N, consecutive_unreachable => C, last_reached_at => R,
                                             last_unreachable_at => U, signature_failures => B})) end))},
                 {plan_deadline, ?FORALL({K, D, S, C, N}, {oneof([elements([stop, delete]), random_term()]),
                                                          oneof([binary(), random_term()]), oneof([state(), random_term()]),
                                                          oneof([integer(), exactly(undefined)]), integer()},
                                         pure(fun() -> ?NIF:plan_deadline(#{kind => K, deployment_id => D, state => S,
                                                                             cancelled_at => C, now => N}) end))},
                 {plan_webhook, ?FORALL(F, webhook_facts(), pure(fun() -> ?NIF:plan_webhook(F) end))},
                 {gate_create, ?FORALL({S, T, P}, {oneof([state(), random_term()]), oneof([boolean(), random_term()]),
                                                   oneof([boolean(), exactly(unknown), random_term()])},
                                       pure(fun() -> ?NIF:gate_create(S, T, P) end))},
                 {gate_deployment, ?FORALL({S, D, N, C, P}, {oneof([state(), random_term()]), decision_arg(),
                                                             oneof([integer(), random_term()]),
                                                             oneof([integer(), exactly(undefined)]),
                                                             oneof([boolean(), exactly(unknown)])},
                                           pure(fun() -> ?NIF:gate_deployment(S, D, N, C, P) end))},
                 {usage_tick, ?FORALL(F, metering_facts(?TICK_KEYS), pure(fun() -> ?NIF:usage_tick(F) end))},
                 {usage_close, ?FORALL(L, oneof([random_term(), list(metering_facts(?CLOSE_KEYS))]),
                                       pure(fun() -> ?NIF:usage_close(L) end))},
                 {usage_plan_record, ?FORALL(F, metering_facts(?RECORD_KEYS),
                                             pure(fun() -> ?NIF:usage_plan_record(F) end))},
                 {usage_answer, ?FORALL({F, R}, {metering_facts(?ANSWER_KEYS), call_result()},
                                        pure(fun() -> ?NIF:usage_answer(F, R) end))},
                 {usage_reconcile_answer, ?FORALL({L, R}, {oneof([random_term(), list(metering_facts(?HOUR_KEYS))]),
                                                           call_result()},
                                                  pure(fun() -> ?NIF:usage_reconcile_answer(L, R) end))},
                 {usage_sweep, ?FORALL({N, W}, {time_arg(), time_arg()},
                                       pure(fun() -> ?NIF:usage_sweep(#{now => N, dedupe_window_s => W}) end))},
                 {usage_settings, ?FORALL(M, oneof([random_term(),
                                                          ?LET({H, W}, {time_arg(), time_arg()},
                                                               #{history_days => H, dedupe_window_s => W})]),
                                                pure(fun() -> ?NIF:usage_settings(M) end))}
             ]]
     end}.

check(Name, Prop) ->
    Result = proper:quickcheck(Prop, [{numtests, numtests(Name)}, {max_size, 30}, quiet, {on_output, fun(_, _) -> ok end}]),
    flush(),
    ?assertEqual({Name, true}, {Name, Result}).

%% The metering steps take nested facts (lists of maps, Azure's decoded answers): a tenth of the
%% runs, each many terms deep, keeps them to seconds.
%% The properties with nested facts (and plan_reconcile's dirty-scheduler round trips) cost far more
%% a run: a tenth of the runs keeps the suite's time.
numtests(Name) when Name =:= usage_tick; Name =:= usage_close; Name =:= usage_answer;
                    Name =:= usage_reconcile_answer; Name =:= plan_reconcile ->
    max(1, ?NUMTESTS div 10);
numtests(_) ->
    ?NUMTESTS.

%% A result, or the badarg exception; anything else (or a VM crash) fails.
acceptable(F) ->
    try F() of
        {ok, _} -> true;
        {error, _} -> true;
        ok -> true;
        M when is_map(M) -> true;
        B when is_boolean(B) -> true;
        Other -> {unexpected, Other}
    catch
        error:badarg -> true
    end =:= true.

%% The rules are pure functions: any answer, or badarg naming the field; never another exception.
pure(F) ->
    try F() of
        _ -> true
    catch
        error:badarg -> true;
        error:{badarg, Field} when is_atom(Field) -> true
    end.

%% Facts of an account, mostly well formed (so that the rules run), sometimes not.
account_facts() ->
    oneof([random_term(),
           ?LET({St, Sus, C, L, Pays, Ds}, {oneof([state(), random_term()]), short_list(oneof([binary(), random_term()])),
                                            oneof([integer(), exactly(undefined)]),
                                            oneof([integer(), exactly(undefined)]), oneof([boolean(), random_term()]),
                                            short_list(deployment())},
                #{state => St, suspended => Sus, cancelled_at => C, last_op_at => L, marketplace_pays => Pays,
                  deployments => Ds})]).

%% Lists of at most 6: long enough for every rule, short enough for 100,000 runs.
short_list(G) -> ?LET(N, range(0, 6), vector(N, G)).

deployment() ->
    oneof([decision_arg(),
           ?LET({Id, T, E, S, At}, {binary(), boolean(), oneof([integer(), exactly(undefined)]),
                                    elements([running, stopped, paused]), oneof([integer(), exactly(undefined)])},
                #{id => Id, trial => T, trial_ends_at => E, state => S, stopped_at => At})]).

prop_client_new() ->
    ?FORALL(T, oneof([random_term(), shaped_map()]), acceptable(fun() -> ?NIF:client_new(T) end)).

prop_request_term() ->
    ?FORALL({A, B, C}, {random_term(), random_term(), random_term()}, acceptable(fun() -> ?NIF:request(A, B, C) end)).

prop_request_shaped(Client) ->
    ?FORALL({Op, Args}, {oneof([elements(?OPS), atom_term()]), shaped_map()},
            begin
                R = acceptable(fun() -> ?NIF:request(Client, Op, Args) end),
                flush(),
                R
            end).

prop_one_arg(F) ->
    ?FORALL(T, random_term(), acceptable(fun() -> F(T) end)).

prop_authenticate(Auth) ->
    ?FORALL({A, H, N}, {oneof([exactly(Auth), random_term()]), oneof([binary(), jwt_like(), random_term()]),
                        oneof([integer(), random_term()])},
            begin
                R = acceptable(fun() -> ?NIF:webhook_authenticate(A, H, N) end),
                flush(),
                R
            end).

%% Three dot-separated base64url-ish parts: gets past the first checks of the JWT parser.
jwt_like() ->
    ?LET({X, Y, Z}, {binary(), binary(), binary()},
         iolist_to_binary([<<"Bearer ">>, base64:encode(X), $., base64:encode(Y), $., base64:encode(Z)])).

json_text() ->
    elements([<<"{}">>, <<"[1,2,{\"a\":null}]">>, <<"{\"a\":">>, <<"1e999">>, <<"\"\\ud800\"">>, <<"[[[[[[[[[[]]]]]]]]]]">>]).

state() -> elements([none, pending, linked, suspended, unsubscribed]).

event() -> elements([activated, link_failed, change_plan, change_quantity, renew, suspend, reinstate, unsubscribe]).

%% Maps with the keys the decision functions read, values of the right or wrong shape.
decision_arg() ->
    oneof([random_term(),
           ?LET(Pairs, ?LET(N, range(0, 6), vector(N, {elements([credit_card, available_credits,
                                                                 other_marketplace_link, status, holder,
                                                                 seen_cancelled, holds_other, action, subscription_id,
                                                                 plan_id, quantity,
                                                                 trial, trial_ends_at, state, stopped_at, id]),
                                                        oneof([boolean(), binary(), integer(), random_term(),
                                                               elements([running, stopped, undefined])])})),
                maps:from_list(Pairs))]).

prop_info() ->
    ?FORALL(_, integer(), acceptable(fun() -> ?NIF:info() end)).

%% A metering step's facts: usually every key, each value of the right shape or not (nested lists
%% of hours for the keys that take them), sometimes not a map at all.
metering_facts(Keys) ->
    frequency([{1, random_term()},
               {6, ?LET(Pairs, [{K, metering_value(K)} || K <- Keys],
                        ?LET(Drop, list(elements(Keys)), maps:without(Drop, maps:from_list(Pairs))))}]).

metering_value(K) when K =:= held; K =:= hours; K =:= day ->
    oneof([random_term(), ?LET(N, range(0, 3), vector(N, ?LAZY(metering_hour())))]);
metering_value(lookups) -> oneof([random_term(), list(time_arg())]);
metering_value(state) -> oneof([state(), random_term()]);
metering_value(step) -> oneof([elements([batch, lookup, check]), random_term()]);
metering_value(status) -> oneof([elements([open, pending, submitting, held, lookup, check, done, mismatch, carried,
                                           dropped, rejected]), random_term()]);
metering_value(counter) -> oneof([{time_arg(), time_arg()}, {time_arg(), time_arg(), time_arg(), time_arg()}, random_term()]);
metering_value(late) -> oneof([list({time_arg(), time_arg()}), random_term()]);
metering_value(term) -> oneof([exactly(undefined), #{<<"startDate">> => binary(), <<"endDate">> => binary(), <<"termUnit">> => binary()},
                               exactly(#{<<"startDate">> => <<"2026-01-31">>, <<"endDate">> => <<"2026-02-28">>, <<"termUnit">> => <<"P1M">>}), random_term()]);
metering_value(K) when K =:= outcome_unknown; K =:= dimension_known; K =:= bucket_open -> oneof([boolean(), random_term()]);
metering_value(K) when K =:= subscription_id; K =:= dimension; K =:= plan_id -> oneof([binary(), random_term()]);
metering_value(refused_as) -> oneof([elements(['BadArgument', 'ResourceNotFound', undefined]), random_term()]);
metering_value(_) -> time_arg().

metering_hour() ->
    ?LET(Pairs, [{K, metering_value(K)} || K <- ?HOUR_KEYS], maps:from_list(Pairs)).

%% An Azure call's result as the client gives it: Azure's JSON decoded (often the shapes the
%% metering core reads), or an error.
-define(LINK_STEP_KEYS, [step, result, resolved, attempts, retry_base_s, retry_max_s, now, job_current]).
link_step_facts() ->
    frequency([{1, random_term()},
               {6, ?LET(Pairs, [{K, link_step_value(K)} || K <- ?LINK_STEP_KEYS],
                        ?LET(Drop, list(elements(?LINK_STEP_KEYS)), maps:without(Drop, maps:from_list(Pairs))))}]).

link_step_value(step) -> oneof([elements([resolved, checked, activated, confirmed]), random_term()]);
link_step_value(result) -> oneof([exactly(ok), call_result(), {ok, resolve_answer()}]);
link_step_value(resolved) -> oneof([exactly(undefined), resolve_answer(), random_term()]);
link_step_value(job_current) -> oneof([boolean(), random_term()]);
link_step_value(_) -> oneof([time_arg(), random_term()]).

resolve_answer() ->
    ?LET(Pairs, [{K, oneof([binary(), integer(), random_term()])}
                 || K <- [<<"id">>, <<"planId">>, <<"quantity">>, <<"saasSubscriptionStatus">>, <<"subscription">>,
                          <<"term">>]],
         maps:from_list(Pairs)).

reconcile_facts() ->
    ?LET({{Step, Id, Result, Links, Now, Window, Drop}, {Url, Pace}},
         {{oneof([elements([list, one, page]), random_term()]), oneof([binary(), random_term()]),
           oneof([call_result(), {ok, list(subscription())}, {ok, subscription()}, {ok, page()}]),
           oneof([random_term(), ?LET(L, list({oneof([binary(), random_term()]),
                                               oneof([#{account_id => binary(), state => state()}, random_term()])}),
                                      maps:from_list(L))]),
           oneof([time_arg(), random_term()]), oneof([time_arg(), exactly(undefined), random_term()]),
           list(elements([step, subscription_id, result, links, now, enforce_window_s, marketplace_url, pace]))},
          {oneof([exactly(<<"https://marketplaceapi.microsoft.com/api">>), exactly(undefined), binary(), random_term()]),
           oneof([pace(), random_term()])}},
         maps:without(Drop, #{step => Step, subscription_id => Id, result => Result, links => Links, now => Now,
                              enforce_window_s => Window, marketplace_url => Url, pace => Pace})).

%% A page of List Subscriptions: its subscriptions and a link, at the marketplace or elsewhere.
page() ->
    ?LET({Subs, Next}, {list(subscription()),
                        oneof([exactly(null), exactly(<<>>), binary(), random_term(),
                               exactly(<<"https://marketplaceapi.microsoft.com/api/saas/subscriptions?c=2">>),
                               exactly(<<"https://evil.example/api/saas/subscriptions?c=2">>)])},
         #{<<"subscriptions">> => Subs, <<"@nextLink">> => Next}).

pace() ->
    ?LET({N, S, I, D, L, M, T, C, Drop},
         {time_arg(), time_arg(), oneof([time_arg(), random_term()]), oneof([time_arg(), random_term()]),
          time_arg(), oneof([time_arg(), real(), random_term()]), oneof([time_arg(), random_term()]),
          oneof([time_arg(), random_term()]),
          list(elements([now_ms, started_ms, interval_ms, pages_done, pages_last_pass, max_calls_per_s, took_ms,
                         calls]))},
         maps:without(Drop, #{now_ms => N, started_ms => S, interval_ms => I, pages_done => D, pages_last_pass => L,
                              max_calls_per_s => M, took_ms => T, calls => C})).

subscription() ->
    ?LET({Id, Status}, {oneof([binary(), random_term()]),
                        oneof([elements([<<"Subscribed">>, <<"Suspended">>, <<"Unsubscribed">>]), binary(), random_term()])},
         #{<<"id">> => Id, <<"saasSubscriptionStatus">> => Status}).

webhook_facts() ->
    frequency([{1, random_term()},
               {6, ?LET(Pairs, [{K, webhook_value(K)} || K <- ?WEBHOOK_KEYS],
                        ?LET(Drop, list(elements(?WEBHOOK_KEYS)), maps:without(Drop, maps:from_list(Pairs))))}]).

webhook_value(step) -> oneof([elements([delivery, operation, answered]), random_term()]);
webhook_value(body) -> oneof([binary(), json_text(), random_term()]);
webhook_value(term) -> oneof([exactly(undefined), random_term(),
                              #{<<"startDate">> => oneof([binary(), exactly(<<"2026-01-01">>)]),
                                <<"endDate">> => oneof([binary(), exactly(<<"2026-12-31">>)]),
                                <<"termUnit">> => oneof([binary(), exactly(<<"P1M">>)])}]);
webhook_value(result) -> oneof([exactly(ok), call_result(),
                                {ok, #{<<"action">> => oneof([elements([<<"ChangePlan">>, <<"Suspend">>]), random_term()]),
                                       <<"subscriptionId">> => oneof([exactly(<<"s">>), binary()]),
                                       <<"planId">> => oneof([binary(), random_term()]),
                                       <<"quantity">> => oneof([integer(), float(), binary(), random_term()]),
                                       <<"timeStamp">> => oneof([binary(), random_term()])}}]);
webhook_value(plan_known) -> oneof([boolean(), random_term()]);
webhook_value(answer) -> oneof([elements([success, failure]), random_term()]);
webhook_value(K) when K =:= action -> oneof([elements([<<"ChangePlan">>, <<"Suspend">>]), binary(), random_term()]);
webhook_value(_) -> oneof([exactly(<<"s">>), binary(), random_term()]).

call_result() ->
    oneof([random_term(),
           {ok, oneof([random_term(), #{<<"result">> => list(azure_item())}, list(azure_item()), azure_item()])},
           {error, oneof([exactly(timeout), exactly(overloaded), {http, integer(), binary()}, {transport, binary()},
                          {bad_response, binary()}, random_term()])}]).

azure_item() ->
    ?LET(Pairs, [{K, oneof([binary(), integer(), float(), random_term()])}
                 || K <- [<<"status">>, <<"resourceId">>, <<"dimension">>, <<"effectiveStartTime">>, <<"quantity">>,
                          <<"usageResourceId">>, <<"usageDate">>, <<"processedQuantity">>, <<"planId">>,
                          <<"saasSubscriptionStatus">>]],
         maps:from_list(Pairs)).

%% Maps whose keys are the ones the library looks for, with values of any shape (and sometimes the
%% right shape), so that the deeper validation paths are exercised too.
shaped_map() ->
    ?LET(Pairs, ?LET(N, range(0, 6), vector(N, {elements(?KEYS), value()})), maps:from_list(Pairs)).

value() ->
    oneof([random_term(), binary(), integer(), float(), atom_term(), elements([v1, v2, success, failure]),
           ?LET(N, range(0, 3), vector(N, shaped_leaf())), shaped_leaf()]).

shaped_leaf() ->
    ?LET(Pairs, ?LET(N, range(0, 6), vector(N, {elements(?KEYS), oneof([binary(), integer(), float(), random_term()])})),
         maps:from_list(Pairs)).

%% Random terms of every type. PropEr's any() makes up new atoms, and 100,000 runs of it would
%% fill the atom table; atoms here come from a fixed pool instead.
random_term() ->
    ?SIZED(Size, random_term(Size)).

%% A time or a count: any integer, the ends of 64 bits (the arithmetic must not overflow), or not one.
time_arg() ->
    oneof([integer(), elements([-(1 bsl 63), (1 bsl 63) - 1, 1 bsl 63, 0, 1]), random_term()]).

random_term(0) ->
    oneof([integer(), float(), binary(), bitstring(), atom_term(), exactly(self()), exactly(make_ref()),
           exactly(fun erlang:self/0), exactly([])]);
random_term(Size) ->
    Smaller = random_term(Size div 4),
    Few = ?LET(N, range(0, 4), vector(N, Smaller)),
    frequency([
        {4, random_term(0)},
        {1, ?LAZY(Few)},
        {1, ?LAZY(?LET(L, Few, list_to_tuple(L)))},
        {1, ?LAZY(?LET(Ks, Few, maps:from_list([{K, K} || K <- Ks])))},
        {1, ?LAZY(?LET({H, T}, {Smaller, Smaller}, [H | T]))}
    ]).

atom_term() ->
    elements(?OPS ++ ?KEYS ++ [ok, error, true, false, undefined, nil, v1, v2, v3, success, failure, x]).

flush() ->
    receive {azmp_reply, _, _} -> flush()
    after 0 -> ok
    end.
