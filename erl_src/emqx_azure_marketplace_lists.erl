%% @doc List helpers the plugin's modules share.
-module(emqx_azure_marketplace_lists).

-export([chunks/2]).

%% @doc L cut into lists of N elements (the last one shorter), in order, in one pass.
-spec chunks([T], pos_integer()) -> [[T, ...]].
chunks(L, N) when is_integer(N), N > 0 -> chunks(L, N, N, [], []).

chunks([], _N, _Left, [], Acc) -> lists:reverse(Acc);
chunks([], _N, _Left, Chunk, Acc) -> lists:reverse(Acc, [lists:reverse(Chunk)]);
chunks(L, N, 0, Chunk, Acc) -> chunks(L, N, N, [], [lists:reverse(Chunk) | Acc]);
chunks([X | L], N, Left, Chunk, Acc) -> chunks(L, N, Left - 1, [X | Chunk], Acc).
