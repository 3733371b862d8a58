%% The EMQX plugin package `make plugin' writes: its layout, the modes of its entries, release.json
%% field by field, the .app, the config files, and what the library needs on the host.
-module(azmp_plugin_package_tests).

-include_lib("eunit/include/eunit.hrl").
-include_lib("kernel/include/file.hrl").

-export([package_path/0, check_package/1]).

-define(APP, "emqx_azure_marketplace").
%% What the library may need on a host: libc, libstdc++, libcurl, OpenSSL, and what every C++
%% program links (libm, libgcc_s, the dynamic loader).
-define(ALLOWED_NEEDED, ["libc.so.6", "libstdc++.so.6", "libcurl.so.4", "libcrypto.so.3", "libssl.so.3",
                         "libm.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"]).

%% The package of this source tree's version.
package_path() ->
    {ok, [{application, _, Props}]} = file:consult("erl_src/" ?APP ".app.src"),
    Vsn = proplists:get_value(vsn, Props),
    {filename:absname("_build/plugin/" ?APP "-" ++ Vsn ++ ".tar.gz"), Vsn}.

package_test_() ->
    {Tar, Vsn} = package_path(),
    {setup,
     fun() ->
         filelib:is_regular(Tar) orelse error({no_package, Tar, "run `make plugin` first"}),
         {ok, _} = application:ensure_all_started(crypto)
     end,
     fun(_) -> ok end,
     [{"sha256 file", fun() -> sha256(Tar) end},
      {"every entry a regular 0644 file under a safe relative path", fun() -> ok = check_package(Tar) end},
      {"exactly the expected files; the .app lists every beam shipped", fun() -> layout(Tar, Vsn) end},
      {"release.json field by field", fun() -> release_json(Tar, Vsn) end},
      {"config.hocon, the Avro schema and the i18n labels agree", fun() -> config_files(Tar, Vsn) end},
      {"the library: what it needs on the host, no RPATH, Boost.JSON compiled in", fun() -> library(Tar, Vsn) end}]}.

sha256(Tar) ->
    {ok, Bin} = file:read_file(Tar),
    {ok, Line} = file:read_file(Tar ++ ".sha256"),
    Hex = string:lowercase(binary:encode_hex(crypto:hash(sha256, Bin))),
    ?assertEqual(<<Hex/binary, "  ", (list_to_binary(filename:basename(Tar)))/binary, "\n">>, Line).

%% @doc ok, or what is wrong: an entry that is not a regular file, has another mode than 0644, or a
%% path that is absolute, climbs out, or is outside the package's folder.
check_package(Tar) ->
    {ok, Table} = erl_tar:table(Tar, [compressed, verbose]),
    Root = filename:basename(Tar, ".tar.gz") ++ "/",
    Bad = [{Name, Type, Mode band 8#7777}
           || {Name, Type, _Size, _MTime, Mode, _Uid, _Gid} <- Table,
              Type =/= regular orelse Mode band 8#7777 =/= 8#644 orelse not lists:prefix(Root, Name)
                  orelse filelib:safe_relative_path(Name, "/nonexistent") =:= unsafe],
    case Bad of
        [] -> ok;
        _ -> {error, {bad_entries, Bad}}
    end.

entries(Tar) ->
    {ok, Files} = erl_tar:extract(Tar, [compressed, memory]),
    Files.

layout(Tar, Vsn) ->
    NV = ?APP "-" ++ Vsn,
    Files = entries(Tar),
    Names = lists:sort([N || {N, _} <- Files]),
    {ok, App} = app_term(Files, NV),
    {application, emqx_azure_marketplace, Props} = App,
    Modules = proplists:get_value(modules, Props),
    ?assertEqual(Vsn, proplists:get_value(vsn, Props)),
    Beams = [NV ++ "/" ++ NV ++ "/ebin/" ++ atom_to_list(M) ++ ".beam" || M <- Modules],
    Expected = lists:sort([NV ++ "/release.json", NV ++ "/README.md",
                           NV ++ "/" ++ NV ++ "/ebin/" ?APP ".app",
                           NV ++ "/" ++ NV ++ "/priv/emqx_azure_marketplace_nif.so",
                           NV ++ "/" ++ NV ++ "/priv/config.hocon",
                           NV ++ "/" ++ NV ++ "/priv/config_schema.avsc",
                           NV ++ "/" ++ NV ++ "/priv/config_i18n.json" | Beams]),
    ?assertEqual(Expected, Names),
    %% Product code only: no test, emulator, demo or bench module.
    ?assertEqual([], [M || M <- Modules, not lists:prefix(?APP, atom_to_list(M))]),
    ?assertEqual([], [M || M <- Modules, lists:suffix("_tests", atom_to_list(M))]),
    %% Every beam is a loadable module of the name it has.
    [?assertMatch({ok, {M, _}}, beam_lib:chunks(proplists:get_value(B, Files), [])) || {M, B} <- lists:zip(Modules, Beams)],
    %% Every module the application has is shipped (the entry module, the shim, the callbacks).
    [?assert(lists:member(M, Modules)) || M <- [emqx_azure_marketplace_app, emqx_azure_marketplace_nif]].

app_term(Files, NV) ->
    {_, Bin} = lists:keyfind(NV ++ "/" ++ NV ++ "/ebin/" ?APP ".app", 1, Files),
    {ok, Toks, _} = erl_scan:string(binary_to_list(Bin)),
    erl_parse:parse_term(Toks).

release_json(Tar, Vsn) ->
    NV = ?APP "-" ++ Vsn,
    {_, Bin} = lists:keyfind(NV ++ "/release.json", 1, entries(Tar)),
    {ok, J} = emqx_azure_marketplace_nif:json_decode(Bin),
    B = fun list_to_binary/1,
    ?assertEqual(<<?APP>>, maps:get(<<"name">>, J)),
    ?assertEqual(nomatch, binary:match(maps:get(<<"name">>, J), <<"-">>)),
    ?assertEqual(B(Vsn), maps:get(<<"rel_vsn">>, J)),
    ?assertEqual([B(NV)], maps:get(<<"rel_apps">>, J)),
    ?assert(byte_size(maps:get(<<"description">>, J)) > 10),
    ?assertMatch([<<_, _/binary>> | _], maps:get(<<"authors">>, J)),
    ?assertMatch(#{<<"name">> := <<_, _/binary>>, <<"contact">> := <<_, _/binary>>, <<"website">> := <<_, _/binary>>},
                 maps:get(<<"builder">>, J)),
    ?assertMatch(<<"https://", _/binary>>, maps:get(<<"repo">>, J)),
    ?assertMatch([<<_, _/binary>> | _], maps:get(<<"functionality">>, J)),
    ?assertMatch(#{<<"emqx">> := <<"~> v5", _/binary>>}, maps:get(<<"compatibility">>, J)),
    ?assertEqual(<<"0.2.0">>, maps:get(<<"metadata_vsn">>, J)),
    ?assertEqual(B(erlang:system_info(otp_release)), maps:get(<<"built_on_otp_release">>, J)),
    ?assertEqual(true, maps:get(<<"with_config_schema">>, J)),
    ?assertEqual(false, maps:get(<<"hidden">>, J)),
    ?assertMatch(<<_, _/binary>>, maps:get(<<"git_ref">>, J)),
    ?assertMatch(<<_, _/binary>>, maps:get(<<"git_commit_or_build_date">>, J)),
    %% Nothing else: every field is one EMQX reads or shows.
    ?assertEqual(15, map_size(J)).

config_files(Tar, Vsn) ->
    P = ?APP "-" ++ Vsn ++ "/" ?APP "-" ++ Vsn ++ "/priv/",
    Files = entries(Tar),
    {_, Hocon} = lists:keyfind(P ++ "config.hocon", 1, Files),
    {_, AvscBin} = lists:keyfind(P ++ "config_schema.avsc", 1, Files),
    {_, I18nBin} = lists:keyfind(P ++ "config_i18n.json", 1, Files),
    {ok, Avsc} = emqx_azure_marketplace_nif:json_decode(AvscBin),
    {ok, I18n} = emqx_azure_marketplace_nif:json_decode(I18nBin),
    Fields = fields(maps:get(<<"fields">>, Avsc)),
    ?assert(length(Fields) >= 25),
    [begin
         %% described with a default, labelled in both languages, and set in config.hocon
         ?assert(maps:is_key(<<"default">>, F)),
         #{<<"label">> := L, <<"description">> := D} = maps:get(<<"$ui">>, F),
         [?assertMatch({_, #{<<"en">> := _, <<"zh">> := _}}, {K, maps:get(K, I18n, missing)}) || K <- [L, D]],
         ?assertMatch({_, {_, _}}, {Name, binary:match(Hocon, <<Name/binary, " ">>)})
     end
     || #{<<"name">> := Name} = F <- Fields],
    %% Every "zh" is Chinese: not the English copied over, and at least one CJK ideograph
    %% (U+4E00..U+9FFF) once its UTF-8 is decoded.
    ?assert(map_size(I18n) >= 2 * length(Fields)),
    maps:foreach(fun(K, #{<<"en">> := En, <<"zh">> := Zh}) ->
                         ?assertNotEqual({K, En}, {K, Zh}),
                         Chars = unicode:characters_to_list(Zh, utf8),
                         ?assertMatch({K, [_ | _]}, {K, Chars}),
                         ?assertEqual({K, true}, {K, lists:any(fun(C) -> C >= 16#4E00 andalso C =< 16#9FFF end, Chars)})
                 end, I18n),
    %% The internal shape the plugin reads it into.
    ?assertMatch({ok, #{azure := #{token_endpoint := v2, timeout_ms := 30000},
                        metering := #{dimensions := [#{id := <<"session_minutes">>, unit := <<"minute">>},
                                                     #{id := <<"traffic_gb">>, unit := <<"GB">>},
                                                     #{id := <<"rule_actions">>, unit := <<"execution">>}],
                                      grace_s := 300, history_days := 40, dedupe_window_s := 3600}}},
                 emqx_azure_marketplace_config:from_hocon(defaults_with_ids(Avsc))).

%% Every field, those of nested records and of arrays' records (the metering dimensions) included.
fields(Fs) ->
    lists:flatmap(fun(#{<<"type">> := #{<<"type">> := <<"record">>, <<"fields">> := Sub}} = F) -> [F | fields(Sub)];
                     (#{<<"type">> := #{<<"type">> := <<"array">>,
                                        <<"items">> := #{<<"type">> := <<"record">>, <<"fields">> := Sub}}} = F) ->
                         [F | fields(Sub)];
                     (F) -> [F]
                  end, Fs).

%% The schema's defaults, as EMQX hands them over (binary keys), with the required ids filled in.
defaults_with_ids(Avsc) ->
    Defaults = maps:from_list([{N, D} || #{<<"name">> := N, <<"default">> := D} <- maps:get(<<"fields">>, Avsc)]),
    Azure = maps:get(<<"azure">>, Defaults),
    Defaults#{<<"azure">> := Azure#{<<"tenant_id">> := <<"t">>, <<"client_id">> := <<"c">>, <<"client_secret">> := <<"s">>},
              <<"platform_module">> := <<"azmp_test_platform">>}.

library(Tar, Vsn) ->
    P = ?APP "-" ++ Vsn ++ "/" ?APP "-" ++ Vsn ++ "/priv/emqx_azure_marketplace_nif.so",
    {_, So} = lists:keyfind(P, 1, entries(Tar)),
    File = filename:join("/tmp", "azmp_pkg_nif_" ++ os:getpid() ++ ".so"),
    ok = file:write_file(File, So),
    try
        Dyn = os:cmd("readelf -d " ++ File),
        Needed = [N || L <- string:split(Dyn, "\n", all),
                       {match, [N]} <- [re:run(L, "\\(NEEDED\\).*\\[(.*)\\]", [{capture, all_but_first, list}])]],
        ?debugFmt("NEEDED: ~p", [Needed]),
        ?assertEqual([], Needed -- ?ALLOWED_NEEDED),
        ?assert(lists:member("libcurl.so.4", Needed)),
        ?assertEqual(nomatch, re:run(Dyn, "RPATH|RUNPATH")),
        ?assertEqual(nomatch, re:run(Dyn, "boost")),
        Ldd = os:cmd("ldd " ++ File),
        ?debugFmt("ldd:~n~s", [Ldd]),
        ?assertEqual(nomatch, re:run(Ldd, "not found|boost|_build")),
        %% The package's library is no bigger than it needs to be: no debug sections.
        ?assertEqual(nomatch, re:run(os:cmd("readelf -S " ++ File), "\\.debug_info"))
    after
        file:delete(File)
    end.
