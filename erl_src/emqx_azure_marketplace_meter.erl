%% @doc Closes usage hours and reports them to Azure, once in the cluster: the node holding the
%% emitter's lease (a Mnesia record) does the work; every node ticks and takes the lease over when
%% its holder stops renewing it. Each tick:
%%   1. closes the hours due (their grace has passed, or their subscription was cancelled): the core
%%      says what each reports above the plan's included quantity for the term;
%%   2. holds what may not be billed now (a suspension) and releases what may again (sent as is,
%%      or carried into the current hour when Azure would refuse it as expired);
%%   3. sends closed hours in batchUsageEvent calls of at most 25, each hour's exact quantity
%%      recorded as `submitting' first, and applies Azure's answer item by item (the core says what
%%      each status means);
%%   4. raises an alarm for an hour still unsent 12 h after it closed;
%%   5. once a day, reconciles the day before with Azure's usageEvents;
%%   6. moves the settled hours to the ledger's history on disc, and drops the days past
%%      `history_days' (40 by default): RAM holds the hours in play, not the days kept.
%% A node killed mid-batch leaves its hours `submitting': the next emitter sends the same
%% quantities again, and Azure's Duplicate proves them billed once.
-module(emqx_azure_marketplace_meter).

-behaviour(gen_server).

-export([start_link/0, kick/0, run_now/0, alarms/0, close_now/2, reconcile/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include_lib("kernel/include/logger.hrl").

-define(NIF, emqx_azure_marketplace_nif).
-define(STORE, emqx_azure_marketplace_store).
-define(METERING, emqx_azure_marketplace_metering).
-define(BATCH, 25).
%% Batches sent at once, and hours closed per transaction.
-define(IN_FLIGHT, 8).
-define(CLOSE_GROUP, 500).
%% Batches per window: marked `submitting' together, their answers applied together.
-define(WINDOW, 40).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Look for work now rather than at the next tick.
-spec kick() -> ok.
kick() -> gen_server:cast(?MODULE, tick).

%% @doc One tick now, returning when done (tests and the demo): whether this node held the lease.
-spec run_now() -> boolean().
run_now() -> gen_server:call(?MODULE, run_now, 600000).

