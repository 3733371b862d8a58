%% @doc The stores' database adapter, and the only module that calls Mnesia or Mria: Mria tables
%% (replicated by Mria, `disc_copies') when Mria runs (inside EMQX), plain Mnesia otherwise. Only
%% the store modules (emqx_azure_marketplace_store*) call it. Reads and writes are Mnesia's in both
%% cases (Mria tables are Mnesia tables): the functions below of the same names as Mnesia's are
%% Mnesia's, in a transaction or dirty as Mnesia's are.
-module(emqx_azure_marketplace_db).

-export([start/0, create_table/4, wait_for_tables/2, backend/0, ensure_layout/3, restore_layout/2]).
-export([create_disc_table/3, delete_table/1, sync_transaction/1, old_table_rows/1]).
%% transactions as the stores run them, and their shared reads
-export([tx_ok/1, tx_ok_locked/2, tx_or/2, one/2, dirty_all/1, pattern/2]).
%% Mnesia's reads and writes
-export([read/2, wread/1, write/1, write/3, delete/1, match_object/1, write_lock_table/1, foldl/3,
         dirty_read/2, dirty_select/2, dirty_match_object/1, dirty_all_keys/1, async_dirty/1,
         table_info/2, system_info/1, transform_table/3, sync_log/0, subscribe/1]).

%% The Mria shard the plugin's tables replicate in.
-define(SHARD, emqx_azure_marketplace_shard).
-define(BACKEND_KEY, {?MODULE, backend}).

%% @doc `mria' inside EMQX, `mnesia' otherwise: decided by start/0 and kept, because looking for
%% Mria's modules goes through the code server, which every transaction must not wait for.
-spec backend() -> mria | mnesia.
backend() -> persistent_term:get(?BACKEND_KEY, mnesia).

detect_backend() ->
    Backend = case emqx_azure_marketplace_emqx:mria_loaded() of
                  true -> mria;
                  false -> mnesia
              end,
    case persistent_term:get(?BACKEND_KEY, undefined) of
        Backend -> ok;
        _ -> persistent_term:put(?BACKEND_KEY, Backend)
    end,
    Backend.

%% @doc Mnesia running. Inside EMQX, Mria runs it: nothing to do. On a node already running Mnesia,
%% its schema is left as it is (never created again). Only a bare node (demo, tests) gets a disc
%% schema, made here, before Mnesia is started.
-spec start() -> ok | {error, term()}.
start() ->
    case detect_backend() of
        mria -> ok;
        mnesia ->
            case mnesia:system_info(is_running) of
                yes -> ok;
                starting -> ok;
                _ ->
                    _ = mnesia:create_schema([node()]),
                    case application:ensure_all_started(mnesia) of
                        {ok, _} -> ok;
                        {error, Reason} -> {error, {mnesia_not_started, Reason}}
                    end
            end
    end.

%% @doc Creates a table of records named Name (fields Fields, secondary indexes Index) if missing;
%% with Mnesia, makes sure this node holds a copy when another node created it. Where its rows are:
%% `in_ram' (disc_copies: in RAM, and on disc), or `on_disc' (disc_only_copies: on disc only, for a
%% table no frequent call reads: each read is a file read).
-spec create_table(atom(), [atom()], [atom()], in_ram | on_disc) -> ok | {error, term()}.
create_table(Name, Fields, Index, Where) ->
    case backend() of
        mria ->
            emqx_azure_marketplace_emqx:mria_create_table(Name, [
                {type, set}, {rlog_shard, ?SHARD}, {storage, disc_storage(Where)}, {record_name, Name},
                {attributes, Fields}, {index, Index}]);
        mnesia ->
            Storage = storage(Where),
            Opts = [{attributes, Fields}, {Storage, [node()]}, {index, Index}, {record_name, Name}],
            case mnesia:create_table(Name, Opts) of
                {atomic, ok} -> ok;
                {aborted, {already_exists, Name}} ->
                    case mnesia:add_table_copy(Name, node(), Storage) of
                        {atomic, ok} -> ok;
                        {aborted, {already_exists, Name, _}} -> ok;
                        {aborted, Reason} -> {error, {Name, Reason}}
                    end;
                {aborted, Reason} -> {error, {Name, Reason}}
            end
    end.

