%% End-to-end tests of the client against the Azure emulator over real sockets, HTTP and HTTPS.
-module(emqx_azure_marketplace_client_tests).

-include_lib("eunit/include/eunit.hrl").

-define(C, emqx_azure_marketplace_client).

every_function_test_() ->
    {setup, fun azmp_test_env:start_emulator/0, fun azmp_test_env:stop_emulator/1, fun(Emu) ->
        [
            {atom_to_list(T) ++ " " ++ atom_to_list(Ep), fun() -> all_functions(Emu, T, Ep) end}
         || T <- [http, https], Ep <- [v1, v2]
        ]
    end}.

all_functions(Emu, Transport, Endpoint) ->
    C = azmp_test_env:client(Emu, #{transport => Transport, token_endpoint => Endpoint}),
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{plan_id => <<"payg">>}),
    %% resolve
    {ok, Resolved} = ?C:resolve(C, Token),
    ?assertEqual(SubId, maps:get(<<"id">>, Resolved)),
    ?assertEqual(<<"payg">>, maps:get(<<"planId">>, Resolved)),
    #{<<"subscription">> := #{<<"saasSubscriptionStatus">> := <<"PendingFulfillmentStart">>}} = Resolved,
    %% activate, then get: status trimmed of Azure's padding
    ?assertEqual(ok, ?C:activate(C, SubId, <<"payg">>, undefined)),
    {ok, Sub} = ?C:get_subscription(C, SubId),
    ?assertEqual(<<"Subscribed">>, maps:get(<<"saasSubscriptionStatus">>, Sub)),
    {ok, EmuSub} = azmp_emulator:subscription(Emu, SubId),
    ?assertMatch(#{activations := 1}, EmuSub),
    %% list (all pages) and plans
    {ok, Subs} = ?C:list_subscriptions(C),
    ?assert(lists:member(SubId, [maps:get(<<"id">>, S) || S <- Subs])),
    {ok, Plans} = ?C:list_available_plans(C, SubId),
    PlanIds = [maps:get(<<"planId">>, P) || P <- Plans],
    ?assert(lists:member(<<"payg-premium">>, PlanIds)),
    %% plan change: asynchronous, an operation id to follow
    {ok, OpId} = ?C:change_plan(C, SubId, <<"payg-premium">>),
    ?assert(is_binary(OpId) andalso byte_size(OpId) > 0),
    {ok, Op} = ?C:get_operation(C, SubId, OpId),
    ?assertEqual(OpId, maps:get(<<"id">>, Op)),
    {ok, Ops} = ?C:list_operations(C, SubId),
    ?assert(is_list(Ops)),
    ?assertEqual(ok, ?C:update_operation(C, SubId, OpId, success)),
    {ok, QOpId} = ?C:change_quantity(C, SubId, 3),
    ?assert(is_binary(QOpId)),
    ?assertEqual(ok, ?C:update_operation(C, SubId, QOpId, failure)),
    %% metering
    Hour = this_hour(),
    Event = #{
        resource_id => SubId,
        dimension => <<"sessions">>,
        quantity => 12.5,
        effective_start_time => Hour,
        plan_id => <<"payg-premium">>
    },
    {ok, Accepted} = ?C:post_usage(C, Event),
    ?assertEqual(<<"Accepted">>, maps:get(<<"status">>, Accepted)),
    %% the same hour again: Azure answers 409 with the event it already has; that is not an error
    {ok, Again} = ?C:post_usage(C, Event),
    ?assertEqual(maps:get(<<"usageEventId">>, Accepted), maps:get(<<"usageEventId">>, Again)),
    {ok, #{<<"result">> := Items, <<"count">> := 2}} =
        ?C:post_usage_batch(C, [
            Event#{dimension => <<"traffic">>, effective_start_time => datetime_hour()},
            Event#{dimension => <<"no-such-dimension">>}
        ]),
    ?assertEqual([<<"Accepted">>, <<"InvalidDimension">>], [maps:get(<<"status">>, I) || I <- Items]),
    {ok, Usage} = ?C:get_usage_events(C, #{usage_start_date => <<"2020-01-01T00:00:00Z">>}),
    ?assert(is_list(Usage)),
    %% delete: asynchronous too
    {ok, DelOp} = ?C:delete_subscription(C, SubId),
    ?assert(is_binary(DelOp)),
    {ok, Gone} = ?C:get_subscription(C, SubId),
    ?assertEqual(<<"Unsubscribed">>, maps:get(<<"saasSubscriptionStatus">>, Gone)).

errors_test_() ->
    {setup, fun azmp_test_env:start_emulator/0, fun azmp_test_env:stop_emulator/1, fun(Emu) ->
        [
            {"wrong CA fails closed", fun() -> wrong_ca(Emu) end},
            {"no CA given: the system store does not trust the emulator", fun() -> no_ca(Emu) end},
            {"wrong secret is an auth error without the secret", fun() -> wrong_secret(Emu) end},
            {"unknown subscription is a 404", fun() -> not_found(Emu) end},
            {"invalid marketplace token", fun() -> bad_token(Emu) end},
            {"a 401 forces one token refresh and one retry", fun() -> reauth(Emu) end},
            {"a retried request keeps its request id", fun() -> request_ids(Emu) end},
            {"batch of 26 refused before sending", fun() -> batch_limit(Emu) end},
            {"plain http only to loopback, and only with allow_insecure_loopback", fun plain_http_policy/0},
            {"config errors name the field", fun config_errors/0},
            {"bad arguments name the field", fun() -> arg_errors(Emu) end},
            {"every page of the subscription list", fun() -> paging(Emu) end}
        ]
    end}.

wrong_ca(Emu) ->
    Cfg = azmp_test_env:client_config(Emu, #{transport => https}),
    {ok, C} = ?C:new(Cfg#{ca_file => iolist_to_binary(azmp_emulator:other_ca_file(Emu)),
                          retry => #{max_attempts => 1}}),
    Before = token_requests(Emu),
    ?assertMatch({error, {transport, _}}, ?C:get_subscription(C, <<"x">>)),
    %% The TLS handshake failed: the emulator never saw a token request (nor the secret).
    ?assertEqual(Before, token_requests(Emu)).

no_ca(Emu) ->
    Cfg = maps:remove(ca_file, azmp_test_env:client_config(Emu, #{transport => https})),
    {ok, C} = ?C:new(Cfg#{retry => #{max_attempts => 1}}),
    ?assertMatch({error, {transport, _}}, ?C:get_subscription(C, <<"x">>)).

wrong_secret(Emu) ->
    Secret = <<"very-secret-value-42">>,
    [
        begin
            C = azmp_test_env:client(Emu, #{transport => http, client_secret => Secret, token_endpoint => Ep}),
            R = ?C:get_subscription(C, <<"x">>),
            ?assertEqual({error, {auth, <<"invalid_client">>}}, R),
            ?assertEqual(nomatch, binary:match(term_to_binary(R), Secret))
        end
     || Ep <- [v1, v2]
    ].

not_found(Emu) ->
    C = azmp_test_env:client(Emu, #{transport => http}),
    ?assertMatch({error, {http, 404, _}}, ?C:get_subscription(C, <<"00000000-0000-0000-0000-000000000000">>)).

bad_token(Emu) ->
    C = azmp_test_env:client(Emu, #{transport => http}),
    ?assertMatch({error, {http, 400, _}}, ?C:resolve(C, <<"not-a-marketplace-token">>)).

reauth(Emu) ->
    C = azmp_test_env:client(Emu, #{transport => http}),
    {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu, #{}),
    {ok, _} = ?C:get_subscription(C, SubId),
    T0 = token_requests(Emu),
    ok = azmp_emulator:expire_tokens(Emu),
    {ok, _} = ?C:get_subscription(C, SubId),
    ?assertEqual(T0 + 1, token_requests(Emu)).

request_ids(Emu) ->
    C = azmp_test_env:client(Emu, #{transport => http}),
    {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu, #{}),
    {ok, _} = ?C:get_subscription(C, SubId),
    ok = azmp_emulator:reset_stats(Emu),
    ok = azmp_emulator:inject(Emu, get_subscription, [{status, 503}]),
    {ok, _} = ?C:get_subscription(C, SubId),
    #{requests := Reqs} = azmp_emulator:stats(Emu),
    [#{status := 503, request_id := R1, correlation_id := C1}, #{status := 200, request_id := R2, correlation_id := C2}] =
        [R || #{op := get_subscription} = R <- Reqs],
    ?assertEqual(R1, R2),
    ?assertEqual(C1, C2),
    ?assertMatch(<<_:36/binary>>, R1).

batch_limit(Emu) ->
    C = azmp_test_env:client(Emu, #{transport => http}),
    ok = azmp_emulator:reset_stats(Emu),
    Event = #{resource_id => <<"r">>, dimension => <<"sessions">>, quantity => 1,
              effective_start_time => this_hour(), plan_id => <<"payg">>},
    ?assertEqual({error, {badarg, events}}, ?C:post_usage_batch(C, lists:duplicate(26, Event))),
    ?assertEqual({error, {badarg, events}}, ?C:post_usage_batch(C, [])),
    #{requests := Reqs} = azmp_emulator:stats(Emu),
    ?assertEqual([], [R || #{op := batch_usage_event} = R <- Reqs]).

plain_http_policy() ->
    Base = #{tenant_id => <<"t">>, client_id => <<"c">>, client_secret => <<"s">>},
    ?assertEqual({error, {badarg, marketplace_url}},
                 ?C:new(Base#{marketplace_url => <<"http://marketplaceapi.microsoft.com/api">>})),
    ?assertEqual({error, {badarg, login_url}}, ?C:new(Base#{login_url => <<"http://10.0.0.1">>})),
    ?assertEqual({error, {badarg, marketplace_url}}, ?C:new(Base#{marketplace_url => <<"ftp://127.0.0.1/api">>})),
    %% plain http to loopback: refused unless the config says it is a test endpoint, with what to do
    {error, {insecure_endpoint, marketplace_url, Hint}} = ?C:new(Base#{marketplace_url => <<"http://127.0.0.1:1/api">>}),
    ?assertMatch({_, _}, binary:match(Hint, <<"allow_insecure_loopback => true">>)),
    ?assertMatch({_, _}, binary:match(Hint, <<"https">>)),
    ?assertMatch({error, {insecure_endpoint, login_url, _}}, ?C:new(Base#{login_url => <<"http://localhost:1">>})),
    ?assertMatch({error, {insecure_endpoint, login_url, _}},
                 ?C:new(Base#{login_url => <<"http://[::1]:1">>, allow_insecure_loopback => false})),
    Test = Base#{allow_insecure_loopback => true},
    ?assertMatch({ok, _}, ?C:new(Test#{marketplace_url => <<"http://127.0.0.1:1/api">>})),
    ?assertMatch({ok, _}, ?C:new(Test#{marketplace_url => <<"http://localhost:1/api">>})),
    %% the flag lets nothing else through
    ?assertEqual({error, {badarg, login_url}}, ?C:new(Test#{login_url => <<"http://10.0.0.1">>})),
    ?assertEqual({error, {badarg, login_url}}, ?C:new(Test#{login_url => <<"http://127.0.0.1.example.com">>})),
    ?assertEqual({error, {badarg, allow_insecure_loopback}}, ?C:new(Base#{allow_insecure_loopback => yes})),
    ?assertMatch({ok, _}, ?C:new(Base)).

config_errors() ->
    Base = #{tenant_id => <<"t">>, client_id => <<"c">>, client_secret => <<"s">>},
    ?assertEqual({error, {badarg, tenant_id}}, ?C:new(maps:remove(tenant_id, Base))),
    ?assertEqual({error, {badarg, client_secret}}, ?C:new(Base#{client_secret => "string"})),
    ?assertEqual({error, {badarg, timeout_ms}}, ?C:new(Base#{timeout_ms => 0})),
    ?assertEqual({error, {badarg, token_endpoint}}, ?C:new(Base#{token_endpoint => v3})),
    ?assertEqual({error, {badarg, retry}}, ?C:new(Base#{retry => #{max_attempts => -1}})),
    ?assertEqual({error, {badarg, bogus}}, ?C:new(Base#{bogus => 1})),
    ?assertEqual({error, {badarg, config}}, ?C:new(not_a_map)).

arg_errors(Emu) ->
    C = azmp_test_env:client(Emu, #{transport => http}),
    ?assertEqual({error, {badarg, subscription_id}}, ?C:get_subscription(C, <<>>)),
    ?assertEqual({error, {badarg, subscription_id}}, ?C:get_subscription(C, "list")),
    ?assertEqual({error, {badarg, quantity}}, ?C:change_quantity(C, <<"s">>, 0)),
    ?assertEqual({error, {badarg, status}}, ?C:update_operation(C, <<"s">>, <<"o">>, maybe)),
    ?assertEqual({error, {badarg, effective_start_time}},
                 ?C:post_usage(C, #{resource_id => <<"r">>, dimension => <<"d">>, quantity => 1,
                                    effective_start_time => <<"yesterday">>, plan_id => <<"p">>})),
    ?assertEqual({error, {badarg, client}}, ?C:get_subscription(not_a_client, <<"s">>)).

paging(Emu) ->
    C = azmp_test_env:client(Emu, #{transport => http}),
    Ids = [begin {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{}), Id end || _ <- lists:seq(1, 5)],
    {ok, Subs} = ?C:list_subscriptions(C),
    Listed = [maps:get(<<"id">>, S) || S <- Subs],
    ?assertEqual([], Ids -- Listed),
    ?assertEqual(length(Listed), length(lists:usort(Listed))).

%%--------------------------------------------------------------------

token_requests(Emu) -> maps:get(token_requests, azmp_emulator:stats(Emu)).

this_hour() ->
    {{Y, Mo, D}, {H, _, _}} = calendar:universal_time(),
    iolist_to_binary(io_lib:format("~4..0B-~2..0B-~2..0BT~2..0B:00:00Z", [Y, Mo, D, H])).

%% The previous hour as a calendar:datetime(): the client converts it.
datetime_hour() ->
    Secs = calendar:datetime_to_gregorian_seconds(calendar:universal_time()) - 3600,
    {Date, {H, _, _}} = calendar:gregorian_seconds_to_datetime(Secs),
    {Date, {H, 0, 0}}.
