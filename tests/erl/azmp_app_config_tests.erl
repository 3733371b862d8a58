%% The application refuses to start without the control plane's platform module, saying so, or with
%% a metering config that is refused; a configuration with a metering setting refused (by the core's
%% rules or for its type) is refused, naming it, and so is a reconciliation ceiling that is not a
%% positive number; the default config.hocon, read as EMQX hands it over, is the demo's dimensions,
%% the metering defaults and a ceiling of 10 calls/s.
-module(azmp_app_config_tests).

-include_lib("eunit/include/eunit.hrl").

-define(APP, emqx_azure_marketplace).

platform_required_test_() ->
    {setup,
     fun() ->
         _ = application:load(?APP),
         application:get_env(?APP, platform)
     end,
     fun(Saved) ->
         case Saved of
             {ok, M} -> application:set_env(?APP, platform, M);
             undefined -> application:unset_env(?APP, platform)
         end
     end,
     [{"no platform configured", fun() -> refused(unset, {missing_config, platform}) end},
      {"a module that does not exist", fun() -> refused(no_such_platform_module, platform_module_not_loadable) end},
      {"a module missing the behaviour's callbacks", fun() -> refused(lists, platform_module_incomplete) end}]}.

refused(Platform, Expected) ->
    case Platform of
        unset -> application:unset_env(?APP, platform);
        M -> application:set_env(?APP, platform, M)
    end,
    {error, {Reason, _Where}} = application:start(?APP),
    ?assertEqual(Expected, case Reason of
                               {missing_config, platform, Why} -> ?assert(is_list(Why)), {missing_config, platform};
                               {Kind, Platform, _} -> Kind
                           end),
    ?assertEqual(false, lists:keymember(?APP, 1, application:which_applications())).

