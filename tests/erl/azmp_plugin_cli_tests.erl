%% The operator's CLI on a running plugin (no EMQX: run/1 answers the text emqx_ctl would print):
%% status, account, resync (a webhook lost: the subscription suspended in Azure only), deadlines,
%% usage; doubt (a webhook lost: the reconciliation's next call repairs it first; a bad or unknown
%% id refused, nothing flagged); and the webhook signature alarm raised by forged webhooks piling
%% up, cleared at stop; prepare-rollback (the tables laid out for an earlier build).
-module(azmp_plugin_cli_tests).

-include_lib("eunit/include/eunit.hrl").

-define(CLI, emqx_azure_marketplace_cli).

cli_test_() ->
    azmp_test_env:with_plugin(fun(Emu) ->
        [{timeout, 60, {"status, account, resync, deadlines, usage", fun() -> commands(Emu) end}},
         {timeout, 60, {"doubt: the reconciliation's next call checks the subscription first", fun() -> doubt(Emu) end}},
         {timeout, 60, {"reconcile: every subscription read now, a lost Suspend applied", fun() -> reconcile(Emu) end}},
         {timeout, 60, {"forged webhooks piling up raise the signature alarm", fun() -> signature_alarm(Emu) end}},
         {timeout, 60, {"prepare-rollback: the tables on disc only back in RAM, the links' index back; the next "
                        "start lays them out again", fun prepare_rollback/0}}]
    end).

has(Text, Part) -> binary:match(Text, Part) =/= nomatch.

