%% @doc The ledger's history, on disc. A settled hour (billed, carried on, rejected or dropped:
%% nothing will change it again) leaves RAM once its hour has closed for good: it moves, in the
%% transaction that deletes it from azmp_usage (the ledger store's table), into the day table of
%% its UTC day (azmp_usage_YYYYMMDD, disc only), one row per subscription and day. RAM then holds
%% the hours still in play (about two hours of usage), whatever the number of days kept; the
%% history costs disc only, and a day is dropped as a whole. The ledger's reads over a time range
%% (usage_rows/3, usage_between/2) are here: they read both.
-module(emqx_azure_marketplace_store_usage_history).

-export([usage_rows/3, usage_between/2]).
-export([archive_usage/2, usage_history_days/0, drop_usage_history/1]).

-include("emqx_azure_marketplace.hrl").

-define(DB, emqx_azure_marketplace_db).
-define(USAGE, emqx_azure_marketplace_store_usage).

%% @doc The ledger of a subscription's hours From..To (unix s), oldest first: the hours in RAM and
%% those in the history's day tables.
-spec usage_rows(binary(), integer(), integer()) -> [map()].
usage_rows(SubId, From, To) ->
    Head = ?DB:pattern(azmp_usage, [{#azmp_usage.key, {SubId, '_', '$1'}}]),
    Live = ?DB:dirty_select(azmp_usage, [{Head, [{'>=', '$1', From}, {'=<', '$1', To}], ['$_']}]),
    Archived = lists:append([day_buckets(?DB:dirty_read(T, {SubId, Day})) || {Day, T} <- history_tables(From, To)]),
    Rows = [B || B = #azmp_usage{key = {_, _, H}} <- Live ++ Archived, H >= From, H =< To],
    [?USAGE:usage_map(B) || B <- lists:sort(fun(#azmp_usage{key = {_, D1, H1}}, #azmp_usage{key = {_, D2, H2}}) ->
                                                    {H1, D1} =< {H2, D2}
                                            end, Rows)].

%% @doc Every subscription's hours From..To (unix s), in RAM and in the history.
-spec usage_between(integer(), integer()) -> [map()].
usage_between(From, To) ->
    Head = ?DB:pattern(azmp_usage, [{#azmp_usage.key, {'_', '_', '$1'}}]),
    Live = ?DB:dirty_select(azmp_usage, [{Head, [{'>=', '$1', From}, {'=<', '$1', To}], ['$_']}]),
    Archived = [B || {_, T} <- history_tables(From, To), B = #azmp_usage{key = {_, _, H}} <- day_buckets(day_rows(T)),
                     H >= From, H =< To],
    [?USAGE:usage_map(B) || B <- Live ++ Archived].

%%--------------------------------------------------------------------
%% Moving settled hours into the history, and dropping old days

-define(DAY_PREFIX, "azmp_usage_").
%% Subscription-days moved per transaction.
-define(ARCHIVE_GROUP, 200).

%% @doc Moves into the history the hours whose start is at most LastHour and whose status is one of
%% Settled (the core says which: emqx_azure_marketplace_nif:usage_archivable/2): how many.
-spec archive_usage(integer(), [atom()]) -> non_neg_integer().
archive_usage(LastHour, Settled) ->
    Head = ?DB:pattern(azmp_usage, [{#azmp_usage.key, {'_', '_', '$1'}}, {#azmp_usage.status, '$2'}]),
    Guard = list_to_tuple(['orelse', false | [{'=:=', '$2', St} || St <- Settled]]),
    Keys = ?DB:dirty_select(azmp_usage, [{Head, [{'=<', '$1', LastHour}, Guard],
                                          [{element, #azmp_usage.key, '$_'}]}]),
    Groups = maps:groups_from_list(fun({Sub, _, H}) -> {Sub, day_of(H)} end, Keys),
    lists:foreach(fun ensure_day_table/1, lists:usort([D || {_, D} <- maps:keys(Groups)])),
    lists:sum([?DB:tx_ok(fun() -> lists:sum([archive_day(Sub, Day, Ks, Settled) || {{Sub, Day}, Ks} <- Chunk]) end)
               || Chunk <- emqx_azure_marketplace_lists:chunks(maps:to_list(Groups), ?ARCHIVE_GROUP)]).

archive_day(Sub, Day, Keys, Settled) ->
    %% Read again inside the transaction: only what is still settled moves.
    case [B || K <- Keys, B = #azmp_usage{status = St} <- ?DB:wread({azmp_usage, K}), lists:member(St, Settled)] of
        [] ->
            0;
        Moving ->
            Tab = day_table(Day),
            Kept = day_buckets(?DB:wread({Tab, {Sub, Day}})),
            All = lists:ukeysort(#azmp_usage.key, Moving ++ Kept),
            ok = ?DB:write(Tab, #azmp_usage_day{key = {Sub, Day}, buckets = term_to_binary(All, [compressed])}, write),
            lists:foreach(fun(#azmp_usage{key = K}) -> ?DB:delete({azmp_usage, K}) end, Moving),
            length(Moving)
    end.

day_rows(Tab) -> ?DB:dirty_select(Tab, [{'_', [], ['$_']}]).

day_buckets(Rows) -> [current_usage(B) || #azmp_usage_day{buckets = Bin} <- Rows, B <- binary_to_term(Bin)].

%% An hour archived by a version whose record had fewer fields: the new ones get their defaults.
current_usage(B) when tuple_size(B) < tuple_size(#azmp_usage{}) ->
    Fields = record_info(fields, azmp_usage),
    Pad = [emqx_azure_marketplace_store:added_default(azmp_usage, F) || F <- lists:nthtail(tuple_size(B) - 1, Fields)],
    list_to_tuple(tuple_to_list(B) ++ Pad);
current_usage(B) ->
    B.

%% @doc The UTC days (unix s of their start) the history holds, oldest first.
-spec usage_history_days() -> [integer()].
usage_history_days() -> [D || {D, _} <- history_tables()].

%% @doc Drops the history of the days before Before (unix s): their day tables, on every node.
-spec drop_usage_history(integer()) -> [integer()].
drop_usage_history(Before) ->
    [begin
         ok = ?DB:delete_table(T),
         D
     end || {D, T} <- history_tables(), D + 86400 =< Before].

day_of(Hour) -> Hour - Hour rem 86400.

day_table(Day) ->
    {{Y, M, D}, _} = calendar:system_time_to_universal_time(Day, second),
    list_to_atom(lists:flatten(io_lib:format(?DAY_PREFIX "~4..0b~2..0b~2..0b", [Y, M, D]))).

ensure_day_table(Day) ->
    Tab = day_table(Day),
    case lists:member(Tab, ?DB:system_info(tables)) of
        true ->
            ok;
        false ->
            ok = ?DB:create_disc_table(Tab, azmp_usage_day, record_info(fields, azmp_usage_day)),
            ok = ?DB:wait_for_tables([Tab], 30000)
    end.

%% The history's day tables, [{DayStart, Table}] oldest first (From..To: the days that overlap).
history_tables() ->
    lists:sort([{D, T} || T <- ?DB:system_info(tables), D <- day_of_table(T)]).

history_tables(From, To) ->
    [X || X = {D, _} <- history_tables(), D + 86400 > From, D =< To].

day_of_table(T) ->
    case atom_to_list(T) of
        ?DAY_PREFIX ++ [_, _, _, _, _, _, _, _] = Name ->
            Digits = lists:nthtail(length(?DAY_PREFIX), Name),
            try
                Date = {list_to_integer(lists:sublist(Digits, 4)), list_to_integer(lists:sublist(Digits, 5, 2)),
                        list_to_integer(lists:sublist(Digits, 7, 2))},
                [(calendar:date_to_gregorian_days(Date) - 719528) * 86400]
            catch
                error:_ -> []
            end;
        _ ->
            []
    end.

