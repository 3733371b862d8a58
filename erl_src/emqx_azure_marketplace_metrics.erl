%% @doc Counters (Azure calls by operation and outcome, retries, webhooks accepted and refused,
%% links by outcome), Azure reachability from the last calls, and the alarms raised from them
%% (through EMQX's alarm list when present). Counting is an ETS update that never fails the caller:
%% outside the running application (no table) it does nothing.
-module(emqx_azure_marketplace_metrics).

-behaviour(gen_server).

-export([start_link/1, azure_call/2, webhook/1, link/1, usage_alarms/1, counters/0, reachability/0, alarms/0, check/0,
         prometheus/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-include_lib("kernel/include/logger.hrl").

-define(TAB, emqx_azure_marketplace_metrics).
-define(ALARM_UNREACHABLE, <<"azure_marketplace_azure_unreachable">>).
-define(ALARM_SIGNATURES, <<"azure_marketplace_webhook_signature_failures">>).
-define(ALARM_USAGE_UNSENT, <<"azure_marketplace_usage_unsent_12h">>).
-define(ALARM_USAGE_ANSWERS, <<"azure_marketplace_usage_answers">>).

-type outcome() :: ok | atom().
%% What the metrics are told to read: the Azure client's figures (emqx_azure_marketplace_client:stats/1).
-type sources() :: #{client_stats := fun(() -> map())}.
-export_type([sources/0]).

-spec start_link(sources()) -> {ok, pid()} | {error, term()}.
start_link(Sources) -> gen_server:start_link({local, ?MODULE}, ?MODULE, Sources, []).

%% @doc Counts an Azure call's result, and notes whether it reached Azure.
-spec azure_call(atom(), term()) -> ok.
azure_call(Op, Result) ->
    Outcome = outcome(Result),
    bump({azure_call, Op, Outcome}),
    Now = erlang:system_time(second),
    safe(fun() ->
        case Outcome of
            Unreached when Unreached =:= timeout; Unreached =:= transport ->
                ets:insert(?TAB, {last_unreachable_at, Now}),
                ets:update_counter(?TAB, consecutive_unreachable, 1, {consecutive_unreachable, 0});
            overloaded -> ok;
            badarg -> ok;
            _ ->
                ets:insert(?TAB, [{last_reached_at, Now}, {consecutive_unreachable, 0}])
        end
    end).

outcome(ok) -> ok;
outcome({ok, _}) -> ok;
outcome({error, {http, S, _}}) when S >= 500 -> http_5xx;
outcome({error, {http, 429, _}}) -> http_429;
outcome({error, {http, _, _}}) -> http_4xx;
outcome({error, {Kind, _}}) when is_atom(Kind) -> Kind;
outcome({error, Kind}) when is_atom(Kind) -> Kind;
outcome(_) -> other.

%% @doc Counts a webhook by the status it was answered with.
-spec webhook(pos_integer()) -> ok.
webhook(Status) ->
    Outcome = case Status of
                  200 -> accepted;
                  401 -> refused_signature;
                  400 -> refused_request;
                  503 -> azure_unavailable;
                  _ -> other
              end,
    bump({webhook, Outcome}),
    case Outcome of
        refused_signature -> bump({signature_failure, erlang:system_time(second)});
        _ -> ok
    end.

%% @doc Counts a linking job's end: `linked' or the refusal.
-spec link(outcome()) -> ok.
link(Outcome) -> bump({link, Outcome}).

bump(Key) -> safe(fun() -> ets:update_counter(?TAB, Key, 1, {Key, 0}) end).

safe(F) ->
    try F() of
        _ -> ok
    catch
        error:badarg -> ok
    end.

%% @doc Every counter: `{azure_call, Op, Outcome}', `{webhook, Outcome}', `{link, Outcome}',
%% `retries' (the client's) and the count.
-spec counters() -> [{tuple() | atom(), non_neg_integer()}].
counters() ->
    Own = try lists:sort([{K, V} || {K, V} <- ets:tab2list(?TAB), is_tuple(K), element(1, K) =/= signature_failure])
          catch error:badarg -> []
          end,
    Own ++ [{retries, R} || #{retries := R} <- [client_stats()]].

client_stats() ->
    try ets:lookup_element(?TAB, client_stats, 2) of
        Stats -> Stats()
    catch _:_ -> #{}
    end.

%% @doc What the last calls say of Azure: `reachable' (the last call got an answer), `unreachable'
%% (the last calls did not), or `unknown' (no call yet); when, and the access token's age.
-spec reachability() -> map().
reachability() ->
    Get = fun(K) -> try ets:lookup(?TAB, K) of [{K, V}] -> V; [] -> undefined catch error:badarg -> undefined end end,
    Reached = Get(last_reached_at),
    Unreached = Get(last_unreachable_at),
    Streak = case Get(consecutive_unreachable) of undefined -> 0; N -> N end,
    #{state := State} = health(#{last_reached_at => Reached, last_unreachable_at => Unreached,
                                 consecutive_unreachable => Streak}),
    TokenAge = case client_stats() of
                   #{token_obtained_at := T} when T > 0 -> erlang:system_time(second) - T;
                   _ -> undefined
               end,
    #{state => State, last_reached_at => Reached, last_unreachable_at => Unreached,
      consecutive_unreachable => Streak, token_age_s => TokenAge}.

%% @doc The meter's alarms now (the kinds it keeps): raised or cleared at the next check.
-spec usage_alarms([term()]) -> ok.
usage_alarms(Kinds) ->
    try ets:insert(?TAB, {usage_alarms, Kinds}) catch error:badarg -> ok end,
    ok.

%% @doc The alarms raised now.
-spec alarms() -> [binary()].
alarms() ->
    try ets:lookup(?TAB, alarms) of
        [{alarms, A}] -> A;
        [] -> []
    catch error:badarg -> []
    end.

%% @doc Looks at the causes of the alarms now (also done every `alarm_check_ms', 5 s).
-spec check() -> [binary()].
check() -> gen_server:call(?MODULE, check).

%% @doc Every counter in the Prometheus text format.
-spec prometheus() -> binary().
prometheus() ->
    Cs = counters(),
    Calls = [{#{op => Op, outcome => O}, V} || {{azure_call, Op, O}, V} <- Cs],
    Hooks = [{#{outcome => O}, V} || {{webhook, O}, V} <- Cs],
    Links = [{#{outcome => O}, V} || {{link, O}, V} <- Cs],
    Retries = [{#{}, V} || {retries, V} <- Cs],
    Up = case maps:get(state, reachability()) of reachable -> 1; _ -> 0 end,
    Alarms = [{#{alarm => A}, 1} || A <- alarms()],
    iolist_to_binary([
        family("emqx_azure_marketplace_azure_calls_total", "counter", "Azure calls by operation and outcome", Calls),
        family("emqx_azure_marketplace_azure_retries_total", "counter", "Azure call attempts after the first", Retries),
        family("emqx_azure_marketplace_webhooks_total", "counter", "Azure webhooks by outcome", Hooks),
        family("emqx_azure_marketplace_links_total", "counter", "Linking jobs ended, by outcome", Links),
        family("emqx_azure_marketplace_azure_reachable", "gauge", "1 when the last Azure calls got an answer", [{#{}, Up}]),
        family("emqx_azure_marketplace_alarm_active", "gauge", "Alarms raised by the plugin", Alarms)
    ]).

family(Name, Type, Help, Samples) ->
    ["# HELP ", Name, " ", Help, "\n# TYPE ", Name, " ", Type, "\n",
     [[Name, labels(L), " ", integer_to_list(V), "\n"] || {L, V} <- Samples]].

labels(L) when map_size(L) =:= 0 -> "";
labels(L) ->
    ["{", lists:join(",", [[atom_to_list(K), "=\"", label_value(V), "\""] || {K, V} <- lists:sort(maps:to_list(L))]), "}"].

label_value(V) when is_atom(V) -> atom_to_binary(V);
label_value(V) when is_binary(V) -> V.

%%--------------------------------------------------------------------

-spec init(sources()) -> {ok, #{}}.
init(#{client_stats := ClientStats}) ->
    process_flag(trap_exit, true),
    ?TAB = ets:new(?TAB, [named_table, public, set, {write_concurrency, true}]),
    ets:insert(?TAB, [{alarms, []}, {client_stats, ClientStats}]),
    schedule(),
    {ok, #{}}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(check, _From, S) -> {reply, do_check(), S};
handle_call(_Req, _From, S) -> {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) -> {noreply, S}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(check, S) ->
    _ = do_check(),
    schedule(),
    {noreply, S};
handle_info(_Msg, S) -> {noreply, S}.

%% Alarms are the plugin's: none outlives it.
-spec terminate(term(), map()) -> ok.
terminate(_Reason, _S) ->
    [clear(A) || A <- alarms()],
    ok.

schedule() ->
    erlang:send_after(application:get_env(emqx_azure_marketplace, alarm_check_ms, 5000), self(), check).

do_check() ->
    R = reachability(),
    Failures = ets:select(?TAB, [{{{signature_failure, '$1'}, '$2'}, [], [{{'$1', '$2'}}]}]),
    #{signature_failures := InWindow, forget_before := Before, alarms := Alarms} =
        health((maps:with([last_reached_at, last_unreachable_at, consecutive_unreachable], R))
               #{signature_failures => Failures}),
    %% forget the signature failures that left the window
    [ets:delete(?TAB, {signature_failure, Sec}) || {Sec, _} <- Failures, Sec < Before],
    set(?ALARM_UNREACHABLE, lists:member(unreachable, Alarms),
        #{consecutive_failures => maps:get(consecutive_unreachable, R), last_reached_at => maps:get(last_reached_at, R)},
        <<"Azure Marketplace APIs unreachable: linking and webhooks are retried until they answer">>),
    set(?ALARM_SIGNATURES, lists:member(signatures, Alarms), #{failures_last_minute => InWindow},
        <<"Azure webhooks refused for their signature are piling up">>),
    Usage = case ets:lookup(?TAB, usage_alarms) of [{_, K}] -> K; [] -> [] end,
    set(?ALARM_USAGE_UNSENT, lists:member(usage_unsent_12h, Usage), #{},
        <<"Usage hours still unsent 12 h after they closed: Azure rejects them after 24 h">>),
    Answers = [K || {usage, K} <- Usage],
    set(?ALARM_USAGE_ANSWERS, Answers =/= [], #{kinds => Answers},
        <<"Azure's metering answered Duplicate with another quantity, Expired, Rejected or a reconciliation "
          "difference: see usage_report and the logs">>),
    alarms().

%% The core's reading of the facts (thresholds and window are its).
health(Facts) ->
    emqx_azure_marketplace_nif:plan_health(Facts#{now => erlang:system_time(second)}).

set(Name, Active, Details, Message) ->
    Raised = lists:member(Name, alarms()),
    if
        Active andalso not Raised ->
            ?LOG_WARNING(#{msg => "azure_marketplace_alarm_raised", alarm => Name, details => Details}),
            _ = emqx_azure_marketplace_emqx:alarm_activate(Name, Details, Message),
            ets:insert(?TAB, {alarms, lists:sort([Name | alarms()])});
        not Active andalso Raised ->
            clear(Name);
        true ->
            ok
    end.

clear(Name) ->
    ?LOG_INFO(#{msg => "azure_marketplace_alarm_cleared", alarm => Name}),
    _ = emqx_azure_marketplace_emqx:alarm_deactivate(Name),
    ets:insert(?TAB, {alarms, alarms() -- [Name]}).
