%% `make soak': a plugin node doing linking, landings, webhooks and metering against the emulator
%% is SIGKILLed at random moments (AZMP_SOAK_KILLS times, 50 by default) and restarted each time.
%% Afterwards: every subscription was activated at most once (exactly once when linked), every
%% acknowledged link and landing survived, no trial was stopped twice, and Azure holds exactly the
%% usage the node acknowledged (to the micro-unit). Bounded: every step has a timeout.
-module(azmp_soak).

-export([main/0]).

-define(MEM, azmp_test_platform).
-define(M, emqx_azure_marketplace).
-define(DIM, <<"sessions">>).
-define(H, 3600).

main() ->
    logger:set_primary_config(level, error),
    T0 = erlang:monotonic_time(millisecond),
    try run() of
        Figures ->
            io:format("~nsoak passed in ~.1f s: ~p~n", [(erlang:monotonic_time(millisecond) - T0) / 1000, Figures]),
            halt(0)
    catch
        C:E:St ->
            io:format("~nSOAK FAILED ~p:~p~n~p~n", [C, E, St]),
            halt(1)
    end.

run() ->
    azmp_test_peer:ensure_distributed(),
    Emu = azmp_test_env:start_emulator(#{dimensions => [?DIM]}),
    {ok, _} = ?MEM:start(),
    ok = ?MEM:reset(),
    Azure = azmp_test_env:client_config(Emu, #{transport => https, timeout_ms => 3000,
                                               retry => #{max_attempts => 2, base_delay_ms => 10, max_delay_ms => 50}}),
    Env = #{azure => Azure, platform => ?MEM, clock => azmp_test_clock, http => #{port => 0}, tick_ms => 100,
            deadline_tick_ms => 200, retry_base_s => 1, retry_max_s => 2, lease_s => 3, jwks_refresh_interval_s => 0,
            effects_sweep_ms => 500, reconcile_interval_ms => 2000,
            metering => #{dimensions => [#{id => ?DIM, unit => <<"unit">>}], grace_s => 300, tick_ms => 1000,
                          lease_s => 2}},
    Name = list_to_atom("azmp_soak_" ++ os:getpid()),
    Dir = filename:join("/tmp", "azmp_soak_mnesia_" ++ os:getpid()),
    _ = file:del_dir_r(Dir),
    Acks = ets:new(acks, [public, bag]),
    Node0 = azmp_test_peer:start_node(Name, Dir, Env, none),
    Kills = list_to_integer(os:getenv("AZMP_SOAK_KILLS", "50")),
    Node = lists:foldl(fun(K, N) -> round(K, N, Name, Dir, Env, Emu, Acks) end, Node0, lists:seq(1, Kills)),
    try
        check(maps:get(node, Node), Emu, Acks, Kills)
    after
        azmp_test_peer:stop_node(Node),
        _ = file:del_dir_r(Dir),
        azmp_test_env:stop_emulator(Emu)
    end.

%% Work for a random while, kill -9, restart.
round(K, #{node := N} = Node, Name, Dir, Env, Emu, Acks) ->
    Worker = spawn(fun() -> work(N, Emu, Acks) end),
    timer:sleep(300 + rand:uniform(1200)),
    azmp_test_peer:kill9(N),
    exit(Worker, kill),
    catch peer:stop(maps:get(peer, Node)),
    true = azmp_test_env:wait_until(fun() -> not azmp_test_peer:epmd_has(Name) end, 10000),
    K rem 10 =:= 0 andalso io:format("  ~B kills~n", [K]),
    azmp_test_peer:start_node(Name, Dir, Env, none).

rpc(N, M, F, A) -> erpc:call(N, M, F, A, 5000).

%% Random operations; what the node acknowledged is written down.
work(N, Emu, Acks) ->
    try
        op(rand:uniform(10), N, Emu, Acks)
    catch
        _:_ -> ok  % the node died under us: nothing acknowledged
    end,
    work(N, Emu, Acks).

op(R, N, Emu, Acks) when R =< 2 ->
    A = account(),
    {ok, #{id := Sub, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    Now = rpc(N, emqx_azure_marketplace_clock, now, []),
    ok = ?MEM:add_deployment(A, #{id => <<A/binary, "-trial">>, trial => true, trial_ends_at => Now + 2}),
    case rpc(N, ?M, link, [A, {token, Token}]) of
        ok -> ets:insert(Acks, {link, A, Sub});
        _ -> ok
    end;
op(3, N, Emu, Acks) ->
    {ok, #{id := Sub, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    Port = rpc(N, emqx_azure_marketplace_app, http_port, []),
    Url = "http://127.0.0.1:" ++ integer_to_list(Port) ++ "/azure/landing?" ++
              uri_string:compose_query([{"token", binary_to_list(Token)}]),
    case httpc:request(get, {Url, []}, [{timeout, 5000}], [{body_format, binary}]) of
        {ok, {{_, 200, _}, _, Body}} ->
            {ok, #{<<"landing_id">> := Id}} = emqx_azure_marketplace_nif:json_decode(Body),
            ets:insert(Acks, {landing, Id, Sub});
        _ ->
            ok
    end;
op(R, N, _Emu, Acks) when R =< 8 ->
    case linked(N, Acks) of
        {A, Sub} ->
            Now = rpc(N, emqx_azure_marketplace_clock, now, []),
            Q = rand:uniform(1000),
            Src = integer_to_binary(erlang:unique_integer([positive])),
            case rpc(N, ?M, record_usage, [A, #{dimension => ?DIM, quantity => <<(integer_to_binary(Q))/binary, ".5">>,
                                                at => Now * 1000, source_id => Src}]) of
                ok -> ets:insert(Acks, {usage, Sub, Q * 1000000 + 500000});
                _ -> ok
            end;
        none ->
            ok
    end;
op(_, N, Emu, Acks) ->
    case linked(N, Acks) of
        {_A, Sub} ->
            Action = lists:nth(rand:uniform(3), ['Suspend', 'Reinstate', 'Unsubscribe']),
            Port = rpc(N, emqx_azure_marketplace_app, http_port, []),
            Url = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/azure/webhook"]),
            _ = azmp_emulator:send_webhook(Emu, Url, Action, Sub, #{timeout_ms => 5000});
        none ->
            ok
    end.

account() -> A = list_to_binary("soak-" ++ integer_to_list(erlang:unique_integer([positive]))), ok = ?MEM:add_account(A, #{}), A.

%% A linked (or suspended) account, at random.
linked(N, Acks) ->
    Links = ets:lookup(Acks, link),
    case Links of
        [] -> none;
        _ ->
            {link, A, Sub} = lists:nth(rand:uniform(length(Links)), Links),
            case rpc(N, ?M, link_status, [A]) of
                #{status := S} when S =:= linked; S =:= suspended -> {A, Sub};
                _ -> none
            end
    end.

check(N, Emu, Acks, Kills) ->
    Links = [{A, Sub} || {link, A, Sub} <- ets:lookup(Acks, link)],
    Status = fun(A) -> maps:get(status, rpc(N, ?M, link_status, [A])) end,
    %% Azure and the plugin agree again: whatever Azure suspended is reinstated, and the periodic
    %% reconciliation repairs what a kill cut short (a webhook answered 503).
    [azmp_emulator:send_webhook(Emu, webhook_url(N), 'Reinstate', Sub, #{})
     || {_, Sub} <- Links, {ok, #{status := <<"Suspended">>}} <- [azmp_emulator:subscription(Emu, Sub)]],
    Agreed = fun() ->
        lists:all(fun({A, Sub}) ->
                      {ok, #{status := Az}} = azmp_emulator:subscription(Emu, Sub),
                      case {Status(A), Az} of
                          {linked, <<"Subscribed">>} -> true;
                          {unsubscribed, <<"Unsubscribed">>} -> true;
                          {failed, _} -> true;
                          _ -> false
                      end
                  end, Links)
    end,
    true = azmp_test_env:wait_until(Agreed, 60000),
    Statuses = [{A, Sub, Status(A)} || {A, Sub} <- Links],
    %% 1. Every subscription activated at most once; exactly once when its link holds.
    Activations = fun(Sub) -> {ok, #{activations := X}} = azmp_emulator:subscription(Emu, Sub), X end,
    [] = [{Sub, S, Activations(Sub)} || {_, Sub, S} <- Statuses,
                                       not (Activations(Sub) =:= 1 orelse (S =:= failed andalso Activations(Sub) =:= 0))],
    %% 2. Every acknowledged landing survived.
    Landings = [Id || {landing, Id, _} <- ets:lookup(Acks, landing)],
    [] = [Id || Id <- Landings, rpc(N, emqx_azure_marketplace_store, landing, [Id]) =:= undefined],
    %% 3. Every cancelled account's trial was stopped once (by the cancellation or its deadline).
    Cancelled = [A || {A, _, unsubscribed} <- Statuses],
    StopsOf = fun(A) -> length([x || {stop, A1, D} <- ?MEM:log(), A1 =:= A, D =:= <<A/binary, "-trial">>]) end,
    true = azmp_test_env:wait_until(fun() -> lists:all(fun(A) -> StopsOf(A) >= 1 end, Cancelled) end, 30000),
    [] = [{A, StopsOf(A)} || A <- Cancelled, StopsOf(A) =/= 1],
    %% 4. Usage: every hour closes and goes out; the ledger holds every acknowledged sample and
    %% equals what Azure holds.
    Shift = 2 * ?H + 400,
    ok = rpc(N, azmp_test_clock, advance, [Shift]),
    ok = azmp_emulator:set_clock_offset(Emu, Shift),
    Ledger = fun() -> rpc(N, emqx_azure_marketplace_store, usage_all, []) end,
    Unfinished = fun() -> [R || R = #{status := S} <- Ledger(), lists:member(S, [open, pending, submitting, held])] end,
    true = azmp_test_env:wait_until(fun() -> _ = rpc(N, emqx_azure_marketplace_meter, run_now, []), Unfinished() =:= [] end,
                                    60000),
    Sum = fun(Pairs) -> lists:foldl(fun({K, Q}, M) -> maps:update_with(K, fun(X) -> X + Q end, Q, M) end, #{}, Pairs) end,
    Acked = Sum([{Sub, Q} || {usage, Sub, Q} <- ets:lookup(Acks, usage)]),
    Recorded = Sum([{Sub, R} || #{subscription_id := Sub, recorded := R} <- Ledger()]),
    %% (A sample may be on disc and its `ok' lost with the node: recorded, not acknowledged.)
    Lost = [{Sub, Q, maps:get(Sub, Recorded, 0)} || {Sub, Q} <- maps:to_list(Acked), Q > maps:get(Sub, Recorded, 0)],
    [] = Lost,
    Unacked = lists:sum([R - maps:get(Sub, Acked, 0) || {Sub, R} <- maps:to_list(Recorded)]),
    Billed = Sum([{Sub, R} || #{subscription_id := Sub, status := done, reported := R} <- Ledger(), R > 0]),
    Azure = Sum([{Sub, element(2, emqx_azure_marketplace_nif:usage_quantity(Q))}
                 || #{resource_id := Sub, quantity := Q} <- azmp_emulator:usage(Emu)]),
    Billed = maps:with(maps:keys(Billed), Azure),
    Dropped = [R || R = #{status := dropped} <- Ledger()],
    #{kills => Kills, links => length(Links), linked => length([x || {_, _, linked} <- Statuses]),
      cancelled => length(Cancelled), failed => length([x || {_, _, failed} <- Statuses]),
      landings => length(Landings), usage_samples => length(ets:lookup(Acks, usage)),
      usage_hours_billed => length([x || #{status := done} <- Ledger()]), usage_hours_dropped => length(Dropped),
      usage_recorded_not_acknowledged_micros => Unacked}.

webhook_url(N) ->
    iolist_to_binary(["http://127.0.0.1:", integer_to_list(rpc(N, emqx_azure_marketplace_app, http_port, [])),
                      "/azure/webhook"]).