%% @doc The alarms raised and not cleared: `#{Kind => Detail}'.
-spec alarms() -> map().
alarms() -> gen_server:call(?MODULE, alarms).

%% @doc Compares the ledger of the UTC day starting at Day (unix s) with Azure's usageEvents, per
%% subscription and dimension: every difference is returned (and logged); Rejected or Mismatch
%% raise an alarm.
-spec reconcile(integer()) -> {ok, [map()]} | {error, term()}.
reconcile(Day) -> gen_server:call(?MODULE, {reconcile, Day}, 120000).

%% @doc The subscription's open hours close now (its cancellation): they are sent at once.
-spec close_now(binary(), integer()) -> ok.
close_now(SubId, Now) ->
    ok = ?STORE:flush_usage(SubId, Now),
    kick().

%%--------------------------------------------------------------------

-spec init([]) -> {ok, map()}.
init([]) ->
    self() ! tick,
    {ok, #{alarms => #{}, reconciled => 0}}.

%% After a tick the meter hibernates: an hour of many subscriptions grows its heap to hundreds of
%% MB (measured: 106 MB after 300,000 events), which would otherwise stay until its next
%% collection; a quiet tick's heap is small and cheap to compact.
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()} | {reply, term(), map(), hibernate}.
handle_call(run_now, _From, S) ->
    {Held, S1} = run(S),
    {reply, Held, S1, hibernate};
handle_call({reconcile, Day}, _From, S) ->
    {Reply, S1} = reconcile_day(Day, S),
    {reply, Reply, S1};
handle_call(alarms, _From, S = #{alarms := A}) ->
    {reply, A, S};
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), map()) -> {noreply, map()} | {noreply, map(), hibernate}.
handle_cast(tick, S) ->
    {_, S1} = run(S),
    {noreply, S1, hibernate};
handle_cast(_Msg, S) ->
    {noreply, S}.

-spec handle_info(term(), map()) -> {noreply, map()} | {noreply, map(), hibernate}.
handle_info(tick, S) ->
    {_, S1} = run(S),
    ok = emqx_azure_marketplace_metrics:usage_alarms(maps:keys(maps:get(alarms, S1))),
    erlang:send_after(cfg(tick_ms, 5000), self(), tick),
    {noreply, S1, hibernate};
handle_info(_Msg, S) ->
    {noreply, S}.

run(S) ->
    Now = emqx_azure_marketplace_clock:now(),
    case ?STORE:take_lease(node(), Now, Now + cfg(lease_s, 30)) of
        true ->
            try
                close_due(Now),
                release_held(Now),
                S1 = submit(Now, S),
                S2 = daily(Now, overdue(Now, S1)),
                archive(Now),
                {true, S2}
            catch
                Class:Reason:Stack ->
                    ?LOG_ERROR(#{msg => "azure_marketplace_meter_failed", class => Class, reason => Reason,
                                 stacktrace => Stack}),
                    {true, S}
            end;
        false ->
            {false, S}
    end.

cfg(Key, Default) -> maps:get(Key, ?METERING:config(), Default).

%%--------------------------------------------------------------------
%% 1. Closing hours

close_due(Now) -> lists:foreach(fun close/1, chunks(?STORE:usage_due(Now), ?CLOSE_GROUP)).

%% The facts of each hour (its subscription's plan and term) read first; the closes in one transaction.
close(Keys) ->
    Facts = maps:from_list([{K, hour_facts(K)} || K <- Keys]),
    ?STORE:close_usage(Keys, fun(K, #{recorded := R, carried_in := C, counter := Counter}) ->
                                 {Included, HourTerm} = maps:get(K, Facts),
                                 ?NIF:usage_plan_close(R, C, Included, Counter, HourTerm)
                             end).

hour_facts({SubId, Dim, Hour}) ->
    {Plan, Term} =
        case ?STORE:link_by_subscription(SubId) of
            #{plan_id := P, term := T} -> {P, T};
            undefined -> {undefined, undefined}
        end,
    {TermStart, Months} = ?METERING:term_of(Term),
    {?METERING:included(Dim, Plan), ?NIF:usage_term_start(Hour, TermStart, Months)}.

%%--------------------------------------------------------------------
%% 2. Held hours

release_held(Now) ->
    lists:foreach(
        fun(#{subscription_id := SubId, dimension := Dim, hour := Hour}) ->
            State = state_of(SubId),
            case ?NIF:usage_schedule(Hour, grace(), Now, State) of
                #{may_submit := true, release := send} ->
                    ?STORE:release_usage({SubId, Dim, Hour}, send, Now);
                #{may_submit := true, release := carry} ->
                    {ToHour, ClosesAt} = current_hour(Now, State),
                    ?STORE:release_usage({SubId, Dim, Hour}, {carry, ToHour, ClosesAt}, Now);
                #{may_submit := false} ->
                    ok
            end
        end,
        ?STORE:usage_held()).

state_of(SubId) when is_binary(SubId) -> state_of(?STORE:link_by_subscription(SubId));
state_of(#{state := S}) -> S;
state_of(undefined) -> none.

grace() -> cfg(grace_s, 300).

current_hour(Now, State) ->
    Hour = ?NIF:usage_hour(Now * 1000),
    {Hour, maps:get(closes_at, ?NIF:usage_schedule(Hour, grace(), Now, State))}.

%%--------------------------------------------------------------------
%% 3. Sending

%% A window of hours at a time: the tick's memory is a window's, whatever the hours to send.
submit(Now, S) ->
    lists:foldl(fun(Keys, Acc) -> submit_window(Keys, Now, Acc) end, S,
                chunks(?STORE:usage_to_send(Now), ?BATCH * ?WINDOW)).

submit_window(Keys, Now, S) ->
    Rows = [R#{state => state_of(Link), link => Link}
            || R = #{subscription_id := Sub} <- ?STORE:usage_of(Keys), Link <- [?STORE:link_by_subscription(Sub)]],
    %% What may not be billed now (suspended) is held until the subscription may be again.
    {Sendable, Hold} = lists:partition(
        fun(#{hour := H, state := St}) -> maps:get(may_submit, ?NIF:usage_schedule(H, grace(), Now, St)) end, Rows),
    hold(Hold, Now),
    lists:foldl(fun({K, O, D, true}, A) -> alarm(O, K, D, A);
                   (_, A) -> A
                end, S, window(chunks(Sendable, ?BATCH), Now)).

%% A window of batches: their hours marked `submitting' in one transaction (each hour's quantity
%% fixed before any call), sent up to ?IN_FLIGHT at a time, Azure's answers applied in one
%% transaction. Two syncs of Mnesia's log per window rather than per batch: those were most of the
%% cost of an hour of many subscriptions. A crash before the answers are applied leaves the hours
%% `submitting': sent again, Azure's Duplicate proves them billed once.
window(Batches, Now) ->
    ok = ?STORE:mark_submitting([key(R) || B <- Batches, R <- B]),
    Results = lists:append(parallel(fun(Batch) -> send_batch(Batch, Now) end, Batches, ?IN_FLIGHT)),
    ok = ?STORE:usage_results([{K, O, D} || {K, O, D, _Alarm} <- Results], Now),
    Results.

%% F over Items, at most N at a time, in processes of their own (each batch is an Azure call).
parallel(F, Items, N) ->
    parallel(F, Items, N, #{}, []).

parallel(_F, [], _N, Running, Acc) when map_size(Running) =:= 0 ->
    Acc;
parallel(F, [Item | Rest], N, Running, Acc) when map_size(Running) < N ->
    {Pid, Ref} = spawn_monitor(fun() -> exit({done, F(Item)}) end),
    parallel(F, Rest, N, Running#{Ref => Pid}, Acc);
parallel(F, Items, N, Running, Acc) ->
    receive
        {'DOWN', Ref, process, _, Reason} when is_map_key(Ref, Running) ->
            Result = case Reason of
                         {done, R} -> R;
                         _ -> ?LOG_ERROR(#{msg => "azure_marketplace_usage_batch_crashed", reason => Reason}), []
                     end,
            parallel(F, Items, N, maps:remove(Ref, Running), [Result | Acc])
    end.

hold([], _Now) ->
    ok;
hold(Rows, Now) ->
    Keys = [key(R) || R <- Rows],
    ok = ?STORE:mark_submitting(Keys),
    ?STORE:usage_results([{K, held, #{reason => not_billable_now}} || K <- Keys], Now).

chunks(L, N) -> emqx_azure_marketplace_lists:chunks(L, N).

key(#{subscription_id := S, dimension := D, hour := H}) -> {S, D, H}.

%% One batch (its hours `submitting' already) sent: what to record of each, with whether it raises
%% an alarm.
send_batch(Rows, Now) ->
    Events = [event(R) || R <- Rows],
    case emqx_azure_marketplace_client:post_usage_batch(emqx_azure_marketplace_app:client(), Events) of
        {ok, #{<<"result">> := Items}} when is_list(Items) ->
            answered(Rows, Items, Now);
        {ok, _Other} ->
            retry_all(Rows, Now, bad_response);
        {error, Reason} ->
            ?LOG_WARNING(#{msg => "azure_marketplace_usage_batch_failed", events => length(Rows),
                           reason => redact(Reason)}),
            retry_all(Rows, Now, unavailable)
    end.