%% What the core says of `history_days' (at least 35) and `dedupe_window_s' (positive), as the
%% validation of a whole configuration reports it (no network: the client is made and dropped).
metering_settings_test() ->
    Config = fun(Metering) ->
                 #{azure => #{tenant_id => <<"t">>, client_id => <<"c">>, client_secret => <<"s">>},
                   platform => azmp_test_platform, http => disabled, metering => Metering}
             end,
    Refused = fun(Metering) ->
                  case emqx_azure_marketplace_config:validate(Config(Metering)) of
                      ok -> ok;
                      {error, #{msg := <<"invalid_config">>, field := F, reason := R}} -> {F, R}
                  end
              end,
    Rows = [{#{}, ok},
            {#{history_days => 40, dedupe_window_s => 3600, grace_s => 300}, ok},
            {#{history_days => 35}, ok},
            {#{history_days => 34}, {<<"metering.history_days">>, {at_least, 35}}},
            {#{history_days => 0}, {<<"metering.history_days">>, not_a_positive_integer}},
            {#{history_days => 40.0}, {<<"metering.history_days">>, not_a_positive_integer}},
            {#{history_days => <<"40">>}, {<<"metering.history_days">>, not_a_positive_integer}},
            {#{history_days => 1 bsl 70}, {<<"metering.history_days">>, not_a_positive_integer}},
            {#{dedupe_window_s => 1}, ok},
            {#{dedupe_window_s => 0}, {<<"metering.dedupe_window_s">>, not_a_positive_integer}},
            {#{dedupe_window_s => -60}, {<<"metering.dedupe_window_s">>, not_a_positive_integer}},
            {#{dedupe_window_s => infinity}, {<<"metering.dedupe_window_s">>, not_a_positive_integer}},
            {#{history_days => 40, dedupe_window_s => 0}, {<<"metering.dedupe_window_s">>, not_a_positive_integer}},
            {[{history_days, 40}], {<<"metering">>, not_a_map}},
            %% the grace: 0 to a day
            {#{grace_s => 0}, ok},
            {#{grace_s => 86400}, ok},
            {#{grace_s => 86401}, {<<"metering.grace_s">>, {at_most, 86400}}},
            {#{grace_s => -1}, {<<"metering.grace_s">>, not_a_non_negative_integer}},
            {#{grace_s => <<"300">>}, {<<"metering.grace_s">>, not_a_non_negative_integer}},
            %% the meter's timings
            {#{tick_ms => 0}, {<<"metering.tick_ms">>, not_a_positive_integer}},
            {#{lease_s => -1}, {<<"metering.lease_s">>, not_a_positive_integer}},
            {#{retry_base_s => 1.5}, {<<"metering.retry_base_s">>, not_a_positive_integer}},
            {#{retry_max_s => <<"60">>}, {<<"metering.retry_max_s">>, not_a_positive_integer}},
            %% the dimensions
            {#{dimensions => [dim(<<"a">>), dim(<<"b">>)]}, ok},
            {#{dimensions => [(dim(<<"a">>))#{included => #{<<"payg">> => <<"10.5">>, <<"free">> => 0,
                                                          <<"pro">> => 1000, <<"x">> => <<"0.000001">>}}]}, ok},
            {#{dimensions => [dim(<<"a">>), dim(<<"b">>), dim(<<"a">>)]}, {<<"metering.dimensions[3].id">>, repeated_id}},
            {#{dimensions => [dim(<<"a">>), dim(<<>>)]}, {<<"metering.dimensions[2].id">>, not_a_valid_id}},
            {#{dimensions => [dim(binary:copy(<<"x">>, 1025))]}, {<<"metering.dimensions[1].id">>, not_a_valid_id}},
            {#{dimensions => [#{unit => <<"u">>}]}, {<<"metering.dimensions[1].id">>, not_a_valid_id}},
            {#{dimensions => [(dim(<<"a">>))#{unit => <<>>}]}, {<<"metering.dimensions[1].unit">>, required}},
            {#{dimensions => [maps:remove(unit, dim(<<"a">>))]}, {<<"metering.dimensions[1].unit">>, required}},
            {#{dimensions => [(dim(<<"a">>))#{included => #{<<"payg">> => <<"-1">>}}]},
             {<<"metering.dimensions[1].included.payg">>, not_a_non_negative_decimal}},
            {#{dimensions => [(dim(<<"a">>))#{included => #{<<"payg">> => <<"1.0000001">>}}]},
             {<<"metering.dimensions[1].included.payg">>, not_a_non_negative_decimal}},
            {#{dimensions => [(dim(<<"a">>))#{included => #{<<"payg">> => <<"ten">>}}]},
             {<<"metering.dimensions[1].included.payg">>, not_a_non_negative_decimal}},
            {#{dimensions => [(dim(<<"a">>))#{included => #{<<"payg">> => -5}}]},
             {<<"metering.dimensions[1].included.payg">>, not_a_non_negative_decimal}},
            {#{dimensions => [(dim(<<"a">>))#{included => [{<<"payg">>, 1}]}]},
             {<<"metering.dimensions[1].included">>, not_a_map}},
            {#{dimensions => [dim(<<"a">>), <<"b">>]}, {<<"metering.dimensions[2]">>, not_a_map}},
            {#{dimensions => #{}}, {<<"metering.dimensions">>, not_a_list}}],
    [?assertEqual({M, Expected}, {M, Refused(M)}) || {M, Expected} <- Rows],
    ?assertEqual(ok, emqx_azure_marketplace_config:validate(maps:remove(metering, Config(#{})))).

dim(Id) -> #{id => Id, unit => <<"unit">>, included => #{}}.

%% The reconciliation's ceiling of calls per second: any positive number (the core reads a float or
%% a 64-bit integer), refused otherwise by its name, in the application env's shape (validate/1)
%% and as EMQX hands it over (from_hocon/1).
reconcile_calls_per_s_test() ->
    Config = #{azure => #{tenant_id => <<"t">>, client_id => <<"c">>, client_secret => <<"s">>},
               platform => azmp_test_platform, http => disabled},
    Refused = {<<"reconcile_max_calls_per_s">>, not_a_positive_number},
    Check = fun(V) ->
                case emqx_azure_marketplace_config:validate(Config#{reconcile_max_calls_per_s => V}) of
                    ok -> ok;
                    {error, #{msg := <<"invalid_config">>, field := F, reason := R}} -> {F, R}
                end
            end,
    FromHocon = fun(V) ->
                    case emqx_azure_marketplace_config:from_hocon(#{<<"reconcile_max_calls_per_s">> => V}) of
                        {ok, #{reconcile_max_calls_per_s := Got}} -> {ok, Got};
                        {error, #{msg := <<"invalid_config">>, field := F, reason := R}} -> {F, R}
                    end
                end,
    Rows = [{10, ok}, {1, ok}, {0.5, ok}, {10.0, ok}, {1000, ok}, {1.0e-3, ok}, {(1 bsl 63) - 1, ok},
            {0, Refused}, {0.0, Refused}, {-1, Refused}, {-0.5, Refused}, {1 bsl 63, Refused},
            {<<"10">>, Refused}, {"10", Refused}, {infinity, Refused}, {undefined, Refused}],
    [?assertEqual({V, Expected}, {V, Check(V)}) || {V, Expected} <- Rows],
    [?assertEqual({V, case Expected of ok -> {ok, V}; _ -> Expected end}, {V, FromHocon(V)})
     || {V, Expected} <- Rows, V =/= undefined],
    %% not given: the reconciler's default (the core's, 10)
    ?assertEqual(ok, emqx_azure_marketplace_config:validate(Config)),
    ?assertEqual(false, maps:is_key(reconcile_max_calls_per_s,
                                    element(2, emqx_azure_marketplace_config:from_hocon(#{})))).

%% The start checks the metering config it runs with, outside EMQX too (the application env).
metering_refused_at_start_test_() ->
    {setup,
     fun() ->
         _ = application:load(?APP),
         {application:get_env(?APP, metering), application:get_env(?APP, platform)}
     end,
     fun({Metering, Platform}) ->
         [case Saved of
              {ok, V} -> application:set_env(?APP, K, V);
              undefined -> application:unset_env(?APP, K)
          end || {K, Saved} <- [{metering, Metering}, {platform, Platform}]]
     end,
     [{"history_days 34", fun() -> start_refused(#{history_days => 34}, <<"metering.history_days">>) end},
      {"a repeated dimension", fun() -> start_refused(#{dimensions => [dim(<<"a">>), dim(<<"a">>)]},
                                                      <<"metering.dimensions[2].id">>) end},
      {"a quantity that is not a decimal",
       fun() -> start_refused(#{dimensions => [(dim(<<"a">>))#{included => #{<<"p">> => <<"1e3">>}}]},
                              <<"metering.dimensions[1].included.p">>) end},
      {"not a map", fun() -> start_refused([{grace_s, 300}], <<"metering">>) end}]}.

start_refused(Metering, Field) ->
    ok = application:set_env(?APP, platform, azmp_test_platform),
    ok = application:set_env(?APP, metering, Metering),
    ?assertMatch({error, {#{msg := <<"invalid_config">>, field := Field}, _}}, application:start(?APP)),
    ?assertEqual(false, lists:keymember(?APP, 1, application:which_applications())).

%% config.hocon as EMQX hands it over (binary keys), converted: the demo's three dimensions (EMQX's
%% pay-as-you-go units; nothing included by default) and the meter's defaults; the same as the
%% Avro schema's defaults; a valid config once the required ids are filled in.
default_config_hocon_test() ->
    Hocon = hocon_file("priv/config.hocon"),
    {ok, Config} = emqx_azure_marketplace_config:from_hocon(Hocon),
    ?assertEqual(#{dimensions => [#{id => <<"session_minutes">>, unit => <<"minute">>, included => #{}},
                                  #{id => <<"traffic_gb">>, unit => <<"GB">>, included => #{}},
                                  #{id => <<"rule_actions">>, unit => <<"execution">>, included => #{}}],
                   grace_s => 300, lateness_s => 86100, tick_ms => 5000, lease_s => 30, retry_base_s => 60,
                   retry_max_s => 3600, history_days => 40, dedupe_window_s => 3600},
                 maps:get(metering, Config)),
    ?assertEqual(10, maps:get(reconcile_max_calls_per_s, Config)),
    {ok, AvscBin} = file:read_file("priv/config_schema.avsc"),
    {ok, Avsc} = emqx_azure_marketplace_nif:json_decode(AvscBin),
    Defaults = maps:from_list([{N, D} || #{<<"name">> := N, <<"default">> := D} <- maps:get(<<"fields">>, Avsc)]),
    ?assertEqual(Hocon, Defaults),
    Ids = #{<<"tenant_id">> => <<"t">>, <<"client_id">> => <<"c">>, <<"client_secret">> => <<"s">>},
    {ok, Filled} = emqx_azure_marketplace_config:from_hocon(
                     Hocon#{<<"azure">> := maps:merge(maps:get(<<"azure">>, Hocon), Ids),
                            <<"platform_module">> := <<"azmp_test_platform">>}),
    ?assertEqual(ok, emqx_azure_marketplace_config:validate(Filled)),
    %% numbers for quantities, as a hand-written config.hocon may have them, are taken too
    {ok, #{metering := #{dimensions := [#{included := #{<<"payg">> := 100, <<"pro">> := <<"10.5">>}}]}}} =
        emqx_azure_marketplace_config:from_hocon(#{<<"metering">> => #{<<"dimensions">> => [
            #{<<"id">> => <<"a">>, <<"unit">> => <<"u">>, <<"included">> => #{<<"payg">> => 100, <<"pro">> => "10.5"}}]}}),
    %% a type hocon cannot take is refused by the conversion, naming the field
    [?assertMatch({M, {error, #{field := F}}}, {M, emqx_azure_marketplace_config:from_hocon(#{<<"metering">> => M})})
     || {M, F} <- [{#{<<"dimensions">> => #{}}, <<"metering.dimensions">>},
                   {#{<<"dimensions">> => [7]}, <<"metering.dimensions[1]">>},
                   {#{<<"dimensions">> => [#{<<"id">> => 7, <<"unit">> => <<"u">>}]}, <<"metering.dimensions[1].id">>},
                   {#{<<"dimensions">> => [#{<<"id">> => <<"a">>, <<"unit">> => <<"u">>, <<"included">> => 3}]},
                    <<"metering.dimensions[1].included">>},
                   {#{<<"dimensions">> => [#{<<"id">> => <<"a">>, <<"unit">> => <<"u">>,
                                             <<"included">> => #{<<"p">> => true}}]},
                    <<"metering.dimensions[1].included.p">>},
                   {#{<<"tick_ms">> => 0}, <<"metering.tick_ms">>}]],
    ok.

%%--------------------------------------------------------------------
%% The HOCON config.hocon uses (objects, arrays, quoted strings, numbers, booleans, comments),
%% read into what EMQX hands a plugin: maps with binary keys.

hocon_file(Path) ->
    {ok, Bin} = file:read_file(Path),
    {Obj, []} = members(tokens(unicode:characters_to_list(Bin)), #{}, eof),
    Obj.

tokens([]) -> [];
tokens([$# | R]) -> tokens(lists:dropwhile(fun(C) -> C =/= $\n end, R));
tokens([C | R]) when C =:= $\s; C =:= $\t; C =:= $\r -> tokens(R);
tokens([C | R]) when C =:= ${; C =:= $}; C =:= $[; C =:= $]; C =:= $=; C =:= $:; C =:= $,; C =:= $\n -> [C | tokens(R)];
tokens([$" | R]) ->
    {S, [$" | R1]} = lists:splitwith(fun(C) -> C =/= $" end, R),
    [{str, unicode:characters_to_binary(S)} | tokens(R1)];
tokens(R) ->
    {W, R1} = lists:splitwith(fun(C) -> not lists:member(C, " \t\r\n{}[]=:,#\"") end, R),
    [{word, W} | tokens(R1)].

%% An object's members up to End (a closing brace, or the end of the file).
members([Sep | R], Acc, End) when Sep =:= $\n; Sep =:= $, -> members(R, Acc, End);
members([$} | R], Acc, $}) -> {Acc, R};
members([], Acc, eof) -> {Acc, []};
members([{_, K} | R0], Acc, End) ->
    R1 = case R0 of [C | R] when C =:= $=; C =:= $: -> R; _ -> R0 end,
    {V, R2} = value(R1),
    members(R2, Acc#{key(K) => V}, End).

elements([Sep | R], Acc) when Sep =:= $\n; Sep =:= $, -> elements(R, Acc);
elements([$] | R], Acc) -> {lists:reverse(Acc), R};
elements(R0, Acc) -> {V, R} = value(R0), elements(R, [V | Acc]).

value([${ | R]) -> members(R, #{}, $});
value([$[ | R]) -> elements(R, []);
value([{str, S} | R]) -> {S, R};
value([{word, "true"} | R]) -> {true, R};
value([{word, "false"} | R]) -> {false, R};
value([{word, W} | R]) ->
    {try list_to_integer(W) catch error:badarg -> list_to_float(W) end, R}.

key(K) when is_binary(K) -> K;
key(K) -> list_to_binary(K).