commands(Emu) ->
    Account = <<"acct-cli-1">>,
    ok = azmp_test_platform:add_account(Account, #{}),
    ok = azmp_test_platform:add_deployment(Account, #{id => <<"dep-1">>, trial => false, state => running}),
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = emqx_azure_marketplace:link(Account, {token, Token}),
    azmp_test_env:await_linked(Account),
    Status = ?CLI:run(["status"]),
    ?assert(has(Status, <<"azure:                   reachable">>)),
    ?assert(has(Status, <<"link.linked 1">>)),
    ?assert(has(Status, <<"linking jobs pending:    0">>)),
    Acc = ?CLI:run(["account", binary_to_list(Account)]),
    ?assert(has(Acc, SubId)),
    ?assert(has(Acc, <<"azure_marketplace_subscription">>)),
    ?assertEqual(<<"in step with Azure: nothing to apply\n">>, ?CLI:run(["resync", binary_to_list(SubId)])),
    ?assertEqual(<<"no deadline pending\n">>, ?CLI:run(["deadlines"])),
    %% Azure unsubscribes and the webhook is lost: resync applies it, and the deletion is scheduled.
    {ok, _} = azmp_emulator:add_operation(Emu, SubId, #{action => <<"Unsubscribe">>}),
    Resync = ?CLI:run(["resync", binary_to_list(SubId)]),
    ?assert(has(Resync, <<"applied unsubscribe to account acct-cli-1">>)),
    ?assert(has(?CLI:run(["deadlines"]), <<"acct-cli-1 dep-1 delete at">>)),
    ?assert(has(?CLI:run(["account", binary_to_list(Account)]), <<"unsubscribed">>)),
    ?assertEqual(<<"no usage in the last 48 hours\n">>, ?CLI:run(["usage", binary_to_list(Account)])),
    ?assertEqual(<<"not linked\n">>, ?CLI:run(["usage", "nobody"])),
    ?assert(has(?CLI:run(["resync", "no-such-sub"]), <<"error: Azure not asked successfully">>)),
    ?assert(has(?CLI:run(["metrics"]), <<"emqx_azure_marketplace_links_total{outcome=\"linked\"} 1">>)).

%% A new account linked to a new subscription of the emulator's: the subscription id.
linked(Emu, Account) ->
    ok = azmp_test_platform:add_account(Account, #{}),
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = emqx_azure_marketplace:link(Account, {token, Token}),
    azmp_test_env:await_linked(Account),
    SubId.

reconcile(Emu) ->
    Account = <<"acct-cli-reconcile">>,
    SubId = linked(Emu, Account),
    %% Suspended in Azure, the webhook lost: a full pass finds and applies it, once.
    {ok, _} = azmp_emulator:add_operation(Emu, SubId, #{action => <<"Suspend">>}),
    ?assert(has(?CLI:run(["reconcile"]), <<"applied suspend to subscription ", SubId/binary>>)),
    ?assert(has(?CLI:run(["account", binary_to_list(Account)]), <<"suspended">>)),
    ?assertNot(has(?CLI:run(["reconcile"]), SubId)),
    %% Azure failing the list: said so, nothing else.
    ok = azmp_emulator:inject(Emu, list_subscriptions, lists:duplicate(10, {status, 503})),
    ?assert(has(?CLI:run(["reconcile"]), <<"error: Azure's list of subscriptions not read">>)),
    ok = azmp_emulator:clear_faults(Emu, list_subscriptions).

doubt(Emu) ->
    Account = <<"acct-cli-doubt">>,
    SubId = linked(Emu, Account),
    Sub = binary_to_list(SubId),
    %% Suspended in Azure, the webhook lost; the operator says so.
    {ok, _} = azmp_emulator:add_operation(Emu, SubId, #{action => <<"Suspend">>}),
    Out = ?CLI:run(["doubt", Sub]),
    ?assertEqual(<<SubId/binary, " is in doubt: the reconciliation's next call reads it with Get Subscription "
                   "before any page, and applies what our state misses\n">>, Out),
    ?assert(lists:member(SubId, emqx_azure_marketplace_store_recon:doubts(10))),
    ?assertMatch(#{state := linked}, emqx_azure_marketplace_store_links:link(Account)),
    %% The reconciliation's next call, now (its timer is minutes away): the doubt checked first, the
    %% suspension applied, then the page read (the doubt stays: a pass's first page flags the
    %% suspensions of its last interval, so this one is read again at the next call).
    ok = azmp_emulator:reset_stats(Emu),
    emqx_azure_marketplace_reconciler ! tick,
    ?assert(azmp_test_env:wait_until(fun() ->
        maps:get(state, emqx_azure_marketplace_store_links:link(Account)) =:= suspended andalso
            maps:get(next_at_ms, emqx_azure_marketplace_store_recon:checkpoint()) > 0 end, 10000)),
    %% Azure was asked for it (Get Subscription) before the page (List Subscriptions).
    #{requests := Requests} = azmp_emulator:stats(Emu),
    ?assertMatch([get_subscription, list_subscriptions | _],
                 [Op || #{op := Op} <- Requests, Op =/= token]),
    %% Once a call has been made, the output says when the next one is due.
    ?assertMatch({match, _}, re:run(?CLI:run(["doubt", Sub]), <<"^", SubId/binary, " is in doubt: the reconciliation's "
                                                                "next call \\(due at 20[0-9-]+T[0-9:.]+Z\\) reads it">>)),
    %% What cannot be a subscription id, or one no account is linked to: refused, nothing flagged.
    Before = emqx_azure_marketplace_store_recon:doubts(100),
    ?assertEqual(<<"error: not a subscription id (1 to 1024 bytes of text): nothing flagged\n">>, ?CLI:run(["doubt", ""])),
    ?assertEqual(<<"error: not a subscription id (1 to 1024 bytes of text): nothing flagged\n">>,
                 ?CLI:run(["doubt", lists:duplicate(1025, $x)])),
    ?assertEqual(<<"error: no account is linked to subscription no-such-sub: nothing flagged "
                   "(check the id; `account <id>` shows an account's subscription)\n">>, ?CLI:run(["doubt", "no-such-sub"])),
    ?assertEqual(Before, emqx_azure_marketplace_store_recon:doubts(100)),
    %% Without an id: the usage, which names the command.
    ?assert(has(?CLI:run(["doubt"]), <<"azure_marketplace doubt <sub_id>">>)).

signature_alarm(Emu) ->
    {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu, #{}),
    Url = azmp_test_env:webhook_url(),
    [{ok, 401, _} = azmp_emulator:send_webhook(Emu, Url, 'Suspend', SubId, #{forge => expired}) || _ <- lists:seq(1, 10)],
    ?assertEqual([<<"azure_marketplace_webhook_signature_failures">>], emqx_azure_marketplace_metrics:check()),
    ?assert(has(?CLI:run(["status"]), <<"webhook.refused_signature 10">>)),
    %% Stopping the plugin clears its alarms (the table goes with it; inside EMQX, emqx_alarm's entry).
    ok = supervisor:terminate_child(emqx_azure_marketplace_sup, emqx_azure_marketplace_metrics),
    ?assertEqual([], emqx_azure_marketplace_metrics:alarms()),
    {ok, _} = supervisor:restart_child(emqx_azure_marketplace_sup, emqx_azure_marketplace_metrics).

prepare_rollback() ->
    OnDisc = [azmp_link, azmp_claim, azmp_usage_terms],
    Out = ?CLI:run(["prepare-rollback"]),
    [?assert(has(Out, iolist_to_binary([atom_to_list(T), " moved to RAM on ", atom_to_list(node())]))) || T <- OnDisc],
    ?assert(has(Out, <<"index on azmp_link.subscription_id added">>)),
    [?assertEqual({T, disc_copies}, {T, mnesia:table_info(T, storage_type)}) || T <- OnDisc],
    ?assertNotEqual([], mnesia:table_info(azmp_link, index)),
    ?assertEqual(<<"the tables are laid out for an earlier build already\n">>, ?CLI:run(["prepare-rollback"])),
    ok = application:stop(emqx_azure_marketplace),
    {ok, _} = application:ensure_all_started(emqx_azure_marketplace),
    [?assertEqual({T, disc_only_copies}, {T, mnesia:table_info(T, storage_type)}) || T <- OnDisc],
    ?assertEqual([], mnesia:table_info(azmp_link, index)).
