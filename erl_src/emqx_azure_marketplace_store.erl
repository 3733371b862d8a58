%% @doc The plugin's durable state, in Mnesia (disc_copies on every node of the cluster that runs
%% the plugin): links, landings, the operations already handled, and deadlines.
-module(emqx_azure_marketplace_store).

-export([ensure_tables/0, ensure_tables/1, tables/0]).
-export([link/1, link_by_subscription/1, links/0]).
-export([job/1, jobs_ready/1, delete_job/1]).
-export([landing/1, put_landing/1, delete_landing/1]).
-export([operation_handled/1]).
-export([deadlines_due/1, deadlines/0, deadlines_of/1, claim_deadline/3, finish_deadline/1]).
-export([transaction/1, pattern/2]).

-include("emqx_azure_marketplace.hrl").

-define(TABLES, [
    {azmp_link, record_info(fields, azmp_link), [subscription_id]},
    {azmp_job, record_info(fields, azmp_job), []},
    {azmp_landing, record_info(fields, azmp_landing), []},
    {azmp_operation, record_info(fields, azmp_operation), []},
    {azmp_deadline, record_info(fields, azmp_deadline), []}
]).

-spec tables() -> [atom()].
tables() -> [T || {T, _, _} <- ?TABLES].

%% @doc Creates the tables (disc_copies on this node) if missing, and waits for them.
-spec ensure_tables() -> ok | {error, term()}.
ensure_tables() -> ensure_tables([node()]).

%% @doc Creates the tables with disc copies on Nodes (all running Mnesia with a disc schema).
-spec ensure_tables([node()]) -> ok | {error, term()}.
ensure_tables(Nodes) ->
    Results = [create(Name, Fields, Index, Nodes) || {Name, Fields, Index} <- ?TABLES],
    case [E || {error, _} = E <- Results] of
        [] -> mnesia:wait_for_tables(tables(), 30000);
        [E | _] -> E
    end.

create(Name, Fields, Index, Nodes) ->
    Opts = [{attributes, Fields}, {storage(), Nodes}, {index, Index}, {record_name, Name}],
    case mnesia:create_table(Name, Opts) of
        {atomic, ok} -> ok;
        {aborted, {already_exists, Name}} ->
            %% Another node created it: make sure this node holds a copy too.
            case mnesia:add_table_copy(Name, node(), storage()) of
                {atomic, ok} -> ok;
                {aborted, {already_exists, Name, _}} -> ok;
                {aborted, Reason} -> {error, {Name, Reason}}
            end;
        {aborted, Reason} -> {error, {Name, Reason}}
    end.

%% disc_copies where this node has a disc schema (the durable case); a node running Mnesia without one
%% (a RAM-only node of the control plane) gets RAM copies and relies on its disc peers.
storage() ->
    case mnesia:table_info(schema, storage_type) of
        disc_copies -> disc_copies;
        _ -> ram_copies
    end.

