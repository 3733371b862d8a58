%% @doc Closes usage hours and reports them to Azure, once in the cluster: the node holding the
%% emitter's lease (a Mnesia record) does the work; every node ticks and takes the lease over when
%% its holder stops renewing it. A tick is a loop of workflow steps, each decided by the C++ core
%% (emqx_azure_marketplace_nif: usage_tick, usage_close, usage_answer, usage_reconcile_answer) on
%% the facts gathered here, committed in one transaction, then performed:
%%   1. the tick's plan: the lease, when hours in flight may be taken over, where carries go, what
%%      leaves RAM, which day to reconcile, which hours are overdue, what becomes of held hours;
%%   2. closing the hours due, a window at a time: what each reports above the plan's included
%%      quantity for its term; in the same transaction, the hours to send marked `submitting' with
%%      their exact quantity when this node holds the lease (fenced), those that may not be billed
%%      now held; the window then sent as in 4;
%%   3. held hours released (sent, carried, or looked up first when an earlier attempt may be billed);
%%   4. sending the other closed hours (sent again, released) in batchUsageEvent calls: each
%%      window's hours are marked `submitting' in a fenced transaction, then Azure's answer
%%      is read by the core item by item and applied, the hours it settled moved to the history in
%%      the same transaction;
%%   5. the steps an answer asked for: usageEvents looked up for an hour whose earlier send has an
%%      unknown outcome before it is billed anew, the subscription read after a refusal;
%%   6. an alarm for an hour still unsettled 12 h after it closed; once a day, the day before
%%      reconciled with Azure's usageEvents; settled hours moved to the ledger's history on disc.
%% Nothing here knows Azure's status names, the batch size or an hour's arithmetic.
-module(emqx_azure_marketplace_meter).

-behaviour(gen_server).

