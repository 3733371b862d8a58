%% The term counters' packed form (emqx_azure_marketplace_usage_terms): what is put is what is got
%% back after encoding and decoding, for any subscriptions, dimensions and counters the core gives;
%% a counter the form cannot hold is refused, never cut short.
-module(azmp_usage_terms_tests).

-include_lib("proper/include/proper.hrl").
-include_lib("eunit/include/eunit.hrl").

-define(T, emqx_azure_marketplace_usage_terms).

id() -> ?LET(B, non_empty(binary()), B).
int64() -> oneof([integer(), integer(-(1 bsl 63), (1 bsl 63) - 1)]).
uint63() -> oneof([non_neg_integer(), integer(0, (1 bsl 63) - 1)]).
counter() -> {int64(), uint63(), int64(), uint63()}.

prop_round_trip() ->
    ?FORALL(Puts, list({id(), oneof([<<"session_minutes">>, <<"traffic_gb">>, id()]), counter()}),
            begin
                Counters = lists:foldl(fun({S, D, C}, Acc) -> ?T:put(S, D, C, Acc) end, #{}, Puts),
                Back = ?T:decode(?T:encode(Counters)),
                Back =:= Counters andalso
                    lists:all(fun({S, D, _}) -> ?T:get(S, D, Back) =:= ?T:get(S, D, Counters) end, Puts)
            end).

round_trip_test() ->
    ?assert(proper:quickcheck(prop_round_trip(), [{numtests, 500}, {to_file, user}])).

edges_test_() ->
    [?_assertEqual(<<>>, ?T:encode(#{})),
     ?_assertEqual(#{}, ?T:decode(<<>>)),
     ?_assertEqual({0, 0, 0, 0}, ?T:get(<<"s">>, <<"d">>, #{})),
     ?_assertError(function_clause, ?T:put(<<"s">>, <<"d">>, {0, 1 bsl 63, 0, 0}, #{})),
     ?_assertError(function_clause, ?T:put(<<"s">>, <<"d">>, {0, -1, 0, 0}, #{})),
     ?_assertError(function_clause, ?T:put(<<"s">>, <<"d">>, {1 bsl 63, 0, 0, 0}, #{})),
     ?_assertError(function_clause, ?T:put(<<"s">>, <<"d">>, {0, 1.5, 0, 0}, #{})),
     ?_assertError(function_clause, ?T:put(binary:copy(<<"s">>, 65536), <<"d">>, {0, 0, 0, 0}, #{})),
     %% the shard is the same for the same id, and within its range
     ?_assertEqual(?T:shard(<<"abc">>), ?T:shard(<<"abc">>)),
     ?_assert(lists:all(fun(I) -> S = ?T:shard(integer_to_binary(I)), S >= 0 andalso S < 1024 end, lists:seq(1, 2000)))].
