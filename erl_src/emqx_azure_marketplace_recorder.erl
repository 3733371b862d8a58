%% @doc Makes recorded usage durable in groups: the samples of every caller waiting at a moment
%% are written in one transaction and one sync of Mnesia's log, then each caller gets its answer.
%% A caller's `ok' still means its sample is in a committed transaction whose log was synced to
%% disc; many callers share the cost of the transaction and of the sync.
%%
%% (The sync is not pipelined with the next group's transaction: Mnesia's log is one disk_log
%% process, busy for the whole fsync, so the next commit would wait for it anyway; and replying
%% sooner made groups smaller, each paying a transaction's fixed costs. Measured, not faster.)
%%
%% The recorder also expires the source ids kept for deduplication: every sweep deletes those
%% recorded more than the metering config's `dedupe_window_s' (3600) ago (found by a linked
%% process scanning this node's copy), in transactions of ?SWEEP_CHUNK with the groups in
%% between. Every node of a cluster sweeps; deleting is idempotent.
-module(emqx_azure_marketplace_recorder).

-behaviour(gen_server).

-export([start_link/0, record/1, sweep_now/0, sweep_interval_ms/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(STORE, emqx_azure_marketplace_store).
-define(METERING, emqx_azure_marketplace_metering).
%% The most samples one transaction takes (a bound on its time and on the callers it keeps waiting).
-define(MAX_GROUP, 512).
%% Source ids deleted per transaction by the sweep (record calls are served between two).
-define(SWEEP_CHUNK, 2000).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Records one sample: {Account, SourceId, BucketKey, Micros, Facts}, as
%% emqx_azure_marketplace_store:record_usage_batch/3 takes it, Facts as
%% emqx_azure_marketplace_metering:decider/1 reads them.
-spec record(tuple()) -> ok | {error, term()}.
record(Sample) -> gen_server:call(?MODULE, {record, Sample}, 30000).

%% @doc Sweeps the expired source ids now (tests, operators): how many were deleted.
-spec sweep_now() -> non_neg_integer().
sweep_now() -> gen_server:call(?MODULE, sweep_now, 60000).

%% @doc How often the sweep runs for a window: a tenth of it, between 1 s and 60 s. A source id is
%% kept from Window to Window + this after it was recorded.
-spec sweep_interval_ms(pos_integer()) -> pos_integer().
sweep_interval_ms(WindowS) -> 1000 * max(1, min(60, WindowS div 10)).

-spec init([]) -> {ok, map()}.
init([]) ->
    _ = ?METERING:configure(),
    erlang:send_after(sweep_interval_ms(?METERING:dedupe_window_s()), self(), sweep),
    {ok, #{}}.

-spec handle_call(term(), gen_server:from(), map()) -> {noreply, map()} | {reply, term(), map()}.
handle_call({record, Sample}, From, S) ->
    %% The callers answered last are runnable, about to call again: one scheduling round for them
    %% first makes the group larger (measured with 256 callers: 128 -> ~200 a group, a third less
    %% CPU a sample). Nothing else runnable: no wait.
    erlang:yield(),
    {Froms, Samples} = waiting(?MAX_GROUP - 1, [From], [Sample]),
    Now = emqx_azure_marketplace_clock:now(),
    Results =
        try ?STORE:record_usage_batch(Samples, ?METERING:decider(Now), Now) of
            Rs -> ok = ?STORE:sync_usage(), Rs
        catch
            error:{azmp_store, Reason} -> lists:duplicate(length(Froms), {error, {store, Reason}})
        end,
    reply(Froms, Results),
    {noreply, S};
handle_call(sweep_now, _From, S) ->
    Before = emqx_azure_marketplace_clock:now() - ?METERING:dedupe_window_s(),
    {reply, lists:sum([?STORE:expire_usage_sources(Chunk, Before) || Chunk <- expired(Before)]), S};
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) -> {noreply, S}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(sweep, S) ->
    %% a metering config changed in the application env is taken here at the latest
    _ = ?METERING:configure(),
    Window = ?METERING:dedupe_window_s(),
    Before = emqx_azure_marketplace_clock:now() - Window,
    %% The scan reads every source id kept (~0.2 us each): in a process of its own, so that record
    %% calls do not wait for it; only the deletes are the recorder's.
    Self = self(),
    _ = spawn_link(fun() -> Self ! {sweep, expired(Before), Before, Window} end),
    {noreply, S};
handle_info({sweep, [], _Before, Window}, S) ->
    %% nothing expired (another node's sweep may have deleted it already): no transaction
    erlang:send_after(sweep_interval_ms(Window), self(), sweep),
    {noreply, S};
handle_info({sweep, [Chunk | Rest], Before, Window}, S) ->
    %% a chunk now; the rest after the record calls that came meanwhile
    _ = ?STORE:expire_usage_sources(Chunk, Before),
    case Rest of
        [] -> erlang:send_after(sweep_interval_ms(Window), self(), sweep);
        _ -> self() ! {sweep, Rest, Before, Window}
    end,
    {noreply, S};
handle_info(_Msg, S) ->
    {noreply, S}.

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

%% The source ids recorded before Before, in chunks of ?SWEEP_CHUNK (one transaction each).
expired(Before) -> emqx_azure_marketplace_lists:chunks(?STORE:usage_sources_before(Before), ?SWEEP_CHUNK).
