%% @doc A transaction's rows of tables it holds the write lock of (emqx_azure_marketplace_db:
%% tx_ok_locked/2), for the transactions that touch hundreds of rows (the meter's). Each row is read
%% once from the copy Mnesia itself reads (with the table locked no other transaction writes it, so
%% that is what a transactional read gives), changed here, and written or deleted once when the
%% transaction's work is done (write_back/1); a row only written is not read. A transactional read instead costs a lock check, an
%% RPC to the reading node (itself, here) and a scan of the transaction's store per row: most of an
%% hour's close. Rows written back unchanged are not written.
-module(emqx_azure_marketplace_locked_rows).

-export([new/0, read/3, write/2, write/3, delete/3, write_back/1]).

-define(DB, emqx_azure_marketplace_db).

%% #{{Tab, Key} => {AsRead, Now}}: AsRead and Now are the record or `none'; AsRead is `unread' for
%% a row written without being read.
-opaque rows() :: #{{atom(), term()} => {tuple() | none | unread, tuple() | none}}.
-export_type([rows/0]).

-spec new() -> rows().
new() -> #{}.

%% @doc The row of Tab under Key as this transaction has it: the record, or `none'.
-spec read(atom(), term(), rows()) -> {tuple() | none, rows()}.
read(Tab, Key, Rows) ->
    case Rows of
        #{{Tab, Key} := {_, Now}} ->
            {Now, Rows};
        _ ->
            Row = case ?DB:one(Tab, Key) of
                      undefined -> none;
                      R -> R
                  end,
            {Row, Rows#{{Tab, Key} => {Row, Row}}}
    end.

%% @doc Rec is the row of its table (named by its first element) from now on.
-spec write(tuple(), rows()) -> rows().
write(Rec, Rows) ->
    put_row(element(1, Rec), element(2, Rec), Rec, Rows).

%% @doc Rec is the row of Tab from now on (a table whose name is not its records').
-spec write(atom(), tuple(), rows()) -> rows().
write(Tab, Rec, Rows) ->
    put_row(Tab, element(2, Rec), Rec, Rows).

%% @doc The row of Tab under Key is gone from now on.
-spec delete(atom(), term(), rows()) -> rows().
delete(Tab, Key, Rows) ->
    put_row(Tab, Key, none, Rows).

%% A row not read before is written blind (not read first: the day tables are on disc).
put_row(Tab, Key, Row, Rows) ->
    case Rows of
        #{{Tab, Key} := {AsRead, _}} -> Rows#{{Tab, Key} := {AsRead, Row}};
        _ -> Rows#{{Tab, Key} => {unread, Row}}
    end.

%% @doc The rows changed, written to their tables (in this transaction).
-spec write_back(rows()) -> ok.
write_back(Rows) ->
    maps:foreach(fun(_, {Same, Same}) -> ok;
                    ({Tab, Key}, {_, none}) -> ok = ?DB:delete({Tab, Key});
                    ({Tab, _}, {_, Rec}) -> ok = ?DB:write(Tab, Rec, write)
                 end, Rows).
