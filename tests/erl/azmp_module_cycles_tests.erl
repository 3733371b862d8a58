%% @doc No two shipped modules call each other, directly or around a longer loop: the module call
%% graph of erl_src (calls and `fun M:F/A' references) is acyclic. The check is
%% scripts/check_cycles.escript, run here on the compiled application.
-module(azmp_module_cycles_tests).

-include_lib("eunit/include/eunit.hrl").

no_cycles_test() ->
    Script = filename:join([filename:dirname(proplists:get_value(source, ?MODULE:module_info(compile))),
                            "..", "..", "scripts", "check_cycles.escript"]),
    ?assert(filelib:is_regular(Script)),
    Ebin = filename:dirname(code:which(emqx_azure_marketplace_app)),
    Out = os:cmd(lists:flatten(io_lib:format("escript '~ts' '~ts' 2>&1; echo \"rc=$?\"", [Script, Ebin]))),
    ?assertEqual({match, ["0"]}, re:run(Out, "rc=([0-9]+)", [{capture, all_but_first, list}]),
                 Out).
