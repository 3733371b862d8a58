%% @doc Runs due deadlines (a trial's stop at its end, a stopped deployment's deletion) and removes
%% expired landings,
%% once in the cluster: every node looks, one claims each deadline in a transaction.
-module(emqx_azure_marketplace_deadlines).

-behaviour(gen_server).

-export([start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include_lib("kernel/include/logger.hrl").

-define(NIF, emqx_azure_marketplace_nif).
-define(DEADLINES, emqx_azure_marketplace_store_deadlines).
-define(LANDINGS, emqx_azure_marketplace_store_landings).
-define(LINKS, emqx_azure_marketplace_store_links).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% State: `ran', the deadlines this node ran at its last look; `timer', the next look. A `tick'
%% that comes early (a look now) moves the next one rather than adding another.
-spec init([]) -> {ok, map()}.
init([]) ->
    self() ! tick,
    {ok, #{ran => 0, timer => undefined}}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(_Req, _From, S) -> {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) -> {noreply, S}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(tick, S = #{timer := Timer}) ->
    _ = is_reference(Timer) andalso erlang:cancel_timer(Timer),
    Ran = run_due(),
    _ = ?LANDINGS:delete_expired_landings(emqx_azure_marketplace_clock:now()),
    Next = erlang:send_after(application:get_env(emqx_azure_marketplace, deadline_tick_ms, 1000), self(), tick),
    {noreply, S#{ran := Ran, timer := Next}};
handle_info(_Msg, S) ->
    {noreply, S}.

run_due() ->
    Now = emqx_azure_marketplace_clock:now(),
    Claim = application:get_env(emqx_azure_marketplace, deadline_claim_s, 60),
    Ran = [run(D, Now) || #{key := K} <- ?DEADLINES:deadlines_due(Now),
                          {ok, D} <- [?DEADLINES:claim_deadline(K, Now, Now + Claim)]],
    length(Ran).

%% The core plans what the deadline does now (nothing when the account was linked again since);
%% the deadline is finished and its effects committed together, then performed.
run(#{key := Key, kind := Kind, account_id := A, deployment_id := D}, Now) ->
    {State, CancelledAt, SubId} =
        case ?LINKS:link_state(A) of
            #{state := S, cancelled_at := C, subscription_id := Sub} -> {S, C, Sub};
            undefined -> {emqx_azure_marketplace_lifecycle:link_state(A), undefined, undefined}
        end,
    Effects = ?NIF:plan_deadline(#{kind => Kind, deployment_id => D, state => State, cancelled_at => CancelledAt,
                                   now => Now}),
    ?LOG_INFO(#{msg => "azure_marketplace_deadline_due", account_id => A, deployment_id => D, kind => Kind,
                effects => length(Effects)}),
    emqx_azure_marketplace_effects:perform(emqx_azure_marketplace_store_plans:finish_deadline(Key, SubId, Effects, Now)).