%% @doc A table made by a previous version laid out as this one makes it, on this node: its copy
%% moved to disc only when it was in RAM and is now `on_disc', and the secondary indexes this
%% version no longer keeps dropped (an index is a table in RAM). Each is a schema change of Mnesia's
%% (on Mria's core nodes too, whose tables are Mnesia's), done once: an index is dropped on every
%% node, a copy is moved on this node (each node moves its own when it starts).
%% Measured at 100,000 rows: a copy moved in 0.39 s, an index dropped in 0.02 s.
-spec ensure_layout(atom(), [atom()], in_ram | on_disc) -> ok | {error, term()}.
ensure_layout(Name, Index, Where) ->
    Wanted = [P || F <- Index, P <- [field_position(Name, F)]],
    Dropped = [P || P <- mnesia:table_info(Name, index), not lists:member(P, Wanted)],
    Moves = case {Where, mnesia:table_info(Name, storage_type)} of
                %% The copy is moved from its file on disc: the log is dumped into it first (a table
                %% never dumped has no file yet, and the move fails with enoent; measured).
                {on_disc, disc_copies} -> [fun() -> _ = mnesia:dump_log(),
                                                    mnesia:change_table_copy_type(Name, node(), disc_only_copies)
                                           end];
                _ -> []
            end,
    Results = [F() || F <- [fun() -> mnesia:del_table_index(Name, P) end || P <- Dropped] ++ Moves],
    case [R || {aborted, R} <- Results] of
        [] -> ok;
        [Reason | _] -> {error, {Name, Reason}}
    end.

%% @doc The opposite of ensure_layout/3, for a rollback: each table of Tables back in RAM
%% (disc_copies) on every node that holds it on disc only, and each index of Indexes ({Table,
%% Field}) back. The changes made, as text.
-spec restore_layout([atom()], [{atom(), atom()}]) -> {ok, [iolist()]} | {error, term()}.
restore_layout(Tables, Indexes) ->
    Moves = [{io_lib:format("~s moved to RAM on ~s", [T, N]),
              fun() -> mnesia:change_table_copy_type(T, N, disc_copies) end}
             || T <- Tables, N <- mnesia:table_info(T, disc_only_copies)],
    Added = [{io_lib:format("index on ~s.~s added", [T, F]), fun() -> mnesia:add_table_index(T, F) end}
             || {T, F} <- Indexes, not lists:member(field_position(T, F), mnesia:table_info(T, index))],
    lists:foldl(fun({What, F}, {ok, Done}) ->
                        case F() of
                            {atomic, ok} -> {ok, Done ++ [What]};
                            {aborted, Reason} -> {error, {What, Reason}}
                        end;
                   (_, Error) -> Error
                end, {ok, []}, Moves ++ Added).

field_position(Name, Field) ->
    length(lists:takewhile(fun(F) -> F =/= Field end, mnesia:table_info(Name, attributes))) + 2.

%% @doc Creates a table kept on disc only (`disc_only_copies': its rows are not held in RAM) of
%% records named RecordName, if missing, with a copy on every node that has a disc copy of the
%% plugin's tables (made at run time: the ledger's history gets one table per day).
-spec create_disc_table(atom(), atom(), [atom()]) -> ok | {error, term()}.
create_disc_table(Name, RecordName, Fields) ->
    case backend() of
        mria ->
            emqx_azure_marketplace_emqx:mria_create_table(Name, [
                {type, set}, {rlog_shard, ?SHARD}, {storage, disc_only_copies}, {record_name, RecordName},
                {attributes, Fields}]);
        mnesia ->
            %% A cluster without a disc node (tests of RAM-only nodes) keeps it in RAM.
            Copies = case mnesia:table_info(azmp_link, disc_copies) ++ mnesia:table_info(azmp_link, disc_only_copies) of
                         [] -> {ram_copies, [node()]};
                         DiscNodes -> {disc_only_copies, DiscNodes}
                     end,
            case mnesia:create_table(Name, [{attributes, Fields}, Copies, {record_name, RecordName}]) of
                {atomic, ok} -> ok;
                {aborted, {already_exists, Name}} -> ok;
                {aborted, Reason} -> {error, {Name, Reason}}
            end
    end.

%% @doc Every row of a table a previous version of the plugin kept, if it is still there (a table
%% upgrade moves them, then deletes it): {ok, Rows}, or none.
-spec old_table_rows(atom()) -> {ok, [tuple()]} | none.
old_table_rows(Old) ->
    case lists:member(Old, mnesia:system_info(tables)) andalso wait_for_tables([Old], 30000) =:= ok of
        true -> {ok, lists:append([mnesia:dirty_read(Old, K) || K <- mnesia:dirty_all_keys(Old)])};
        false -> none
    end.

