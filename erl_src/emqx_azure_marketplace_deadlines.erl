%% @doc Runs due deadlines (stop a trial at its end, delete a deployment 3 days after it stopped),
%% once in the cluster: every node looks, one claims each deadline in a transaction.
-module(emqx_azure_marketplace_deadlines).

-behaviour(gen_server).

-export([start_link/0, run_now/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include("emqx_azure_marketplace.hrl").
-include_lib("kernel/include/logger.hrl").

-define(PLATFORM, emqx_azure_marketplace_platform).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Runs what is due now, and returns when done (the demo and the tests move the clock).
-spec run_now() -> non_neg_integer().
run_now() -> gen_server:call(?MODULE, run_now, 60000).

-spec init([]) -> {ok, #{}}.
init([]) ->
    self() ! tick,
    {ok, #{}}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(run_now, _From, S) -> {reply, run_due(), S};
handle_call(_Req, _From, S) -> {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) -> {noreply, S}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(tick, S) ->
    _ = run_due(),
    erlang:send_after(application:get_env(emqx_azure_marketplace, deadline_tick_ms, 1000), self(), tick),
    {noreply, S};
handle_info(_Msg, S) ->
    {noreply, S}.

run_due() ->
    Now = emqx_azure_marketplace_clock:now(),
    Claim = application:get_env(emqx_azure_marketplace, deadline_claim_s, 60),
    Ran = [run(D) || #azmp_deadline{key = K} <- emqx_azure_marketplace_store:deadlines_due(Now),
                     {ok, D} <- [emqx_azure_marketplace_store:claim_deadline(K, Now, Now + Claim)]],
    length(Ran).

run(#azmp_deadline{key = Key, account_id = A} = Deadline) ->
    case emqx_azure_marketplace_lifecycle:link_state(A) of
        unsubscribed -> act(Deadline);
        _Linked ->
            %% Linked again since: the cancellation's deadlines no longer apply.
            emqx_azure_marketplace_store:finish_deadline(Key)
    end.

act(#azmp_deadline{key = Key, kind = stop, account_id = A, deployment_id = D}) ->
    ?LOG_INFO(#{msg => "azure_marketplace_trial_ended", account_id => A, deployment_id => D}),
    ok = ?PLATFORM:stop_deployment(A, D),
    _ = emqx_azure_marketplace_lifecycle:schedule(A, D, delete, emqx_azure_marketplace_clock:now() + 3 * 86400),
    emqx_azure_marketplace_store:finish_deadline(Key);
act(#azmp_deadline{key = Key, kind = delete, account_id = A, deployment_id = D}) ->
    ?LOG_INFO(#{msg => "azure_marketplace_deployment_deleted", account_id => A, deployment_id => D}),
    ok = ?PLATFORM:delete_deployment(A, D),
    emqx_azure_marketplace_store:finish_deadline(Key).