event(#{subscription_id := Sub, dimension := Dim, hour := Hour, reported := Q, link := Link}) ->
    #{resource_id => Sub, dimension => Dim, quantity => ?METERING:quantity_json(Q),
      effective_start_time => iso(Hour), plan_id => plan_of(Link)}.

plan_of(#{plan_id := P}) when is_binary(P) -> P;
plan_of(_) -> <<>>.

iso(Hour) -> list_to_binary(calendar:system_time_to_rfc3339(Hour, [{unit, second}, {offset, "Z"}])).

retry_all(Rows, Now, Reason) ->
    [{key(R), retry, #{reason => Reason, retry_at => retry_at(R, Now)}, false} || R <- Rows].

retry_at(#{attempts := N}, Now) ->
    Now + ?NIF:link_retry_delay(N, cfg(retry_base_s, 60), cfg(retry_max_s, 3600)).

%% Azure's items, matched to our hours by resource, dimension and hour.
answered(Rows, Items, Now) ->
    ByKey = maps:from_list([{K, I} || I <- Items, is_map(I), K <- [item_key(I)], K =/= undefined]),
    [result(R, maps:get(key(R), ByKey, undefined), Now) || R <- Rows].

item_key(#{<<"resourceId">> := Sub, <<"dimension">> := Dim, <<"effectiveStartTime">> := T})
  when is_binary(Sub), is_binary(Dim), is_binary(T) ->
    try calendar:rfc3339_to_system_time(binary_to_list(T), [{unit, second}]) of
        Secs -> {Sub, Dim, Secs - (Secs rem 3600)}
    catch
        _:_ -> undefined
    end;
item_key(_) ->
    undefined.

result(R, undefined, Now) ->
    {key(R), retry, #{reason => no_answer, retry_at => retry_at(R, Now)}, false};
result(R = #{reported := Sent, state := State}, Item, Now) ->
    Status = case maps:get(<<"status">>, Item, <<>>) of B when is_binary(B) -> B; _ -> <<>> end,
    Accepted = accepted_message(Item),
    AzureQ = azure_quantity(Accepted),
    {Outcome, Carry, Alarm} = ?NIF:usage_plan_item(Status, Sent, AzureQ, State),
    Details0 = #{event_id => bin(maps:get(<<"usageEventId">>, Accepted, undefined)),
                 message_time => bin(maps:get(<<"messageTime">>, Accepted, undefined))},
    Details1 = case AzureQ of undefined -> Details0; _ -> Details0#{azure_quantity => AzureQ} end,
    Details = case Outcome of
                  done -> Details1;
                  retry -> Details1#{reason => status_reason(Status), retry_at => retry_at(R, Now)};
                  _ -> Details1#{reason => status_reason(Status)}
              end,
    WithCarry = case Carry > 0 of
                    true -> {ToHour, ClosesAt} = current_hour(Now, State), Details#{carry => {ToHour, Carry, ClosesAt}};
                    false -> Details
                end,
    {key(R), Outcome, WithCarry, Alarm}.

%% Accepted: the item itself; Duplicate: the event Azure accepted before.
accepted_message(#{<<"error">> := #{<<"additionalInfo">> := #{<<"acceptedMessage">> := M}}}) when is_map(M) -> M;
accepted_message(Item) ->
    case maps:get(<<"status">>, Item, undefined) of
        <<"Accepted">> -> Item;
        _ -> #{}
    end.

azure_quantity(#{<<"quantity">> := Q}) ->
    case ?NIF:usage_quantity(Q) of
        {ok, M} -> M;
        error -> undefined
    end;
azure_quantity(_) ->
    undefined.

bin(B) when is_binary(B), byte_size(B) =< 256 -> B;
bin(_) -> undefined.

%% Azure's status as the ledger's reason: a known name, or `unknown_status'.
status_reason(Status) ->
    Known = [<<"Duplicate">>, <<"Expired">>, <<"ResourceNotFound">>, <<"ResourceNotActive">>,
             <<"InvalidDimension">>, <<"InvalidQuantity">>, <<"BadArgument">>, <<"ResourceNotAuthorized">>,
             <<"Error">>],
    case lists:member(Status, Known) of
        true -> binary_to_atom(Status);
        false -> unknown_status
    end.

%%--------------------------------------------------------------------
%% 4. Alarms

alarm(Outcome, Key = {Sub, Dim, Hour}, Details, S = #{alarms := A}) ->
    ?LOG_WARNING(#{msg => "azure_marketplace_usage_alarm", outcome => Outcome, subscription_id => Sub,
                   dimension => Dim, hour => Hour, reason => maps:get(reason, Details, undefined)}),
    S#{alarms := A#{{usage, Outcome} => Key}}.

overdue(Now, S = #{alarms := A}) ->
    Late = [K || K = {_, _, H} <- ?STORE:usage_to_send(Now + 365 * 86400) ++ [key(R) || R <- ?STORE:usage_held()],
                 maps:get(overdue, ?NIF:usage_schedule(H, grace(), Now, linked))],
    case Late of
        [] ->
            S#{alarms := maps:remove(usage_unsent_12h, A)};
        [First | _] ->
            maps:is_key(usage_unsent_12h, A) orelse
                ?LOG_WARNING(#{msg => "azure_marketplace_usage_unsent_12h", hours => length(Late)}),
            S#{alarms := A#{usage_unsent_12h => First}}
    end.

%%--------------------------------------------------------------------
%% 6. The history

archive(Now) ->
    {LastHour, Settled} = ?NIF:usage_archivable(Now, grace()),
    _ = ?STORE:archive_usage(LastHour, Settled),
    case ?STORE:drop_usage_history(?NIF:usage_first_kept_day(Now, cfg(history_days, 40))) of
        [] -> ok;
        Days -> ?LOG_INFO(#{msg => "azure_marketplace_usage_history_dropped", days => Days})
    end.

%%--------------------------------------------------------------------
%% 5. Daily reconciliation (the day before, once its hours are all out: after 01:00 UTC)

%% A reconciliation that could not be made (Azure unreachable) is tried again an hour later.
daily(Now, S = #{reconciled := Last}) ->
    case ?NIF:usage_daily_reconcile(Now, Last, maps:get(reconcile_after, S, 0)) of
        {reconcile, Day} ->
            case reconcile_day(Day, S) of
                {{ok, _}, S1} -> S1#{reconciled := Day};
                {{error, _}, S1} -> S1#{reconcile_after => ?NIF:usage_reconcile_retry_at(Now)}
            end;
        wait ->
            S
    end.

%% One query per dimension (configured, or in the day's ledger): with many subscriptions a day's
%% rows are many, and Azure's answer for all dimensions at once is that many times larger.
reconcile_day(Day, S) ->
    Ledger = ?STORE:usage_between(Day, Day + 86399),
    Dims = lists:usort([Id || #{id := Id} <- maps:get(dimensions, ?METERING:config(), [])] ++
                       [D || #{dimension := D} <- Ledger]),
    Filter = #{usage_start_date => iso(Day), usage_end_date => iso(Day + 86399)},
    case usage_events(Dims, Filter, []) of
        {ok, AzureRows} ->
            Ours = billed(Ledger),
            Theirs = azure(AzureRows),
            Keys = lists:usort(maps:keys(Ours) ++ maps:keys(Theirs)),
            Diffs = [#{subscription_id => Sub, dimension => Dim, day => Day, verdict => V,
                       billed => ?METERING:format(maps:get(K, Ours, 0)),
                       processed => fmt_opt(P), recon_status => St}
                     || K = {Sub, Dim} <- Keys,
                        {P, St} <- [maps:get(K, Theirs, {undefined, <<>>})],
                        V <- [?NIF:usage_reconcile(maps:get(K, Ours, 0), P, St)], V =/= agree],
            Diffs =/= [] andalso
                ?LOG_WARNING(#{msg => "azure_marketplace_usage_reconcile_differences", day => Day,
                               differences => length(Diffs)}),
            S1 = lists:foldl(fun(D = #{verdict := alarm}, Acc = #{alarms := A}) ->
                                     Acc#{alarms := A#{{usage, reconcile} => D}};
                                (_, Acc) -> Acc
                             end, S, Diffs),
            {{ok, Diffs}, S1};
        {error, Reason} ->
            ?LOG_WARNING(#{msg => "azure_marketplace_usage_reconcile_failed", day => Day, reason => redact(Reason)}),
            {{error, redact(Reason)}, S}
    end.

usage_events([], _Filter, Acc) ->
    {ok, lists:append(Acc)};
usage_events([Dim | Dims], Filter, Acc) ->
    case emqx_azure_marketplace_client:get_usage_events(emqx_azure_marketplace_app:client(), Filter#{dimension => Dim}) of
        {ok, Rows} -> usage_events(Dims, Filter, [Rows | Acc]);
        {error, _} = E -> E
    end.

%% What our ledger says Azure took, per {Subscription, Dimension}.
billed(Rows) ->
    lists:foldl(fun(#{subscription_id := Sub, dimension := D} = R, Acc) ->
                        maps:update_with({Sub, D}, fun(X) -> X + took(R) end, took(R), Acc)
                end, #{}, Rows).

took(#{status := done, reported := Q}) -> Q;
took(#{status := mismatch, azure_quantity := Q}) when is_integer(Q) -> Q;
took(_) -> 0.

%% Azure's rows per {Subscription, Dimension}: processed quantity (summed over plans) and status.
azure(Rows) ->
    lists:foldl(
        fun(#{<<"usageResourceId">> := Sub, <<"dimension">> := D} = R, Acc) when is_binary(Sub), is_binary(D) ->
                P = case ?NIF:usage_quantity(maps:get(<<"processedQuantity">>, R, 0)) of {ok, M} -> M; error -> 0 end,
                St = case maps:get(<<"reconStatus">>, R, <<>>) of B when is_binary(B) -> B; _ -> <<>> end,
                maps:update_with({Sub, D}, fun({P0, St0}) -> {P0 + P, worst(St0, St)} end, {P, St}, Acc);
           (_, Acc) ->
                Acc
        end, #{}, Rows).

%% Of two statuses of one key, the one that needs attention.
worst(A, B) ->
    case lists:member(B, [<<"Rejected">>, <<"Mismatch">>]) of
        true -> B;
        false -> A
    end.

fmt_opt(undefined) -> undefined;
fmt_opt(M) -> ?METERING:format(M).

redact({http, Status, _Body}) -> {http, Status};
redact(Other) -> Other.