%% @doc Deletes a table and its rows on every node (the ledger's history past its retention). Mria's
%% tables are Mnesia tables on the core nodes: Mnesia deletes them in both cases.
-spec delete_table(atom()) -> ok | {error, term()}.
delete_table(Name) ->
    case mnesia:delete_table(Name) of
        {atomic, ok} -> ok;
        {aborted, {no_exists, _}} -> ok;
        {aborted, Reason} -> {error, {Name, Reason}}
    end.

%% A disc storage where this node has a disc schema (the durable case); a node running Mnesia without
%% one (a RAM-only node of the control plane) gets RAM copies and relies on its disc peers.
storage(Where) ->
    case mnesia:table_info(schema, storage_type) of
        disc_copies -> disc_storage(Where);
        _ -> ram_copies
    end.

disc_storage(in_ram) -> disc_copies;
disc_storage(on_disc) -> disc_only_copies.

-spec wait_for_tables([atom()], timeout()) -> ok | {error, term()}.
wait_for_tables(Tabs, Timeout) ->
    case backend() of
        mria -> emqx_azure_marketplace_emqx:mria_wait_for_tables(Tabs);
        mnesia ->
            case mnesia:wait_for_tables(Tabs, Timeout) of
                ok -> ok;
                {timeout, Missing} -> {error, {tables_not_available, Missing}};
                {error, _} = E -> E
            end
    end.

%% @doc Runs F in a transaction that returns, and releases its locks, only once every node with a
%% copy of the tables applied it: whoever takes the same locks next, on any node, sees its writes
%% and has had its table events delivered.
-spec sync_transaction(fun(() -> T)) -> {atomic, T} | {aborted, term()}.
sync_transaction(F) -> transaction(sync_transaction, F).

%% Runs F in a transaction (Mria's, replicated to the shard's nodes, or Mnesia's).
-spec transaction(fun(() -> T)) -> {atomic, T} | {aborted, term()}.
transaction(F) -> transaction(transaction, F).

%% mnesia and mria name their two kinds of transaction alike.
transaction(Kind, F) ->
    case backend() of
        mria -> emqx_azure_marketplace_emqx:mria_transaction(Kind, ?SHARD, F);
        mnesia -> mnesia:Kind(F)
    end.

%%--------------------------------------------------------------------
%% Transactions as the stores run them

%% Runs F in a transaction. On success the transaction is on this node's disc when this
%% returns: Mnesia's transaction log is written lazily (up to ~2 s later), and a node killed before
%% that loses what it just committed when no other node holds a copy. The sync costs ~0.2 ms.
-spec durable_transaction(fun(() -> T)) -> {ok, T} | {error, term()}.
durable_transaction(F) ->
    case transaction(F) of
        {atomic, V} ->
            _ = mnesia:sync_log(),
            {ok, V};
        {aborted, R} ->
            {error, R}
    end.

%% @doc A durable transaction (see durable_transaction/1) that must not fail (the stores' own
%% invariants): its value, or an exception.
-spec tx_ok(fun(() -> T)) -> T.
tx_ok(F) ->
    case durable_transaction(F) of
        {ok, V} -> V;
        {error, Reason} -> erlang:error({azmp_store, Reason})
    end.

%% @doc tx_ok/1 for a transaction that touches many rows of Tabs: it takes a write lock on each
%% table first. A lock per row is a round trip to Mnesia's lock manager (one process, for every
%% transaction of the node) per row read or written, most of the cost of a transaction of hundreds
%% of rows (the meter's, which close, mark, answer and archive an hour's rows by the thousand).
%% With the table locked, reads and writes of its rows take no further lock and still see this
%% transaction's own writes. The tables are locked in the order given: callers lock the ledger's
%% tables in one order (azmp_usage first), so two such transactions queue rather than deadlock.
-spec tx_ok_locked([atom()], fun(() -> T)) -> T.
tx_ok_locked(Tabs, F) ->
    tx_ok(fun() ->
        lists:foreach(fun mnesia:write_lock_table/1, Tabs),
        F()
    end).

%% @doc A durable transaction whose failure (a conflict it gave up on, a node down) reads as Default:
%% its value, or Default.
-spec tx_or(fun(() -> T), D) -> T | D.
tx_or(F, Default) ->
    case durable_transaction(F) of
        {ok, V} -> V;
        {error, _} -> Default
    end.

%% @doc The record under Key (a dirty read), or undefined. Where this node holds the copy Mnesia
%% reads from (`where_to_read'), it is read from that copy's ETS table directly: what dirty_read/2
%% does then, without its indirections (the calls that gate deployments read a link each). Mnesia
%% writes a transaction to this node's copy before the transaction returns here, so a commit
%% acknowledged on this node is seen, as with dirty_read/2; a copy being loaded (Mnesia starting)
%% is not read from.
-spec one(atom(), term()) -> tuple() | undefined.
one(Tab, Key) ->
    case read_local(Tab, Key) of
        [R] -> R;
        [] -> undefined
    end.

read_local(Tab, Key) ->
    case local_ets(Tab) of
        true -> ets:lookup(Tab, Key);
        false -> mnesia:dirty_read(Tab, Key)
    end.

%% Mnesia's own answers (its global variables, as dirty_read/2 reads them): this node holds the copy
%% to read from, loaded, in ETS.
local_ets(Tab) ->
    Here = node(),
    try {ets:lookup_element(mnesia_gvar, {Tab, where_to_read}, 2), ets:lookup_element(mnesia_gvar, {Tab, storage_type}, 2)} of
        {Here, disc_copies} -> true;
        {Here, ram_copies} -> true;
        _ -> false
    catch
        error:badarg -> false
    end.

%% @doc Every record of Tab (a dirty read).
-spec dirty_all(atom()) -> [tuple()].
dirty_all(Tab) -> mnesia:dirty_match_object(mnesia:table_info(Tab, wild_pattern)).

%% @doc A match pattern for Tab: every field a wildcard but the given {Position, Value} ones. (Built
%% with setelement/3 because '_' and '$1' are not values of the records' typed fields.)
-spec pattern(atom(), [{pos_integer(), term()}]) -> tuple().
pattern(Tab, Fields) ->
    lists:foldl(fun({Pos, V}, P) -> setelement(Pos, P, V) end, mnesia:table_info(Tab, wild_pattern), Fields).

%%--------------------------------------------------------------------
%% Mnesia's reads and writes (see mnesia(3))

-spec read(atom(), term()) -> [tuple()].
read(Tab, Key) -> mnesia:read(Tab, Key).

-spec wread({atom(), term()}) -> [tuple()].
wread(Oid) -> mnesia:wread(Oid).

-spec write(tuple()) -> ok.
write(Rec) -> mnesia:write(Rec).

-spec write(atom(), tuple(), write | sticky_write) -> ok.
write(Tab, Rec, Lock) -> mnesia:write(Tab, Rec, Lock).

-spec delete({atom(), term()}) -> ok.
delete(Oid) -> mnesia:delete(Oid).

-spec match_object(tuple()) -> [tuple()].
match_object(Pattern) -> mnesia:match_object(Pattern).

-spec write_lock_table(atom()) -> ok.
write_lock_table(Tab) -> mnesia:write_lock_table(Tab).

-spec foldl(fun((tuple(), Acc) -> Acc), Acc, atom()) -> Acc.
foldl(F, Acc, Tab) -> mnesia:foldl(F, Acc, Tab).

-spec dirty_read(atom(), term()) -> [tuple()].
dirty_read(Tab, Key) -> mnesia:dirty_read(Tab, Key).

-spec dirty_select(atom(), ets:match_spec()) -> [term()].
dirty_select(Tab, MatchSpec) -> mnesia:dirty_select(Tab, MatchSpec).

-spec dirty_match_object(tuple()) -> [tuple()].
dirty_match_object(Pattern) -> mnesia:dirty_match_object(Pattern).

-spec dirty_all_keys(atom()) -> [term()].
dirty_all_keys(Tab) -> mnesia:dirty_all_keys(Tab).

-spec async_dirty(fun(() -> T)) -> T.
async_dirty(F) -> mnesia:async_dirty(F).

-spec table_info(atom(), atom()) -> term().
table_info(Tab, Item) -> mnesia:table_info(Tab, Item).

-spec system_info(atom()) -> term().
system_info(Item) -> mnesia:system_info(Item).

-spec transform_table(atom(), fun((tuple()) -> tuple()), [atom()]) -> {atomic, ok} | {aborted, term()}.
transform_table(Tab, F, Fields) -> mnesia:transform_table(Tab, F, Fields).

-spec sync_log() -> ok | {error, term()}.
sync_log() -> mnesia:sync_log().

%% @doc This process gets the table events What names (mnesia:subscribe/1).
-spec subscribe(term()) -> {ok, node()} | {error, term()}.
subscribe(What) -> mnesia:subscribe(What).
