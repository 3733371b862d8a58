%% EUnit tests of the Azure Marketplace emulator: metering: single usage events
%% with Azure's rules, batches, and the usageEvents report; the emulator clock,
%% per-plan dimensions, subscription status changes, reconciliation overrides,
%% exact quantity sums, the accepted-usage list and faults on the metering
%% operations.
%%
%% Subscription status for metering tests: there is no separate setter, none
%% is needed. add_subscription/2 takes `status' (e.g. <<"Subscribed">>), and
%% add_operation/3 with action <<"Suspend">> / <<"Reinstate">> /
%% <<"Unsubscribe">> applies at once (Succeeded): Suspended / Subscribed /
%% Unsubscribed. Only Subscribed takes usage (others: ResourceNotActive).
%% See status_changes/1.
-module(azmp_emulator_metering_tests).

-include_lib("eunit/include/eunit.hrl").
-include("azmp_emulator_tests.hrl").

-import(azmp_test_http, [auth/1, emulator_tests/1, event/4, json/1, req/4, req/5, token/1, url/2,
                         uuid/0]).

emulator_test_() ->
    emulator_tests(
      [{"metering: single usage event rules", fun usage_event/1},
       {"metering: batch", fun batch_usage/1},
       {"metering: usageEvents report", fun usage_report/1},
       {"metering: subscription status changes", fun status_changes/1},
       {"metering: reconciliation overrides", fun recon_overrides/1},
       {"metering: accepted usage list and count", fun usage_list/1},
       {"metering: faults on batchUsageEvent and usageEvents", fun metering_faults/1},
       {"metering: control endpoints", fun control/1}]).

%% Tests that need their own emulator (start options, the clock).
own_emulator_test_() ->
    {timeout, 60,
     [{"metering: controllable clock", fun clock/0},
      {"metering: per-plan dimensions", fun per_plan_dimensions/0},
      {"metering: exact quantity sums", fun exact_sums/0}]}.

with_emu(Opts, F) ->
    {ok, _} = application:ensure_all_started(inets),
    {ok, Emu} = azmp_emulator:start(Opts#{https_port => none}),
    try F(Emu) after azmp_emulator:stop(Emu) end.

hour(T) -> T - T rem 3600.

batch(Emu, Tok, Events) ->
    {200, _, #{<<"result">> := Rs}} =
        req(post, url(Emu, "/api/batchUsageEvent" ?V), auth(Tok), json(#{<<"request">> => Events})),
    [maps:get(<<"status">>, R) || R <- Rs].

rows(Emu, Tok, Query) ->
    {200, _, Rows} = req(get, url(Emu, "/api/usageEvents" ?V ++ Query), auth(Tok), <<>>),
    Rows.

since(T) -> "&usageStartDate=" ++ lists:sublist(calendar:system_time_to_rfc3339(T), 10).

iso_s(B) -> calendar:rfc3339_to_system_time(binary_to_list(B)).

usage_event(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    Tok = token(Emu),
    U = url(Emu, "/api/usageEvent" ?V),
    Now = erlang:system_time(second),
    Hour = Now - (Now rem 3600),
    Ev = event(Id, <<"sessions">>, 10, Hour + 5),
    {200, _, Ok} = req(post, U, auth(Tok), json(Ev)),
    ?assertMatch(#{<<"status">> := <<"Accepted">>, <<"usageEventId">> := _,
                   <<"messageTime">> := _, <<"resourceId">> := Id, <<"quantity">> := 10,
                   <<"dimension">> := <<"sessions">>, <<"planId">> := <<"payg">>}, Ok),
    %% same hour, other minute: duplicate
    {409, _, Conflict} = req(post, U, auth(Tok), json(event(Id, <<"sessions">>, 3, Hour + 60))),
    ?assertEqual(#{<<"additionalInfo">> => #{<<"acceptedMessage">> => Ok},
                   <<"message">> => <<"This usage event already exist.">>,
                   <<"code">> => <<"Conflict">>}, Conflict),
    %% other dimension, previous hour: accepted
    {200, _, _} = req(post, U, auth(Tok), json(event(Id, <<"traffic">>, 1.5, Hour))),
    {200, _, _} = req(post, U, auth(Tok), json(event(Id, <<"sessions">>, 2, Hour - 3600))),
    {400, _, Exp} = req(post, U, auth(Tok), json(event(Id, <<"sessions">>, 1, Now - 25 * 3600))),
    ?assertMatch(#{<<"code">> := <<"BadArgument">>,
                   <<"details">> := [#{<<"code">> := <<"Expired">>}]}, Exp),
    {400, _, NF} = req(post, U, auth(Tok), json(event(list_to_binary(uuid()), <<"sessions">>, 1,
                                                      Now))),
    ?assertMatch(#{<<"details">> := [#{<<"code">> := <<"ResourceNotFound">>}]}, NF),
    {ok, #{id := Pending}} = azmp_emulator:add_subscription(Emu, #{}),
    {400, _, NA} = req(post, U, auth(Tok), json(event(Pending, <<"sessions">>, 1, Now))),
    ?assertMatch(#{<<"details">> := [#{<<"code">> := <<"ResourceNotActive">>}]}, NA),
    {400, _, ID} = req(post, U, auth(Tok), json(event(Id, <<"bananas">>, 1, Now))),
    ?assertMatch(#{<<"details">> := [#{<<"code">> := <<"InvalidDimension">>}]}, ID),
    {400, _, IQ} = req(post, U, auth(Tok), json(event(Id, <<"connections">>, -1, Now))),
    ?assertMatch(#{<<"details">> := [#{<<"code">> := <<"InvalidQuantity">>}]}, IQ),
    {400, _, _} = req(post, U, auth(Tok), <<"not json">>),
    {401, _, _} = req(post, U, [], json(Ev)).

batch_usage(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    Tok = token(Emu),
    U = url(Emu, "/api/batchUsageEvent" ?V),
    Now = erlang:system_time(second),
    Hour = Now - (Now rem 3600),
    TooMany = [event(Id, <<"sessions">>, 1, Hour - 3600 * N) || N <- lists:seq(0, 25)],
    {400, _, _} = req(post, U, auth(Tok), json(#{<<"request">> => TooMany})),
    {400, _, _} = req(post, U, auth(Tok), json(#{<<"request">> => []})),
    Items = [event(Id, <<"sessions">>, 1, Hour),
             event(Id, <<"sessions">>, 2, Hour + 1),
             event(Id, <<"sessions">>, 1, Now - 30 * 3600),
             event(list_to_binary(uuid()), <<"sessions">>, 1, Hour),
             event(Id, <<"nope">>, 1, Hour),
             event(Id, <<"traffic">>, 0, Hour),
             event(Id, <<"traffic">>, 4, Hour)],
    {200, _, #{<<"count">> := 7, <<"result">> := Rs}} =
        req(post, U, auth(Tok), json(#{<<"request">> => Items})),
    ?assertEqual([<<"Accepted">>, <<"Duplicate">>, <<"Expired">>, <<"ResourceNotFound">>,
                  <<"InvalidDimension">>, <<"InvalidQuantity">>, <<"Accepted">>],
                 [maps:get(<<"status">>, R) || R <- Rs]),
    [A, D | _] = Rs,
    ?assertEqual(A, maps:get(<<"acceptedMessage">>,
                             maps:get(<<"additionalInfo">>, maps:get(<<"error">>, D)))),
    %% 25 is fine
    Max = [event(Id, <<"connections">>, 1, Hour - 3600 * N) || N <- lists:seq(0, 22)],
    {200, _, #{<<"count">> := 23}} = req(post, U, auth(Tok), json(#{<<"request">> => Max})).

usage_report(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>,
                                                              plan_id => <<"payg-premium">>}),
    Tok = token(Emu),
    Now = erlang:system_time(second),
    Hour = Now - (Now rem 3600),
    Ev = fun(Q, T) -> (event(Id, <<"sessions">>, Q, T))#{<<"planId">> => <<"payg-premium">>} end,
    {200, _, _} = req(post, url(Emu, "/api/usageEvent" ?V), auth(Tok), json(Ev(5, Hour))),
    {200, _, _} = req(post, url(Emu, "/api/usageEvent" ?V), auth(Tok), json(Ev(7, Hour - 3600))),
    Today = lists:sublist(calendar:system_time_to_rfc3339(Now - 2 * 86400), 10),
    {200, _, Rows} = req(get, url(Emu, "/api/usageEvents" ?V "&usageStartDate=" ++ Today ++
                                      "&planId=payg-premium"), auth(Tok), <<>>),
    Mine = [R || R = #{<<"usageResourceId">> := R0} <- Rows, R0 =:= Id],
    ?assertEqual(lists:sum([C || #{<<"submittedCount">> := C} <- Mine]), 2),
    ?assertEqual(12, lists:sum([Q || #{<<"submittedQuantity">> := Q} <- Mine])),
    ?assertMatch([#{<<"dimension">> := <<"sessions">>, <<"offerId">> := _,
                    <<"usageDate">> := _, <<"reconStatus">> := _} | _], Mine),
    {400, _, _} = req(get, url(Emu, "/api/usageEvents" ?V), auth(Tok), <<>>).

clock() ->
    with_emu(#{}, fun(Emu) ->
        ?assert(abs(azmp_emulator:clock(Emu) - erlang:system_time(second)) =< 1),
        {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
        Tok = token(Emu),
        U = url(Emu, "/api/usageEvent" ?V),
        Real = erlang:system_time(second),
        %% two hours ahead is the future for Azure ...
        {400, _, Fut} = req(post, U, auth(Tok), json(event(Id, <<"sessions">>, 1,
                                                           hour(Real) + 2 * 3600))),
        ?assertMatch(#{<<"details">> := [#{<<"target">> := <<"effectiveStartTime">>}]}, Fut),
        %% ... until the clock moves there
        ok = azmp_emulator:set_clock_offset(Emu, 3 * 3600),
        ?assert(abs(azmp_emulator:clock(Emu) - (erlang:system_time(second) + 3 * 3600)) =< 1),
        {200, _, Ok} = req(post, U, auth(Tok), json(event(Id, <<"sessions">>, 1,
                                                          hour(Real) + 2 * 3600))),
        ?assert(abs(iso_s(maps:get(<<"messageTime">>, Ok)) - (Real + 3 * 3600)) =< 2),
        %% 25 h later the real current hour is Expired (single and batch)
        {200, _, _} = req(post, U, auth(Tok), json(event(Id, <<"traffic">>, 1, hour(Real)))),
        ok = azmp_emulator:set_clock_offset(Emu, 26 * 3600),
        {400, _, Exp} = req(post, U, auth(Tok), json(event(Id, <<"sessions">>, 1, hour(Real)))),
        ?assertMatch(#{<<"details">> := [#{<<"code">> := <<"Expired">>}]}, Exp),
        ?assertEqual([<<"Expired">>, <<"Accepted">>],
                     batch(Emu, Tok, [event(Id, <<"connections">>, 1, hour(Real)),
                                      event(Id, <<"connections">>, 1, hour(Real) + 25 * 3600)])),
        %% the Entra token obtained in real time still works (it did above);
        %% a new one lasts the real hour whatever the clock says
        ok = azmp_emulator:set_clock_offset(Emu, -30 * 86400),
        {200, _, #{<<"expires_in">> := In}} =
            req(post, url(Emu, "/tenant-1/oauth2/v2.0/token"), [], azmp_test_http:v2_form()),
        ?assert(In > 3000),
        %% usageEvents' default end date is the clock: 30 days back, nothing yet
        ?assertEqual([], rows(Emu, Tok, since(Real - 40 * 86400))),
        ok = azmp_emulator:set_clock_offset(Emu, 26 * 3600),
        ?assertEqual(3, lists:sum([C || #{<<"submittedCount">> := C}
                                            <- rows(Emu, Tok, since(Real - 86400))])),
        %% fulfillment operation timestamps follow the clock; webhook JWTs do not
        ok = azmp_emulator:set_clock_offset(Emu, 10 * 86400),
        {ok, _} = azmp_emulator:add_operation(Emu, Id, #{action => <<"Renew">>}),
        {ok, #{operations := [#{<<"timeStamp">> := OpTs}]}} = azmp_emulator:subscription(Emu, Id),
        ?assert(abs(iso_s(OpTs) - (erlang:system_time(second) + 10 * 86400)) =< 2),
        {error, _} = azmp_emulator:send_webhook(Emu, <<"http://127.0.0.1:1/hook">>, 'Suspend',
                                                Id, #{timeout_ms => 2000}),
        [#{token := Jwt, payload := Payload}] = azmp_emulator:webhooks(Emu),
        [_, ClaimsB64, _] = binary:split(Jwt, <<".">>, [global]),
        #{<<"exp">> := JwtExp, <<"iat">> := Iat} =
            element(2, azmp_emulator_json:decode(azmp_emulator_jwt:b64url_decode(ClaimsB64))),
        Now = erlang:system_time(second),
        ?assert(abs(Iat - Now) =< 2 andalso abs(JwtExp - (Now + 3600)) =< 2),
        {ok, #{<<"timeStamp">> := HookTs}} = azmp_emulator_json:decode(Payload),
        ?assert(abs(iso_s(HookTs) - (Now + 10 * 86400)) =< 2),
        %% back to real time
        ok = azmp_emulator:set_clock_offset(Emu, 0),
        ?assert(abs(azmp_emulator:clock(Emu) - erlang:system_time(second)) =< 1)
    end).

per_plan_dimensions() ->
    Dims = #{<<"payg">> => [<<"sessions">>],
             <<"payg-premium">> => [<<"sessions">>, <<"traffic">>]},
    with_emu(#{dimensions => Dims}, fun(Emu) ->
        {ok, #{id := Basic}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
        {ok, #{id := Prem}} = azmp_emulator:add_subscription(
                                Emu, #{status => <<"Subscribed">>, plan_id => <<"payg-premium">>}),
        Tok = token(Emu),
        H = hour(erlang:system_time(second)),
        P = fun(E) -> E#{<<"planId">> => <<"payg-premium">>} end,
        ?assertEqual([<<"Accepted">>, <<"InvalidDimension">>, <<"InvalidDimension">>,
                      <<"Accepted">>, <<"Accepted">>, <<"InvalidDimension">>],
                     batch(Emu, Tok, [event(Basic, <<"sessions">>, 1, H),
                                      event(Basic, <<"traffic">>, 1, H),
                                      event(Basic, <<"connections">>, 1, H),
                                      P(event(Prem, <<"sessions">>, 1, H)),
                                      P(event(Prem, <<"traffic">>, 1, H)),
                                      P(event(Prem, <<"connections">>, 1, H))])),
        %% listAvailablePlans shows each plan's own dimensions
        {200, _, #{<<"plans">> := Plans}} =
            req(get, azmp_test_http:sub_url(Emu, Basic, "/listAvailablePlans"), auth(Tok), <<>>),
        ?assertEqual(#{<<"payg">> => [<<"sessions">>],
                       <<"payg-premium">> => [<<"sessions">>, <<"traffic">>]},
                     maps:from_list(
                       [{Id, [D || #{<<"id">> := D} <- maps:get(<<"meteringDimensions">>, C)]}
                        || #{<<"planId">> := Id, <<"planComponents">> := C} <- Plans])),
        %% at run time: a list for every plan ...
        ok = azmp_emulator:set_dimensions(Emu, [<<"connections">>]),
        ?assertEqual([<<"InvalidDimension">>, <<"Accepted">>, <<"Accepted">>],
                     batch(Emu, Tok, [event(Basic, <<"sessions">>, 1, H - 3600),
                                      event(Basic, <<"connections">>, 1, H),
                                      P(event(Prem, <<"connections">>, 1, H))])),
        %% ... or a map; a plan missing from it has no dimension
        ok = azmp_emulator:set_dimensions(Emu, #{<<"payg-premium">> => [<<"traffic">>]}),
        ?assertEqual([<<"InvalidDimension">>, <<"Accepted">>],
                     batch(Emu, Tok, [event(Basic, <<"connections">>, 1, H - 3600),
                                      P(event(Prem, <<"traffic">>, 1, H - 3600))])),
        ?assertError({badarg, _}, azmp_emulator:set_dimensions(Emu, sessions)),
        ?assertError({badarg, _}, azmp_emulator:set_dimensions(Emu, #{<<"payg">> => [sessions]}))
    end).

%% Status changes through add_operation/3 (Suspend, Reinstate, Unsubscribe apply at once).
status_changes(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    Tok = token(Emu),
    H = hour(erlang:system_time(second)),
    Status = fun() -> {ok, #{status := S}} = azmp_emulator:subscription(Emu, Id), S end,
    [<<"Accepted">>] = batch(Emu, Tok, [event(Id, <<"sessions">>, 1, H)]),
    {ok, _} = azmp_emulator:add_operation(Emu, Id, #{action => <<"Suspend">>}),
    ?assertEqual(<<"Suspended">>, Status()),
    ?assertEqual([<<"ResourceNotActive">>], batch(Emu, Tok, [event(Id, <<"traffic">>, 1, H)])),
    {ok, _} = azmp_emulator:add_operation(Emu, Id, #{action => <<"Reinstate">>}),
    ?assertEqual(<<"Subscribed">>, Status()),
    ?assertEqual([<<"Accepted">>], batch(Emu, Tok, [event(Id, <<"traffic">>, 1, H)])),
    {ok, _} = azmp_emulator:add_operation(Emu, Id, #{action => <<"Unsubscribe">>}),
    ?assertEqual(<<"Unsubscribed">>, Status()),
    %% Usage up to the cancellation is still taken (within 24 h); from it on, it is not.
    ?assertEqual([<<"Accepted">>], batch(Emu, Tok, [event(Id, <<"connections">>, 1, H)])),
    ?assertEqual([<<"ResourceNotActive">>],
                 batch(Emu, Tok, [event(Id, <<"connections">>, 1, erlang:system_time(second) + 2)])).

recon_overrides(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    Tok = token(Emu),
    Now = erlang:system_time(second),
    H = hour(Now),
    %% an override may come before the events; any time of the day names it
    ok = azmp_emulator:set_recon(Emu, #{resource_id => Id, dimension => <<"traffic">>,
                                        day => H + 1}, #{recon_status => <<"Rejected">>}),
    [<<"Accepted">>, <<"Accepted">>, <<"Accepted">>] =
        batch(Emu, Tok, [event(Id, <<"sessions">>, 5, H), event(Id, <<"traffic">>, 2.5, H),
                         event(Id, <<"connections">>, 1, H)]),
    Q = "&azureSubscriptionId=" ++ binary_to_list(sub_field(Emu, Id, azure_subscription_id)),
    Get = fun(Extra) ->
                  maps:from_list([{D, maps:with([<<"reconStatus">>, <<"submittedQuantity">>,
                                                 <<"processedQuantity">>], R)}
                                  || R = #{<<"dimension">> := D} <- rows(Emu, Tok, since(Now) ++ Q
                                                                         ++ Extra)])
          end,
    ok = azmp_emulator:set_recon(Emu, #{resource_id => Id, dimension => <<"sessions">>, day => H},
                                 #{recon_status => <<"Mismatch">>, processed_quantity => 3}),
    ?assertEqual(#{<<"sessions">> => #{<<"reconStatus">> => <<"Mismatch">>,
                                       <<"submittedQuantity">> => 5,
                                       <<"processedQuantity">> => 3},
                   <<"traffic">> => #{<<"reconStatus">> => <<"Rejected">>,
                                      <<"submittedQuantity">> => 2.5,
                                      <<"processedQuantity">> => 2.5},
                   <<"connections">> => #{<<"reconStatus">> => <<"Accepted">>,
                                          <<"submittedQuantity">> => 1,
                                          <<"processedQuantity">> => 1}},
                 Get("")),
    %% the reconStatus filter, for every status
    ?assertEqual([<<"sessions">>], maps:keys(Get("&reconStatus=Mismatch"))),
    ?assertEqual([<<"traffic">>], maps:keys(Get("&reconStatus=Rejected"))),
    ?assertEqual([<<"connections">>], maps:keys(Get("&reconStatus=Accepted"))),
    ?assertEqual([], maps:keys(Get("&reconStatus=Submitted"))),
    ok = azmp_emulator:set_recon(Emu, #{resource_id => Id, dimension => <<"connections">>,
                                        day => H}, #{recon_status => <<"Submitted">>}),
    ?assertEqual([<<"connections">>], maps:keys(Get("&reconStatus=Submitted"))),
    %% processed quantity only; #{} removes an override
    ok = azmp_emulator:set_recon(Emu, #{resource_id => Id, dimension => <<"sessions">>, day => H},
                                 #{processed_quantity => 4.5}),
    ok = azmp_emulator:set_recon(Emu, #{resource_id => Id, dimension => <<"traffic">>, day => H},
                                 #{}),
    #{<<"sessions">> := S, <<"traffic">> := T} = Get(""),
    ?assertEqual(#{<<"reconStatus">> => <<"Accepted">>, <<"submittedQuantity">> => 5,
                   <<"processedQuantity">> => 4.5}, S),
    ?assertEqual(<<"Accepted">>, maps:get(<<"reconStatus">>, T)),
    ?assertError({badarg, _}, azmp_emulator:set_recon(Emu, #{resource_id => Id,
                                                             dimension => <<"traffic">>, day => H},
                                                      #{recon_status => <<"Maybe">>})).

sub_field(Emu, Id, K) ->
    {ok, Sub} = azmp_emulator:subscription(Emu, Id),
    maps:get(K, Sub).

exact_sums() ->
    with_emu(#{}, fun(Emu) ->
        %% the clock at 23:30 UTC: hours 00..23 of its day are all reportable
        Now = erlang:system_time(second),
        Day = Now - Now rem 86400,
        ok = azmp_emulator:set_clock_offset(Emu, Day + 23 * 3600 + 1800 - Now),
        {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
        Tok = token(Emu),
        Hours = [Day + N * 3600 || N <- lists:seq(0, 23)],
        %% twenty-four times 0.1 (a float sum gives 2.4000000000000004)
        Tenths = [event(Id, <<"sessions">>, 0.1, T) || T <- Hours],
        ?assertNotEqual(2.4, lists:foldl(fun(_, A) -> A + 0.1 end, 0, Hours)),
        [<<"Accepted">>] = lists:usort(batch(Emu, Tok, lists:sublist(Tenths, 12))),
        [<<"Accepted">>] = lists:usort(batch(Emu, Tok, lists:nthtail(12, Tenths))),
        %% mixed decimals, more than six digits, exponents, integers
        Mixed = [0.1234567, 0.0000001, 1.0e-7, 3, 0.2, 1.5e3, 7, 0.3],
        [<<"Accepted">>] = lists:usort(
                             batch(Emu, Tok, [event(Id, <<"traffic">>, Q, T)
                                              || {Q, T} <- lists:zip(Mixed,
                                                                     lists:sublist(Hours, 8))])),
        %% integers only stay integers
        [<<"Accepted">>] = lists:usort(batch(Emu, Tok, [event(Id, <<"connections">>, 2, T)
                                                        || T <- lists:sublist(Hours, 5)])),
        Rows = rows(Emu, Tok, since(Day)),
        Sum = maps:from_list([{D, {Q, P, C}} || #{<<"dimension">> := D,
                                                  <<"submittedQuantity">> := Q,
                                                  <<"processedQuantity">> := P,
                                                  <<"submittedCount">> := C} <- Rows]),
        ?assertEqual(#{<<"sessions">> => {2.4, 2.4, 24},
                       <<"traffic">> => {1510.6234569, 1510.6234569, 8},
                       <<"connections">> => {10, 10, 5}}, Sum),
        %% and on the wire: the exact decimal text
        {ok, {{_, 200, _}, _, Raw}} = httpc:request(get, {binary_to_list(url(Emu, "/api/usageEvents" ?V ++
                                                                   since(Day))),
                                            auth(Tok)}, [], [{body_format, binary}]),
        ?assertNotEqual(nomatch, binary:match(Raw, <<"\"submittedQuantity\":2.4,">>)),
        ?assertNotEqual(nomatch, binary:match(Raw, <<"\"submittedQuantity\":1510.6234569,">>)),
        %% usage/1 keeps every quantity as it was sent
        ?assertEqual(lists:duplicate(24, 0.1),
                     [Q || #{dimension := <<"sessions">>, quantity := Q}
                               <- azmp_emulator:usage(Emu)])
    end).

usage_list(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    Tok = token(Emu),
    Now = erlang:system_time(second),
    H = hour(Now),
    Mine = fun() -> [U || U = #{resource_id := R} <- azmp_emulator:usage(Emu), R =:= Id] end,
    Before = azmp_emulator:usage_count(Emu),
    {200, _, #{<<"result">> := [A1, _, _, A2]}} =
        req(post, url(Emu, "/api/batchUsageEvent" ?V), auth(Tok),
            json(#{<<"request">> => [event(Id, <<"sessions">>, 1.25, H + 61),
                                     event(Id, <<"sessions">>, 9, H + 120),
                                     event(Id, <<"bananas">>, 1, H),
                                     event(Id, <<"traffic">>, 3, H - 3600)]})),
    {409, _, _} = req(post, url(Emu, "/api/usageEvent" ?V), auth(Tok),
                      json(event(Id, <<"traffic">>, 4, H - 3000))),
    ?assertEqual(Before + 2, azmp_emulator:usage_count(Emu)),
    ?assertMatch([#{resource_id := Id, dimension := <<"sessions">>, hour := H, time := _,
                    quantity := 1.25, plan_id := <<"payg">>, message_time := _},
                  #{resource_id := Id, dimension := <<"traffic">>, hour := _, quantity := 3}],
                 Mine()),
    [#{usage_event_id := E1, time := T1}, #{usage_event_id := E2, hour := H2}] = Mine(),
    ?assertEqual({maps:get(<<"usageEventId">>, A1), maps:get(<<"usageEventId">>, A2)}, {E1, E2}),
    ?assertEqual({H + 61, H - 3600}, {T1, H2}).

%% Faults on the metering operations: azmp_emulator:inject(Emu, batch_usage_event | usage_event
%% | usage_events, [Fault]); a faulted request records nothing.
metering_faults(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    Tok = token(Emu),
    H = hour(erlang:system_time(second)),
    U = binary_to_list(url(Emu, "/api/batchUsageEvent" ?V)),
    Body = json(#{<<"request">> => [event(Id, <<"sessions">>, 1, H)]}),
    Post = fun() -> httpc:request(post, {U, auth(Tok), "application/json", Body},
                                  [{timeout, 5000}], [{body_format, binary}])
           end,
    Count = azmp_emulator:usage_count(Emu),
    ok = azmp_emulator:inject(Emu, batch_usage_event,
                              [{status, 503}, {status, 429, 3}, {status, 429}, reset, truncated]),
    {ok, {{_, 503, _}, _, _}} = Post(),
    {ok, {{_, 429, _}, H429, _}} = Post(),
    ?assertEqual({"retry-after", "3"}, lists:keyfind("retry-after", 1, H429)),
    {ok, {{_, 429, _}, H429b, _}} = Post(),
    ?assertNot(lists:keymember("retry-after", 1, H429b)),
    ?assertMatch({error, _}, Post()),
    ?assertMatch({error, _}, Post()),
    ?assertEqual(Count, azmp_emulator:usage_count(Emu)),
    {ok, {{_, 200, _}, _, Ok}} = Post(),
    ?assertMatch({ok, #{<<"result">> := [#{<<"status">> := <<"Accepted">>}]}},
                 azmp_emulator_json:decode(Ok)),
    ?assertEqual(Count + 1, azmp_emulator:usage_count(Emu)),
    ok = azmp_emulator:inject(Emu, usage_events, [{status, 500}, malformed]),
    RU = url(Emu, "/api/usageEvents" ?V ++ since(H)),
    {500, _, _} = req(get, RU, auth(Tok), <<>>),
    {200, _, Garbage} = req(get, RU, auth(Tok), <<>>),
    ?assert(is_binary(Garbage)),
    {200, _, [_ | _]} = req(get, RU, auth(Tok), <<>>).

%% The same over /_emulator (a standalone emulator driven with curl).
control(Emu) ->
    C = fun(M, P, B) -> req(M, url(Emu, "/_emulator/" ++ P), [], json(B)) end,
    {200, _, #{<<"offset">> := 0}} = C(get, "clock", #{}),
    {200, _, #{<<"offset">> := 7200, <<"now">> := N}} = C(post, "clock", #{<<"offset">> => 7200}),
    ?assert(abs(N - (erlang:system_time(second) + 7200)) =< 1),
    ?assert(abs(azmp_emulator:clock(Emu) - N) =< 1),
    {200, _, _} = C(post, "clock", #{<<"offset">> => 0}),
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{status => <<"Subscribed">>}),
    Tok = token(Emu),
    H = hour(erlang:system_time(second)),
    {200, _, #{}} = C(post, "dimensions", #{<<"dimensions">> => #{<<"payg">> => [<<"gb">>]}}),
    [<<"InvalidDimension">>, <<"Accepted">>] =
        batch(Emu, Tok, [event(Id, <<"sessions">>, 1, H), event(Id, <<"gb">>, 0.5, H)]),
    {200, _, #{}} = C(post, "dimensions", #{<<"dimensions">> => [<<"sessions">>, <<"traffic">>,
                                                                 <<"connections">>]}),
    {200, _, #{}} = C(post, "recon", #{<<"resourceId">> => Id, <<"dimension">> => <<"gb">>,
                                       <<"day">> => azmp_emulator_util:iso8601(H),
                                       <<"reconStatus">> => <<"Rejected">>}),
    [#{<<"reconStatus">> := <<"Rejected">>}] =
        [R || R = #{<<"usageResourceId">> := I} <- rows(Emu, Tok, since(H)), I =:= Id],
    {200, _, Usage} = C(get, "usage", #{}),
    ?assertMatch([#{<<"dimension">> := <<"gb">>, <<"quantity">> := 0.5}],
                 [U || U = #{<<"resource_id">> := I} <- Usage, I =:= Id]).
