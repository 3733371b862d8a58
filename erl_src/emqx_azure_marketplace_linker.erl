%% @doc Runs linking jobs: resolve the marketplace token, decide with the C++ core, claim the
%% subscription, activate it in Azure, record the link. Jobs live in Mnesia: while Azure is
%% unreachable they stay pending and are retried with back-off; a node that restarts resumes its
%% jobs, and any node takes over a job whose owner's lease has run out.
-module(emqx_azure_marketplace_linker).

-behaviour(gen_server).

-export([start_link/0, kick/0, start_job/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include("emqx_azure_marketplace.hrl").
-include_lib("kernel/include/logger.hrl").

-define(CLIENT, emqx_azure_marketplace_client).
-define(PLATFORM, emqx_azure_marketplace_platform).
-define(STORE, emqx_azure_marketplace_store).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Look for work now rather than at the next tick.
-spec kick() -> ok.
kick() -> gen_server:cast(?MODULE, kick).

%% @doc Records a new linking job for Account (replacing a failed one) and starts it.
-spec start_job(binary(), {token, binary()} | {resolved, map()}) -> ok | {error, link_in_progress}.
start_job(Account, Work) ->
    Now = emqx_azure_marketplace_clock:now(),
    F = fun() ->
        case mnesia:wread({azmp_job, Account}) of
            [#azmp_job{phase = P}] when P =/= failed ->
                {error, link_in_progress};
            _ ->
                Phase = case Work of {token, _} -> resolving; {resolved, _} -> activating end,
                mnesia:write(#azmp_job{account_id = Account, phase = Phase, work = Work, owner = node(),
                                       lease_until = 0, updated_at = Now}),
                ok
        end
    end,
    case ?STORE:transaction(F) of
        {ok, ok} -> kick();
        {ok, Error} -> Error;
        {error, Reason} -> {error, {store, Reason}}
    end.

%%--------------------------------------------------------------------

-spec init([]) -> {ok, map()}.
init([]) ->
    resume_own_jobs(),
    self() ! tick,
    {ok, #{running => #{}}}.

%% This node has just started: no step of ours is running, so the jobs we owned (a crash cut them
%% short) need not wait for their lease to run out -- except a job that may have sent its
%% activation: Azure can still be working on that request, and a Get Subscription now would not
%% show it yet (we would activate a second time). Such a job waits out its lease, as on a takeover
%% by another node; by then the activation has landed or failed, and Get Subscription tells.
resume_own_jobs() ->
    Me = node(),
    {ok, _} = ?STORE:transaction(fun() ->
        Own = mnesia:match_object(?STORE:pattern(azmp_job, [{#azmp_job.owner, Me}])),
        [mnesia:write(J#azmp_job{lease_until = 0}) || J = #azmp_job{phase = P, subscription_id = S} <- Own,
                                                      P =:= resolving orelse (P =:= activating andalso S =:= undefined)]
    end),
    ok.

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
    Ready = [J || J = #azmp_job{account_id = A} <- ?STORE:jobs_ready(Now), not maps:is_key(A, R)],
    lists:foldl(fun(J, Acc) -> maybe_start(J, Now, Acc) end, S, Ready).

maybe_start(#azmp_job{account_id = A}, Now, S = #{running := R}) ->
    case claim(A, Now) of
        {ok, Job} ->
            {Pid, _} = spawn_monitor(fun() -> guarded_step(Job) end),
            S#{running := R#{A => Pid}};
        taken ->
            S
    end.

%% One node works on a job at a time: the lease says which, and until when.
claim(Account, Now) ->
    F = fun() ->
        case mnesia:wread({azmp_job, Account}) of
            [J = #azmp_job{phase = P, lease_until = L}] when P =/= failed, L =< Now ->
                J1 = J#azmp_job{owner = node(), lease_until = Now + env(lease_s, 60)},
                mnesia:write(J1),
                {ok, J1};
            _ ->
                taken
        end
    end,
    case ?STORE:transaction(F) of
        {ok, Result} -> Result;
        {error, _} -> taken
    end.

%%--------------------------------------------------------------------
%% The steps of a job (in a process of their own)

%% A job holds a marketplace token: a crash must not print it (a crash report shows the arguments
%% of the failing call). Logged without arguments; the job is tried again after its lease.
guarded_step(J = #azmp_job{account_id = A}) ->
    try
        step(J)
    catch
        Class:Reason:Stack ->
            ?LOG_ERROR(#{msg => "azure_marketplace_link_step_failed", account_id => A, class => Class,
                         reason => redact(Reason), stacktrace => [{M, F, arity(Args), Loc} || {M, F, Args, Loc} <- Stack]})
    end.

arity(Args) when is_list(Args) -> length(Args);
arity(Arity) -> Arity.

step(J = #azmp_job{phase = resolving, work = {token, Token}}) ->
    case ?CLIENT:resolve(emqx_azure_marketplace_app:client(), Token) of
        {ok, Sub} -> decide(J, Sub);
        {error, {http, Status, _}} when Status >= 400, Status < 500, Status =/= 429 -> fail(J, invalid_token);
        {error, {badarg, _}} -> fail(J, invalid_token);
        {error, Reason} -> retry_later(J, Reason)
    end;
step(J = #azmp_job{phase = activating, work = {resolved, Sub}, subscription_id = undefined}) ->
    %% Resolved at landing: decide now that we know the account.
    decide(J, Sub);
step(J = #azmp_job{phase = activating, subscription_id = SubId, work = {resolved, Sub}}) ->
    activate(J, SubId, Sub).

decide(J = #azmp_job{account_id = A}, Sub) ->
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
    F = fun() ->
        Records = mnesia:index_read(azmp_link, SubId, #azmp_link.subscription_id),
        Holder =
            case [H || #azmp_link{account_id = H, state = St} <- Records, St =/= unsubscribed] of
                [H | _] -> H;
                [] -> undefined
            end,
        %% Unsubscribed is final: once we saw this subscription cancelled, it is, whatever a later
        %% answer from Azure says.
        Status1 =
            case [x || #azmp_link{state = unsubscribed} <- Records] of
                [] -> Status;
                _ -> <<"Unsubscribed">>
            end,
        OwnOther =
            case mnesia:read(azmp_link, A) of
                [#azmp_link{subscription_id = Other, state = St2}] when Other =/= SubId, St2 =/= unsubscribed -> true;
                _ -> false
            end,
        Profile1 = Profile#{other_marketplace_link := maps:get(other_marketplace_link, Profile) orelse OwnOther},
        case emqx_azure_marketplace_nif:decide_link(A, Profile1, #{status => Status1, linked_account => Holder}) of
            link ->
                mnesia:write(J#azmp_job{phase = activating, subscription_id = SubId, work = {resolved, Sub},
                                        attempts = 0, updated_at = Now}),
                link;
            already_linked ->
                mnesia:delete({azmp_job, A}),
                already_linked;
            {refuse, Reason} ->
                mnesia:write(J#azmp_job{phase = failed, reason = Reason, work = undefined, updated_at = Now}),
                {refuse, Reason}
        end
    end,
    case ?STORE:transaction(F) of
        {ok, link} ->
            ?LOG_INFO(#{msg => "azure_marketplace_link_activating", account_id => A, subscription_id => SubId}),
            activate(J#azmp_job{phase = activating, subscription_id = SubId, work = {resolved, Sub}}, SubId, Sub);
        {ok, already_linked} ->
            ?LOG_INFO(#{msg => "azure_marketplace_link_exists", account_id => A, subscription_id => SubId}),
            ?PLATFORM:notify(A, #{kind => linked, subscription_id => SubId}),
            ok;
        {ok, {refuse, Reason}} ->
            ?LOG_NOTICE(#{msg => "azure_marketplace_link_refused", account_id => A, subscription_id => SubId,
                          reason => Reason}),
            ?PLATFORM:notify(A, #{kind => link_failed, reason => Reason}),
            ok;
        {error, Reason} ->
            retry_later(J, {store, Reason})
    end.

activate(J, SubId, Sub) ->
    C = emqx_azure_marketplace_app:client(),
    Plan = maps:get(<<"planId">>, Sub),
    %% After a crash the activation may have gone through already: ask before activating again.
    Already =
        case ?CLIENT:get_subscription(C, SubId) of
            {ok, #{<<"saasSubscriptionStatus">> := <<"Subscribed">>}} -> true;
            {ok, #{<<"saasSubscriptionStatus">> := <<"Unsubscribed">>}} -> cancelled;
            _ -> false
        end,
    Result =
        case Already of
            true -> ok;
            cancelled -> {refuse, subscription_unsubscribed};
            false -> ?CLIENT:activate(C, SubId, Plan, quantity(Sub))
        end,
    case Result of
        ok -> linked(J, SubId, Sub);
        {refuse, Reason} -> fail(J, Reason);
        {error, {http, 400, _}} -> fail(J, subscription_unsubscribed);
        {error, Reason} -> retry_later(J, Reason)
    end.

quantity(#{<<"quantity">> := Q}) when is_integer(Q), Q > 0 -> Q;
quantity(_) -> undefined.

linked(#azmp_job{account_id = A}, SubId, Sub) ->
    Now = emqx_azure_marketplace_clock:now(),
    Link = #azmp_link{account_id = A, subscription_id = SubId, state = linked, plan_id = maps:get(<<"planId">>, Sub),
                      quantity = quantity(Sub), updated_at = Now},
    {ok, ok} = ?STORE:transaction(fun() ->
        mnesia:write(Link),
        emqx_azure_marketplace_lifecycle:cancel_deadlines(A),
        mnesia:delete({azmp_job, A})
    end),
    ?LOG_INFO(#{msg => "azure_marketplace_linked", account_id => A, subscription_id => SubId}),
    ok = ?PLATFORM:set_payment_method(A, azure_marketplace_subscription),
    ?PLATFORM:notify(A, #{kind => linked, subscription_id => SubId}).

fail(J = #azmp_job{account_id = A}, Reason) ->
    Now = emqx_azure_marketplace_clock:now(),
    {ok, ok} = ?STORE:transaction(fun() ->
        mnesia:write(J#azmp_job{phase = failed, reason = Reason, work = undefined, updated_at = Now})
    end),
    ?LOG_NOTICE(#{msg => "azure_marketplace_link_failed", account_id => A, reason => Reason}),
    ?PLATFORM:notify(A, #{kind => link_failed, reason => Reason}).

%% Azure unreachable (or slow): keep the job, try again after a back-off.
retry_later(J = #azmp_job{account_id = A, attempts = N}, Reason) ->
    Now = emqx_azure_marketplace_clock:now(),
    Delay = min(env(retry_max_s, 60), env(retry_base_s, 1) bsl min(N, 6)),
    ?LOG_WARNING(#{msg => "azure_marketplace_link_retry", account_id => A, phase => J#azmp_job.phase,
                   attempt => N + 1, retry_in_s => Delay, reason => redact(Reason)}),
    {ok, ok} = ?STORE:transaction(fun() ->
        case mnesia:wread({azmp_job, A}) of
            [Cur] -> mnesia:write(Cur#azmp_job{attempts = N + 1, lease_until = Now + Delay, updated_at = Now});
            [] -> ok
        end
    end),
    ok.

redact({http, Status, _Body}) -> {http, Status};
redact(Other) -> Other.

env(Key, Default) -> application:get_env(emqx_azure_marketplace, Key, Default).
