%% EMQX's config callbacks against a running plugin and the emulator: a bad config is refused naming
%% the setting (running or stopped), metering's fields too; a good one applies live while 1,000
%% Azure calls are in flight and loses none of their replies; a metering change is seen by the next
%% sample; the health check, the alarms, the CLI and the Prometheus text
%% follow Azure going away and coming back; no secret shows anywhere across it.
-module(azmp_plugin_config_tests).

-include_lib("eunit/include/eunit.hrl").

-define(APP_MOD, emqx_azure_marketplace_app).
-define(SECRET, <<"s3cr3t-of-the-config-test">>).
-define(CALLS, 1000).

config_test_() ->
    {setup,
     fun() ->
         _ = application:load(emqx_azure_marketplace),
         SavedEnv = application:get_all_env(emqx_azure_marketplace),
         Emu = azmp_test_env:start_emulator(#{client_secret => ?SECRET}),
         SecretFile = "/tmp/azmp_secret_" ++ os:getpid(),
         ok = file:write_file(SecretFile, <<?SECRET/binary, "\n">>),
         ok = azmp_log_capture:start(),
         ok = logger:add_handler(azmp_capture, azmp_log_capture, #{level => all}),
         %% 30 s per call: 1,000 TLS handshakes with the emulator on a busy machine take a while
         Azure = azmp_test_env:client_config(Emu, #{transport => https, timeout_ms => 30000}),
         Plugin = azmp_test_env:start_plugin(Emu, #{azure => Azure#{client_secret => ?SECRET},
                                                    alarm_check_ms => 3600000}),
         #{emu => Emu, plugin => Plugin, secret_file => SecretFile, saved_env => SavedEnv}
     end,
     fun(#{emu := Emu, plugin := Plugin, secret_file := F, saved_env := SavedEnv}) ->
         logger:remove_handler(azmp_capture),
         azmp_test_env:stop_plugin(Plugin),
         %% the suites after this one start from the environment they would have had without it
         [application:unset_env(emqx_azure_marketplace, K) || {K, _} <- application:get_all_env(emqx_azure_marketplace)],
         [application:set_env(emqx_azure_marketplace, K, V) || {K, V} <- SavedEnv],
         azmp_test_env:stop_emulator(Emu),
         file:delete(F)
     end,
     fun(Ctx) ->
         [{"a bad config is refused, naming the setting", fun() -> refused(Ctx) end},
          {timeout, 120, {"a config change with 1,000 calls in flight loses no reply", fun() -> live_change(Ctx) end}},
          {"the reconciliation's ceiling of calls per second applies live; a bad one is refused, naming it",
           fun() -> calls_per_s_live(Ctx) end},
          {timeout, 60, {"a metering change applies live: a new dimension recorded, included quantities read",
                         fun() -> metering_live(Ctx) end}},
          {timeout, 60, {"Azure unreachable: health, alarm, CLI; cleared when it answers again", fun() -> unreachable(Ctx) end}},
          {timeout, 60, {"stopped: checked and kept for the next start", fun() -> stopped(Ctx) end}},
          {"no secret in any log, error, status or metrics output", fun() -> no_secret(Ctx) end}]
     end}.

%% The config as EMQX hands it over (binary keys, hocon's types), for the emulator.
hocon(#{emu := Emu, secret_file := F}, Overrides) ->
    Azure = azmp_test_env:client_config(Emu, #{transport => https}),
    Base = #{<<"azure">> => #{<<"tenant_id">> => maps:get(tenant_id, Azure),
                             <<"client_id">> => maps:get(client_id, Azure),
                             <<"client_secret">> => iolist_to_binary(["file://", F]),
                             <<"login_url">> => maps:get(login_url, Azure),
                             <<"marketplace_url">> => maps:get(marketplace_url, Azure),
                             <<"ca_file">> => maps:get(ca_file, Azure),
                             <<"token_endpoint">> => <<"v2">>,
                             <<"timeout_ms">> => 30000,
                             <<"retry">> => #{<<"max_attempts">> => 2, <<"base_delay_ms">> => 10,
                                              <<"max_delay_ms">> => 50, <<"max_retry_after_ms">> => 1000}},
             <<"platform_module">> => <<"azmp_test_platform">>,
             <<"http">> => #{<<"enable">> => true, <<"ip">> => <<"127.0.0.1">>, <<"port">> => 0},
             <<"tick_ms">> => 100, <<"deadline_tick_ms">> => 200, <<"lease_s">> => 5,
             <<"retry_base_s">> => 1, <<"retry_max_s">> => 2, <<"jwks_refresh_interval_s">> => 0},
    deep_merge(Base, Overrides).

deep_merge(A, B) ->
    maps:fold(fun(K, V, Acc) when is_map(V) -> Acc#{K => deep_merge(maps:get(K, Acc, #{}), V)};
                 (K, V, Acc) -> Acc#{K => V}
              end, A, B).

refused_field(Ctx, Overrides) ->
    case ?APP_MOD:on_config_changed(#{}, hocon(Ctx, Overrides)) of
        {error, #{field := Field}} -> Field;
        Other -> {not_refused, Other}
    end.

refused(Ctx) ->
    Cases = [{#{<<"azure">> => #{<<"tenant_id">> => <<>>}}, <<"azure.tenant_id">>},
             {#{<<"azure">> => #{<<"client_secret">> => <<"file:///nonexistent/secret">>}}, <<"azure.client_secret">>},
             {#{<<"azure">> => #{<<"timeout_ms">> => -5}}, <<"azure.timeout_ms">>},
             {#{<<"azure">> => #{<<"token_endpoint">> => <<"v3">>}}, <<"azure.token_endpoint">>},
             %% checked by the library's own config validation (no network call)
             {#{<<"azure">> => #{<<"retry">> => #{<<"max_attempts">> => 1000}}}, <<"azure.retry">>},
             {#{<<"azure">> => #{<<"login_url">> => <<"ftp://login.example">>}}, <<"azure.login_url">>},
             {#{<<"http">> => #{<<"port">> => 70000}}, <<"http.port">>},
             {#{<<"http">> => #{<<"ip">> => <<"not-an-ip">>}}, <<"http.ip">>},
             {#{<<"platform_module">> => <<"no_such_platform_module">>}, <<"platform_module">>},
             {#{<<"tick_ms">> => 0}, <<"tick_ms">>},
             %% the reconciliation's ceiling of calls per second: a positive number
             {#{<<"reconcile_max_calls_per_s">> => 0}, <<"reconcile_max_calls_per_s">>},
             {#{<<"reconcile_max_calls_per_s">> => -2.5}, <<"reconcile_max_calls_per_s">>},
             {#{<<"reconcile_max_calls_per_s">> => <<"10">>}, <<"reconcile_max_calls_per_s">>},
             %% the metering section: each field refused by its name
             {metering(#{<<"dimensions">> => [dim(<<"a">>), dim(<<>>)]}), <<"metering.dimensions[2].id">>},
             {metering(#{<<"dimensions">> => [dim(<<"a">>), dim(<<"b">>), dim(<<"a">>)]}), <<"metering.dimensions[3].id">>},
             {metering(#{<<"dimensions">> => [(dim(<<"a">>))#{<<"unit">> => <<>>}]}), <<"metering.dimensions[1].unit">>},
             {metering(#{<<"dimensions">> => [dim(<<"a">>, #{<<"payg">> => <<"-1">>})]}),
              <<"metering.dimensions[1].included.payg">>},
             {metering(#{<<"dimensions">> => [dim(<<"a">>, #{<<"payg">> => <<"0.1234567">>})]}),
              <<"metering.dimensions[1].included.payg">>},
             {metering(#{<<"dimensions">> => <<"a">>}), <<"metering.dimensions">>},
             {metering(#{<<"grace_s">> => 86401}), <<"metering.grace_s">>},
             {metering(#{<<"history_days">> => 34}), <<"metering.history_days">>},
             {metering(#{<<"dedupe_window_s">> => 0}), <<"metering.dedupe_window_s">>},
             {metering(#{<<"tick_ms">> => 0}), <<"metering.tick_ms">>},
             {metering(#{<<"retry_max_s">> => -1}), <<"metering.retry_max_s">>}],
    Before = application:get_all_env(emqx_azure_marketplace),
    [?assertEqual({Overrides, Field}, {Overrides, refused_field(Ctx, Overrides)}) || {Overrides, Field} <- Cases],
    %% nothing of a refused config was applied
    ?assertEqual(Before, application:get_all_env(emqx_azure_marketplace)).

live_change(#{emu := Emu} = Ctx) ->
    {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu, #{}),
    OldClient = emqx_azure_marketplace_azure:client(),
    OldPort = ?APP_MOD:http_port(),
    {ok, _} = emqx_azure_marketplace_client:get_subscription(OldClient, SubId),
    ok = azmp_emulator:set_delay(Emu, 1000),
    Self = self(),
    Pids = [spawn(fun() -> Self ! {self(), emqx_azure_marketplace_client:get_subscription(emqx_azure_marketplace_azure:client(), SubId)} end)
            || _ <- lists:seq(1, ?CALLS)],
    true = azmp_test_env:wait_until(fun() -> maps:get(in_flight, emqx_azure_marketplace_client:stats(OldClient)) =:= ?CALLS end, 20000),
    %% A new config (secret from a file, another timeout, the listener on a new port) while they wait.
    ?assertEqual(ok, ?APP_MOD:on_config_changed(#{}, hocon(Ctx, #{<<"http">> => #{<<"ip">> => <<"127.0.0.1">>}}))),
    NewClient = emqx_azure_marketplace_azure:client(),
    ?assertNotEqual(OldClient, NewClient),
    Results = [receive {P, R} -> R after 60000 -> no_reply end || P <- Pids],
    ok = azmp_emulator:set_delay(Emu, 0),
    ?debugFmt("replies: ~p", [maps:to_list(lists:foldl(fun(R, M) -> K = element(1, R), M#{K => maps:get(K, M, 0) + 1} end, #{},
                                                       [case R of {ok, _} -> {ok}; {error, E} -> {E}; O -> {O} end || R <- Results]))]),
    ?assertEqual(?CALLS, length([ok || {ok, #{<<"id">> := Id}} <- Results, Id =:= SubId])),
    %% The new client and the new listener work; the webhook authenticator is the new one.
    ?assertMatch({ok, _}, emqx_azure_marketplace_client:get_subscription(NewClient, SubId)),
    NewPort = ?APP_MOD:http_port(),
    ?assert(is_integer(NewPort)),
    ?debugFmt("listener moved from port ~p to ~p; ~p of ~p replies delivered", [OldPort, NewPort, length(Results), ?CALLS]),
    {ok, 200, _} = azmp_emulator:send_webhook(Emu, azmp_test_env:webhook_url(), 'Suspend', SubId, #{}),
    ?assertEqual(30000, maps:get(timeout_ms, application:get_env(emqx_azure_marketplace, azure, #{}))).

%% The reconciler reads it from the env at each page: what on_config_changed applies is what the
%% next page is paced with.
calls_per_s_live(Ctx) ->
    Rate = fun() -> application:get_env(emqx_azure_marketplace, reconcile_max_calls_per_s) end,
    ?assertEqual(ok, ?APP_MOD:on_config_changed(#{}, hocon(Ctx, #{<<"reconcile_max_calls_per_s">> => 2.5}))),
    ?assertEqual({ok, 2.5}, Rate()),
    ?assertEqual(ok, ?APP_MOD:on_config_changed(#{}, hocon(Ctx, #{<<"reconcile_max_calls_per_s">> => 20}))),
    ?assertEqual({ok, 20}, Rate()),
    ?assertEqual({error, #{msg => <<"invalid_config">>, field => <<"reconcile_max_calls_per_s">>,
                           reason => not_a_positive_number}},
                 ?APP_MOD:on_config_changed(#{}, hocon(Ctx, #{<<"reconcile_max_calls_per_s">> => 0.0}))),
    ?assertEqual({ok, 20}, Rate()),
    %% the reconciler goes on with it
    ?assert(is_process_alive(whereis(emqx_azure_marketplace_reconciler))).

metering(M) -> #{<<"metering">> => M}.

dim(Id) -> dim(Id, #{}).
dim(Id, Included) -> #{<<"id">> => Id, <<"unit">> => <<"unit">>, <<"included">> => Included}.

%% The meter does not tick during the suite (its hours are not reported here).
metering_config(Dims) ->
    metering(#{<<"dimensions">> => Dims, <<"tick_ms">> => 3600000, <<"grace_s">> => 300}).

metering_live(#{emu := Emu} = Ctx) ->
    {A, _} = azmp_test_usage:linked(Emu),
    At = emqx_azure_marketplace_clock:now() * 1000,
    ?assertEqual(ok, ?APP_MOD:on_config_changed(#{}, hocon(Ctx, metering_config([dim(<<"session_minutes">>)])))),
    ?assertEqual(ok, azmp_test_usage:record(A, <<"session_minutes">>, <<"1.5">>, At)),
    ?assertEqual({error, unknown_dimension}, azmp_test_usage:record(A, <<"traffic_gb">>, <<"2">>, At)),
    ?assertEqual(0, emqx_azure_marketplace_metering:included(<<"traffic_gb">>, <<"payg">>)),
    %% a bad change leaves the running config as it was
    {error, #{field := <<"metering.dimensions[2].id">>}} =
        ?APP_MOD:on_config_changed(#{}, hocon(Ctx, metering_config([dim(<<"session_minutes">>), dim(<<"session_minutes">>)]))),
    ?assertEqual({error, unknown_dimension}, azmp_test_usage:record(A, <<"traffic_gb">>, <<"2">>, At)),
    %% the dimension added, with an included quantity for a plan: recorded at once, no restart
    ?assertEqual(ok, ?APP_MOD:on_config_changed(#{}, hocon(Ctx, metering_config([dim(<<"session_minutes">>),
                                                                               dim(<<"traffic_gb">>, #{<<"payg">> => <<"10.5">>})])))),
    ?assertEqual(ok, azmp_test_usage:record(A, <<"traffic_gb">>, <<"2">>, At)),
    ?assertEqual(10500000, emqx_azure_marketplace_metering:included(<<"traffic_gb">>, <<"payg">>)),
    ?assertEqual(0, emqx_azure_marketplace_metering:included(<<"traffic_gb">>, <<"other-plan">>)),
    ?assertMatch(#{grace_s := 300, tick_ms := 3600000}, emqx_azure_marketplace_metering:config()),
    %% and removed again: refused from then on
    ?assertEqual(ok, ?APP_MOD:on_config_changed(#{}, hocon(Ctx, metering_config([dim(<<"traffic_gb">>)])))),
    ?assertEqual({error, unknown_dimension}, azmp_test_usage:record(A, <<"session_minutes">>, <<"1">>, At)),
    ?assertEqual(ok, azmp_test_usage:record(A, <<"traffic_gb">>, <<"1">>, At)).

unreachable(#{emu := Emu} = Ctx) ->
    %% from a call that got its answer
    {ok, #{id := Sub0}} = azmp_emulator:add_subscription(Emu, #{}),
    {ok, _} = emqx_azure_marketplace_client:get_subscription(emqx_azure_marketplace_azure:client(), Sub0),
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Closed} = inet:port(L),
    ok = gen_tcp:close(L),
    Dead = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Closed)]),
    DeadAzure = #{<<"login_url">> => Dead, <<"marketplace_url">> => <<Dead/binary, "/api">>},
    %% plain http, even to loopback, only for a config that says it is a test endpoint
    ?assertMatch({error, #{field := <<"azure.marketplace_url">>, reason := {insecure_endpoint, _}}},
                 ?APP_MOD:on_config_changed(#{}, hocon(Ctx, #{<<"azure">> => DeadAzure}))),
    ok = ?APP_MOD:on_config_changed(#{}, hocon(Ctx, #{<<"azure">> => DeadAzure#{<<"allow_insecure_loopback">> => true}})),
    ?assertEqual(ok, ?APP_MOD:on_health_check(#{})),
    [{error, _} = emqx_azure_marketplace_client:get_subscription(emqx_azure_marketplace_azure:client(), <<"sub-x">>) || _ <- lists:seq(1, 3)],
    {Us, Health} = timer:tc(fun() -> ?APP_MOD:on_health_check(#{}) end),
    ?debugFmt("health check with Azure unreachable: ~p in ~p us", [Health, Us]),
    ?assertMatch({error, <<"Azure Marketplace APIs unreachable", _/binary>>}, Health),
    ?assertEqual([<<"azure_marketplace_azure_unreachable">>], emqx_azure_marketplace_metrics:check()),
    Status = emqx_azure_marketplace_cli:run(["status"]),
    ?assertMatch({_, _}, binary:match(Status, <<"azure_marketplace_azure_unreachable">>)),
    ?assertMatch({_, _}, binary:match(emqx_azure_marketplace_metrics:prometheus(),
                                      <<"emqx_azure_marketplace_alarm_active{alarm=\"azure_marketplace_azure_unreachable\"} 1">>)),
    %% Azure back: the next call that gets an answer clears it.
    ok = ?APP_MOD:on_config_changed(#{}, hocon(Ctx, #{})),
    {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu, #{}),
    {ok, _} = emqx_azure_marketplace_client:get_subscription(emqx_azure_marketplace_azure:client(), SubId),
    ?assertEqual([], emqx_azure_marketplace_metrics:check()),
    ?assertEqual(ok, ?APP_MOD:on_health_check(#{})),
    Metrics = emqx_azure_marketplace_metrics:prometheus(),
    ?assertMatch({_, _}, binary:match(Metrics, <<"emqx_azure_marketplace_azure_calls_total{op=\"get_subscription\",outcome=\"ok\"}">>)),
    ?assertMatch({_, _}, binary:match(Metrics, <<"emqx_azure_marketplace_azure_calls_total{op=\"get_subscription\",outcome=\"transport\"}">>)),
    ?assertMatch({_, _}, binary:match(Metrics, <<"emqx_azure_marketplace_webhooks_total{outcome=\"accepted\"}">>)),
    ?assertMatch({_, _}, binary:match(Metrics, <<"emqx_azure_marketplace_azure_retries_total">>)),
    ?assertMatch(<<"not linked\n">>, emqx_azure_marketplace_cli:run(["usage", "acct-1"])),
    ?assertMatch(<<"azure_marketplace status", _/binary>>, emqx_azure_marketplace_cli:run(["nonsense"])).

stopped(Ctx) ->
    ok = application:stop(emqx_azure_marketplace),
    ?assertEqual({error, <<"emqx_azure_marketplace is not running">>}, ?APP_MOD:on_health_check(#{})),
    ?assertEqual(<<"azure.client_id">>, refused_field(Ctx, #{<<"azure">> => #{<<"client_id">> => <<>>}})),
    ?assertEqual(ok, ?APP_MOD:on_config_changed(#{}, hocon(Ctx, #{<<"tick_ms">> => 150}))),
    ?assertEqual({ok, 150}, application:get_env(emqx_azure_marketplace, tick_ms)),
    {ok, _} = application:ensure_all_started(emqx_azure_marketplace),
    ?assertEqual(ok, ?APP_MOD:on_health_check(#{})).

no_secret(_Ctx) ->
    Logged = azmp_log_capture:events(),
    ?assert(length(Logged) > 3),
    Outputs = [emqx_azure_marketplace_cli:run(["status"]), emqx_azure_marketplace_metrics:prometheus(),
               iolist_to_binary(io_lib:format("~p", [?APP_MOD:health()])),
               iolist_to_binary(io_lib:format("~p", [application:get_all_env(emqx_azure_marketplace) -- [{azure, x}]]))],
    [?assertEqual({Secret, nomatch}, {Secret, binary:match(Text, Secret)})
     || Text <- Logged ++ lists:droplast(Outputs), Secret <- [?SECRET, <<"eyJhbGciOi">>]].
