%% The demo behind `make demo`: the product documentation's story, played end to end against the
%% bundled Azure emulator, with the plugin running in this node (its HTTP endpoints on loopback, its
%% state in Mnesia) and an in-memory control plane. It prints a timeline and exits 0 only when every
%% step came out as the documentation says.
-module(azmp_demo).

-export([main/0]).

-define(M, emqx_azure_marketplace).
-define(MEM, azmp_test_platform).
-define(C, emqx_azure_marketplace_client).
-define(DAY, 86400).

main() ->
    try run() of
        ok ->
            say("~nThe story held: every step came out as the documentation says.~n", []),
            halt(0)
    catch
        throw:{demo_failed, Step, What} ->
            say("~nDEMO FAILED at ~ts: ~p~n", [Step, What]),
            halt(1);
        C:E:St ->
            say("~nDEMO CRASHED: ~p:~p~n~p~n", [C, E, St]),
            halt(2)
    end.

run() ->
    logger:set_primary_config(level, error),  % the timeline below is the output; logs stay quiet
    Emu = azmp_test_env:start_emulator(#{dimensions => [<<"session_minutes">>, <<"traffic_gb">>, <<"rule_actions">>]}),
    put(emu, Emu),
    %% EMQX's pay-as-you-go units; the plan includes 100 session minutes per month.
    Metering = #{dimensions => [#{id => <<"session_minutes">>, unit => <<"minute">>,
                                  included => #{<<"payg">> => 100, <<"payg-premium">> => 100}},
                                #{id => <<"traffic_gb">>, unit => <<"GB">>},
                                #{id => <<"rule_actions">>, unit => <<"execution">>}],
                 grace_s => 300, tick_ms => 3600000},
    %% The stand-in console: where a browser landing from Azure is sent (sign-in, index, Billing).
    {ok, Console} = azmp_demo_console:start(),
    Plugin = azmp_test_env:start_plugin(Emu, #{tick_ms => 50, metering => Metering,
                                               landing_redirect_url => <<(azmp_demo_console:url(Console))/binary,
                                                                         "/signin">>}),
    T0 = emqx_azure_marketplace_clock:now(),
    put(t0, T0),
    say("Azure emulator: ~ts (Entra, SaaS Fulfillment v2, Metering; TLS with its own CA)~n",
        [azmp_emulator:https_url(Emu)]),
    say("Plugin: HTTP endpoints on ~ts, state in Mnesia, the in-memory control plane~n",
        [azmp_test_env:webhook_url()]),
    [ok = ?MEM:add_account(A, P) || {A, P} <- [{<<"alice">>, #{}}, {<<"bob">>, #{credit_card => true}},
                                               {<<"carol">>, #{}}]],
    Now = emqx_azure_marketplace_clock:now(),
    ok = ?MEM:add_deployment(<<"alice">>, #{id => <<"alice-prod">>, trial => false}),
    ok = ?MEM:add_deployment(<<"alice">>, #{id => <<"alice-trial">>, trial => true,
                                            trial_ends_at => Now + 2 * ?DAY}),
    say("Accounts: alice (no payment method yet, a paid deployment and a trial ending on day 2), "
        "bob (credit card on file), carol (not signed in yet)~n", []),

    step("Alice subscribes to \"EMQX Platform (Pay as you go)\" in Azure and lands signed in"),
    {ok, #{id := AliceSub, token := AliceToken}} = azmp_emulator:add_subscription(Emu, #{name => <<"alice-payg">>}),
    ok = azmp_emulator:inject(Emu, activate, [{delay, 300}]),  % Azure takes its time: the modal shows it
    ok = ?M:link(<<"alice">>, {token, AliceToken}),
    Seen = watch_status(<<"alice">>),
    tell("the modal shows: ~ts", [lists:join(" -> ", [atom_to_list(S) || S <- Seen])]),
    check("alice linked", linked, lists:last(Seen)),
    tell("payment method on the Billing page: ~ts", [method(?M:payment_method(<<"alice">>))]),
    check("alice pays through Azure", azure_marketplace_subscription, ?M:payment_method(<<"alice">>)),
    {ok, #{activations := 1}} = azmp_emulator:subscription(Emu, AliceSub),
    tell("Azure: the subscription is activated (billing starts now), once", []),

    step("Bob, who has a credit card set up, tries the same"),
    {ok, #{token := BobToken}} = azmp_emulator:add_subscription(Emu, #{name => <<"bob-payg">>}),
    ok = ?M:link(<<"bob">>, {token, BobToken}),
    Bob = azmp_test_env:await_status(<<"bob">>, failed),
    tell("linking fails: ~p (the page tells him why)", [maps:get(reason, Bob)]),
    check("bob refused", credit_card_on_file, maps:get(reason, Bob)),
    tell("his payment method stays: ~ts", [method(?M:payment_method(<<"bob">>))]),

    step("Carol comes from Azure before signing in"),
    {ok, #{id := CarolSub, token := CarolToken}} = azmp_emulator:add_subscription(Emu, #{name => <<"carol-payg">>}),
    LandingUrl = binary_to_list(iolist_to_binary([
        "http://127.0.0.1:", integer_to_list(emqx_azure_marketplace_app:http_port()),
        "/azure/landing?token=", uri_string:quote(binary_to_list(CarolToken))])),
    {ok, {{_, 200, _}, _, Body}} = httpc:request(get, {LandingUrl, []}, [], [{body_format, binary}]),
    {ok, #{<<"landing_id">> := LandingId}} = emqx_azure_marketplace_nif:json_decode(Body),
    tell("GET /azure/landing: the subscription is kept under landing ~ts (valid 24 h)", [LandingId]),
    tell("she signs in ...", []),
    ok = ?M:link(<<"carol">>, {landing, LandingId}),
    #{subscription_id := CarolSub} = azmp_test_env:await_status(<<"carol">>, linked),
    tell("linked to ~ts", [CarolSub]),

    step("Alice uses EMQX: usage is recorded as it happens (exact decimals, per UTC hour)"),
    %% The next hour begins (usage from before the activation would be refused).
    H = (emqx_azure_marketplace_clock:now() div 3600 + 1) * 3600,
    hours_pass(H - emqx_azure_marketplace_clock:now() + 5 * 60),
    put(hour0, H),
    [ok = usage(<<"alice">>, Dim, Q, H + Min * 60) || {Dim, Q, Min} <- [{<<"session_minutes">>, 90, 1},
                                                                        {<<"session_minutes">>, 45, 2},
                                                                        {<<"traffic_gb">>, <<"1.25">>, 3},
                                                                        {<<"rule_actions">>, 1200, 4}]],
    tell("session_minutes 90 + 45, traffic_gb 1.25, rule_actions 1200 in the ~ts hour", [hh(H)]),

    step("The hour closes (5 minutes' grace) and goes to Azure in one batch (Azure answers 503 once)"),
    ok = azmp_emulator:inject(Emu, batch_usage_event, [{status, 503}]),
    hours_pass(3600 + 301),
    true = azmp_test_run:meter_pass(),
    show_ledger(<<"alice">>, H, H),
    check("hour billed", [done], lists:usort([S || #{hour := Hr, status := S} <- ledger(<<"alice">>, H, H), Hr =:= H])),
    tell("(the 503 was retried with the same x-ms-requestid; 100 session minutes are included per month)", []),

    step("A late sample for the closed hour arrives: it is carried into the current hour"),
    ok = usage(<<"alice">>, <<"traffic_gb">>, <<"0.5">>, H + 50 * 60),
    [Late] = [R || R = #{dimension := <<"traffic_gb">>, hour := Hr} <- ledger(<<"alice">>, H + 3600, H + 3600),
                   Hr =:= H + 3600],
    tell("traffic_gb ~ts in the ~ts hour, carried in from ~ts", [maps:get(recorded, Late), hh(H + 3600),
                                                               hh(maps:get(from_hour, hd(maps:get(carried_in, Late))))]),
    ok = usage(<<"alice">>, <<"session_minutes">>, 30, emqx_azure_marketplace_clock:now() + 60),

    step("Alice moves to the premium plan in Azure: Azure's webhook reaches the plugin"),
    {ok, 200, _} = webhook(Emu, 'ChangePlan', AliceSub, #{plan_id => <<"payg-premium">>}),
    {ok, #{<<"planId">> := NewPlan}} = ?C:get_subscription(emqx_azure_marketplace_azure:client(), AliceSub),
    tell("signed webhook verified, operation confirmed with Azure, accepted: plan is now ~ts", [NewPlan]),
    check("plan changed", <<"payg-premium">>, NewPlan),

    step("Azure suspends Alice's subscription (a payment problem)"),
    {ok, 200, _} = webhook(Emu, 'Suspend', AliceSub, #{}),
    show_deployments(<<"alice">>),
    check("prod stopped", stopped, state_of(<<"alice">>, <<"alice-prod">>)),
    check("trial runs", running, state_of(<<"alice">>, <<"alice-trial">>)),
    tell("a new paid deployment? ~p", [?M:can_create_deployment(<<"alice">>, #{trial => false})]),
    {ok, 200, _} = webhook(Emu, 'Reinstate', AliceSub, #{}),
    tell("Azure reinstates it:", []),
    show_deployments(<<"alice">>),
    check("prod restarted", running, state_of(<<"alice">>, <<"alice-prod">>)),

    step("Alice cancels the subscription in Azure (at " ++ hh(emqx_azure_marketplace_clock:now()) ++ ")"),
    {ok, 200, _} = webhook(Emu, 'Unsubscribe', AliceSub, #{}),
    show_deployments(<<"alice">>),
    [tell("scheduled: ~p ~ts on day ~B", [Kind, Dep, (At - T0) div ?DAY])
     || #{deployment_id := Dep, kind := Kind, at := At} <- lists:sort(
            emqx_azure_marketplace_store_deadlines:deadlines_of(<<"alice">>))],
    H1 = get(hour0) + 3600,
    #{cancelled_at := CancelledAt} = emqx_azure_marketplace_store_links:link(<<"alice">>),
    tell("cancelled at ~ts, Azure's time: usage up to it still counts, even reported late", [hh(CancelledAt)]),
    ok = usage(<<"alice">>, <<"rule_actions">>, 300, CancelledAt - 60),
    hours_pass(H1 + 3600 + 301 - emqx_azure_marketplace_clock:now()),
    true = azmp_test_run:meter_pass(),
    tell("the hour in progress closed after its grace, like any other, and was billed:", []),
    show_ledger(<<"alice">>, H1, H1),
    check("cancelled hour billed", [done], lists:usort([S || #{status := S} <- ledger(<<"alice">>, H1, H1)])),
    tell("usage after the cancellation: ~p",
         [usage(<<"alice">>, <<"session_minutes">>, 5, emqx_azure_marketplace_clock:now() + 60)]),
    check("usage refused", {error, after_cancellation},
          usage(<<"alice">>, <<"session_minutes">>, 5, emqx_azure_marketplace_clock:now() + 60)),
    Days = lists:usort([(Hr div ?DAY) * ?DAY || Hr <- [get(hour0), H1]]),
    Diffs = lists:append([Ds || Day <- Days, {ok, Ds} <- [?M:reconcile_usage(Day)]]),
    tell("reconciliation with Azure's usageEvents for ~B day(s): ~B difference(s)", [length(Days), length(Diffs)]),
    check("clean reconciliation", [], Diffs),
    Accepted = [{D, Q} || #{resource_id := R, dimension := D, quantity := Q} <- azmp_emulator:usage(Emu), R =:= AliceSub],
    tell("Azure holds: ~ts", [lists:join(", ", [io_lib:format("~ts ~p", [D, Q]) || {D, Q} <- lists:sort(Accepted)])]),
    tell("payment method: ~ts", [method(?M:payment_method(<<"alice">>))]),
    check("prod stopped", stopped, state_of(<<"alice">>, <<"alice-prod">>)),
    check("trial keeps running", running, state_of(<<"alice">>, <<"alice-trial">>)),
    check("payment method", none, ?M:payment_method(<<"alice">>)),

    step("Time passes (the plugin's clock moves; the deadlines run once, from Mnesia)"),
    days(2),
    check("trial stopped at its end", stopped, state_of(<<"alice">>, <<"alice-trial">>)),
    days(1),
    check("prod deleted 3 days after it stopped", gone, state_of(<<"alice">>, <<"alice-prod">>)),
    days(2),
    check("trial deleted 3 days after it stopped", gone, state_of(<<"alice">>, <<"alice-trial">>)),

    serve_console(Emu, Console),
    azmp_demo_console:stop(Console),
    azmp_test_env:stop_plugin(Plugin),
    azmp_test_env:stop_emulator(Emu),
    ok.

%% `make demo CONSOLE=1': the plugin and the console stay up for a browser, with Azure's
%% "Configure account now" URLs of fresh subscriptions to open (dave: a clean account; erin: a
%% credit card on file). Ctrl-C ends it.
serve_console(Emu, Console) ->
    case os:getenv("AZMP_DEMO_CONSOLE") of
        Off when Off =:= false; Off =:= ""; Off =:= "0" ->
            ok;
        _ ->
            ok = ?MEM:add_account(<<"dave">>, #{}),
            ok = ?MEM:add_account(<<"erin">>, #{credit_card => true}),
            step("The console stays up for a browser (Ctrl-C to stop)"),
            tell("console: ~ts/signin", [azmp_demo_console:url(Console)]),
            [begin
                 {ok, #{token := T}} = azmp_emulator:add_subscription(Emu, #{name => <<Who/binary, "-payg">>}),
                 tell("Configure account now (sign in as ~ts): http://127.0.0.1:~B/azure/landing?~ts",
                      [Who, emqx_azure_marketplace_app:http_port(), uri_string:compose_query([{<<"token">>, T}])])
             end || Who <- [<<"dave">>, <<"erin">>]],
            receive after infinity -> ok end
    end.

%%--------------------------------------------------------------------

usage(Account, Dim, Q, AtS) ->
    ?M:record_usage(Account, #{dimension => Dim, quantity => Q, at => AtS * 1000,
                               source_id => integer_to_binary(erlang:unique_integer([positive]))}).

%% The plugin's clock and Azure's move together.
hours_pass(Seconds) ->
    azmp_test_clock:advance(Seconds),
    Emu = get(emu),
    ok = azmp_emulator:set_clock_offset(Emu, azmp_emulator:clock(Emu) - erlang:system_time(second) + Seconds).

ledger(Account, From, To) ->
    {ok, Rows} = ?M:usage_report(Account, From, To),
    Rows.

show_ledger(Account, From, To) ->
    [tell("~ts ~-16ts recorded ~-6ts included ~-5ts reported ~-6ts ~p~ts",
          [hh(H), D, Rec, Inc, Rep, St, case E of undefined -> ""; _ -> [" (Azure event ", E, ")"] end])
     || #{hour := H, dimension := D, recorded := Rec, included := Inc, reported := Rep, status := St, event_id := E}
            <- ledger(Account, From, To)].

hh(T) ->
    {_, {Hh, Mm, _}} = calendar:system_time_to_universal_time(T, second),
    io_lib:format("~2..0B:~2..0BZ", [Hh, Mm]).

webhook(Emu, Action, SubId, Opts) ->
    azmp_emulator:send_webhook(Emu, azmp_test_env:webhook_url(), Action, SubId, Opts).

%% Polls the link status as the index page does, and returns the distinct states seen.
watch_status(Account) -> watch_status(Account, [], 300).

watch_status(Account, Seen, 0) -> throw({demo_failed, "link status", {Account, lists:reverse(Seen)}});
watch_status(Account, Seen, N) ->
    S = maps:get(status, ?M:link_status(Account)),
    Seen1 = case Seen of [S | _] -> Seen; _ -> [S | Seen] end,
    case S of
        linked -> lists:reverse(Seen1);
        failed -> lists:reverse(Seen1);
        _ -> timer:sleep(5), watch_status(Account, Seen1, N - 1)
    end.

days(N) ->
    azmp_test_clock:advance(N * ?DAY),
    azmp_test_run:deadlines_pass(),
    say("~n  [day ~B]~n", [(emqx_azure_marketplace_clock:now() - get(t0)) div ?DAY]),
    show_deployments(<<"alice">>).

show_deployments(Account) ->
    {ok, #{deployments := Ds}} = ?MEM:account(Account),
    Names = [<<Account/binary, "-prod">>, <<Account/binary, "-trial">>],
    tell("deployments: ~ts", [lists:join(", ", [io_lib:format("~ts ~p", [N, state_of_map(N, Ds)]) || N <- Names])]).

state_of(Account, Id) ->
    {ok, #{deployments := Ds}} = ?MEM:account(Account),
    state_of_map(Id, Ds).

state_of_map(Id, Ds) ->
    case Ds of
        #{Id := #{state := S}} -> S;
        _ -> gone
    end.

method(azure_marketplace_subscription) -> "Azure Marketplace Subscription";
method(credit_card) -> "Credit card";
method(available_credits) -> "Available Credits";
method(none) -> "none".

step(Title) ->
    Day = (emqx_azure_marketplace_clock:now() - get(t0)) div ?DAY,
    say("~n[day ~B] ~ts~n", [Day, Title]).

tell(Fmt, Args) -> say("  " ++ Fmt ++ "~n", Args).

say(Fmt, Args) -> io:format(standard_io, Fmt, Args).

check(_What, Expected, Expected) -> ok;
check(What, Expected, Got) -> throw({demo_failed, What, #{expected => Expected, got => Got}}).
