%% @doc Makes recorded usage durable in groups: the samples of every caller waiting at a moment
%% are written in one transaction and one sync of Mnesia's log, then each caller gets its answer.
%% A caller's `ok' still means its sample is in a committed transaction whose log was synced to
%% disc; many callers share the cost of the transaction and of the sync.
%%
%% (The sync is not pipelined with the next group's transaction: Mnesia's log is one disk_log
%% process, busy for the whole fsync, so the next commit would wait for it anyway; and replying
%% sooner made groups smaller, each paying a transaction's fixed costs. Measured, not faster.)
%%
%% Deduplication: each group's source ids are one azmp_usage_dedupe row, written in its
%% transaction; the recorder keeps an index of the source ids of every row (an ETS table, built
%% from the rows at start, fed by this node's groups and, through Mnesia's table events, by the
%% other nodes'). A row per group rather than per sample: a row is most of what a sample costs in
%% a transaction (measured: 42k -> 61k samples/s with one row per group). The group's transaction
%% is synchronous and the index is read once it holds its locks (seen/0): a copy of a sample sent
%% to two nodes at once counts once.
%%
%% The sweep expires what is older than the metering config's `dedupe_window_s' (3600): index
%% entries (found by a linked process scanning the index) and rows, in chunks of ?SWEEP_CHUNK with
%% the groups in between. Every node sweeps its own index and the rows; deleting is idempotent.
-module(emqx_azure_marketplace_recorder).

-behaviour(gen_server).

-export([start_link/1, record/1, sweep_now/0, sources/0]).
-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2]).