%% @doc A match pattern for Tab: every field a wildcard but the given {Position, Value} ones. (Built
%% with setelement/3 because '_' and '$1' are not values of the records' typed fields.)
-spec pattern(atom(), [{pos_integer(), term()}]) -> tuple().
pattern(Tab, Fields) ->
    lists:foldl(fun({Pos, V}, P) -> setelement(Pos, P, V) end, mnesia:table_info(Tab, wild_pattern), Fields).

%% The record under Key, or undefined.
one(Tab, Key) ->
    case mnesia:dirty_read(Tab, Key) of
        [R] -> R;
        [] -> undefined
    end.

%% @doc Runs F in a Mnesia transaction. On success the transaction is on this node's disc when this
%% returns: Mnesia's transaction log is written lazily (up to ~2 s later), and a node killed before
%% that loses what it just committed when no other node holds a copy (a linking job, a link whose
%% subscription Azure already activated). The sync costs ~0.2 ms; the plugin's writes are few.
-spec transaction(fun(() -> T)) -> {ok, T} | {error, term()}.
transaction(F) ->
    case mnesia:transaction(F) of
        {atomic, V} ->
            _ = mnesia:sync_log(),
            {ok, V};
        {aborted, R} ->
            {error, R}
    end.

%%--------------------------------------------------------------------
%% Links

-spec link(binary()) -> #azmp_link{} | undefined.
link(Account) ->
    one(azmp_link, Account).

-spec link_by_subscription(binary()) -> #azmp_link{} | undefined.
link_by_subscription(SubId) ->
    case mnesia:dirty_index_read(azmp_link, SubId, #azmp_link.subscription_id) of
        [L | _] -> L;
        [] -> undefined
    end.

-spec links() -> [#azmp_link{}].
links() -> ets:tab2list(azmp_link).

%%--------------------------------------------------------------------
%% Linking jobs

-spec job(binary()) -> #azmp_job{} | undefined.
job(Account) ->
    one(azmp_job, Account).

%% @doc Jobs still to work on whose lease has run out at Now.
-spec jobs_ready(integer()) -> [#azmp_job{}].
jobs_ready(Now) ->
    Head = pattern(azmp_job, [{#azmp_job.phase, '$1'}, {#azmp_job.lease_until, '$2'}]),
    MS = [{Head, [{'=/=', '$1', failed}, {'=<', '$2', Now}], ['$_']}],
    mnesia:dirty_select(azmp_job, MS).

-spec delete_job(binary()) -> ok.
delete_job(Account) -> mnesia:delete({azmp_job, Account}).

%%--------------------------------------------------------------------
%% Landings

-spec landing(binary()) -> #azmp_landing{} | undefined.
landing(Id) ->
    one(azmp_landing, Id).

-spec put_landing(#azmp_landing{}) -> ok.
put_landing(L) -> mnesia:dirty_write(L).

-spec delete_landing(binary()) -> ok.
delete_landing(Id) -> mnesia:dirty_delete(azmp_landing, Id).

%%--------------------------------------------------------------------
%% Operations (inside a transaction)

-spec operation_handled(binary()) -> boolean().
operation_handled(OpId) -> mnesia:read(azmp_operation, OpId) =/= [].

%%--------------------------------------------------------------------
%% Deadlines

-spec deadlines() -> [#azmp_deadline{}].
deadlines() -> ets:tab2list(azmp_deadline).

-spec deadlines_of(binary()) -> [#azmp_deadline{}].
deadlines_of(Account) ->
    [D || D = #azmp_deadline{account_id = A} <- deadlines(), A =:= Account].

%% @doc Deadlines due at Now, not done, and not claimed by a live claim.
-spec deadlines_due(integer()) -> [#azmp_deadline{}].
deadlines_due(Now) ->
    Head = pattern(azmp_deadline, [{#azmp_deadline.at, '$1'}, {#azmp_deadline.done, false}]),
    MS = [{Head, [{'=<', '$1', Now}], ['$_']}],
    mnesia:dirty_select(azmp_deadline, MS).

%% @doc Claims a due deadline for this node until Until (unix seconds), in a transaction: exactly
%% one node wins a deadline while its claim lasts.
-spec claim_deadline(term(), integer(), integer()) -> {ok, #azmp_deadline{}} | taken.
claim_deadline(Key, Now, Until) ->
    F = fun() ->
        case mnesia:wread({azmp_deadline, Key}) of
            [D = #azmp_deadline{done = false, at = At, claimed_until = C}] when At =< Now, C < Now ->
                D1 = D#azmp_deadline{claimed_by = node(), claimed_until = Until},
                mnesia:write(D1),
                {ok, D1};
            _ ->
                taken
        end
    end,
    case transaction(F) of
        {ok, R} -> R;
        {error, _} -> taken
    end.

-spec finish_deadline(term()) -> ok.
finish_deadline(Key) ->
    {ok, ok} = transaction(fun() ->
        case mnesia:wread({azmp_deadline, Key}) of
            [D] -> mnesia:write(D#azmp_deadline{done = true});
            [] -> ok
        end
    end),
    ok.