-export([start_link/0, alarms/0, reconcile/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include_lib("kernel/include/logger.hrl").

-define(NIF, emqx_azure_marketplace_nif).
-define(LINKS, emqx_azure_marketplace_store_links).
-define(USAGE, emqx_azure_marketplace_store_usage).
-define(HISTORY, emqx_azure_marketplace_store_usage_history).
-define(METERING, emqx_azure_marketplace_metering).
%% Batches sent at once; batches closed or marked together (their answers applied together: two
%% syncs of Mnesia's log per window rather than per batch).
-define(IN_FLIGHT, 8).
-define(WINDOW, 40).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The alarms raised and not cleared: `#{Kind => Detail}'.
-spec alarms() -> map().
alarms() -> gen_server:call(?MODULE, alarms).

%% @doc Compares the ledger of the UTC day starting at Day (unix s) with Azure's usageEvents, per
%% subscription and dimension: every difference is returned (and logged); Rejected or Mismatch
%% raise an alarm.
-spec reconcile(integer()) -> {ok, [map()]} | {error, term()}.
reconcile(Day) -> gen_server:call(?MODULE, {reconcile, Day}, 120000).

%%--------------------------------------------------------------------

-spec init([]) -> {ok, map()}.
init([]) ->
    self() ! tick,
    %% emitter: whether this node held the emitter's lease at its last tick; timer: the next tick (a
    %% tick that comes early moves it rather than adding another)
    {ok, #{alarms => #{}, reconciled => 0, reconcile_after => 0, emitter => false, timer => undefined}}.

%% After a tick the meter hibernates: an hour of many subscriptions grows its heap to hundreds of
%% MB (measured: 106 MB after 300,000 events), which would otherwise stay until its next
%% collection; a quiet tick's heap is small and cheap to compact.
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()} | {reply, term(), map(), hibernate}.
handle_call({reconcile, Day}, _From, S) ->
    %% The UTC day holding Day, first and last second, as the core counts it.
    #{lookup_days := [Bounds]} = tick_plan(Day, [], [#{status => lookup, hour => Day}], S),
    {Reply, S1} = reconcile_day(Bounds, S),
    {reply, Reply, S1};
handle_call(alarms, _From, S = #{alarms := A}) ->
    {reply, A, S};
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) ->
    {noreply, S}.

-spec handle_info(term(), map()) -> {noreply, map()} | {noreply, map(), hibernate}.
handle_info(tick, S = #{timer := Timer}) ->
    _ = is_reference(Timer) andalso erlang:cancel_timer(Timer),
    S1 = run(S),
    ok = emqx_azure_marketplace_metrics:usage_alarms(maps:keys(maps:get(alarms, S1))),
    {noreply, S1#{timer := erlang:send_after(cfg(tick_ms), self(), tick)}, hibernate};
handle_info(_Msg, S) ->
    {noreply, S}.

%% A tick that fails is logged and the next one tries again: the meter never takes the application
%% down with it (and counts as this node's: it holds the lease, or will try again for it).
run(S) ->
    Now = emqx_azure_marketplace_clock:now(),
    try
        #{lease_until := Until} = tick_plan(Now, [], [], S),
        case ?USAGE:take_lease(node(), Now, Until) of
            true -> (tick(Now, S))#{emitter := true};
            false -> S#{emitter := false}
        end
    catch
        Class:Reason:Stack ->
            ?LOG_ERROR(#{msg => "azure_marketplace_meter_failed", class => Class, reason => Reason,
                         stacktrace => Stack}),
            S#{emitter := true}
    end.

tick(Now, S) ->
    Held = ?USAGE:usage_held(),
    Steps = ?USAGE:usage_of(?USAGE:usage_steps(Now)),
    Plan = tick_plan(Now, Held, Steps, S),
    S1 = release_held(Held, Plan, Now, close_due(Now, Plan, S)),
    S2 = submit(Now, Plan, S1),
    S3 = steps(Steps, Now, Plan, S2),
    archive(Plan, daily(Plan, overdue(Plan, S3))).

%% The core's plan for this tick, on its facts.
tick_plan(Now, Held, Steps, #{reconciled := Last, reconcile_after := RetryAfter}) ->
    Cfg = ?METERING:config(),
    #{grace_s := Grace, lease_s := Lease, history_days := History} = Cfg,
    ?NIF:usage_tick(#{now => Now, grace_s => Grace, lease_s => Lease,
                      call_timeout_ms => call_timeout_ms(), history_days => History,
                      last_reconciled => Last, retry_after => RetryAfter, window_waves => ?WINDOW div ?IN_FLIGHT,
                      held => [R#{state => state_of(Sub)} || R = #{subscription_id := Sub} <- Held],
                      lookups => [H || #{status := lookup, hour := H} <- Steps]}).

call_timeout_ms() -> emqx_azure_marketplace_client:timeout_ms(emqx_azure_marketplace_azure:client()).

cfg(Key) -> maps:get(Key, ?METERING:config()).

retry_settings() ->
    maps:with([retry_base_s, retry_max_s], ?METERING:config()).

%%--------------------------------------------------------------------
%% Closing hours

close_due(Now, Plan = #{batch_size := Batch, submit_states := Billable}, S) ->
    Due = ?USAGE:usage_due(Now),
    %% An hour's rows are a row per dimension of a few subscriptions each: about this many links.
    Links = length(Due) div max(1, length(maps:get(dimensions, ?METERING:config(), []))),
    Facts = #{included => ?METERING:includes(), fence => fence(Now, Plan), billable => Billable},
    ?LINKS:reading_links(Links, fun(Read) ->
        lists:foldl(fun(Keys, Acc) -> close(Keys, Facts#{read => Read}, Now, Plan, Acc) end, S,
                    chunks(Due, Batch * ?WINDOW))
    end).

%% A window's hours close in one transaction, which marks those to send (or holds them), and are
%% sent. Should it fail, each hour is closed on its own and left to the send of the hours pending
%% (submit/3), so that one hour that cannot close (an alarm) holds up no one else's. Facts: how a
%% link is read, what a plan includes, the lease's fence and the link states that may be billed.
close(Keys, Facts, Now, Plan, S) ->
    try close_group(Keys, Facts, send) of
        {TooLarge, {ok, Marked}} ->
            send_marked(Marked, Now, Plan, too_large(TooLarge, S));
        {TooLarge, {error, lost_lease}} ->
            ?LOG_WARNING(#{msg => "azure_marketplace_usage_lease_lost", node => node()}),
            too_large(TooLarge, S)
    catch
        Class:Reason ->
            ?LOG_WARNING(#{msg => "azure_marketplace_usage_close_group_failed", class => Class, reason => Reason,
                           hours => length(Keys)}),
            lists:foldl(fun(K, A) -> close_alone(K, Facts, A) end, S, Keys)
    end.

close_alone(Key, Facts, S) ->
    try close_group([Key], Facts, none) of
        {TooLarge, _} -> too_large(TooLarge, S)
    catch
        Class:Reason ->
            ?LOG_ERROR(#{msg => "azure_marketplace_usage_close_failed", class => Class, reason => Reason}),
            alarm(close_failed, Key, #{reason => close_failed}, S)
    end.

too_large(Keys, S) ->
    lists:foldl(fun(K, A) -> alarm(too_large, K, #{reason => hour_total_too_large}, A) end, S, Keys).

%% The facts of each hour (its subscription's plan, term and activation) read first, the accounts
%% a group at a time (selected with the hour's keys, they stayed on the meter's heap through the
%% close and made each event dearer: measured); the closes in one transaction, each hour seeing
%% the term counter the one before it left; with Send = send, the hours closed then marked or held
%% there too. {TooLarge, {ok, Marked} | {error, lost_lease}}: Marked are the rows to send, with
%% their link's state.
close_group(Keys, #{read := Read, included := Included} = Facts, Send) ->
    SubAccounts = [{S, A} || {{S, _, _}, A} <- ?USAGE:usage_accounts(Keys)],
    Links = links_of(SubAccounts, Read),
    Close = fun({Sub, Dim, Hour}, #{recorded := R, carried_in := C, counter := Counter, late := Late}) ->
                    Link = link_facts(maps:get(Sub, Links)),
                    Plan = plan_of(Link),
                    [What] = ?NIF:usage_close([#{recorded => R, carried_in => C, counter => Counter,
                                                 hour => Hour, included => Included(Dim, Plan),
                                                 term => maps:get(term, Link, undefined),
                                                 activated_at => activated_at(Link), late => Late}]),
                    {What, Plan}
            end,
    case Send of
        none ->
            {_, TooLarge} = ?USAGE:close_usage(Keys, Close),
            {TooLarge, {ok, []}};
        send ->
            #{fence := Fence, billable := Billable} = Facts,
            %% Whether to send or hold: the link's state now (its row in RAM), not as the close's
            %% pass over the links read it, maybe seconds before.
            State = states_of(SubAccounts),
            case ?USAGE:close_usage(Keys, Close, #{fence => Fence,
                                                   billable => fun(Sub) -> lists:member(State(Sub), Billable) end}) of
                {_, TooLarge, {ok, Marked}} ->
                    {TooLarge, {ok, [R#{state => State(Sub)} || R = #{subscription_id := Sub} <- Marked]}};
                {_, TooLarge, Lost} ->
                    {TooLarge, Lost}
            end
    end.

%% A link gone has no plan, term or activation to count with.
link_facts(undefined) -> #{};
link_facts(Link) -> Link.

activated_at(#{activated_at := A}) -> A;
activated_at(_) -> undefined.

plan_of(#{plan_id := P}) when is_binary(P) -> P;
plan_of(_) -> undefined.

%%--------------------------------------------------------------------
%% Held hours

release_held(Held, #{releases := Releases, current_hour := ToHour, closes_at := ClosesAt}, Now, S) ->
    lists:foldl(
        fun({#{subscription_id := Sub, dimension := Dim, hour := Hour}, Release}, A) ->
            Key = {Sub, Dim, Hour},
            case Release of
                keep -> A;
                drop -> ?USAGE:release_usage(Key, drop, Now), alarm(dropped, Key, #{reason => link_not_found}, A);
                carry -> ?USAGE:release_usage(Key, {carry, ToHour, ClosesAt}, Now), A;
                _ -> ?USAGE:release_usage(Key, Release, Now), A
            end
        end,
        S, lists:zip(Held, Releases)).

%% The state of these subscriptions' links now (each read once, in RAM), as a fun of the subscription.
states_of(SubAccounts) ->
    States = links_of(SubAccounts, fun ?LINKS:link_state_of/2),
    fun(Sub) -> state_of(maps:get(Sub, States)) end.

state_of(SubId) when is_binary(SubId) -> state_of(?LINKS:link_by_subscription(SubId));
state_of(#{state := S}) -> S;
state_of(undefined) -> none.

%%--------------------------------------------------------------------
%% Sending

%% A window of hours at a time: the tick's memory is a window's, whatever the hours to send.
submit(Now, Plan = #{batch_size := Batch}, S) ->
    lists:foldl(fun(Keys, Acc) -> submit_window(Keys, Now, Plan, Acc) end, S,
                chunks(?USAGE:usage_to_send(Now), Batch * ?WINDOW)).

%% What may not be billed now (suspended) is held until the subscription may be again. The rest is
%% marked `submitting' in one transaction that checks and renews this node's lease (another node
%% that took it over sends nothing this node has marked before that is over), then sent.
submit_window(Keys, Now, Plan = #{submit_states := Billable}, S) ->
    Rows = with_links(?USAGE:usage_of(Keys)),
    {Sendable, Hold} = lists:partition(fun(#{state := St}) -> lists:member(St, Billable) end,
                                       [R || R = #{status := St} <- Rows, St =:= pending orelse St =:= submitting]),
    ok = ?USAGE:hold_usage([key(R) || R <- Hold]),
    case ?USAGE:mark_submitting([key(R) || R <- Sendable], fence(Now, Plan)) of
        {ok, Marked} ->
            ByKey = maps:from_list([{key(R), R} || R <- Sendable]),
            send_marked([(maps:get(K, ByKey))#{outcome_unknown => U} || {K, U} <- Marked], Now, Plan, S);
        {error, lost_lease} ->
            ?LOG_WARNING(#{msg => "azure_marketplace_usage_lease_lost", node => node()}),
            S
    end.

%% The lease's fence for a tick (see store_usage:mark_submitting/2).
fence(Now, #{lease_until := LeaseUntil, in_flight_until := InFlightUntil}) ->
    {node(), Now, LeaseUntil, InFlightUntil}.

%% Hours marked `submitting' sent, up to ?IN_FLIGHT batches at a time, and Azure's answers applied
%% in one transaction.
send_marked(Rows, Now, Plan = #{batch_size := Batch}, S) ->
    Answers = parallel(fun(B) -> send_batch(B, Now) end, chunks(Rows, Batch), ?IN_FLIGHT),
    Decisions = lists:append([D || {D, _} <- Answers]),
    S1 = case ?HISTORY:apply_and_archive(Decisions, #{from => submitting, into => into(Plan)}, archive_of(Plan)) of
             ok -> S;
             {not_archived, Why} -> not_archived(length(Decisions), Why, S)
         end,
    lists:foldl(fun({Ds, Unmatched}, A) -> alarms(Ds, unmatched(Unmatched, A)) end, S1, Answers).

into(#{current_hour := H, closes_at := C}) -> {H, C}.

%% What the history takes of the hours an answer settles, as at the end of the tick (archive/1).
archive_of(#{archive_last_hour := LastHour, settled := Settled}) ->
    {LastHour, Settled, [Id || #{id := Id} <- maps:get(dimensions, ?METERING:config(), [])]}.

%% The rows with their subscription's link's state now (read in RAM); an hour keeps the plan it
%% closed with (or Azure's, after a mismatch), else the link's (read on disc).
with_links(Rows) ->
    State = states_of([{Sub, A} || #{subscription_id := Sub, account_id := A} <- Rows]),
    Links = links_of([{Sub, A} || #{subscription_id := Sub, account_id := A, plan_id := undefined} <- Rows],
                     fun ?LINKS:link_of/2),
    [R#{state => State(Sub),
        plan_id => case P of undefined -> plan_of(maps:get(Sub, Links)); _ -> P end}
     || R = #{subscription_id := Sub, plan_id := P} <- Rows].

%% Read(Account, Sub) of these subscriptions, each read once (an hour's rows are a few per
%% subscription), through the account that recorded the usage (see store_links:reading_links/2).
links_of(SubAccounts, Read) ->
    maps:from_list([{Sub, Read(Account, Sub)} || {Sub, Account} <- lists:ukeysort(1, SubAccounts)]).

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
            Acc1 = case Reason of
                       {done, R} -> [R | Acc];
                       _ -> ?LOG_ERROR(#{msg => "azure_marketplace_usage_batch_crashed", reason => Reason}), Acc
                   end,
            parallel(F, Items, N, maps:remove(Ref, Running), Acc1)
    end.

%% One batch (its hours `submitting' already) sent: what the core makes of Azure's answer, per hour.
send_batch(Rows, Now) ->
    %% A batch's hours are mostly one hour: each hour's text made once.
    Times = maps:from_list([{H, ?METERING:iso(H)} || H <- lists:usort([H || #{hour := H} <- Rows])]),
    Result = emqx_azure_marketplace_client:post_usage_batch(emqx_azure_marketplace_azure:client(),
                                                             [event(R, Times) || R <- Rows]),
    case Result of
        {error, Reason} ->
            ?LOG_WARNING(#{msg => "azure_marketplace_usage_batch_failed", events => length(Rows),
                           reason => emqx_azure_marketplace_client:redact(Reason)});
        _ ->
            ok
    end,
    answer(batch, Rows, Result, Now, #{}).

%% The core's reading of an Azure answer for these hours: {[{Key, Decision}], Unmatched}.
answer(Step, Rows, Result, Now, Extra) ->
    {Decisions, Unmatched} = ?NIF:usage_answer(maps:merge(Extra, (retry_settings())#{step => Step, hours => Rows,
                                                                                     now => Now}), Result),
    {lists:zip([key(R) || R <- Rows], Decisions), Unmatched}.

event(#{subscription_id := Sub, dimension := Dim, hour := Hour, reported := Q, plan_id := Plan}, Times) ->
    #{resource_id => Sub, dimension => Dim, quantity => ?METERING:quantity_json(Q),
      effective_start_time => maps:get(Hour, Times), plan_id => case Plan of undefined -> <<>>; _ -> Plan end}.

chunks(L, N) -> emqx_azure_marketplace_lists:chunks(L, N).

key(#{subscription_id := S, dimension := D, hour := H}) -> {S, D, H}.

%%--------------------------------------------------------------------
%% The steps an answer asked for: what Azure holds of an hour in doubt, the subscription after a refusal

steps([], _Now, _Plan, S) ->
    S;
steps(Rows, Now, Plan = #{lookup_days := Days}, S) ->
    Linked = with_links(Rows),
    %% The hours in doubt of one UTC day and dimension are settled together, by one query.
    Groups = maps:groups_from_list(fun({#{dimension := Dim}, Day}) -> {Dim, Day} end, fun({R, _}) -> R end,
                                   lists:zip([R || R = #{status := lookup} <- Linked], Days)),
    S1 = maps:fold(fun({Dim, Day}, Group, A) -> step(lookup(Dim, Day, Group, Now), lookup, Plan, A) end, S, Groups),
    lists:foldl(fun(R, A) -> step(check(R, Now), check, Plan, A) end, S1, [R || R = #{status := check} <- Linked]).

step({Decisions, Unmatched}, From, Plan, S) ->
    ok = ?USAGE:apply_usage_decisions(Decisions, #{from => From, into => into(Plan)}),
    alarms(Decisions, unmatched(Unmatched, S)).

%% usageEvents of a UTC day and dimension; the core compares them with our ledger's hours of that
%% day and dimension.
lookup(Dim, {From, To}, Rows, Now) ->
    Result = emqx_azure_marketplace_client:get_usage_events(
               emqx_azure_marketplace_azure:client(),
               #{usage_start_date => ?METERING:iso(From), usage_end_date => ?METERING:iso(To), dimension => Dim}),
    Day = [H || H = #{dimension := D} <- ?HISTORY:usage_between(From, To), D =:= Dim],
    answer(lookup, Rows, Result, Now, #{day => Day}).

check(R = #{subscription_id := Sub, reason := Why}, Now) ->
    Result = emqx_azure_marketplace_client:get_subscription(emqx_azure_marketplace_azure:client(), Sub),
    answer(check, [R], Result, Now, #{refused_as => Why}).

%%--------------------------------------------------------------------
%% Alarms

alarms(Decisions, S) ->
    lists:foldl(fun({K, D = #{alarm := true, outcome := O}}, A) -> alarm(O, K, D, A);
                   (_, A) -> A
                end, S, Decisions).

unmatched(0, S) -> S;
unmatched(N, S = #{alarms := A}) ->
    ?LOG_WARNING(#{msg => "azure_marketplace_usage_answer_unmatched", items => N}),
    S#{alarms := A#{{usage, unmatched} => N}}.

alarm(Outcome, Key = {Sub, Dim, Hour}, Details, S = #{alarms := A}) ->
    ?LOG_WARNING(#{msg => "azure_marketplace_usage_alarm", outcome => Outcome, subscription_id => Sub,
                   dimension => Dim, hour => Hour, reason => maps:get(reason, Details, undefined)}),
    S#{alarms := A#{{usage, Outcome} => Key}}.

overdue(#{overdue_before := Before}, S = #{alarms := A}) ->
    case ?USAGE:usage_late(Before) of
        [] ->
            S#{alarms := maps:remove(usage_unsent_12h, A)};
        Late = [First | _] ->
            maps:is_key(usage_unsent_12h, A) orelse
                ?LOG_WARNING(#{msg => "azure_marketplace_usage_unsent_12h", hours => length(Late)}),
            S#{alarms := A#{usage_unsent_12h => First}}
    end.

%%--------------------------------------------------------------------
%% The history

%% A history that may not be written now (a day table not loaded: a node restarted while the
%% others are down) leaves the settled hours in RAM until a later tick; the tick's alarms stand. It
%% is logged once a tick, with the hours answered meanwhile that stayed in RAM (send_marked/4).
archive(#{archive_last_hour := LastHour, settled := Settled, first_kept_day := FirstKept}, S) ->
    S1 = try ?HISTORY:archive_usage(LastHour, Settled) of
             _ -> S
         catch
             Class:Reason -> not_archived(0, {Class, Reason}, S)
         end,
    S2 = case maps:take(not_archived, S1) of
             {{Hours, Why}, S0} ->
                 ?LOG_WARNING(#{msg => "azure_marketplace_usage_not_archived", reason => Why, answered_in_ram => Hours}),
                 S0;
             error ->
                 S1
         end,
    case ?HISTORY:drop_usage_history(FirstKept) of
        [] -> ok;
        Days -> ?LOG_INFO(#{msg => "azure_marketplace_usage_history_dropped", days => Days})
    end,
    S2.

%% The history could not take hours this tick: how many answered hours stayed in RAM, and the last
%% reason.
not_archived(Hours, Why, S) ->
    {Before, _} = maps:get(not_archived, S, {0, none}),
    S#{not_archived => {Before + Hours, Why}}.

%%--------------------------------------------------------------------
%% Daily reconciliation (the day before, once its hours are all out: after 01:00 UTC)

%% A reconciliation that could not be made (Azure unreachable) is tried again when the plan says.
daily(#{reconcile := undefined}, S) ->
    S;
daily(#{reconcile := Bounds = {Day, _}, retry_after := RetryAt}, S) ->
    case reconcile_day(Bounds, S) of
        {{ok, _}, S1} -> S1#{reconciled := Day};
        {{error, _}, S1} -> S1#{reconcile_after := RetryAt}
    end.

%% The day compared with Azure's usageEvents (emqx_azure_marketplace_usage_reconcile); a difference
%% the core calls an alarm is raised.
reconcile_day(Bounds, S) ->
    case emqx_azure_marketplace_usage_reconcile:day(Bounds) of
        {ok, Diffs} ->
            {{ok, Diffs}, lists:foldl(fun(D = #{verdict := alarm}, Acc = #{alarms := A}) ->
                                              Acc#{alarms := A#{{usage, reconcile} => D}};
                                         (_, Acc) -> Acc
                                      end, S, Diffs)};
        Error ->
            {Error, S}
    end.
