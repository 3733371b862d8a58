%% @doc The ledger's history, on disc. A settled hour (billed, carried on, rejected or dropped:
%% nothing will change it again) leaves RAM once its hour has closed for good: a subscription's
%% hour moves, once all of its dimensions are settled, out of azmp_usage (the ledger store's
%% table) into the day table of its UTC day (azmp_usage_YYYYMMDD, disc only), in the transaction
%% that applies the answer settling the last of them, or at the end of the tick (archive_usage/2,
%% every other way an hour settles). A row there holds one hour of the subscriptions of one shard
%% (key {Day, Hour, Shard}): an hour of 100,000 subscriptions is ~1,000 rows written, not 100,000,
%% and nothing of an earlier hour is read or rewritten. Versions before wrote one row per
%% subscription and day (key {SubId, Day}), rewritten each hour; those rows are read as they are.
%% RAM then holds the hours still in play (about two hours of usage), whatever the number of days
%% kept; the history costs disc only, and a day is dropped as a whole. The ledger's reads over a
%% time range (usage_rows/3, usage_between/2) are here: they read both.
-module(emqx_azure_marketplace_store_usage_history).

-export([usage_rows/3, usage_between/2]).
-export([archive_usage/2, apply_and_archive/3, usage_history_days/0, drop_usage_history/1]).

-include("emqx_azure_marketplace.hrl").
-include_lib("kernel/include/logger.hrl").

-define(DB, emqx_azure_marketplace_db).
-define(USAGE, emqx_azure_marketplace_store_usage).
-define(ROWS, emqx_azure_marketplace_locked_rows).

