%% @doc The included quantity's counters of the subscriptions of one shard, packed into one binary
%% (a row of azmp_usage_terms, the ledger store's table): a counter per subscription and dimension,
%% {TermStart, Used, PrevTermStart, PrevUsed}, read and written once an hour when the hour closes.
%% Kept a row per subscription and dimension, they took ~190 bytes of RAM each (55 MiB at 100,000
%% subscriptions x 3 dimensions); packed, a subscription takes its id, the dimensions' numbers and
%% 32 bytes per dimension (the shard's dimension ids are written once). A shard's binary is decoded
%% into a map for the transaction that closes its hours and encoded again once at its end.
-module(emqx_azure_marketplace_usage_terms).

-export([shard/1, decode/1, encode/1, get/3, put/4]).

%% The number of shards: it decides which row a subscription is in, for this table and for the
%% ledger's history (emqx_azure_marketplace_store_usage_history). Never changed: rows written with
%% one number would not be found with another.
-define(SHARDS, 1024).
-define(FORMAT, 1).

%% What the packed form holds (the core keeps a term's usage far below 2^63 micro-units).
-define(INT64(X), (is_integer(X) andalso X >= -(1 bsl 63) andalso X < (1 bsl 63))).
-define(UINT63(X), (is_integer(X) andalso X >= 0 andalso X < (1 bsl 63))).

-type counter() :: {integer(), non_neg_integer(), integer(), non_neg_integer()}.
-type counters() :: #{binary() => #{binary() => counter()}}.
-export_type([counter/0, counters/0]).

%% @doc The shard a subscription's counters (and history rows) are in.
-spec shard(binary()) -> non_neg_integer().
shard(SubId) -> erlang:phash2(SubId, ?SHARDS).

%% @doc A shard's counters: #{SubId => #{Dimension => Counter}}.
-spec decode(binary()) -> counters().
decode(<<>>) ->
    #{};
decode(<<?FORMAT:8, NDims:16, Rest/binary>>) ->
    {Dims, Entries} = dims(NDims, Rest, []),
    subs(Entries, Dims, #{}).

dims(0, Rest, Acc) -> {list_to_tuple(lists:reverse(Acc)), Rest};
dims(N, <<Len:16, Dim:Len/binary, Rest/binary>>, Acc) -> dims(N - 1, Rest, [Dim | Acc]).

subs(<<>>, _Dims, Acc) ->
    Acc;
subs(<<Len:16, Sub:Len/binary, N:16, Rest/binary>>, Dims, Acc) ->
    Size = N * 34,
    <<Counters:Size/binary, More/binary>> = Rest,
    subs(More, Dims, Acc#{Sub => maps:from_list([{element(I + 1, Dims), {T, U, PT, PU}}
                                                 || <<I:16, T:64/signed, U:64, PT:64/signed, PU:64>> <= Counters])}).

%% @doc The binary of a shard's counters.
-spec encode(counters()) -> binary().
encode(Subs) when map_size(Subs) =:= 0 ->
    <<>>;
encode(Subs) ->
    Dims = lists:usort([D || PerDim <- maps:values(Subs), D <- maps:keys(PerDim)]),
    Index = maps:from_list(lists:zip(Dims, lists:seq(0, length(Dims) - 1))),
    iolist_to_binary(
      [<<?FORMAT:8, (length(Dims)):16>>, [<<(byte_size(D)):16, D/binary>> || D <- Dims],
       [[<<(byte_size(Sub)):16, Sub/binary, (map_size(PerDim)):16>>,
         [<<(maps:get(D, Index)):16, T:64/signed, U:64, PT:64/signed, PU:64>>
          || {D, {T, U, PT, PU}} <- lists:sort(maps:to_list(PerDim))]]
        || {Sub, PerDim} <- lists:sort(maps:to_list(Subs))]]).

%% @doc A subscription's counter of a dimension; a new one counts from nothing.
-spec get(binary(), binary(), counters()) -> counter().
get(Sub, Dim, Subs) ->
    case Subs of
        #{Sub := #{Dim := C}} -> C;
        _ -> {0, 0, 0, 0}
    end.

%% @doc The counter after an hour closed.
-spec put(binary(), binary(), counter(), counters()) -> counters().
put(Sub, Dim, C = {T, U, PT, PU}, Subs) when is_binary(Sub), byte_size(Sub) < 65536, is_binary(Dim),
                                             byte_size(Dim) < 65536, ?INT64(T), ?UINT63(U), ?INT64(PT), ?UINT63(PU) ->
    Subs#{Sub => (maps:get(Sub, Subs, #{}))#{Dim => C}}.
