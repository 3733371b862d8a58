%% @doc Performs the effects that a state change committed with it (the outbox): platform calls
%% (payment method, notices, deployments). The process that committed them performs them at once;
%% a node that restarts performs those it left behind, and any node those whose claim ran out. Every
%% effect is safe to perform twice (the platform's calls are idempotent; a notice may repeat after a
%% crash, never go missing).
-module(emqx_azure_marketplace_effects).

-behaviour(gen_server).

-export([perform/1, sweep/0]).
-export([start_link/0, init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include_lib("kernel/include/logger.hrl").

-define(OUTBOX, emqx_azure_marketplace_store_outbox).
-define(PLATFORM, emqx_azure_marketplace_platform).
-define(CLAIM_S, 60).

%% @doc Performs the effects recorded under Key (none: nothing to do), then forgets them.
-spec perform(?OUTBOX:effect_key() | none) -> ok.
perform(none) ->
    ok;
perform(Key) ->
    case ?OUTBOX:effect(Key) of
        #{account_id := A, subscription_id := S, effects := Effects} ->
            try
                %% Each effect done is struck off at once: a crash repeats at most the one in progress.
                lists:foreach(fun(E) -> do(A, S, E), ?OUTBOX:effect_done(Key, E) end, Effects)
            catch
                Class:Reason:Stack ->
                    %% Kept: performed again once its claim runs out.
                    ?LOG_WARNING(#{msg => "azure_marketplace_effect_failed", account_id => A, class => Class,
                                   reason => Reason, stacktrace => [{M, F, arity(Args), Loc} || {M, F, Args, Loc} <- Stack]})
            end;
        undefined ->
            ok
    end.

do(A, _Sub, {set_payment_method, M}) -> ok = ?PLATFORM:set_payment_method(A, M);
do(A, Sub, {notify, Notice}) -> ?PLATFORM:notify(A, with_subscription(Notice, Sub));
do(A, _Sub, {stop_deployment, D}) -> ok = ?PLATFORM:stop_deployment(A, D);
do(A, _Sub, {start_deployment, D}) -> ok = ?PLATFORM:start_deployment(A, D);
do(A, _Sub, {delete_deployment, D}) -> ok = ?PLATFORM:delete_deployment(A, D);
%% Written by versions that closed a cancelled subscription's hour at once; its hour now closes
%% after the grace like any other, at the meter's next tick: nothing to do.
do(_A, _Sub, close_usage) -> ok.

arity(Args) when is_list(Args) -> length(Args);
arity(Arity) -> Arity.

%% The core's notice says whether it names the subscription. A notice the outbox kept from before
%% the core said so (an upgrade with effects in flight) named it unless it had a reason.
with_subscription(Notice = #{names_subscription := Names}, Sub) ->
    name(maps:remove(names_subscription, Notice), Names, Sub);
with_subscription(Notice, Sub) ->
    name(Notice, not maps:is_key(reason, Notice), Sub).

name(Notice, true, Sub) when is_binary(Sub) -> Notice#{subscription_id => Sub};
name(Notice, _, _) -> Notice.

%% @doc Performs what was left behind (by this node before a restart, or by a node whose claim ran
%% out); the number of effect records performed.
-spec sweep() -> non_neg_integer().
sweep() -> gen_server:call(?MODULE, sweep, 60000).

%%--------------------------------------------------------------------

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

-spec init([]) -> {ok, #{first := boolean()}}.
init([]) ->
    self() ! sweep,
    {ok, #{first => true}}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(sweep, _From, S) -> {reply, run(S), S#{first := false}};
handle_call(_Req, _From, S) -> {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) -> {noreply, S}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(sweep, S) ->
    _ = run(S),
    erlang:send_after(application:get_env(emqx_azure_marketplace, effects_sweep_ms, 5000), self(), sweep),
    {noreply, S#{first := false}};
handle_info(_Msg, S) ->
    {noreply, S}.

%% The first sweep after this node started also takes its own records: nothing of ours runs yet.
run(#{first := First}) ->
    Now = emqx_azure_marketplace_clock:now(),
    Owner = case First of true -> node(); false -> undefined end,
    Keys = ?OUTBOX:claim_stale_effects(Owner, Now, Now + ?CLAIM_S),
    Keys =/= [] andalso ?LOG_NOTICE(#{msg => "azure_marketplace_effects_resumed", count => length(Keys)}),
    lists:foreach(fun perform/1, Keys),
    length(Keys).
