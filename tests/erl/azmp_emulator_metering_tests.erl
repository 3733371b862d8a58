%% EUnit tests of the Azure Marketplace emulator: metering: single usage events
%% with Azure's rules, batches, and the usageEvents report.
-module(azmp_emulator_metering_tests).

-include_lib("eunit/include/eunit.hrl").
-include("azmp_emulator_tests.hrl").

-import(azmp_test_http, [auth/1, emulator_tests/1, event/4, json/1, req/4, req/5, token/1, url/2,
                         uuid/0]).

emulator_test_() ->
    emulator_tests(
      [{"metering: single usage event rules", fun usage_event/1},
       {"metering: batch", fun batch_usage/1},
       {"metering: usageEvents report", fun usage_report/1}]).

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
