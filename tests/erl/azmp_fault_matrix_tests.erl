%% Every injected fault x a read, an activation and a usage batch: retried to success when it is
%% transient, a clear error once the retry limit is reached, and never a duplicate side effect.
-module(azmp_fault_matrix_tests).

-include_lib("eunit/include/eunit.hrl").

-define(C, emqx_azure_marketplace_client).
-define(ATTEMPTS, 3).

-define(FAULTS, [
    {status, 429},
    {status, 429, 1},
    {status, 500},
    {status, 503},
    reset,
    {stall, 200},
    truncated
]).

matrix_test_() ->
    {setup, fun azmp_test_env:start_emulator/0, fun azmp_test_env:stop_emulator/1, fun(Emu) ->
        [
            {lists:flatten(io_lib:format("~p on ~p: ~p", [F, Op, Outcome])),
             {timeout, 30, fun() -> run(Emu, F, Op, Outcome) end}}
         || F <- ?FAULTS, Op <- [get_subscription, activate, batch_usage_event], Outcome <- [recovers, exhausts]
        ] ++
            [
                {"malformed 200 on a read is a bad_response, not retried", fun() -> malformed_read(Emu) end},
                {"token endpoint 503 then success", fun() -> token_fault(Emu) end},
                {"a stall longer than timeout_ms is a timeout", fun() -> stall_timeout(Emu) end}
            ]
    end}.

run(Emu, Fault, Op, Outcome) ->
    C = azmp_test_env:client(Emu, #{
        transport => http,
        retry => #{max_attempts => ?ATTEMPTS, base_delay_ms => 5, max_delay_ms => 20, max_retry_after_ms => 1500}
    }),
    {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = ?C:activate(C, SubId, <<"payg">>, undefined),
    Count =
        case Outcome of
            recovers -> ?ATTEMPTS - 1;
            %% libcurl itself resends a request once when a reused connection dies before any
            %% answer (reset, or closed after a stall): such faults can take two per attempt.
            exhausts when Fault =:= reset; element(1, Fault) =:= stall -> 2 * ?ATTEMPTS;
            exhausts -> ?ATTEMPTS
        end,
    ok = azmp_emulator:inject(Emu, Op, lists:duplicate(Count, Fault)),
    Result = call(C, Op, SubId),
    ok = azmp_emulator:clear_faults(Emu, Op),
    case Outcome of
        recovers -> check_success(Emu, C, Op, SubId, Result);
        exhausts -> check_error(Fault, Result)
    end.

call(C, get_subscription, SubId) -> ?C:get_subscription(C, SubId);
call(C, activate, SubId) -> ?C:activate(C, SubId, <<"payg">>, undefined);
call(C, batch_usage_event, SubId) -> ?C:post_usage_batch(C, [event(SubId)]).

event(SubId) ->
    {{Y, Mo, D}, {H, _, _}} = calendar:universal_time(),
    #{resource_id => SubId, dimension => <<"sessions">>, quantity => 1,
      effective_start_time => {{Y, Mo, D}, {H, 0, 0}}, plan_id => <<"payg">>}.

check_success(Emu, _C, get_subscription, SubId, Result) ->
    ?assertMatch({ok, #{<<"id">> := SubId}}, Result),
    ?assertMatch({ok, #{activations := 1}}, azmp_emulator:subscription(Emu, SubId));
check_success(Emu, _C, activate, SubId, Result) ->
    ?assertEqual(ok, Result),
    %% The first activation plus exactly one more that went through: faulted attempts had no effect.
    ?assertMatch({ok, #{activations := 2}}, azmp_emulator:subscription(Emu, SubId));
check_success(_Emu, C, batch_usage_event, SubId, Result) ->
    ?assertMatch({ok, #{<<"result">> := [#{<<"status">> := <<"Accepted">>}]}}, Result),
    %% Accepted once: posting it again is a duplicate.
    ?assertMatch({ok, #{<<"result">> := [#{<<"status">> := <<"Duplicate">>}]}},
                 ?C:post_usage_batch(C, [event(SubId)])).

check_error({status, S}, Result) -> ?assertMatch({error, {http, S, _}}, Result);
check_error({status, S, _}, Result) -> ?assertMatch({error, {http, S, _}}, Result);
check_error(reset, Result) -> ?assertMatch({error, {transport, _}}, Result);
check_error(truncated, Result) -> ?assertMatch({error, {transport, _}}, Result);
check_error({stall, _}, {error, timeout}) -> ok;
check_error({stall, _}, Result) -> ?assertMatch({error, {transport, _}}, Result).

malformed_read(Emu) ->
    C = azmp_test_env:client(Emu, #{transport => http}),
    {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = azmp_emulator:inject(Emu, get_subscription, [malformed]),
    ?assertMatch({error, {bad_response, _}}, ?C:get_subscription(C, SubId)),
    ?assertMatch({ok, _}, ?C:get_subscription(C, SubId)).

token_fault(_) ->
    %% An emulator of its own: no token is cached yet for its login URL.
    Emu = azmp_test_env:start_emulator(),
    try
        C = azmp_test_env:client(Emu, #{transport => http}),
        {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu, #{}),
        ok = azmp_emulator:inject(Emu, token, [{status, 503}, {status, 500}]),
        ?assertMatch({ok, _}, ?C:get_subscription(C, SubId)),
        ?assertMatch(#{token_requests := 3}, ?C:stats(C)),
        ?assertEqual(3, maps:get(token_requests, azmp_emulator:stats(Emu)))
    after
        azmp_test_env:stop_emulator(Emu)
    end.

stall_timeout(Emu) ->
    C = azmp_test_env:client(Emu, #{transport => http, timeout_ms => 400}),
    {ok, #{id := SubId}} = azmp_emulator:add_subscription(Emu, #{}),
    {ok, _} = ?C:get_subscription(C, SubId),
    ok = azmp_emulator:inject(Emu, get_subscription, [{stall, 3000}]),
    Result = ?C:get_subscription(C, SubId),
    ok = azmp_emulator:clear_faults(Emu, get_subscription),
    ?assertEqual({error, timeout}, Result).
