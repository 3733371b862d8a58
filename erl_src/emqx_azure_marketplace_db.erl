%% @doc The store's database adapter: Mria tables (replicated by Mria, `disc_copies') when Mria runs
%% (inside EMQX), plain Mnesia otherwise. Only emqx_azure_marketplace_store calls it; reads and
%% writes inside a transaction are mnesia's in both cases (Mria tables are Mnesia tables).
-module(emqx_azure_marketplace_db).

-export([start/0, create_table/3, wait_for_tables/2, transaction/1, backend/0]).
-export([create_disc_table/3, delete_table/1, sync_transaction/1]).

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
%% with Mnesia, makes sure this node holds a copy when another node created it.
-spec create_table(atom(), [atom()], [atom()]) -> ok | {error, term()}.
create_table(Name, Fields, Index) ->
    case backend() of
        mria ->
            emqx_azure_marketplace_emqx:mria_create_table(Name, [
                {type, set}, {rlog_shard, ?SHARD}, {storage, disc_copies}, {record_name, Name},
                {attributes, Fields}, {index, Index}]);
        mnesia ->
            Opts = [{attributes, Fields}, {storage(), [node()]}, {index, Index}, {record_name, Name}],
            case mnesia:create_table(Name, Opts) of
                {atomic, ok} -> ok;
                {aborted, {already_exists, Name}} ->
                    case mnesia:add_table_copy(Name, node(), storage()) of
                        {atomic, ok} -> ok;
                        {aborted, {already_exists, Name, _}} -> ok;
                        {aborted, Reason} -> {error, {Name, Reason}}
                    end;
                {aborted, Reason} -> {error, {Name, Reason}}
            end
    end.

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
            Copies = case mnesia:table_info(azmp_link, disc_copies) of
                         [] -> {ram_copies, [node()]};
                         DiscNodes -> {disc_only_copies, DiscNodes}
                     end,
            case mnesia:create_table(Name, [{attributes, Fields}, Copies, {record_name, RecordName}]) of
                {atomic, ok} -> ok;
                {aborted, {already_exists, Name}} -> ok;
                {aborted, Reason} -> {error, {Name, Reason}}
            end
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

%% disc_copies where this node has a disc schema (the durable case); a node running Mnesia without one
%% (a RAM-only node of the control plane) gets RAM copies and relies on its disc peers.
storage() ->
    case mnesia:table_info(schema, storage_type) of
        disc_copies -> disc_copies;
        _ -> ram_copies
    end.

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

%% @doc Runs F in a transaction (Mria's, replicated to the shard's nodes, or Mnesia's).
-spec transaction(fun(() -> T)) -> {atomic, T} | {aborted, term()}.
transaction(F) -> transaction(transaction, F).

%% mnesia and mria name their two kinds of transaction alike.
transaction(Kind, F) ->
    case backend() of
        mria -> emqx_azure_marketplace_emqx:mria_transaction(Kind, ?SHARD, F);
        mnesia -> mnesia:Kind(F)
    end.
