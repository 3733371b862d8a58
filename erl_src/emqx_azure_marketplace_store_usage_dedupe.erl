%% @doc Recording usage samples into the hourly ledger (azmp_usage, the ledger store's table),
%% each counted once: the source ids already counted are kept a window long (azmp_usage_dedupe,
%% this module's table; each node's recorder keeps an index of them, fed by the table's events).
-module(emqx_azure_marketplace_store_usage_dedupe).

-export([tables/0, move_usage_sources/0, subscribe/0]).
-export([record_usage_batch/4, sync_usage/0, dedupe_keys/1, fold_usage_dedupe/2, usage_dedupe_before/1,
         expire_usage_dedupe/1, usage_dedupe_bytes/0]).

-include("emqx_azure_marketplace.hrl").
-include_lib("kernel/include/logger.hrl").

-define(DB, emqx_azure_marketplace_db).

-type bucket_key() :: emqx_azure_marketplace_store_usage:bucket_key().

%% @doc The dedupe rows' table: {Name, Fields, Indexes}.
-spec tables() -> [{atom(), [atom()], [atom()]}].
tables() -> [{azmp_usage_dedupe, record_info(fields, azmp_usage_dedupe), []}].

%% @doc A table upgrade: the source ids a previous version kept (a row per sample in
%% `azmp_usage_source') become azmp_usage_dedupe rows, one per second they were recorded in, and
%% that table is deleted: a retry of a sample recorded before the upgrade still counts once. (Every
%% node may do it at once: the rows' keys differ by node, and a source id twice in the index is the
%% same entry.)
-spec move_usage_sources() -> ok | {error, term()}.
move_usage_sources() ->
    Old = azmp_usage_source,
    case ?DB:old_table_rows(Old) of
        none ->
            ok;
        {ok, Rows} ->
            Now = emqx_azure_marketplace_clock:now(),
            %% very old rows have no `at': kept a window from now
            At = fun(Row) when tuple_size(Row) >= 4 -> element(4, Row); (_) -> Now end,
            BySecond = maps:groups_from_list(At, fun(Row) -> {A, S} = element(2, Row), dedupe_key(A, S) end, Rows),
            ?DB:tx_ok(fun() ->
                maps:foreach(fun(T, Sources) -> ?DB:write(dedupe_row(T, Sources)) end, BySecond)
            end),
            ?LOG_INFO(#{msg => "azure_marketplace_usage_sources_moved", source_ids => length(Rows)}),
            ?DB:delete_table(Old)
    end.

%% @doc This process gets the events of the dedupe table ({mnesia_table_event, _}: every group
%% of samples recorded, by any node).
-spec subscribe() -> {ok, node()} | {error, term()}.
subscribe() -> ?DB:subscribe({table, azmp_usage_dedupe, simple}).

%% A sample: {Account, SourceId, {SubId, Dimension, HourOfTheSample}, Micros, Facts}. Decide(Facts,
%% BucketOpen) says where it goes (it calls the core): whether the sample's own hour still takes
%% samples decides it ({ok, Hour, CarriedFrom | undefined, ClosesAt} or {error, Reason}).
-type usage_sample() :: {binary(), binary(), bucket_key(), non_neg_integer(), term()}.
-type usage_decide() :: fun((term(), boolean(), fun((integer()) -> non_neg_integer())) ->
                                {ok, integer(), integer() | undefined, integer()} | {error, term()}).

%% @doc Many samples in one transaction, each counted once per {Account, SourceId}: the results, in
%% order, and the source ids counted (as dedupe keys). Seen() is called once the transaction holds
%% its locks and gives the predicate saying whether a source id was counted before (the recorder's
%% index of the azmp_usage_dedupe rows). The transaction is synchronous: it returns, and lets go of
%% its locks, once every node with a copy applied it, so that the next group to take the locks, on
%% any node, has this one's source ids (through the table events its recorder got before the
%% locks). It is committed, but not yet synced to disc, when this returns: no result may be
%% acknowledged before sync_usage/0, called after this returned (by any process), has returned (the
%% recorder syncs after each group). Now (unix s) is when the source ids are recorded: each is kept
%% `dedupe_window_s' from then.
-spec record_usage_batch([usage_sample()], usage_decide(), fun(() -> fun((binary()) -> boolean())), integer()) ->
          {[ok | {error, atom()}], [binary()]}.
record_usage_batch(Samples, Decide, Seen, Now) ->
    case ?DB:sync_transaction(fun() -> record_samples(Samples, Decide, Seen, Now) end) of
        {atomic, Done} -> Done;
        {aborted, Reason} -> erlang:error({azmp_store, Reason})
    end.

%% @doc Mnesia's log synced to disc: every transaction committed before this call is durable.
-spec sync_usage() -> ok.
sync_usage() ->
    _ = ?DB:sync_log(),
    ok.

%% The group's source ids are one azmp_usage_dedupe row; the buckets it changes are written once
%% each. The bucket table is locked whole rather than a lock per row: the lock manager is one
%% process, and a message to it per record was most of a sample's cost. With the table locked no
%% other transaction writes it until this one ends, and this one writes nothing before its end (the
%% rows it changes are kept in maps, then written once each), so the rows as they are in the table
%% are what a transactional read would give: mnesia itself reads the table's copy (the
%% `where_to_read' node) directly once a table lock is held. Hence locked_read/2, without the
%% per-read bookkeeping of ?DB:read/1.
record_samples(Samples, Decide, Seen, Now) ->
    ?DB:write_lock_table(azmp_usage),
    {Results, Counted, Buckets} = record_samples(Samples, Decide, Seen(), [], #{}, #{}),
    Sources = maps:keys(Counted),
    Sources =/= [] andalso ?DB:write(dedupe_row(Now, Sources)),
    maps:foreach(fun(_, {B = #azmp_usage{carried_in = C}, LateRev, true}) ->
                         ?DB:write(B#azmp_usage{carried_in = C ++ lists:reverse(LateRev)});
                    (_, _) ->
                         ok
                 end, Buckets),
    {Results, Sources}.

record_samples([], _Decide, _Seen, Results, Counted, Buckets) ->
    {lists:reverse(Results), Counted, Buckets};
record_samples([{Account, SourceId, {SubId, Dim, SampleHour}, Q, Facts} | Rest], Decide, Seen, Results, Counted, Buckets0) ->
    Src = dedupe_key(Account, SourceId),
    case is_map_key(Src, Counted) orelse Seen(Src) of
        true ->
            %% counted already: a retried call
            record_samples(Rest, Decide, Seen, [ok | Results], Counted, Buckets0);
        false ->
            {Own, Buckets1} = bucket({SubId, Dim, SampleHour}, Buckets0),
            Open = case Own of
                       {absent, _, _} -> true;
                       {#azmp_usage{status = open}, _, _} -> true;
                       _ -> false
                   end,
            %% What an hour of this subscription and dimension holds already, as this transaction sees it.
            TotalOf = fun(H) ->
                          case bucket({SubId, Dim, H}, Buckets1) of
                              {{#azmp_usage{recorded = R}, _, _}, _} -> R;
                              {{absent, _, _}, _} -> 0
                          end
                      end,
            case Decide(Facts, Open, TotalOf) of
                {ok, Hour, From, ClosesAt} ->
                    Key = {SubId, Dim, Hour},
                    {B, Buckets2} = bucket(Key, Buckets1),
                    case add_sample(B, Key, Account, Q, From, ClosesAt) of
                        {ok, B1} ->
                            record_samples(Rest, Decide, Seen, [ok | Results], Counted#{Src => true}, Buckets2#{Key => B1});
                        {error, _} = Error ->
                            record_samples(Rest, Decide, Seen, [Error | Results], Counted, Buckets2)
                    end;
                {error, _} = Error ->
                    record_samples(Rest, Decide, Seen, [Error | Results], Counted, Buckets1)
            end
    end.

%% The keys packed after a zero length (no key of the versions before has one: they began with the
%% account's length, two bytes).
dedupe_row(At, Keys) ->
    #azmp_usage_dedupe{key = {node(), erlang:system_time(microsecond), erlang:unique_integer([positive])},
                       at = At, sources = iolist_to_binary([<<0:16>> | Keys])}.

%% A source id as deduplication knows it: the first 16 bytes of the SHA-256 of the account and the
%% source id (the account's length first, so that no two pairs give the same input). 16 bytes,
%% whatever the ids' length, kept in the table's row (and so in the ETS table itself, not apart as
%% a binary of more than 64 bytes would be): the recorder's index takes about a third of the RAM
%% it took with the ids. Two source ids sharing a key would need 2^64 tries to find.
-spec dedupe_key(binary(), binary()) -> binary().
dedupe_key(Account, SourceId) -> digest(<<(byte_size(Account)):16, Account/binary, SourceId/binary>>).

digest(Id) ->
    <<Key:16/binary, _/binary>> = crypto:hash(sha256, Id),
    Key.

%% @doc The dedupe keys packed in a row's `sources'. A row of a version before holds the ids
%% themselves (each after its length): their keys are made here.
-spec dedupe_keys(binary()) -> [binary()].
dedupe_keys(<<0:16, Keys/binary>>) -> [K || <<K:16/binary>> <= Keys];
dedupe_keys(Packed) -> [digest(Id) || <<Len:16, Id:Len/binary>> <= Packed].

%% A bucket as this transaction sees it: {Row | absent, CarriedInToAddReversed, Changed}.
bucket(Key, Buckets) ->
    case Buckets of
        #{Key := B} ->
            {B, Buckets};
        _ ->
            B = case locked_read(azmp_usage, Key) of
                    [Row] -> {Row, [], false};
                    [] -> {absent, [], false}
                end,
            {B, Buckets#{Key => B}}
    end.

add_sample({absent, _, _}, Key, Account, Q, From, ClosesAt) ->
    {ok, {#azmp_usage{key = Key, account_id = Account, recorded = Q, closes_at = ClosesAt}, late(From, Q, []), true}};
add_sample({B = #azmp_usage{status = open, recorded = R}, LateRev, _}, _Key, _Account, Q, From, _ClosesAt) ->
    {ok, {B#azmp_usage{recorded = R + Q}, late(From, Q, LateRev), true}};
add_sample(_Closed, _Key, _Account, _Q, _From, _ClosesAt) ->
    {error, hour_closed}.

late(undefined, _Q, LateRev) -> LateRev;
late(From, Q, LateRev) -> [{From, Q, late_sample} | LateRev].

%% A row of a table this transaction holds the write lock of (see record_samples/3).
locked_read(Tab, Key) -> ?DB:dirty_read(Tab, Key).

%% @doc Folds F over the source ids kept in this node's copy, with when each was recorded:
%% F(DedupeKey, At, Acc). (The recorder builds its index with it.)
-spec fold_usage_dedupe(fun((binary(), integer(), Acc) -> Acc), Acc) -> Acc.
fold_usage_dedupe(F, Acc0) ->
    ?DB:async_dirty(fun() ->
        ?DB:foldl(fun(#azmp_usage_dedupe{at = At, sources = Sources}, Acc) ->
                             lists:foldl(fun(Key, A) -> F(Key, At, A) end, Acc, dedupe_keys(Sources))
                     end, Acc0, azmp_usage_dedupe)
    end).

%% @doc The keys of the dedupe rows recorded before Before (unix s), read on this node.
-spec usage_dedupe_before(integer()) -> [term()].
usage_dedupe_before(Before) ->
    Head = ?DB:pattern(azmp_usage_dedupe, [{#azmp_usage_dedupe.key, '$1'}, {#azmp_usage_dedupe.at, '$2'}]),
    ?DB:dirty_select(azmp_usage_dedupe, [{Head, [{'<', '$2', Before}], ['$1']}]).

%% @doc Deletes these dedupe rows in one transaction. Idempotent: every node of a cluster sweeps.
-spec expire_usage_dedupe([term()]) -> ok.
expire_usage_dedupe(Keys) ->
    ?DB:tx_ok(fun() -> lists:foreach(fun(K) -> ?DB:delete({azmp_usage_dedupe, K}) end, Keys) end).

%% @doc The bytes this node's copy of the dedupe rows takes in RAM: the table's and the packed
%% source ids' (binaries of more than 64 bytes are kept outside the table).
-spec usage_dedupe_bytes() -> non_neg_integer().
usage_dedupe_bytes() ->
    Head = ?DB:pattern(azmp_usage_dedupe, [{#azmp_usage_dedupe.sources, '$1'}]),
    Packed = ?DB:dirty_select(azmp_usage_dedupe, [{Head, [], [{byte_size, '$1'}]}]),
    ?DB:table_info(azmp_usage_dedupe, memory) * erlang:system_info(wordsize) + lists:sum(Packed).
