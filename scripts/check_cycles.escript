#!/usr/bin/env escript
%% -*- erlang -*-
%%! -noshell
%% Fails when the plugin's shipped modules (erl_src, compiled to EbinDir) call each other in a
%% cycle: builds the module call graph with xref (calls and `fun M:F/A' references between the
%% application's own modules; xref's `functions' mode, which sees the funs, unlike `modules') and
%% prints every strongly connected component of more than one module.
%%
%%   escript scripts/check_cycles.escript [EbinDir]     (default _build/default/lib/emqx_azure_marketplace/ebin)
%%
%% Exit status 0: no cycle; 1: cycles (printed); 2: EbinDir holds no module. Also used from EUnit
%% (azmp_module_cycles_tests), through cycles/1.
-mode(compile).

main(Args) ->
    Ebin = case Args of
               [Dir] -> Dir;
               [] -> "_build/default/lib/emqx_azure_marketplace/ebin"
           end,
    case cycles(Ebin) of
        {error, Reason} ->
            io:format(standard_error, "check_cycles: ~p~n", [Reason]),
            halt(2);
        {ok, []} ->
            io:format("check_cycles: no cycle between the modules in ~s~n", [Ebin]),
            halt(0);
        {ok, Cycles} ->
            [io:format(standard_error, "check_cycles: modules calling each other: ~p~n", [C]) || C <- Cycles],
            halt(1)
    end.

%% {ok, Cycles}: each a sorted list of the modules of one strongly connected component.
cycles(Ebin) ->
    case filelib:wildcard(filename:join(Ebin, "emqx_azure_marketplace*.beam")) of
        [] ->
            {error, {no_modules_in, Ebin}};
        _ ->
            {ok, Xref} = xref:start([{xref_mode, functions}]),
            try
                {ok, _} = xref:add_directory(Xref, Ebin, [{warnings, false}]),
                %% ME: the calls between modules; only those between the application's own
                %% modules, self-calls left out.
                {ok, Edges} = xref:q(Xref, "strict(ME || AM) | AM"),
                {ok, graph_cycles([{F, T} || {F, T} <- Edges, F =/= T])}
            after
                xref:stop(Xref)
            end
    end.

graph_cycles(Edges) ->
    G = digraph:new(),
    try
        [begin digraph:add_vertex(G, F), digraph:add_vertex(G, T), digraph:add_edge(G, F, T) end
         || {F, T} <- Edges],
        lists:sort([lists:sort(C) || C <- digraph_utils:cyclic_strong_components(G), length(C) > 1])
    after
        digraph:delete(G)
    end.
