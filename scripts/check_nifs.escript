#!/usr/bin/env escript
%% -*- erlang -*-
%% Build-time check that the NIF table (c_src/nif/nifs.def) and the Erlang stubs
%% (erl_src/emqx_azure_marketplace_nif.erl) declare the same functions: every table entry has an
%% exported stub of that arity with a -spec, and every stub is in the table. Run by CMake before the
%% NIF library is built; exits 1 naming each difference.
-mode(compile).

main([Table, Module]) ->
    Nifs = table(Table),
    {ok, Forms} = epp:parse_file(Module, []),
    Exports = lists:append([Es || {attribute, _, export, Es} <- Forms]),
    Specs = [FA || {attribute, _, spec, {FA, _}} <- Forms],
    Stubs = [{F, A} || {function, _, F, A, Clauses} <- Forms, is_stub(Clauses)],
    Problems =
        [io_lib:format("~s lists ~s/~b: ~s has no stub for it (add `~s(...) -> erlang:nif_error(nif_not_loaded).')",
                       [Table, F, A, Module, F]) || {F, A} <- Nifs, not lists:member({F, A}, Stubs)] ++
        [io_lib:format("~s has a stub ~s/~b that ~s does not list (add `AZMP_NIF(~s, ~b)')",
                       [Module, F, A, Table, F, A]) || {F, A} <- Stubs, not lists:member({F, A}, Nifs)] ++
        [io_lib:format("~s: the stub ~s/~b is not exported", [Module, F, A])
         || {F, A} <- Stubs, not lists:member({F, A}, Exports)] ++
        [io_lib:format("~s: the stub ~s/~b has no -spec", [Module, F, A])
         || {F, A} <- Stubs, not lists:member({F, A}, Specs)] ++
        [io_lib:format("~s lists ~s/~b twice", [Table, F, A]) || {F, A} <- Nifs -- lists:usort(Nifs)],
    case Problems of
        [] -> io:format("NIF table and Erlang stubs agree: ~b NIFs~n", [length(Nifs)]);
        _ ->
            [io:format(standard_error, "NIF table drift: ~s~n", [P]) || P <- Problems],
            halt(1)
    end;
main(_) ->
    io:format(standard_error, "usage: check_nifs.escript NIFS_DEF NIF_ERL~n", []),
    halt(2).

table(File) ->
    {ok, Bin} = file:read_file(File),
    {match, Rows} = re:run(Bin, "^AZMP_NIF\\(([a-z_0-9]+), *([0-9]+)\\)", [multiline, global, {capture, all_but_first, list}]),
    [{list_to_atom(N), list_to_integer(A)} || [N, A] <- Rows].

%% A stub's one clause calls erlang:nif_error/1.
is_stub([{clause, _, _, [], [{call, _, {remote, _, {atom, _, erlang}, {atom, _, nif_error}}, [_]}]}]) -> true;
is_stub(_) -> false.
