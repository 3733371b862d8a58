%% EUnit tests of the Azure Marketplace emulator: injected faults: statuses with
%% and without Retry-After, resets, stalls, truncated and malformed bodies, delays; no side effect
%% of a faulted request; faults for any operation and their order.
-module(azmp_emulator_faults_tests).

-include_lib("eunit/include/eunit.hrl").
-include("azmp_emulator_tests.hrl").

-import(azmp_test_http, [auth/1, emulator_tests/1, event/4, json/1, port_of/1, raw_get/2,
                         raw_post/3, req/4, req/5, ssl_opts/1, sub_url/3, token/1, url/2, v1_form/0,
                         v2_form/0]).

emulator_test_() ->
    emulator_tests(
      [{"faults: status codes and Retry-After", fun fault_status/1},
       {"faults: reset, stall, truncated, malformed, delay", fun fault_transport/1},
       {"faults have no side effect", fun fault_no_side_effect/1},
       {"faults: any and order", fun fault_any_order/1}]).

fault_status(Emu) ->
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{}),
    Tok = token(Emu),
    U = sub_url(Emu, Id, ""),
    ok = azmp_emulator:inject(Emu, get_subscription,
                              [{status, 503}, {status, 429}, {status, 429, 7}, {status, 500}]),
    {503, H1, #{<<"error">> := _}} = req(get, U, auth(Tok), <<>>),
    ?assertNot(lists:keymember("retry-after", 1, H1)),
    {429, H2, _} = req(get, U, auth(Tok), <<>>),
    ?assertNot(lists:keymember("retry-after", 1, H2)),
    {429, H3, _} = req(get, U, auth(Tok), <<>>),
    ?assertEqual({"retry-after", "7"}, lists:keyfind("retry-after", 1, H3)),
    {500, _, _} = req(get, U, auth(Tok), <<>>),
    {200, _, _} = req(get, U, auth(Tok), <<>>),
    ok = azmp_emulator:inject(Emu, token, [{status, 503}]),
    {503, _, _} = req(post, url(Emu, "/tenant-1/oauth2/token"), [], v1_form()),
    {200, _, _} = req(post, url(Emu, "/tenant-1/oauth2/token"), [], v1_form()).

fault_transport(Emu) ->
    Port = port_of(azmp_emulator:http_url(Emu)),
    Path = "/common/discovery/v2.0/keys",
    ok = azmp_emulator:inject(Emu, jwks, [reset]),
    ?assertEqual({error, econnreset}, raw_get(Port, Path)),
    ok = azmp_emulator:inject(Emu, jwks, [{stall, 1500}]),
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
    ok = gen_tcp:send(S, ["GET ", Path, " HTTP/1.1\r\nHost: x\r\n\r\n"]),
    ?assertEqual({error, timeout}, gen_tcp:recv(S, 0, 1000)),
    ?assertEqual({error, closed}, gen_tcp:recv(S, 0, 2000)),
    gen_tcp:close(S),
    ok = azmp_emulator:inject(Emu, jwks, [truncated]),
    {truncated, Len, Got} = raw_get(Port, Path),
    ?assert(Got < Len andalso Got > 0),
    ok = azmp_emulator:inject(Emu, jwks, [malformed]),
    {200, Body} = raw_get(Port, Path),
    ?assertMatch({error, _}, azmp_emulator_json:decode(Body)),
    ok = azmp_emulator:inject(Emu, jwks, [{delay, 300}]),
    T0 = erlang:monotonic_time(millisecond),
    {200, Keys} = raw_get(Port, Path),
    ?assert(erlang:monotonic_time(millisecond) - T0 >= 300),
    ?assertMatch({ok, #{<<"keys">> := [_]}}, azmp_emulator_json:decode(Keys)),
    %% the same over TLS: reset and truncated are transport errors for httpc
    ok = azmp_emulator:inject(Emu, jwks, [reset, truncated]),
    Https = binary_to_list(azmp_emulator:jwks_url(Emu)),
    ?assertMatch({error, _}, httpc:request(get, {Https, []}, [{ssl, ssl_opts(Emu)}], [])),
    ?assertMatch({error, _}, httpc:request(get, {Https, []}, [{ssl, ssl_opts(Emu)}], [])),
    ?assertMatch({ok, {{_, 200, _}, _, _}},
                 httpc:request(get, {Https, []}, [{ssl, ssl_opts(Emu)}], [])).

fault_no_side_effect(Emu) ->
    Tok = token(Emu),
    {ok, #{id := Id}} = azmp_emulator:add_subscription(Emu, #{}),
    U = sub_url(Emu, Id, "/activate"),
    ok = azmp_emulator:inject(Emu, activate, [{status, 500}, malformed]),
    {500, _, _} = req(post, U, auth(Tok), <<>>),
    {200, _, _} = req(post, U, auth(Tok), <<>>),
    {ok, #{status := <<"PendingFulfillmentStart">>, activations := 0}} =
        azmp_emulator:subscription(Emu, Id),
    ok = azmp_emulator:inject(Emu, activate, [truncated]),
    {error, _} = httpc:request(post, {binary_to_list(U), auth(Tok), "application/json", ""},
                               [{timeout, 5000}], []),
    {ok, #{status := <<"PendingFulfillmentStart">>, activations := 0}} =
        azmp_emulator:subscription(Emu, Id),
    %% a metering event that was truncated was not accepted
    {200, _, _} = req(post, U, auth(Tok), <<>>),
    Ev = json(event(Id, <<"sessions">>, 1, erlang:system_time(second))),
    EvUrl = url(Emu, "/api/usageEvent" ?V),
    ok = azmp_emulator:inject(Emu, usage_event, [truncated, reset]),
    {error, _} = httpc:request(post, {binary_to_list(EvUrl), auth(Tok), "application/json", Ev},
                               [{timeout, 5000}], []),
    {error, _} = httpc:request(post, {binary_to_list(EvUrl), auth(Tok), "application/json", Ev},
                               [{timeout, 5000}], []),
    {200, _, #{<<"status">> := <<"Accepted">>}} = req(post, EvUrl, auth(Tok), Ev),
    %% a faulted token request issues no usable token
    ok = azmp_emulator:inject(Emu, token, [truncated]),
    Port = port_of(azmp_emulator:http_url(Emu)),
    {truncated, _, _} = raw_post(Port, "/tenant-1/oauth2/v2.0/token", v2_form()).

fault_any_order(Emu) ->
    Port = port_of(azmp_emulator:http_url(Emu)),
    ok = azmp_emulator:inject(Emu, any, [{status, 502}, {status, 504}]),
    ok = azmp_emulator:inject(Emu, jwks, [{status, 500}]),
    {500, _} = raw_get(Port, "/common/discovery/v2.0/keys"),
    {502, _} = raw_get(Port, "/common/discovery/v2.0/keys"),
    {504, _} = raw_get(Port, "/tenant-1/v2.0/.well-known/openid-configuration"),
    {200, _} = raw_get(Port, "/common/discovery/v2.0/keys"),
    ?assertError({badarg, nonsense}, azmp_emulator:inject(Emu, nonsense, [reset])),
    Boom = list_to_atom("boom"),
    ?assertError({bad_fault, boom}, azmp_emulator:inject(Emu, jwks, [Boom])).
