%% The application refuses to start without the control plane's platform module, saying so; a
%% configuration with a metering setting the core refuses is refused, naming it.
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
            {[{history_days, 40}], {<<"metering">>, not_a_map}}],
    [?assertEqual({M, Expected}, {M, Refused(M)}) || {M, Expected} <- Rows],
    ?assertEqual(ok, emqx_azure_marketplace_config:validate(maps:remove(metering, Config(#{})))).