%% @doc The ledger of a subscription's hours From..To (unix s), oldest first: the hours in RAM and
%% those in the history's day tables.
-spec usage_rows(binary(), integer(), integer()) -> [map()].
usage_rows(SubId, From, To) ->
    Head = ?DB:pattern(azmp_usage, [{#azmp_usage.key, {SubId, '_', '$1'}}]),
    Live = ?DB:dirty_select(azmp_usage, [{Head, [{'>=', '$1', From}, {'=<', '$1', To}], ['$_']}]),
    Archived = day_buckets(SubId, lists:append([?DB:dirty_read(T, K) || {Day, T} <- history_tables(From, To),
                                                                        K <- day_keys(SubId, Day, From, To)])),
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
%% An hour's rows of the history are spread over a row per shard of subscriptions (the shards of the
%% term counters, emqx_azure_marketplace_usage_terms:shard/1): a few rows written per hour rather
%% than one per subscription (a row of a disc-only table costs ~50 us to write, more as the file
%% grows), and a subscription's hour is read from one row holding ~1/1024 of the subscriptions.
%% History rows written per transaction.
-define(ARCHIVE_GROUP, 64).

%% The keys a subscription's hours From..To of a day may be under: this version's, one per hour,
%% and the day's of versions before.
day_keys(SubId, Day, From, To) ->
    First = max(Day, From - From rem 3600),
    Last = min(Day + 86399, To),
    Shard = shard(SubId),
    [{SubId, Day} | [{Day, H, Shard} || First =< Last, H <- lists:seq(First, Last, 3600)]].

shard(SubId) -> emqx_azure_marketplace_usage_terms:shard(SubId).

%% @doc Moves into the history the hours whose start is at most LastHour and whose status is one of
%% Settled (the core says which: the tick's plan), a subscription's hour once all of its dimensions
%% are: how many. (After LastHour no row of an hour appears any more: its samples go into a later
%% hour. So a subscription's hour moves once, whole, unless some of its rows moved before:
%% apply_and_archive/3.)
-spec archive_usage(integer(), [atom()]) -> non_neg_integer().
archive_usage(LastHour, Settled) ->
    Head = ?DB:pattern(azmp_usage, [{#azmp_usage.key, {'_', '_', '$1'}}, {#azmp_usage.status, '$2'}]),
    Rows = ?DB:dirty_select(azmp_usage, [{Head, [{'=<', '$1', LastHour}], [{{{element, #azmp_usage.key, '$_'}, '$2'}}]}]),
    IsSettled = maps:from_keys(Settled, true),
    Hours = maps:groups_from_list(fun({{Sub, _, H}, _}) -> {Sub, H} end, Rows),
    Ready = [{SubHour, [K || {K, _} <- KS]} || {SubHour, KS} <- maps:to_list(Hours),
                                               lists:all(fun({_, St}) -> is_map_key(St, IsSettled) end, KS)],
    {Shards, Tables} = history_rows(Ready),
    lists:sum([?DB:tx_ok_locked([azmp_usage | maps:values(Tables)], fun() ->
                   {Moved, Rs} = archive_shards(Chunk, IsSettled, Tables, ?ROWS:new()),
                   ok = ?ROWS:write_back(Rs),
                   Moved
               end) || Chunk <- emqx_azure_marketplace_lists:chunks(Shards, ?ARCHIVE_GROUP)]).

%% @doc Azure's answers applied (emqx_azure_marketplace_store_usage:apply_usage_decisions/2), and in
%% the same transaction the subscriptions' hours they settled moved into the history, as
%% archive_usage/2 would at the end of the tick: each row is then written once (deleted) rather
%% than settled, selected and deleted. Archive: {LastHour, Settled, Dimensions}, the tick's
%% plan's and the dimensions configured (a subscription's hour's rows are looked for among those
%% of the decisions and of these: a row of a dimension no longer configured is not waited for,
%% and moves beside the rest through archive_usage/2 once it settles). When the history may not be
%% written now (its day table is not loaded: a node restarted while the others are down), Azure's
%% answers are recorded all the same and their hours move at a later tick (archive_usage/2):
%% {not_archived, Reason}, for the caller to report (once a tick, not once a window).
-spec apply_and_archive([{emqx_azure_marketplace_store_usage:bucket_key(), emqx_azure_marketplace_nif:usage_decision()}],
                        map(), {integer(), [atom()], [binary()]}) -> ok | {not_archived, term()}.
apply_and_archive(Decisions, Ctx, Archive) ->
    try
        apply_archiving(Decisions, Ctx, Archive)
    catch
        Class:Reason ->
            ok = ?USAGE:apply_usage_decisions(Decisions, Ctx),
            {not_archived, {Class, Reason}}
    end.

apply_archiving(Decisions, Ctx, {LastHour, Settled, Dims}) ->
    IsSettled = maps:from_keys(Settled, true),
    Settling = maps:groups_from_list(fun({Sub, _, H}) -> {Sub, H} end,
                                     [K || {K = {_, _, H}, #{outcome := O}} <- Decisions, H =< LastHour,
                                           is_map_key(O, IsSettled)]),
    SubHours = [{{Sub, H}, lists:usort(Keys ++ [{Sub, D, H} || D <- Dims])} || {{Sub, H}, Keys} <- maps:to_list(Settling)],
    {Shards, Tables} = history_rows(SubHours),
    ?USAGE:apply_usage_decisions(Decisions, Ctx, maps:values(Tables),
                                 fun(Rows) -> element(2, archive_shards(Shards, IsSettled, Tables, Rows)) end).

%% Subscriptions' hours [{{SubId, Hour}, Keys}] by the history row they go in, [{{Hour, Shard},
%% SubHours}], and the day tables of those rows (created when needed: not in a transaction).
history_rows(SubHours) ->
    Shards = maps:to_list(maps:groups_from_list(fun({{Sub, H}, _}) -> {H, shard(Sub)} end, SubHours)),
    {Shards, maps:from_list([{D, ensure_day_table(D)} || D <- lists:usort([day_of(H) || {{H, _}, _} <- Shards])])}.

archive_shards(Shards, IsSettled, Tables, Rows) ->
    lists:foldl(fun(Shard, {N, Rs}) ->
                        {M, Rs1} = archive_shard(Shard, IsSettled, Tables, Rs),
                        {N + M, Rs1}
                end, {0, Rows}, Shards).

%% The subscriptions' hours of one history row, read again inside the transaction: a
%% subscription's hour moves only if every row of it there is still settled. The row holds
%% #{SubId => the external form of its buckets}, so that a reader decodes its subscription's only;
%% a subscription's rows already there stay beside those moving.
archive_shard({{Hour, Shard}, SubHours}, IsSettled, Tables, Rs0) ->
    {Moving, Rs1} = lists:foldl(fun({{Sub, _}, Keys}, {Acc, Rs}) ->
                                        {Found, Rs1} = lists:mapfoldl(fun(K, R) -> ?ROWS:read(azmp_usage, K, R) end, Rs, Keys),
                                        Bs = [B || B = #azmp_usage{} <- Found],
                                        case Bs =/= [] andalso
                                                 lists:all(fun(#azmp_usage{status = St}) -> is_map_key(St, IsSettled) end, Bs) of
                                            true -> {[{Sub, Bs} | Acc],
                                                     lists:foldl(fun(#azmp_usage{key = K}, R) -> ?ROWS:delete(azmp_usage, K, R) end, Rs1, Bs)};
                                            false -> {Acc, Rs1}
                                        end
                                end, {[], Rs0}, SubHours),
    case Moving of
        [] ->
            {0, Rs1};
        _ ->
            Day = day_of(Hour),
            Tab = maps:get(Day, Tables),
            Key = {Day, Hour, Shard},
            {Kept, Rs2} = case ?ROWS:read(Tab, Key, Rs1) of
                              {#azmp_usage_day{buckets = Bin}, R} -> {binary_to_term(Bin), R};
                              {none, R} -> {#{}, R}
                          end,
            Subs = lists:foldl(fun({Sub, Bs}, M) ->
                                       Old = case M of #{Sub := Ext} -> binary_to_term(Ext); _ -> [] end,
                                       M#{Sub => term_to_binary(lists:ukeysort(#azmp_usage.key, Bs ++ Old))}
                               end, Kept, Moving),
            Row = #azmp_usage_day{key = Key, buckets = term_to_binary(Subs, [compressed])},
            {lists:sum([length(Bs) || {_, Bs} <- Moving]), ?ROWS:write(Tab, Row, Rs2)}
    end.

day_rows(Tab) -> ?DB:dirty_select(Tab, [{'_', [], ['$_']}]).

%% The buckets of history rows: every subscription's (SubId = all), or one's.
day_buckets(Rows) -> day_buckets(all, Rows).

day_buckets(SubId, Rows) ->
    [current_usage(B) || Row <- Rows, B <- row_buckets(SubId, Row)].

%% A row of this version holds many subscriptions' hours; one of a version before, one
%% subscription's day.
row_buckets(SubId, #azmp_usage_day{key = {_, _, _}, buckets = Bin}) ->
    Subs = binary_to_term(Bin),
    case SubId of
        all -> lists:append([binary_to_term(Ext) || Ext <- maps:values(Subs)]);
        _ -> case Subs of #{SubId := Ext} -> binary_to_term(Ext); _ -> [] end
    end;
row_buckets(_, #azmp_usage_day{buckets = Bin}) ->
    binary_to_term(Bin).

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

%% The day's table, created if needed.
ensure_day_table(Day) ->
    Tab = day_table(Day),
    case lists:member(Tab, ?DB:system_info(tables)) of
        true ->
            Tab;
        false ->
            ok = ?DB:create_disc_table(Tab, azmp_usage_day, record_info(fields, azmp_usage_day)),
            ok = ?DB:wait_for_tables([Tab], 30000),
            Tab
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

