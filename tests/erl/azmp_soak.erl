%% `make soak': a plugin node doing linking, landings, webhooks and metering against the emulator
%% is SIGKILLed at random moments (AZMP_SOAK_KILLS times, 50 by default) and restarted each time.
%% The metering meets its edges meanwhile: replies lost after Azure accepted a batch, samples
%% arriving late (carried) or timed in the future (refused), plans changed in Azure without the
%% plugin hearing of it (a ChangePlan deferred by a 503), cancellations mid-hour followed by late
%% samples timed before them; and, before the end, a 25-hour outage of Azure's metering following
%% the accepted batches. Afterwards: every subscription was activated at most once (exactly once
%% when linked), every acknowledged link and landing survived, no trial was stopped twice, every
%% hour is settled, and Azure holds exactly what was recorded above the plan's included quantity, per
%% subscription and dimension (to the micro-unit, by a model of the rules written here), nothing
%% acknowledged lost, and per subscription and hour of the dimension without an included quantity
%% for every hour nothing was carried out of or into. Bounded: every step has a timeout.
-module(azmp_soak).

-export([main/0]).

-define(MEM, azmp_test_platform).
-define(M, emqx_azure_marketplace).
-define(DIM, <<"sessions">>).
%% A dimension whose plan includes a quantity per term: what Azure is told is only the excess.
-define(INC_DIM, <<"minutes">>).
-define(INCLUDED, 1000).
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
    Emu = azmp_test_env:start_emulator(#{dimensions => [?DIM, ?INC_DIM]}),
    {ok, _} = ?MEM:start(),
    ok = ?MEM:reset(),
    Azure = azmp_test_env:client_config(Emu, #{transport => https, timeout_ms => 3000,
                                               retry => #{max_attempts => 2, base_delay_ms => 10, max_delay_ms => 50}}),
    Env = #{azure => Azure, platform => ?MEM, clock => azmp_test_clock, http => #{port => 0}, tick_ms => 100,
            deadline_tick_ms => 200, retry_base_s => 1, retry_max_s => 2, lease_s => 3, jwks_refresh_interval_s => 0,
            effects_sweep_ms => 500, reconcile_interval_ms => 2000,
            metering => #{dimensions => [#{id => ?DIM, unit => <<"unit">>},
                                         #{id => ?INC_DIM, unit => <<"minute">>, included => #{<<"payg">> => ?INCLUDED}}],
                          grace_s => 300, tick_ms => 1000,
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
op(R, N, _Emu, Acks) when R =< 7 ->
    case linked(N, Acks) of
        {A, Sub} ->
            Now = rpc(N, emqx_azure_marketplace_clock, now, []),
            %% Mostly now; sometimes late (up to 3 h: carried when its hour has closed), sometimes
            %% more than the skew ahead (refused: never acknowledged).
            {At, Future} = case rand:uniform(10) of
                               1 -> {Now - rand:uniform(3 * ?H), false};
                               2 -> {Now + 301 + rand:uniform(?H), true};
                               _ -> {Now, false}
                           end,
            Q = rand:uniform(1000),
            Dim = lists:nth(rand:uniform(2), [?DIM, ?INC_DIM]),
            Src = integer_to_binary(erlang:unique_integer([positive])),
            case rpc(N, ?M, record_usage, [A, #{dimension => Dim, quantity => <<(integer_to_binary(Q))/binary, ".5">>,
                                                at => At * 1000, source_id => Src}]) of
                ok when Future -> error({future_sample_acknowledged, A, At, Now});
                ok -> ets:insert(Acks, {usage, Sub, Dim, At div ?H * ?H, Q * 1000000 + 500000});
                _ -> ok
            end;
        none ->
            ok
    end;
op(8, N, Emu, Acks) ->
    %% Azure takes the next batch and its reply is lost; or a plan changes in Azure, unheard of.
    case rand:uniform(2) of
        1 ->
            azmp_emulator:inject(Emu, batch_usage_event, [{lost_reply, 0}]);
        2 ->
            case linked(N, Acks) of
                {_A, Sub} ->
                    {ok, #{plan_id := P}} = azmp_emulator:subscription(Emu, Sub),
                    ets:insert(Acks, {plan_changed, Sub}),
                    azmp_emulator:set_plan(Emu, Sub, case P of <<"payg">> -> <<"payg-premium">>; _ -> <<"payg">> end);
                none ->
                    ok
            end
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
    [] = [Id || Id <- Landings, rpc(N, emqx_azure_marketplace_store_landings, landing, [Id]) =:= undefined],
    %% 3. Every cancelled account's trial was stopped once (by the cancellation or its deadline):
    %% it went from running to stopped once. (A call made again after a kill, to a stopped
    %% deployment, changes nothing: effects are performed at least once.)
    Cancelled = [A || {A, _, unsubscribed} <- Statuses],
    StopsOf = fun(A) -> length([x || {stopped, A1, D} <- ?MEM:log(), A1 =:= A, D =:= <<A/binary, "-trial">>]) end,
    true = azmp_test_env:wait_until(fun() -> lists:all(fun(A) -> StopsOf(A) >= 1 end, Cancelled) end, 30000),
    [] = [{A, StopsOf(A)} || A <- Cancelled, StopsOf(A) =/= 1],
    %% 4. Usage. Azure's metering is down for 25 hours after the batches it accepted (the answers
    %% of some of them lost): every hour closes, and whatever Azure now refuses as Expired is looked
    %% up before it is carried. Then every hour goes out; the ledger holds every acknowledged sample
    %% and equals what Azure holds.
    ok = azmp_emulator:inject(Emu, batch_usage_event, lists:duplicate(100000, {status, 503})),
    Shift = fun(S) -> ok = rpc(N, azmp_test_clock, advance, [S - rpc(N, azmp_test_clock, now, []) +
                                                             erlang:system_time(second)]),
                      ok = azmp_emulator:set_clock_offset(Emu, S)
            end,
    [begin Shift(K * ?H), _ = rpc(N, azmp_test_run, meter_pass, []) end || K <- lists:seq(1, 25)],
    ok = azmp_emulator:clear_faults(Emu, batch_usage_event),
    Ledger = fun() -> rpc(N, azmp_test_store, usage_all, []) end,
    Unfinished = fun() -> [R || R = #{status := S} <- Ledger(),
                                lists:member(S, [open, pending, submitting, held, lookup, check])] end,
    Finish = fun(K) -> Shift(K * ?H + 400),
                       true = azmp_test_env:wait_until(fun() -> _ = rpc(N, azmp_test_run, meter_pass, []),
                                                                Unfinished() =:= [] end, 20000)
             end,
    %% (Retries back off up to an hour: a few more hours see everything out.)
    _ = lists:foldl(fun(K, false) -> (catch Finish(K)) =:= true; (_, true) -> true end, false, lists:seq(26, 30)),
    [] = [maps:with([subscription_id, hour, status, reason, outcome_unknown, next_attempt_at], R) || R <- Unfinished()],
    Sum = fun(Pairs) -> lists:foldl(fun({K, Q}, M) -> maps:update_with(K, fun(X) -> X + Q end, Q, M) end, #{}, Pairs) end,
    Acked = Sum([{{Sub, D}, Q} || {usage, Sub, D, _Hour, Q} <- ets:lookup(Acks, usage)]),
    Recorded = Sum([{{Sub, D}, R} || #{subscription_id := Sub, dimension := D, recorded := R} <- Ledger()]),
    %% (A sample may be on disc and its `ok' lost with the node: recorded, not acknowledged.)
    Lost = [{K, Q, maps:get(K, Recorded, 0)} || {K, Q} <- maps:to_list(Acked), Q > maps:get(K, Recorded, 0)],
    [] = Lost,
    Unacked = lists:sum([R - maps:get(K, Acked, 0) || {K, R} <- maps:to_list(Recorded)]),
    Billed = Sum([{{Sub, D}, R} || #{subscription_id := Sub, dimension := D, status := done, reported := R} <- Ledger(),
                                   R > 0]),
    Azure = Sum([{{Sub, D}, element(2, emqx_azure_marketplace_nif:usage_quantity(Q))}
                 || #{resource_id := Sub, dimension := D, quantity := Q} <- azmp_emulator:usage(Emu)]),
    Billed = maps:with(maps:keys(Billed), Azure),
    %% Held-out audit, by a model of the rules written here, not the plugin's: Azure holds, per
    %% subscription and dimension, what was recorded above the quantity the plan includes per term
    %% (these links stay on the plan they were activated with, in their first term); carries move
    %% usage between hours, never in or out. Not for the subscriptions with an hour Azure refused
    %% for good (usage after a cancellation the plugin learnt late, by reconciliation), nor those
    %% whose plan changed in Azure (the plan an hour closes with then depends on when the plugin
    %% heard of it; Azure holds what the ledger billed, checked above).
    Unaudited = maps:from_list([{Sub, true} || #{subscription_id := Sub, status := S} <- Ledger(),
                                             S =:= dropped orelse S =:= rejected]
                             ++ [{Sub, true} || {plan_changed, Sub} <- ets:lookup(Acks, plan_changed)]),
    Included = fun(?INC_DIM) -> ?INCLUDED * 1000000; (_) -> 0 end,
    Audit = [{K, R, Expected, maps:get(K, Azure, 0)}
             || {K = {Sub, D}, R} <- maps:to_list(Recorded), not is_map_key(Sub, Unaudited),
                Expected <- [max(0, R - Included(D))], Expected =/= maps:get(K, Azure, 0)],
    [] = Audit,
    %% ...and per subscription and hour of the dimension without an included quantity, for the
    %% hours nothing was carried out of or into.
    Moved = maps:from_list([{{Sub, H}, true} || #{subscription_id := Sub, dimension := ?DIM, hour := H, carried_in := In,
                                                  carried_out := Out} <- Ledger(), In =/= [] orelse Out =/= undefined]
                           ++ [{{Sub, From}, true} || #{subscription_id := Sub, dimension := ?DIM, carried_in := In}
                                                          <- Ledger(), {From, _, _} <- In]),
    AckedHours = Sum([{{Sub, H}, Q} || {usage, Sub, ?DIM, H, Q} <- ets:lookup(Acks, usage),
                                       not is_map_key({Sub, H}, Moved), not is_map_key(Sub, Unaudited)]),
    AzureHours = Sum([{{Sub, H}, element(2, emqx_azure_marketplace_nif:usage_quantity(Q))}
                      || #{resource_id := Sub, dimension := ?DIM, hour := H, quantity := Q} <- azmp_emulator:usage(Emu)]),
    [] = [{K, Q, maps:get(K, AzureHours, 0)} || {K, Q} <- maps:to_list(AckedHours), Q > maps:get(K, AzureHours, 0)],
    Dropped = [R || R = #{status := dropped} <- Ledger()],
    #{kills => Kills, links => length(Links), linked => length([x || {_, _, linked} <- Statuses]),
      cancelled => length(Cancelled), failed => length([x || {_, _, failed} <- Statuses]),
      landings => length(Landings), usage_samples => length(ets:lookup(Acks, usage)),
      usage_hours_billed => length([x || #{status := done} <- Ledger()]), usage_hours_dropped => length(Dropped),
      usage_hours_carried => length([x || #{status := carried} <- Ledger()]),
      usage_hours_found_in_usage_events => length([x || #{reason := found_in_usage_events} <- Ledger()]),
      usage_events_on_a_changed_plan => length([x || #{plan_id := <<"payg-premium">>} <- azmp_emulator:usage(Emu)]),
      usage_recorded_not_acknowledged_micros => Unacked,
      usage_audited_subscription_dimensions => map_size(Recorded) - length([x || {{Sub, _}, _} <- maps:to_list(Recorded),
                                                                                is_map_key(Sub, Unaudited)]),
      usage_included_absorbed_micros => lists:sum([min(R, Included(D)) || {{_, D}, R} <- maps:to_list(Recorded)])}.

webhook_url(N) ->
    iolist_to_binary(["http://127.0.0.1:", integer_to_list(rpc(N, emqx_azure_marketplace_app, http_port, [])),
                      "/azure/webhook"]).
