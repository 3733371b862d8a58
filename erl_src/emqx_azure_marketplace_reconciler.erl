%% @doc Fulfillment reconciliation: Azure's list of subscriptions is the truth; a lost webhook
%% (suspension, reinstatement, cancellation) is repaired from it.
%%
%% A pass reads the list one page at a time (never the whole list in memory), spread over
%% `reconcile_interval_ms' (5 min) at no more than `reconcile_max_calls_per_s' calls (10 by
%% default): the core plans each page (plan_reconcile, step `page': the repairs, the continuation,
%% when the next call is made, from call start to call start: it is told how long the step's calls
%% took). After each page's repairs the checkpoint is committed
%% (emqx_azure_marketplace_store_recon), fenced by a lease: one node runs passes; a restart, or
%% another node once the lease has run out, resumes the pass where it stands. After the last page,
%% the effects of recent state changes are planned again (lifecycle:enforce_changed_since/1).
%%
%% Subscriptions whose state is in doubt are checked first, with Get Subscription, before each
%% page (up to ?DOUBTS_PER_CALL at a time): those whose webhook was deferred or failed (flagged by
%% the webhook handler), those an operator flagged (doubt/1, or a resync Azure did not answer), and,
%% at each pass's start, suspended links changed within the last interval.
-module(emqx_azure_marketplace_reconciler).

-behaviour(gen_server).

-export([start_link/0, reconcile/0, resync/1, doubt/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-include_lib("kernel/include/logger.hrl").

-define(STORE, emqx_azure_marketplace_store_recon).
-define(CLIENT, emqx_azure_marketplace_client).
-define(DOUBTS_PER_CALL, 10).
%% The lease outlasts the wait for the next call by this much (a node that died is taken over then).
-define(LEASE_SLACK_MS, 30000).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc A full pass now, page after page without pacing (the operator asked), the subscriptions in
%% doubt first: the events it applied. The periodic pass's checkpoint is left as it is.
-spec reconcile() -> {ok, [{binary(), atom()}]} | {error, term()}.
reconcile() -> gen_server:call(?MODULE, reconcile, 600000).

%% @doc The subscription's state is in doubt (an operator's word): the next call of the pass checks
%% it first, with Get Subscription. Refused for what cannot be a subscription id, and for a
%% subscription no account is linked to (nothing of ours to repair: most likely a mistyped id).
-spec doubt(binary()) -> ok | {error, {badarg, subscription_id} | not_linked}.
doubt(SubId) ->
    case emqx_azure_marketplace_nif:valid_id(SubId) of
        false -> {error, {badarg, subscription_id}};
        true ->
            case emqx_azure_marketplace_store_links:link_by_subscription(SubId) of
                undefined -> {error, not_linked};
                #{} -> ?STORE:flag_doubt(SubId, operator, emqx_azure_marketplace_clock:now())
            end
    end.

-spec init([]) -> {ok, map()}.
init([]) ->
    process_flag(trap_exit, true),
    %% A pass in progress (this node's, or one whose node is gone) goes on when its next call is due.
    #{next_at_ms := Next} = ?STORE:checkpoint(),
    Delay = case Next of
                0 -> interval();
                _ -> max(0, Next - now_ms())
            end,
    {ok, #{timer => erlang:send_after(Delay, self(), tick)}}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(reconcile, _From, S) -> {reply, full_pass(), S};
handle_call(_Req, _From, S) -> {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) -> {noreply, S}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(tick, S = #{timer := T}) ->
    %% (A tick sent from outside, e.g. a bench starting a pass now, replaces the one due.)
    _ = erlang:cancel_timer(T),
    InMs = try tick()
           catch Class:Reason ->
                   ?LOG_WARNING(#{msg => "azure_marketplace_reconcile_failed", class => Class, reason => Reason}),
                   min(interval(), 10000)
           end,
    {noreply, S#{timer := erlang:send_after(InMs, self(), tick)}};
handle_info(_Msg, S) ->
    {noreply, S}.

-spec terminate(term(), map()) -> ok.
terminate(shutdown, _S) -> ?STORE:release_lease(node());
terminate(_Reason, _S) -> ok.

%%--------------------------------------------------------------------
%% The periodic pass: one call (a page, after the subscriptions in doubt) at a time

tick() ->
    NowMs = now_ms(),
    case ?STORE:take_lease(node(), NowMs, NowMs + ?LEASE_SLACK_MS) of
        {taken, Until} ->
            max(Until - NowMs, 1000);
        {ok, C} ->
            %% The step's calls (the doubts', the page's) count in the wait for the next one: their
            %% time, and their number.
            StepStart = erlang:monotonic_time(millisecond),
            {Read, Applied} = check_doubts(),
            log(Applied),
            page(C, {StepStart, Read + 1})
    end.

%% One page of the pass, its repairs applied, then where the pass stands committed: the time until
%% the next call (StepStart: when this step's first call started, on the monotonic clock; Calls:
%% the calls it makes, this page's included).
page(C = #{continuation := Cont, started_ms := Started0, pages_done := Done0}, {StepStart, Calls}) ->
    {Started, Done} = case Cont of
                          first -> flag_recent_changes(), {now_ms(), 0};
                          _ -> {Started0, Done0}
                      end,
    Result = ?CLIENT:list_subscriptions_page(emqx_azure_marketplace_azure:client(), arg(Cont)),
    Took = erlang:monotonic_time(millisecond) - StepStart,
    Plan = plan(#{step => page, result => Result, marketplace_url => marketplace_url(),
                  pace => pace(Started, Done + 1, C, Took, Calls)}),
    #{next_in_ms := InMs} = Plan,
    NowMs = now_ms(),
    Next = case Plan of
               #{outcome := repairs, repairs := Repairs, continuation := done, enforce_changed_since := Since} ->
                   log(apply_repairs(Repairs) ++ enforce(Since)),
                   C#{continuation := first, started_ms := Started, pages_done := 0, pages_last_pass := Done + 1,
                      last_pass_ms := NowMs - Started};
               #{outcome := repairs, repairs := Repairs, continuation := Continuation} ->
                   log(apply_repairs(Repairs)),
                   C#{continuation := Continuation, started_ms := Started, pages_done := Done + 1};
               #{outcome := failed} ->
                   ?LOG_WARNING(#{msg => "azure_marketplace_reconcile_failed", reason => reason(Result)}),
                   C#{started_ms := Started, pages_done := Done};
               #{outcome := bad_response, reason := Why} ->
                   %% Unreadable, or a link elsewhere than the marketplace: the pass ends here.
                   ?LOG_WARNING(#{msg => "azure_marketplace_reconcile_failed", reason => {bad_response, Why}}),
                   C#{continuation := first, pages_done := 0}
           end,
    _ = ?STORE:save(node(), Next#{next_at_ms := NowMs + InMs}, NowMs + InMs + ?LEASE_SLACK_MS),
    InMs.

pace(Started, Done, #{pages_last_pass := Last}, Took, Calls) ->
    Pace = #{now_ms => now_ms(), started_ms => Started, interval_ms => interval(), pages_done => Done,
             pages_last_pass => Last, took_ms => Took, calls => Calls},
    %% (A value the config would refuse, set in the env directly: the core's default.)
    case application:get_env(emqx_azure_marketplace, reconcile_max_calls_per_s) of
        {ok, Max} ->
            case emqx_azure_marketplace_config:valid_calls_per_s(Max) of
                true -> Pace#{max_calls_per_s => Max};
                false -> Pace
            end;
        undefined -> Pace
    end.

%% Suspended links changed within the last interval: Azure may have reinstated or cancelled them
%% since, and a webhook may be what was lost.
flag_recent_changes() ->
    Now = emqx_azure_marketplace_clock:now(),
    [?STORE:flag_doubt(Sub, recent_change, Now)
     || #{subscription_id := Sub, state := suspended} <-
            emqx_azure_marketplace_store_links:links_changed_since(Now - interval() div 1000), is_binary(Sub)],
    ok.

%%--------------------------------------------------------------------
%% The operator's pass: every page at once

full_pass() ->
    Doubts = check_all_doubts([]),
    Started = now_ms(),
    case full_pass(first, Started, 1, []) of
        {ok, Applied} -> {ok, Doubts ++ Applied};
        Error -> Error
    end.

full_pass(Cont, Started, N, Acc) ->
    Result = ?CLIENT:list_subscriptions_page(emqx_azure_marketplace_azure:client(), arg(Cont)),
    Pace = pace(Started, N, #{pages_last_pass => 0}, 0, 1),  % (not paced: its waits are not used)
    case plan(#{step => page, result => Result, marketplace_url => marketplace_url(), pace => Pace}) of
        #{outcome := repairs, repairs := Repairs, continuation := done, enforce_changed_since := Since} ->
            %% Then the effects of every recent suspension or cancellation, planned again, in case
            %% they were undone since (an operator, or a platform call that failed).
            {ok, lists:append(lists:reverse([apply_repairs(Repairs) | Acc])) ++ enforce(Since)};
        #{outcome := repairs, repairs := Repairs, continuation := Next} ->
            full_pass(Next, Started, N + 1, [apply_repairs(Repairs) | Acc]);
        #{outcome := bad_response, reason := Why} ->
            {error, {bad_response, Why}};
        #{outcome := failed} ->
            {error, reason(Result)}
    end.

check_all_doubts(Acc) ->
    case check_doubts() of
        {_, []} -> Acc;
        {_, Applied} -> check_all_doubts(Acc ++ Applied)
    end.

%%--------------------------------------------------------------------
%% Subscriptions in doubt, and the operator's resync

%% Up to ?DOUBTS_PER_CALL subscriptions in doubt, each read with Get Subscription and repaired: how
%% many were read (a call each) and what was applied, by subscription. A doubt stays while Azure
%% cannot be asked (its answer is unknown).
check_doubts() ->
    Subs = ?STORE:doubts(?DOUBTS_PER_CALL),
    {length(Subs), lists:append([begin
                                     {Settled, Applied} = check(Sub),
                                     _ = Settled andalso ?STORE:clear_doubt(Sub) =:= ok,
                                     [{Sub, E} || {_, E} <- Applied]
                                 end || Sub <- Subs])}.

check(SubId) ->
    case resync(SubId) of
        {ok, Applied} -> {true, Applied};
        {error, {http, Status}} when Status >= 400, Status < 500 -> {true, []};  % Azure's answer: refused
        {error, _} -> {false, []}
    end.

%% @doc One subscription brought to Azure's state now (the operator's `resync'): what was applied.
%% When Azure cannot be asked now, the subscription is in doubt: the pass checks it first.
-spec resync(binary()) -> {ok, [{binary(), atom()}]} | {error, term()}.
resync(SubId) ->
    Result = ?CLIENT:get_subscription(emqx_azure_marketplace_azure:client(), SubId),
    case plan(#{step => one, subscription_id => SubId, result => Result}) of
        #{outcome := repairs, repairs := Repairs} ->
            {ok, apply_repairs(Repairs, account_id)};
        #{outcome := bad_response} ->
            {error, {bad_response, no_status}};
        #{outcome := failed} ->
            Reason = reason(Result),
            case Reason of
                {http, _} -> ok;
                _ -> ?STORE:flag_doubt(SubId, operator, emqx_azure_marketplace_clock:now())
            end,
            {error, Reason}
    end.

%%--------------------------------------------------------------------
%% Planning and applying

%% Azure's answer against our links to the subscriptions it names (the core plans the repairs).
plan(Facts) ->
    Window = application:get_env(emqx_azure_marketplace, enforce_window_s, undefined),
    case emqx_azure_marketplace_nif:plan_reconcile(Facts#{now => emqx_azure_marketplace_clock:now(),
                                                           enforce_window_s => Window}) of
        #{outcome := need_links, subscription_ids := Ids} -> plan(Facts#{links => links(Ids)});
        Plan -> Plan
    end.

%% Each repair applied as the subscription event it is: those applied, by subscription (a pass) or
%% by account (a resync, as it always did).
apply_repairs(Repairs) -> apply_repairs(Repairs, subscription_id).

apply_repairs(Repairs, Name) ->
    [{maps:get(Name, R), Event} || R = #{account_id := A, event := Event} <- Repairs,
                                   emqx_azure_marketplace_lifecycle:apply_event(A, Event, #{}, undefined) =:= ok].

enforce(Since) ->
    [{A, enforced} || A <- emqx_azure_marketplace_lifecycle:enforce_changed_since(Since)].

links(Ids) ->
    lists:foldl(fun(Id, Acc) ->
                        case emqx_azure_marketplace_store_links:link_by_subscription(Id) of
                            #{account_id := A, state := State} -> Acc#{Id => #{account_id => A, state => State}};
                            undefined -> Acc
                        end
                end, #{}, Ids).

log([]) -> ok;
log(Applied) -> ?LOG_NOTICE(#{msg => "azure_marketplace_reconciled", applied => Applied}).

arg(first) -> undefined;
arg(Continuation) -> Continuation.

reason({error, Reason}) -> ?CLIENT:redact(Reason).

interval() -> application:get_env(emqx_azure_marketplace, reconcile_interval_ms, 300000).

marketplace_url() ->
    case maps:get(marketplace_url, application:get_env(emqx_azure_marketplace, azure, #{}), undefined) of
        Url when is_list(Url) -> unicode:characters_to_binary(Url);
        Url -> Url
    end.

now_ms() -> erlang:system_time(millisecond).
