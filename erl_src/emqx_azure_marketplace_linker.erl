%% @doc Runs linking jobs: resolve the marketplace token, decide with the C++ core, claim the
%% subscription, activate it in Azure, record the link. Jobs live in Mnesia: while Azure is
%% unreachable they stay pending and are retried with back-off; a node that restarts resumes its
%% jobs, and any node takes over a job whose owner's lease has run out.
-module(emqx_azure_marketplace_linker).

-behaviour(gen_server).

-export([start_link/0, kick/0, start_job/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include_lib("kernel/include/logger.hrl").

-define(CLIENT, emqx_azure_marketplace_client).
-define(PLATFORM, emqx_azure_marketplace_platform).
-define(JOBS, emqx_azure_marketplace_store_jobs).
-define(NIF, emqx_azure_marketplace_nif).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Look for work now rather than at the next tick.
-spec kick() -> ok.
kick() -> gen_server:cast(?MODULE, kick).

%% @doc Records a new linking job for Account (replacing a failed one) and starts it.
-spec start_job(binary(), {token, binary()} | {resolved, map()}) -> ok | {error, link_in_progress}.
start_job(Account, Work) ->
    case ?JOBS:start_job(Account, Work, emqx_azure_marketplace_clock:now()) of
        ok -> kick();
        Error -> Error
    end.

%%--------------------------------------------------------------------

-spec init([]) -> {ok, map()}.
init([]) ->
    ok = ?JOBS:resume_jobs_of(node()),
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
    Ready = [J || J = #{account_id := A} <- ?JOBS:jobs_ready(Now), not maps:is_key(A, R)],
    lists:foldl(fun(J, Acc) -> maybe_start(J, Now, Acc) end, S, Ready).

maybe_start(#{account_id := A}, Now, S = #{running := R}) ->
    case ?JOBS:claim_job(A, Now, Now + env(lease_s, 60)) of
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

%% Each step: an Azure call, its answer planned by the core, the plan performed.
step(J = #{phase := resolving, work := {token, Token}}) ->
    advance(J, resolved, ?CLIENT:resolve(emqx_azure_marketplace_azure:client(), Token), #{});
step(J = #{phase := activating, work := {resolved, Sub}, subscription_id := undefined}) ->
    %% Resolved at landing: decide now that we know the account.
    advance(J, resolved, {ok, Sub}, #{});
step(J = #{phase := activating, subscription_id := SubId}) ->
    %% After a crash the activation may have gone through already: ask before activating again.
    advance(J, checked, ?CLIENT:get_subscription(emqx_azure_marketplace_azure:client(), SubId), #{}).

advance(J = #{attempts := N}, Step, Result, Extra) ->
    Resolved = case J of
                   #{work := {resolved, Sub}} -> Sub;
                   _ -> undefined
               end,
    Facts = Extra#{step => Step, result => Result, resolved => Resolved, attempts => N,
                   retry_base_s => env(retry_base_s, 1), retry_max_s => env(retry_max_s, 60),
                   now => emqx_azure_marketplace_clock:now()},
    perform(J, ?NIF:plan_link_step(Facts), Result).

perform(J, #{next := decide, subscription_id := SubId, status := Status}, {ok, Sub}) ->
    decide(J, SubId, Status, Sub);
perform(J = #{account_id := A, subscription_id := SubId}, #{next := activate, plan_id := Plan, quantity := Q}, _) ->
    C = emqx_azure_marketplace_azure:client(),
    case ?CLIENT:activate(C, SubId, Plan, Q) of
        ok ->
            advance(J, activated, ok, #{});
        Failed ->
            %% Another node may have finished or failed the job meanwhile (a lease ran out).
            advance(J, activated, Failed, #{job_current => ?JOBS:job_activating(A, SubId)})
    end;
perform(J = #{subscription_id := SubId}, #{next := confirm}, _) ->
    %% The subscription's term starts at its activation: Azure's, after it, for the included
    %% quantities' anniversary.
    advance(J, confirmed, ?CLIENT:get_subscription(emqx_azure_marketplace_azure:client(), SubId), #{});
perform(#{account_id := A, subscription_id := SubId}, #{next := linked, plan_id := Plan, quantity := Q, term := Term,
                                                         effects := Effects}, _) ->
    Key = ?JOBS:commit_linked(A, SubId, #{plan_id => Plan, quantity => Q, term => Term}, Effects,
                               emqx_azure_marketplace_clock:now()),
    ?LOG_INFO(#{msg => "azure_marketplace_linked", account_id => A, subscription_id => SubId}),
    ok = emqx_azure_marketplace_metrics:link(linked),
    emqx_azure_marketplace_effects:perform(Key);
perform(#{account_id := A}, #{next := refuse, reason := Reason, effects := Effects}, _) ->
    Key = ?JOBS:commit_link_failed(A, Reason, Effects, emqx_azure_marketplace_clock:now()),
    ?LOG_NOTICE(#{msg => "azure_marketplace_link_failed", account_id => A, reason => Reason}),
    ok = emqx_azure_marketplace_metrics:link(Reason),
    emqx_azure_marketplace_effects:perform(Key);
perform(#{account_id := A, phase := Phase}, #{next := retry, retry_at := At, attempts := N}, Result) ->
    %% Azure unreachable (or slow): the job is kept and tried again after the core's back-off.
    Now = emqx_azure_marketplace_clock:now(),
    ?LOG_WARNING(#{msg => "azure_marketplace_link_retry", account_id => A, phase => Phase, attempt => N,
                   retry_in_s => At - Now, reason => failure_reason(Result)}),
    ?JOBS:retry_job(A, N, At, Now);
perform(_J, #{next := nothing}, _) ->
    ok.

decide(J = #{account_id := A}, SubId, Status, Sub) ->
    Profile =
        case ?PLATFORM:billing_profile(A) of
            {ok, P} -> P;
            {error, not_found} -> #{credit_card => false, available_credits => false, other_marketplace_link => false}
        end,
    Now = emqx_azure_marketplace_clock:now(),
    %% The decision and the claim on the subscription in one transaction: one account per subscription.
    Decide = fun(Facts) -> ?NIF:plan_link(maps:merge(Profile, Facts#{account_id => A})) end,
    case ?JOBS:decide_link(A, SubId, #{status => Status, subscription => Sub, now => Now}, Decide) of
        {link, Key} ->
            emqx_azure_marketplace_effects:perform(Key),
            ?LOG_INFO(#{msg => "azure_marketplace_link_activating", account_id => A, subscription_id => SubId}),
            step(J#{phase := activating, subscription_id := SubId, work := {resolved, Sub}});
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

%% Why a call failed, for the log (never an answer's body, which may describe the purchase).
failure_reason({error, Reason}) -> emqx_azure_marketplace_client:redact(Reason);
failure_reason(_) -> unreadable_answer.

env(Key, Default) -> application:get_env(emqx_azure_marketplace, Key, Default).
