%% The NIF's typed boundary: a config or argument of the wrong shape or out of range is refused with
%% an error naming the field, and each config is checked by the same validate_config the C++ tests
%% exercise (so, e.g., a webhook skew above an hour is refused at creation).
-module(azmp_nif_codec_tests).

-include_lib("eunit/include/eunit.hrl").

-define(NIF, emqx_azure_marketplace_nif).

auth_base() ->
    #{tenant_id => <<"t">>, audience => <<"c">>, login_url => <<"http://127.0.0.1:1">>, allow_insecure_loopback => true}.

client_base() ->
    #{tenant_id => <<"t">>, client_id => <<"c">>, client_secret => <<"s">>,
      login_url => <<"http://127.0.0.1:1">>, marketplace_url => <<"http://127.0.0.1:1/api">>, allow_insecure_loopback => true,
      retry => #{max_attempts => 1}, timeout_ms => 1000}.

auth_new(Extra) -> ?NIF:webhook_auth_new(maps:merge(auth_base(), Extra)).
client_new(Extra) -> ?NIF:client_new(maps:merge(client_base(), Extra)).

webhook_config_is_validated_test() ->
    ?assertMatch({ok, _}, auth_new(#{skew_s => 3600})),
    ?assertEqual({error, {badarg, skew_s}}, auth_new(#{skew_s => 3601})),
    ?assertEqual({error, {badarg, skew_s}}, auth_new(#{skew_s => -1})),
    ?assertMatch({ok, _}, auth_new(#{min_refresh_interval_s => 86400})),
    ?assertEqual({error, {badarg, min_refresh_interval_s}}, auth_new(#{min_refresh_interval_s => 86401})),
    ?assertEqual({error, {badarg, timeout_ms}}, auth_new(#{timeout_ms => 0})),
    ?assertEqual({error, {badarg, authorized_apps}}, auth_new(#{authorized_apps => [<<>>]})),
    ?assertEqual({error, {badarg, authorized_apps}}, auth_new(#{authorized_apps => []})),
    ?assertEqual({error, {badarg, authorized_apps}},
                 auth_new(#{authorized_apps => lists:duplicate(17, <<"a">>)})),
    ?assertMatch({ok, _}, auth_new(#{authorized_apps => lists:duplicate(16, <<"a">>)})).

webhook_config_errors_name_the_field_test() ->
    ?assertEqual({error, {badarg, tenant_id}}, auth_new(#{tenant_id => "t"})),
    ?assertEqual({error, {badarg, tenant_id}}, ?NIF:webhook_auth_new(maps:remove(tenant_id, auth_base()))),
    ?assertEqual({error, {badarg, audience}}, auth_new(#{audience => <<>>})),
    ?assertEqual({error, {badarg, login_url}}, auth_new(#{login_url => <<"http://10.0.0.1">>})),
    ?assertEqual({error, {badarg, skew_s}}, auth_new(#{skew_s => 1.5})),
    ?assertEqual({error, {badarg, bogus}}, auth_new(#{bogus => 1})),
    ?assertEqual({error, {badarg, config}}, auth_new(#{<<"tenant_id">> => <<"t">>})),
    ?assertError(badarg, ?NIF:webhook_auth_new(not_a_map)).

client_config_errors_name_the_field_test() ->
    ?assertMatch({ok, {_, 1000}}, client_new(#{})),
    ?assertEqual({error, {badarg, timeout_ms}}, client_new(#{timeout_ms => <<"1000">>})),
    ?assertEqual({error, {badarg, timeout_ms}}, client_new(#{timeout_ms => 1 bsl 40})),
    ?assertEqual({error, {badarg, connect_timeout_ms}}, client_new(#{connect_timeout_ms => 0})),
    ?assertEqual({error, {badarg, max_in_flight}}, client_new(#{max_in_flight => -3})),
    ?assertEqual({error, {badarg, proxy}}, client_new(#{proxy => <<"socks5://127.0.0.1:1080">>})),
    ?assertEqual({error, {badarg, token_endpoint}}, client_new(#{token_endpoint => <<"v1">>})),
    ?assertMatch({ok, _}, client_new(#{token_endpoint => v1})),
    ?assertEqual({error, {badarg, client_id}}, client_new(#{client_id => <<>>})),
    ?assertEqual({error, {badarg, retry}}, client_new(#{retry => #{max_attempts => 101}})),
    ?assertEqual({error, {badarg, retry}}, client_new(#{retry => #{max_attempts => 1, jitter => 1}})),
    ?assertEqual({error, {badarg, retry}}, client_new(#{retry => [{max_attempts, 1}]})).

request_errors_name_the_field_test() ->
    {ok, {C, _}} = client_new(#{}),
    Event = #{resource_id => <<"r">>, dimension => <<"d">>, quantity => 1,
              effective_start_time => <<"2026-01-01T00:00:00Z">>, plan_id => <<"p">>},
    ?assertEqual({error, {badarg, operation}}, ?NIF:request(C, no_such_op, #{})),
    ?assertEqual({error, {badarg, quantity}}, ?NIF:request(C, change_quantity, #{subscription_id => <<"s">>,
                                                                               quantity => -1})),
    ?assertEqual({error, {badarg, status}}, ?NIF:request(C, update_operation, #{subscription_id => <<"s">>,
                                                                              operation_id => <<"o">>,
                                                                              status => maybe})),
    ?assertEqual({error, {badarg, quantity}}, ?NIF:request(C, post_usage, #{event => maps:remove(quantity, Event)})),
    ?assertEqual({error, {badarg, dimension}}, ?NIF:request(C, post_usage, #{event => Event#{dimension => 7}})),
    ?assertEqual({error, {badarg, colour}}, ?NIF:request(C, post_usage, #{event => Event#{colour => red}})),
    ?assertEqual({error, {badarg, events}}, ?NIF:request(C, post_usage_batch, #{events => [Event | x]})),
    ?assertEqual({error, {badarg, usage_end_date}},
                 ?NIF:request(C, get_usage_events, #{filter => #{usage_start_date => <<"2026-01-01">>,
                                                                 usage_end_date => undefined}})),
    ?assertEqual({error, {badarg, filter}}, ?NIF:request(C, get_usage_events, #{filter => []})),
    ?assertEqual({error, {badarg, bogus}}, ?NIF:request(C, get_subscription, #{subscription_id => <<"s">>,
                                                                             bogus => 1})).

%% Large terms are refused by json_encode (its limits are checked as it walks, before it copies:
%% bench/azmp_bench_nif_worst.erl measures how long that takes); what fits still encodes.
json_encode_too_large_test() ->
    ?assertEqual({error, too_large}, ?NIF:json_encode(binary:copy(<<"a">>, 16 * 1024 * 1024))),
    ?assertEqual({error, too_large},
                 ?NIF:json_encode(maps:from_list([{integer_to_binary(I), I} || I <- lists:seq(1, 100000)]))),
    ?assertEqual({error, too_large}, ?NIF:json_encode(lists:seq(1, 1000000))),
    ?assertEqual({error, too_large}, ?NIF:json_encode(#{<<"a">> => [#{<<"b">> => binary:copy(<<"x">>, 300000)}]})),
    %% A bad term past the budget is still too_large; one within it is still badarg.
    ?assertEqual({error, {badarg, json}}, ?NIF:json_encode([1, 2, {tuple}])),
    Fits = maps:from_list([{integer_to_binary(I), I} || I <- lists:seq(1, 1000)]),
    ?assertMatch({ok, _}, ?NIF:json_encode(Fits)),
    ?assertEqual({ok, Fits}, begin {ok, J} = ?NIF:json_encode(Fits), ?NIF:json_decode(J) end).

encoders_test() ->
    ?assertEqual({ok, #{<<"a">> => true, <<"b">> => false, <<"c">> => null, <<"d">> => [1, 2.5, <<"x">>]}},
                 ?NIF:json_decode(<<"{\"a\":true,\"b\":false,\"c\":null,\"d\":[1,2.5,\"x\"]}">>)),
    ?assertEqual({ok, <<"[true,false,null,null,\"x\"]">>}, ?NIF:json_encode([true, false, null, undefined, x])),
    ?assertEqual({error, {badarg, json}}, ?NIF:json_encode({tuple})),
    %% Beyond a double's range: no Erlang float holds it (it raised badarg before).
    ?assertEqual({error, bad_json}, ?NIF:json_decode(<<"77e777">>)),
    ?assertEqual({error, bad_json}, ?NIF:json_decode(<<"{\"quantity\":[-1e999]}">>)),
    ?assertMatch(#{abi := _, transfers_started := _, transfers_active := _, connections_opened := _,
                   module_refs := _}, ?NIF:info()),
    {ok, {C, _}} = client_new(#{}),
    ?assertEqual(#{token_requests => 0, in_flight => 0, retries => 0, token_obtained_at => 0}, ?NIF:client_stats(C)).

%% A batch's answer is read on a normal scheduler within a small budget: an answer far larger than
%% 25 items is one the meter cannot read (its hours retried as possibly taken, with an alarm), not
%% one it walks whole; more than a batch's hours is refused before it is walked.
usage_answer_bounds_test() ->
    Hour = #{subscription_id => <<"sub-1">>, dimension => <<"gb">>, hour => 1764756000, reported => 7000000,
             plan_id => <<"payg">>, attempts => 0, outcome_unknown => false, state => linked},
    Facts = #{step => batch, hours => [Hour], now => 1764763200},
    Item = #{<<"status">> => <<"Accepted">>, <<"resourceId">> => <<"sub-1">>, <<"dimension">> => <<"gb">>,
             <<"effectiveStartTime">> => <<"2025-12-03T10:00:00Z">>, <<"quantity">> => 7},
    ?assertMatch({[#{outcome := done}], 0}, ?NIF:usage_answer(Facts, {ok, #{<<"result">> => [Item]}})),
    Huge = {ok, #{<<"result">> => lists:duplicate(30000, Item)}},
    ?assertMatch({[#{outcome := retry, outcome_unknown := true, alarm := true, reason := bad_response}], 0},
                 ?NIF:usage_answer(Facts, Huge)),
    ?assertError({badarg, hours}, ?NIF:usage_answer(Facts#{hours => lists:duplicate(26, Hour)},
                                                    {ok, #{<<"result">> => []}})).
