%% The application refuses to start without the control plane's platform module, saying so.
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