-define(DEDUPE, emqx_azure_marketplace_store_usage_dedupe).
-define(NIF, emqx_azure_marketplace_nif).
%% The index: {DedupeKey, RecordedAt} (emqx_azure_marketplace_store_usage_dedupe:dedupe_key/2: 16 bytes).
-define(INDEX, azmp_usage_dedupe_index).
%% The most samples one transaction takes (a bound on its time and on the callers it keeps waiting).
-define(MAX_GROUP, 512).
%% Index entries the sweep deletes at a time (record calls are served between two chunks); rows
%% (a group's source ids each) a tenth of that per transaction.
-define(SWEEP_CHUNK, 2000).

-include("emqx_azure_marketplace.hrl").
-include_lib("kernel/include/logger.hrl").

%% What recording reads of the metering config, given by the supervisor
%% (emqx_azure_marketplace_metering's): `decider', what the core decides of a group's samples at a
%% time (the store's Decide); `dedupe_window_s', the window, the metering config read again.
-type policy() :: #{decider := fun((integer()) -> fun()), dedupe_window_s := fun(() -> pos_integer())}.
-export_type([policy/0]).

-spec start_link(policy()) -> {ok, pid()} | {error, term()}.
%% Hibernates after a second without calls: a burst of callers grows its heap (measured: 17 MB
%% after 60,000 samples), kept otherwise until its next collection.
start_link(Policy) -> gen_server:start_link({local, ?MODULE}, ?MODULE, Policy, [{hibernate_after, 1000}]).

%% @doc Records one sample: {Account, SourceId, BucketKey, Micros, Facts}, as
%% emqx_azure_marketplace_store_usage_dedupe:record_usage_batch/4 takes it, Facts as the policy's decider reads them.
-spec record(tuple()) -> ok | {error, term()}.
record(Sample) -> gen_server:call(?MODULE, {record, Sample}, 30000).

%% @doc The source ids kept for deduplication on this node: how many, and the bytes they take in
%% RAM (the index and this node's copy of the rows).
-spec sources() -> #{entries := non_neg_integer(), bytes := non_neg_integer()}.
sources() ->
    #{entries => ets:info(?INDEX, size),
      bytes => ets:info(?INDEX, memory) * erlang:system_info(wordsize) + ?DEDUPE:usage_dedupe_bytes()}.

%% @doc Sweeps the expired source ids now (tests, operators): how many were deleted.
-spec sweep_now() -> non_neg_integer().
sweep_now() -> gen_server:call(?MODULE, sweep_now, 60000).

-spec init(policy()) -> {ok, policy(), {continue, index}}.
init(Policy = #{dedupe_window_s := Window}) ->
    ?INDEX = ets:new(?INDEX, [named_table, protected, set]),
    %% Subscribed before the index is built: a row another node writes meanwhile is then in the
    %% mailbox, handled after.
    case ?DEDUPE:subscribe() of
        {ok, _} ->
            ok;
        {error, Reason} ->
            %% (a node without a copy of the table): retries reaching another node may count twice
            ?LOG_WARNING(#{msg => "azure_marketplace_usage_dedupe_events_unavailable", reason => Reason,
                           hint => "give this node a copy of azmp_usage_dedupe (a disc or RAM Mnesia node)"})
    end,
    erlang:send_after(maps:get(next_in_ms, sweep_plan(Window())), self(), sweep),
    {ok, Policy, {continue, index}}.

%% The index is built before any record call is served (they wait in the mailbox), after init:
%% the supervisor's start does not wait for it.
-spec handle_continue(index, map()) -> {noreply, map()}.
handle_continue(index, S) ->
    T0 = erlang:monotonic_time(millisecond),
    N = ?DEDUPE:fold_usage_dedupe(fun(Src, At, N) -> index(Src, At), N + 1 end, 0),
    ?LOG_INFO(#{msg => "azure_marketplace_usage_dedupe_index_built", source_ids => N,
                ms => erlang:monotonic_time(millisecond) - T0}),
    {noreply, S}.

-spec handle_call(term(), gen_server:from(), map()) -> {noreply, map()} | {reply, term(), map()}.
handle_call({record, Sample}, From, S = #{decider := Decider}) ->
    %% The callers answered last are runnable, about to call again: one scheduling round for them
    %% first makes the group larger (measured with 256 callers: 128 -> ~200 a group, a third less
    %% CPU a sample). Nothing else runnable: no wait.
    erlang:yield(),
    {Froms, Samples} = waiting(?MAX_GROUP - 1, [From], [Sample]),
    Now = emqx_azure_marketplace_clock:now(),
    Results =
        try ?DEDUPE:record_usage_batch(Samples, Decider(Now), fun seen/0, Now) of
            {Rs, Counted} ->
                %% committed: in the index now (nothing else runs here before the next group)
                true = ets:insert(?INDEX, [{Src, Now} || Src <- Counted]),
                ok = ?DEDUPE:sync_usage(),
                Rs
        catch
            error:{azmp_store, Reason} -> lists:duplicate(length(Froms), {error, {store, Reason}})
        end,
    reply(Froms, Results),
    {noreply, S};
handle_call(sweep_now, _From, S = #{dedupe_window_s := Window}) ->
    #{expired_before := Before} = sweep_plan(Window()),
    {Entries, Rows} = expired(Before),
    {reply, lists:sum([expire(Chunk) || Chunk <- Entries ++ Rows]), S};
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) -> {noreply, S}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(sweep, S = #{dedupe_window_s := WindowNow}) ->
    %% a metering config changed in the application env is taken here at the latest
    Window = WindowNow(),
    #{expired_before := Before} = sweep_plan(Window),
    %% The scans read every source id and row kept (~0.2 us each): in a process of its own, so that
    %% record calls do not wait for them; only the deletes are the recorder's.
    Self = self(),
    _ = spawn_link(fun() -> {Entries, Rows} = expired(Before), Self ! {sweep, Entries ++ Rows, Window} end),
    {noreply, S};
handle_info({sweep, [], Window}, S) ->
    erlang:send_after(maps:get(next_in_ms, sweep_plan(Window)), self(), sweep),
    {noreply, S};
handle_info({sweep, [Chunk | Rest], Window}, S) ->
    %% a chunk now; the rest after the record calls that came meanwhile
    _ = expire(Chunk),
    self() ! {sweep, Rest, Window},
    {noreply, S};
handle_info({mnesia_table_event, {write, Row = #azmp_usage_dedupe{}, _}}, S) ->
    index_row(Row),
    {noreply, S};
handle_info(_Msg, S) ->
    {noreply, S}.

%% Whether a source id was counted, as known once the group's transaction holds its locks: every
%% group committed before, on any node, has had its table event delivered here by then (the
%% transactions are synchronous), and the events in the mailbox are indexed first (they would
%% otherwise wait behind the queued calls).
seen() ->
    index_events(),
    fun(Key) -> ets:member(?INDEX, Key) end.

%% The groups other nodes committed whose table events are in the mailbox.
index_events() ->
    receive
        {mnesia_table_event, {write, Row = #azmp_usage_dedupe{}, _}} -> index_row(Row), index_events()
    after 0 ->
        ok
    end.

%% Another node's group (this node's own are in the index already).
index_row(#azmp_usage_dedupe{key = {Node, _, _}, at = At, sources = Sources}) when Node =/= node() ->
    lists:foreach(fun(Key) -> index(Key, At) end, ?DEDUPE:dedupe_keys(Sources));
index_row(_Own) ->
    ok.

%% An index entry, unless the source id is there with a later time already.
index(Src, At) ->
    case ets:lookup(?INDEX, Src) of
        [{_, Later}] when Later >= At -> true;
        _ -> ets:insert(?INDEX, {Src, At})
    end.

%% What expired before Before, in chunks: {[{entries, IndexObjects}], [{rows, RowKeys}]}.
expired(Before) ->
    Entries = ets:select(?INDEX, [{{'_', '$1'}, [{'<', '$1', Before}], ['$_']}]),
    {[{entries, C} || C <- emqx_azure_marketplace_lists:chunks(Entries, ?SWEEP_CHUNK)],
     [{rows, C} || C <- emqx_azure_marketplace_lists:chunks(?DEDUPE:usage_dedupe_before(Before), ?SWEEP_CHUNK div 10)]}.

%% Deletes a chunk: index entries (each only if not recorded again since: the object is the same)
%% count as source ids expired; rows count 0.
expire({entries, Objects}) ->
    lists:foreach(fun(O) -> ets:delete_object(?INDEX, O) end, Objects),
    length(Objects);
expire({rows, Keys}) ->
    ok = ?DEDUPE:expire_usage_dedupe(Keys),
    0.

%% The record calls already in the mailbox, up to N (gen_server's call protocol, read directly),
%% as the callers and their samples, each in arrival order.
waiting(0, Froms, Samples) ->
    {lists:reverse(Froms), lists:reverse(Samples)};
waiting(N, Froms, Samples) ->
    receive
        {'$gen_call', From, {record, Sample}} -> waiting(N - 1, [From | Froms], [Sample | Samples])
    after 0 ->
        waiting(0, Froms, Samples)
    end.

reply([F | Fs], [R | Rs]) ->
    gen_server:reply(F, R),
    reply(Fs, Rs);
reply([], []) ->
    ok.

%% The core's plan for a sweep: what has expired now, and when to sweep next.
sweep_plan(Window) ->
    ?NIF:usage_sweep(#{now => emqx_azure_marketplace_clock:now(), dedupe_window_s => Window}).
