%% Secrets (the client secret, access tokens, marketplace tokens) appear in no log event, no error,
%% no crash report and no sys:get_status/1 output, through the flows that log the most: retries,
%% refusals, webhooks, malformed answers from Azure.
-module(azmp_secrets_tests).

-include_lib("eunit/include/eunit.hrl").

-define(M, emqx_azure_marketplace).
-define(SECRET, <<"s3cr3t-0f-the-publisher-app">>).

secrets_test_() ->
    {setup,
     fun() ->
         Emu = azmp_test_env:start_emulator(#{client_secret => ?SECRET}),
         Plugin = azmp_test_env:start_plugin(Emu, #{azure => azure_config(Emu)}),
         {Emu, Plugin}
     end,
     fun({Emu, Plugin}) ->
         azmp_test_env:stop_plugin(Plugin),
         azmp_test_env:stop_emulator(Emu)
     end,
     fun({Emu, _}) -> [{timeout, 60, fun() -> no_secret_anywhere(Emu) end}] end}.

azure_config(Emu) ->
    Cfg = azmp_test_env:client_config(Emu, #{transport => https, timeout_ms => 5000,
                                             retry => #{max_attempts => 2, base_delay_ms => 10}}),
    Cfg#{client_secret => ?SECRET}.

no_secret_anywhere(Emu) ->
    ok = azmp_log_capture:start(),
    ok = logger:add_handler(azmp_capture, azmp_log_capture, #{level => all, config => #{owner => self()}}),
    try
        Tokens = flows(Emu),
        Logged = azmp_log_capture:events(),
        ?assert(length(Logged) > 5),
        %% Any JWT (an access token, a webhook's bearer) starts with the base64 of {"alg":
        Secrets = [?SECRET, <<"eyJhbGciOi">> | Tokens],
        [?assertEqual({Secret, nomatch}, {Secret, binary:match(Event, Secret)}) || Event <- Logged, Secret <- Secrets],
        %% sys:get_status of the plugin's processes, and the client term itself.
        Status = iolist_to_binary(io_lib:format("~p", [[sys:get_status(P) || P <- [emqx_azure_marketplace_linker,
                                                                                    emqx_azure_marketplace_deadlines,
                                                                                    emqx_azure_marketplace_reconciler]]])),
        ClientTerm = iolist_to_binary(io_lib:format("~p", [emqx_azure_marketplace_azure:client()])),
        [?assertEqual(nomatch, binary:match(Text, Secret)) || Text <- [Status, ClientTerm], Secret <- Secrets]
    after
        logger:remove_handler(azmp_capture)
    end.

%% The noisy flows; returns the marketplace tokens used.
flows(Emu) ->
    Account = fun() ->
        A = list_to_binary("acct-" ++ integer_to_list(erlang:unique_integer([positive]))),
        ok = azmp_test_platform:add_account(A, #{}),
        A
    end,
    %% Azure failing for a while: retries are logged.
    A1 = Account(),
    {ok, #{id := Sub1, token := T1}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = azmp_emulator:inject(Emu, resolve, lists:duplicate(4, {status, 503})),
    ok = ?M:link(A1, {token, T1}),
    azmp_test_env:await_linked(A1),
    %% A refusal, and an invalid token.
    A2 = Account(),
    ok = ?M:link(A2, {token, T1}),
    azmp_test_env:await_status(A2, failed),
    ok = ?M:link(Account(), {token, <<T1/binary, "x">>}),
    %% Webhooks: a forged one (logged as unauthenticated) and real ones.
    Url = azmp_test_env:webhook_url(),
    {ok, 401, _} = azmp_emulator:send_webhook(Emu, Url, 'Suspend', Sub1, #{forge => expired}),
    {ok, 200, _} = azmp_emulator:send_webhook(Emu, Url, 'Suspend', Sub1, #{}),
    %% Entra refusing the secret (a wrong one): an auth error, logged by whoever sees it.
    {ok, Bad} = emqx_azure_marketplace_client:new((azure_config(Emu))#{client_secret => <<"wrong-", ?SECRET/binary>>}),
    {error, {auth, _}} = Err = emqx_azure_marketplace_client:get_subscription(Bad, Sub1),
    logger:error(#{msg => "test_logs_an_error_term", error => Err}),
    %% A linking step whose Azure answer is malformed (retried, logged with its reason).
    A4 = Account(),
    {ok, #{token := T4}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = azmp_emulator:inject(Emu, resolve, [malformed]),
    ok = ?M:link(A4, {token, T4}),
    timer:sleep(1500),
    [T1, T4].
