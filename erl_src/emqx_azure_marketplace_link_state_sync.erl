%% @doc Keeps each link's state row (azmp_link_state: what gating and recording read) as its link
%% says. At start, once it follows the changes of the links' copy on this node (Mnesia's table
%% events), it derives every row from the links (emqx_azure_marketplace_store_links:
%% derive_link_states/0): a build before state rows (before 2026-12-06), or one rolled back to,
%% wrote links without them. Then, while nodes of such a build still write links (a rolling
%% upgrade: their writes reach this node's copy), it writes the row each change left behind;
%% without it the upgraded nodes would gate and record on a link's old state until their next
%% start. A link this build writes has its row already, which costs the event a read in RAM. It is
%% the supervisor's first child: the rows are there before anything that reads them runs.
-module(emqx_azure_marketplace_link_state_sync).

-behaviour(gen_server).

-export([start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include("emqx_azure_marketplace.hrl").
-include_lib("kernel/include/logger.hrl").

-define(LINKS, emqx_azure_marketplace_store_links).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

-spec init([]) -> {ok, map()}.
init([]) ->
    case emqx_azure_marketplace_db:subscribe({table, azmp_link, simple}) of
        {ok, _} ->
            ok;
        {error, Reason} ->
            %% No copy of the links here to follow (a node that reads them from others): its rows
            %% are derived at its start only.
            ?LOG_WARNING(#{msg => "azure_marketplace_link_changes_not_followed", reason => Reason})
    end,
    ok = ?LINKS:derive_link_states(),
    {ok, #{}}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, {error, unknown_call}, map()}.
handle_call(_Req, _From, S) -> {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) -> {noreply, S}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({mnesia_table_event, {write, Link = #azmp_link{account_id = Account}, _}}, S) ->
    sync(Account, Link),
    {noreply, S};
handle_info({mnesia_table_event, {write, Row, _}}, S) when element(1, Row) =:= azmp_link ->
    sync(element(2, Row), undefined),  % a link of another shape: read again
    {noreply, S};
handle_info({mnesia_table_event, {delete, {azmp_link, Account}, _}}, S) ->
    sync(Account, undefined),
    {noreply, S};
handle_info({mnesia_table_event, {delete_object, Row, _}}, S) when element(1, Row) =:= azmp_link ->
    sync(element(2, Row), undefined),
    {noreply, S};
handle_info(_Msg, S) ->
    {noreply, S}.

%% A row that could not be written now (a node down, the table moving) is written at the next
%% change of its link or the next start: logged, not fatal.
sync(Account, Seen) ->
    try
        ?LINKS:sync_link_state(Account, Seen)
    catch
        Class:Reason ->
            ?LOG_WARNING(#{msg => "azure_marketplace_link_state_not_synced", account_id => Account,
                           class => Class, reason => Reason})
    end.
