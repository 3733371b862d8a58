#!/usr/bin/env escript
%% -*- erlang -*-
%%! -noshell
%% Writes the EMQX plugin package from what `rebar3 compile` and `make nif` built:
%%   OUT/emqx_azure_marketplace-VSN.tar.gz and its .sha256.
%% Usage: make_plugin.escript VSN OUT_DIR
%% The package holds only regular files (EMQX's installer drops anything else), every one 0644, and
%% only the beams the .app lists: test, emulator and bench code lives in other build profiles.
-mode(compile).

-define(APP, "emqx_azure_marketplace").
%% rebar3's build directory: REBAR_BASE_DIR when set.
-define(EBIN, filename:join(os:getenv("REBAR_BASE_DIR", "_build"), "default/lib/emqx_azure_marketplace/ebin")).
-define(NIF, "priv/emqx_azure_marketplace_nif.so").
-define(CONFIG_FILES, ["config.hocon", "config_schema.avsc", "config_i18n.json"]).

main([Vsn, OutDir]) ->
    try build(Vsn, OutDir) of
        Path -> io:format("~s~n", [Path])
    catch
        throw:{package_error, What} ->
            io:format(standard_error, "make_plugin: ~s~n", [What]),
            halt(1)
    end;
main(_) ->
    io:format(standard_error, "usage: make_plugin.escript VSN OUT_DIR~n", []),
    halt(2).

build(Vsn, OutDir) ->
    NameVsn = ?APP ++ "-" ++ Vsn,
    AppDir = NameVsn ++ "/" ++ NameVsn,
    {App, Modules} = app_file(Vsn),
    Beams = [{AppDir ++ "/ebin/" ++ atom_to_list(M) ++ ".beam", read(filename:join(?EBIN, atom_to_list(M) ++ ".beam"))}
             || M <- Modules],
    Config = [{AppDir ++ "/priv/" ++ F, read(filename:join("priv", F))} || F <- ?CONFIG_FILES],
    Entries =
        [{NameVsn ++ "/release.json", release_json(Vsn)},
         {NameVsn ++ "/README.md", read("README.md")},
         {AppDir ++ "/ebin/" ?APP ".app", App},
         {AppDir ++ "/priv/emqx_azure_marketplace_nif.so", nif()}]
        ++ Beams ++ Config,
    ok = filelib:ensure_dir(filename:join(OutDir, "x")),
    Tar = filename:join(OutDir, NameVsn ++ ".tar.gz"),
    Tmp = Tar ++ ".tmp",
    {ok, Fd} = erl_tar:open(Tmp, [write, compressed]),
    [ok = erl_tar:add(Fd, Bin, Name, []) || {Name, Bin} <- Entries],
    ok = erl_tar:close(Fd),
    ok = file:rename(Tmp, Tar),
    {ok, TarBin} = file:read_file(Tar),
    Hex = string:lowercase(binary:encode_hex(crypto:hash(sha256, TarBin))),
    ok = file:write_file(Tar ++ ".sha256", [Hex, "  ", filename:basename(Tar), "\n"]),
    Tar.

%% The .app rebar3 wrote, with the package's version, and its modules: every one must be shipped,
%% and nothing that is not product code may be among them.
app_file(Vsn) ->
    case file:consult(filename:join(?EBIN, ?APP ".app")) of
        {ok, [{application, Name, Props}]} ->
            Modules = proplists:get_value(modules, Props),
            Bad = [M || M <- Modules, not lists:prefix(?APP, atom_to_list(M))],
            Bad =:= [] orelse throw({package_error, io_lib:format("non-product modules in the .app: ~p", [Bad])}),
            Props1 = lists:keystore(vsn, 1, Props, {vsn, Vsn}),
            {iolist_to_binary(io_lib:format("~p.~n", [{application, Name, Props1}])), Modules};
        Other ->
            throw({package_error, io_lib:format("~s/~s.app not readable (~p): run `rebar3 compile` first", [?EBIN, ?APP, Other])})
    end.

%% The library without its debug sections (they are 4/5 of the file and no host needs them).
nif() ->
    case file:read_link_info(?NIF) of
        {ok, Info} when element(3, Info) =:= regular -> ok;
        _ -> throw({package_error, ?NIF " is missing or not a regular file: run `make nif`"})
    end,
    Tmp = "_build/plugin_nif_stripped.so",
    ok = filelib:ensure_dir(Tmp),
    case os:cmd("objcopy --strip-debug " ?NIF " " ++ Tmp ++ " && echo ok") of
        "ok\n" -> ok;
        Out -> throw({package_error, "objcopy failed: " ++ Out})
    end,
    Bin = read(Tmp),
    ok = file:delete(Tmp),
    Bin.

read(Path) ->
    case file:read_file(Path) of
        {ok, Bin} -> Bin;
        {error, R} -> throw({package_error, io_lib:format("~s: ~p", [Path, R])})
    end.

%% Every field EMQX's installer reads (name, rel_vsn, rel_apps, description) and shows.
release_json(Vsn) ->
    Git = fun(Cmd, Default) ->
        case string:trim(os:cmd("git " ++ Cmd ++ " 2>/dev/null")) of
            "" -> Default;
            "fatal" ++ _ -> Default;
            V -> V
        end
    end,
    Date = calendar:system_time_to_rfc3339(erlang:system_time(second), [{offset, "Z"}]),
    Fields = [
        {name, ?APP},
        {rel_vsn, Vsn},
        {rel_apps, [?APP "-" ++ Vsn]},
        {description, "Azure Marketplace billing for the EMQX Platform: links Azure SaaS subscriptions "
                      "to EMQX accounts, follows Azure's signed webhooks, gates deployments"},
        {authors, ["EMQX Platform team"]},
        {builder, [{name, "EMQX Platform team"}, {contact, "platform@emqx.io"}, {website, "https://www.emqx.com"}]},
        {repo, "https://github.com/emqx/emqx_azure_marketplace"},
        {functionality, ["Billing", "Azure Marketplace"]},
        {compatibility, [{emqx, "~> v5.7"}]},
        {metadata_vsn, "0.2.0"},
        {built_on_otp_release, erlang:system_info(otp_release)},
        {with_config_schema, true},
        {hidden, false},
        {git_ref, Git("rev-parse HEAD", "unknown")},
        {git_commit_or_build_date, Git("log -1 --pretty=format:%cd --date=format:%Y-%m-%d", Date)}
    ],
    iolist_to_binary([json(Fields), "\n"]).

json(true) -> "true";
json(false) -> "false";
json(A) when is_atom(A) -> json(atom_to_list(A));
json([{_, _} | _] = Obj) ->
    ["{", lists:join(",", [[json(atom_to_list(K)), ":", json(V)] || {K, V} <- Obj]), "}"];
json([S | _] = List) when is_list(S) -> ["[", lists:join(",", [json(E) || E <- List]), "]"];
json(S) when is_list(S) -> [$", [esc(C) || C <- S], $"].

esc($") -> "\\\"";
esc($\\) -> "\\\\";
esc(C) -> C.
