%% @doc Runs linking jobs: resolve the marketplace token, decide with the C++ core, claim the
%% subscription, activate it in Azure, record the link. Jobs live in Mnesia: while Azure is
%% unreachable they stay pending and are retried with back-off; a node that restarts resumes its
%% jobs, and any node takes over a job whose owner's lease has run out.
-module(emqx_azure_marketplace_linker).

-behaviour(gen_server).

-export([start_link/0, kick/0, start_job/2, failure/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include_lib("kernel/include/logger.hrl").

-define(CLIENT, emqx_azure_marketplace_client).
-define(PLATFORM, emqx_azure_marketplace_platform).
-define(STORE, emqx_azure_marketplace_store).
-define(NIF, emqx_azure_marketplace_nif).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Look for work now rather than at the next tick.
-spec kick() -> ok.
kick() -> gen_server:cast(?MODULE, kick).

%% @doc Records a new linking job for Account (replacing a failed one) and starts it.
-spec start_job(binary(), {token, binary()} | {resolved, map()}) -> ok | {error, link_in_progress}.
start_job(Account, Work) ->
    case ?STORE:start_job(Account, Work, emqx_azure_marketplace_clock:now()) of
        ok -> kick();
        Error -> Error
    end.

%% @doc An Azure call's error as the core's rules classify it.
-spec failure(term()) -> {http, 100..599} | bad_request | unavailable.
failure({http, Status, _}) when is_integer(Status), Status >= 100, Status =< 599 -> {http, Status};
failure({badarg, _}) -> bad_request;
failure(_) -> unavailable.

%%--------------------------------------------------------------------

-spec init([]) -> {ok, map()}.
init([]) ->
    ok = ?STORE:resume_jobs_of(node()),
    self() ! tick,
    {ok, #{running => #{}}}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(_Req, _From, S) -> {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(kick, S) -> {noreply, run_ready(S)};
handle_cast(_Msg, S) -> {noreply, S}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(tick, S) ->
    erlang:send_after(env(tick_ms, 500), self(), tick),
    {noreply, run_ready(S)};
handle_info({'DOWN', _Ref, process, Pid, Reason}, S = #{running := R}) ->
    case [A || {A, P} <- maps:to_list(R), P =:= Pid] of
        [Account] ->
            Reason =/= normal andalso
                ?LOG_WARNING(#{msg => "azure_marketplace_link_step_crashed", account_id => Account, reason => Reason}),
            {noreply, S#{running := maps:remove(Account, R)}};
        [] ->
            {noreply, S}
    end;
handle_info(_Msg, S) ->
    {noreply, S}.

run_ready(S = #{running := R}) ->
    Now = emqx_azure_marketplace_clock:now(),
    Ready = [J || J = #{account_id := A} <- ?STORE:jobs_ready(Now), not maps:is_key(A, R)],
    lists:foldl(fun(J, Acc) -> maybe_start(J, Now, Acc) end, S, Ready).

maybe_start(#{account_id := A}, Now, S = #{running := R}) ->
    case ?STORE:claim_job(A, Now, Now + env(lease_s, 60)) of
        {ok, Job} ->
            {Pid, _} = spawn_monitor(fun() -> guarded_step(Job) end),
            S#{running := R#{A => Pid}};
        taken ->
            S
    end.

%%--------------------------------------------------------------------
%% The steps of a job (in a process of their own)

%% A job holds a marketplace token: a crash must not print it (a crash report shows the arguments
%% of the failing call). Logged without arguments; the job is tried again after its lease.
guarded_step(J = #{account_id := A}) ->
    try
        step(J)
    catch
        Class:Reason:Stack ->
            ?LOG_ERROR(#{msg => "azure_marketplace_link_step_failed", account_id => A, class => Class,
                         reason => emqx_azure_marketplace_client:redact(Reason), stacktrace => [{M, F, arity(Args), Loc} || {M, F, Args, Loc} <- Stack]})
    end.

arity(Args) when is_list(Args) -> length(Args);
arity(Arity) -> Arity.

step(J = #{phase := resolving, work := {token, Token}}) ->
    case ?CLIENT:resolve(emqx_azure_marketplace_azure:client(), Token) of
        {ok, Sub} -> decide(J, Sub);
        {error, Reason} -> failed_call(J, resolve, Reason)
    end;
step(J = #{phase := activating, work := {resolved, Sub}, subscription_id := undefined}) ->
    %% Resolved at landing: decide now that we know the account.
    decide(J, Sub);
step(J = #{phase := activating, subscription_id := SubId, work := {resolved, Sub}}) ->
    activate(J, SubId, Sub).

%% A failed call: final (the core names the refusal) or retried later.
failed_call(J, Step, Reason) ->
    case ?NIF:classify_link_failure(Step, failure(Reason)) of
        {refuse, Refusal} -> fail(J, Refusal);
        retry -> retry_later(J, Reason)
    end.

decide(J = #{account_id := A}, Sub) ->
    SubId = maps:get(<<"id">>, Sub),
    Inner = maps:get(<<"subscription">>, Sub, #{}),
    Status = maps:get(<<"saasSubscriptionStatus">>, Inner, <<"PendingFulfillmentStart">>),
    Profile =
        case ?PLATFORM:billing_profile(A) of
            {ok, P} -> P;
            {error, not_found} -> #{credit_card => false, available_credits => false, other_marketplace_link => false}
        end,
    Now = emqx_azure_marketplace_clock:now(),
    %% The decision and the claim on the subscription in one transaction: one account per subscription.
    Decide = fun(Facts) -> ?NIF:plan_link(A, Profile, Facts) end,
    case ?STORE:decide_link(A, SubId, #{status => Status, subscription => Sub, now => Now}, Decide) of
        {link, Key} ->
            emqx_azure_marketplace_effects:perform(Key),
            ?LOG_INFO(#{msg => "azure_marketplace_link_activating", account_id => A, subscription_id => SubId}),
            activate(J#{phase := activating, subscription_id := SubId, work := {resolved, Sub}}, SubId, Sub);
        {already_linked, Key} ->
            ?LOG_INFO(#{msg => "azure_marketplace_link_exists", account_id => A, subscription_id => SubId}),
            emqx_azure_marketplace_effects:perform(Key);
        {{refuse, Reason}, Key} ->
            ?LOG_NOTICE(#{msg => "azure_marketplace_link_refused", account_id => A, subscription_id => SubId,
                          reason => Reason}),
            emqx_azure_marketplace_effects:perform(Key);
        gone ->
            ok
    end.

activate(J = #{account_id := A}, SubId, Sub) ->
    C = emqx_azure_marketplace_azure:client(),
    %% After a crash the activation may have gone through already: ask before activating again.
    {Status, Current} =
        case ?CLIENT:get_subscription(C, SubId) of
            {ok, Azure = #{<<"saasSubscriptionStatus">> := S}} when is_binary(S) -> {S, Azure};
            _ -> {undefined, undefined}
        end,
    case ?NIF:decide_activation(Status) of
        already_active -> linked(J, SubId, with_term(Sub, Current));
        refuse -> fail(J, subscription_unsubscribed);
        activate ->
            case ?CLIENT:activate(C, SubId, maps:get(<<"planId">>, Sub), quantity(Sub)) of
                ok -> linked(J, SubId, with_term(Sub, activated(C, SubId)));
                {error, Reason} ->
                    %% Another node may have finished or failed the job meanwhile (a lease ran out).
                    case ?STORE:job_activating(A, SubId) of
                        true -> failed_call(J, activate, Reason);
                        false -> ok
                    end
            end
    end.

%% The subscription's term starts at its activation: Azure's after it (Get Subscription), for the
%% included quantities' anniversary; the resolved one (usually without dates) if Azure cannot say now.
activated(C, SubId) ->
    case ?CLIENT:get_subscription(C, SubId) of
        {ok, Azure} when is_map(Azure) -> Azure;
        {error, _} -> undefined
    end.

with_term(Sub, #{<<"term">> := Term}) when is_map(Term) ->
    Inner = case maps:get(<<"subscription">>, Sub, #{}) of
                M when is_map(M) -> M;
                _ -> #{}
            end,
    Sub#{<<"subscription">> => Inner#{<<"term">> => Term}};
with_term(Sub, _) ->
    Sub.

quantity(#{<<"quantity">> := Q}) when is_integer(Q), Q > 0 -> Q;
quantity(_) -> undefined.

linked(#{account_id := A}, SubId, Sub) ->
    Now = emqx_azure_marketplace_clock:now(),
    %% Only the term's fields the product reads, validated and bounded, as from a webhook.
    Term = emqx_azure_marketplace_metering:subscription_term(Sub),
    Key = ?STORE:commit_linked(A, SubId, #{plan_id => maps:get(<<"planId">>, Sub), quantity => quantity(Sub),
                                           term => Term}, ?NIF:plan_linked(), Now),
    ?LOG_INFO(#{msg => "azure_marketplace_linked", account_id => A, subscription_id => SubId}),
    ok = emqx_azure_marketplace_metrics:link(linked),
    emqx_azure_marketplace_effects:perform(Key).

fail(#{account_id := A}, Reason) ->
    Key = ?STORE:commit_link_failed(A, Reason, ?NIF:plan_link_failed(Reason), emqx_azure_marketplace_clock:now()),
    ?LOG_NOTICE(#{msg => "azure_marketplace_link_failed", account_id => A, reason => Reason}),
    ok = emqx_azure_marketplace_metrics:link(Reason),
    emqx_azure_marketplace_effects:perform(Key).

%% Azure unreachable (or slow): keep the job, try again after the core's back-off.
retry_later(#{account_id := A, attempts := N, phase := Phase}, Reason) ->
    Now = emqx_azure_marketplace_clock:now(),
    Delay = ?NIF:link_retry_delay(N, env(retry_base_s, 1), env(retry_max_s, 60)),
    ?LOG_WARNING(#{msg => "azure_marketplace_link_retry", account_id => A, phase => Phase,
                   attempt => N + 1, retry_in_s => Delay, reason => emqx_azure_marketplace_client:redact(Reason)}),
    ?STORE:retry_job(A, N + 1, Now + Delay, Now).

env(Key, Default) -> application:get_env(emqx_azure_marketplace, Key, Default).
