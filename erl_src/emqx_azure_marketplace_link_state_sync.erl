%% @doc Keeps each link's state row (azmp_link_state: what gating and recording read) as its link
%% says while nodes of a build before state rows (before 2026-12-06) still write links, in a rolling
%% upgrade: such a node writes a link alone, and without this the upgraded nodes would gate and
%% record on the link's old state until their next start (which derives every row again:
%% emqx_azure_marketplace_store_links:derive_link_states/0). It follows the changes of the links'
%% copy on this node (Mnesia's table events, an old node's writes included); a link this build
%% writes has its row already, which costs the event a read in RAM.
-module(emqx_azure_marketplace_link_state_sync).

-behaviour(gen_server).

-export([start_link/0]).
-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2]).

-include("emqx_azure_marketplace.hrl").
-include_lib("kernel/include/logger.hrl").

-define(LINKS, emqx_azure_marketplace_store_links).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

-spec init([]) -> {ok, map()} | {ok, map(), {continue, catch_up}}.
init([]) ->
    case emqx_azure_marketplace_db:subscribe({table, azmp_link, simple}) of
        {ok, _} ->
            {ok, #{}, {continue, catch_up}};
        {error, Reason} ->
            %% No copy of the links here to follow (a node that reads them from others): its rows
            %% are derived at its start only.
            ?LOG_WARNING(#{msg => "azure_marketplace_link_changes_not_followed", reason => Reason}),
            {ok, #{}}
    end.

%% A link an earlier build wrote between this start's derivation of the rows and the subscription.
-spec handle_continue(catch_up, map()) -> {noreply, map()}.
handle_continue(catch_up, S) ->
    ok = ?LINKS:derive_link_states(),
    {noreply, S}.

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
