%% @doc The plugin's durable state, in Mnesia (disc_copies on every node of the cluster that runs
%% the plugin), kept by one store module per aggregate, each of which owns its tables and their
%% transactions (a transaction that spans aggregates is run by the store of the state it changes,
%% which calls the others' *_tx functions inside it):
%%   emqx_azure_marketplace_store_links        links, their state rows and claims on subscriptions
%%   emqx_azure_marketplace_store_jobs         linking jobs
%%   emqx_azure_marketplace_store_landings     landings and their tokens
%%   emqx_azure_marketplace_store_operations   webhook operations
%%   emqx_azure_marketplace_store_deadlines    deadlines
%%   emqx_azure_marketplace_store_outbox       the effects still to perform
%%   emqx_azure_marketplace_store_usage        the hourly usage ledger, term counters, emitter's lease
%%   emqx_azure_marketplace_store_usage_dedupe recording samples, each counted once
%%   emqx_azure_marketplace_store_usage_history the ledger's history, a disc table per day
%%   emqx_azure_marketplace_store_recon        the reconciliation's checkpoint, lease and doubts
%% Callers see maps. The stores reach the database through emqx_azure_marketplace_db only. This
%% module starts it: the tables created, or upgraded from an older version of the plugin.
-module(emqx_azure_marketplace_store).

-export([start/0, tables/0, backlog/0, added_default/2, prepare_rollback/0]).
-export_type([table_def/0]).

%% A table's name, fields and secondary indexes, and where its rows are (in_ram when not given;
%% see emqx_azure_marketplace_db:create_table/4).
-type table_def() :: {atom(), [atom()], [atom()]} | {atom(), [atom()], [atom()], in_ram | on_disc}.

-define(DB, emqx_azure_marketplace_db).

%% @doc The plugin's tables (but the history's day tables).
-spec tables() -> [atom()].
tables() -> [T || {T, _, _, _} <- table_defs()].

%% {Name, Fields, Indexes, Where} of every table, from the stores that own them. The history makes
%% its day tables as it goes.
table_defs() ->
    [case D of
         {Name, Fields, Index} -> {Name, Fields, Index, in_ram};
         {_, _, _, _} -> D
     end || D <- emqx_azure_marketplace_store_links:tables() ++ emqx_azure_marketplace_store_jobs:tables()
                ++ emqx_azure_marketplace_store_landings:tables() ++ emqx_azure_marketplace_store_operations:tables()
                ++ emqx_azure_marketplace_store_deadlines:tables() ++ emqx_azure_marketplace_store_outbox:tables()
                ++ emqx_azure_marketplace_store_usage:tables() ++ emqx_azure_marketplace_store_usage_dedupe:tables()
                ++ emqx_azure_marketplace_store_recon:tables()].

%% @doc Mnesia running and the tables there (through emqx_azure_marketplace_db: Mria tables inside
%% EMQX, Mnesia tables otherwise). A node already running Mnesia keeps its schema.
-spec start() -> ok | {error, term()}.
start() ->
    case ?DB:start() of
        ok -> ensure_tables();
        {error, _} = E -> E
    end.

%% Creates the tables (disc_copies on this node) if missing, and waits for them; a table written by
%% an older version of the plugin gets the new fields, with their defaults.
ensure_tables() ->
    Results = [?DB:create_table(Name, Fields, Index, Where) || {Name, Fields, Index, Where} <- table_defs()],
    case [E || {error, _} = E <- Results] of
        [] ->
            case ?DB:wait_for_tables(tables(), 30000) of
                ok -> upgrade_tables();
                Error -> Error
            end;
        [E | _] -> E
    end.

%% @doc The tables laid out as builds before 2026-12-06 read them fastest, for a rollback to one:
%% every table this version keeps on disc only back in RAM on every node, and the index on
%% azmp_link.subscription_id back (those builds find a subscription's link through it; without it
%% they fail to). An earlier build reads the tables in either layout; the next start of this one
%% lays them out again as it does (ensure_layout/3).
-spec prepare_rollback() -> {ok, [iolist()]} | {error, term()}.
prepare_rollback() ->
    ?DB:restore_layout([T || {T, _, _, on_disc} <- table_defs()], [{azmp_link, subscription_id}]).

%% @doc What is waiting: linking jobs not finished, effects not performed yet, deadlines not done
%% (local reads: the health check calls it).
-spec backlog() -> #{linking_jobs := non_neg_integer(), effects := non_neg_integer(),
                     deadlines := non_neg_integer()}.
backlog() ->
    Jobs = emqx_azure_marketplace_store_jobs:jobs_unfinished(),
    Deadlines = emqx_azure_marketplace_store_deadlines:deadlines_pending(),
    #{linking_jobs => Jobs, effects => emqx_azure_marketplace_store_outbox:effects_pending(), deadlines => Deadlines}.

%% Fields are only ever appended: an old row is the new record cut short. A table's copy here, and
%% its indexes, are as this version lays them out.
upgrade_tables() ->
    Results = [case upgrade_table(Name, Fields) of
                   ok -> ?DB:ensure_layout(Name, Index, Where);
                   Error -> Error
               end || {Name, Fields, Index, Where} <- table_defs()],
    case [E || {error, _} = E <- Results] of
        [] ->
            _ = emqx_azure_marketplace_store_usage_dedupe:move_usage_sources(),
            _ = emqx_azure_marketplace_store_usage:move_term_counters(),
            %% The links' state rows are derived by emqx_azure_marketplace_link_state_sync, once it
            %% follows the links' changes: no link changes unseen between the two.
            emqx_azure_marketplace_store_links:claim_linked_subscriptions();
        [E | _] -> E
    end.

upgrade_table(Name, Fields) ->
    case ?DB:table_info(Name, attributes) of
        Fields ->
            ok;
        Old when length(Old) < length(Fields) ->
            Pad = [added_default(Name, F) || F <- lists:nthtail(length(Old), Fields)],
            Transform = fun(Row) -> list_to_tuple(tuple_to_list(Row) ++ Pad) end,
            case ?DB:transform_table(Name, Transform, Fields) of
                {atomic, ok} -> ok;
                {aborted, Reason} -> {error, {Name, Reason}}
            end;
        Other ->
            {error, {Name, {unexpected_attributes, Other}}}
    end.

%% @doc The value a row written before a field existed gets (the record's default): a table's
%% upgrade, and an hour of the history archived by an older version.
-spec added_default(atom(), atom()) -> term().
added_default(azmp_link, cancelled_at) -> undefined;
added_default(azmp_link, last_op_at) -> undefined;
added_default(azmp_link, activated_at) -> undefined;
added_default(azmp_usage, outcome_unknown) -> false;
added_default(azmp_usage, plan_id) -> undefined;
added_default(azmp_operation, state) -> done;
added_default(azmp_operation, claimed_until) -> 0.
