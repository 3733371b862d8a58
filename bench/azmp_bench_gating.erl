%% Gating decisions per second through the public API, and their latency, with ?CALLERS caller
%% processes at once: the link's state read (Mnesia's replica on this node) + the C++ decision, and the
%% platform asked how the account pays when the decision depends on it. Printed next to the bare NIF
%% decision measured in the same run and the same way (the baseline: what gathering the facts costs
%% on top).
-module(azmp_bench_gating).

-export([main/0]).


-define(CALLERS, 64).
-define(CALLS, 640000).
-define(ACCOUNTS, 1000).

main() ->
    Emu = azmp_test_env:start_emulator(),
    Plugin = azmp_test_env:start_plugin(Emu, #{http => disabled}),
    try run() after
        azmp_test_env:stop_plugin(Plugin),
        azmp_test_env:stop_emulator(Emu)
    end.

run() ->
    io:format("~n== Gating decisions, ~B callers (~B calls, ~B accounts in Mnesia)~n", [?CALLERS, ?CALLS, ?ACCOUNTS]),
    States = [linked, suspended, unsubscribed],
    Accounts = [begin
                    A = <<"bench-", (integer_to_binary(N))/binary>>,
                    link_in_state(A, lists:nth(1 + N rem 3, States)),
                    A
                end || N <- lists:seq(1, ?ACCOUNTS)],
    Tuple = list_to_tuple(Accounts ++ [<<"bench-unlinked">>]),
    Now = erlang:system_time(second),
    Deployment = #{id => <<"d">>, trial => true, trial_ends_at => Now + 3600, state => running},
    Api = fun(I) ->
        A = element(1 + I rem tuple_size(Tuple), Tuple),
        case I band 1 of
            0 -> emqx_azure_marketplace:can_create_deployment(A, #{trial => false});
            1 -> emqx_azure_marketplace:deployment_action(A, Deployment, Now)
        end
    end,
    Bare = fun(I) ->
        case I band 1 of
            0 -> emqx_azure_marketplace_nif:gate_create(linked, false, unknown);
            1 -> emqx_azure_marketplace_nif:gate_deployment(suspended, Deployment, Now, undefined, unknown)
        end
    end,
    _ = measure(Bare, 64000),
    _ = measure(Api, 64000),
    %% Alternated, twice each, so that both see the same drift in machine load; the best of each.
    [{B1, _, _} = Bare1, {A1, _, _} = Api1, {B2, _, _} = Bare2, {A2, _, _} = Api2] =
        [measure(F, ?CALLS) || F <- [Bare, Api, Bare, Api]],
    {BareRate, BareP50, BareP99} = case B1 >= B2 of true -> Bare1; false -> Bare2 end,
    {ApiRate, ApiP50, ApiP99} = case A1 >= A2 of true -> Api1; false -> Api2 end,
    io:format("  ~-44s ~12s ~10s ~10s~n", ["", "decisions/s", "p50 us", "p99 us"]),
    io:format("  ~-44s ~12B ~10.2f ~10.2f~n", ["public API (link read + C++ decision)", ApiRate, ApiP50, ApiP99]),
    io:format("  ~-44s ~12B ~10.2f ~10.2f~n", ["bare NIF decision (baseline)", BareRate, BareP50, BareP99]),
    io:format("  >> public API / bare NIF throughput = ~.2f~n", [ApiRate / BareRate]),
    io:format("  (runs: bare ~B / ~B, API ~B / ~B decisions/s; 1 decision in 6 asks the platform how the account pays)~n",
              [B1, B2, A1, A2]),
    io:format("  >> target: at least 1000000/s through the API with ~B callers: ~s (~B)~n",
              [?CALLERS, yes_no(ApiRate >= 1000000), ApiRate]),
    ok.

%% Runs F(I) for I in 1..N spread over ?CALLERS processes released at once: the rate over the
%% whole run (release to the last caller done), and p50/p99 of single calls (timed one by one on
%% every 10th call, so the timing itself weighs little on the rate).
measure(F, N) ->
    Self = self(),
    Per = N div ?CALLERS,
    Pids = [spawn_link(fun() ->
                receive go -> ok end,
                Self ! {done, self(), loop(F, C * Per + 1, (C + 1) * Per, [])}
            end) || C <- lists:seq(0, ?CALLERS - 1)],
    T0 = erlang:monotonic_time(nanosecond),
    _ = [P ! go || P <- Pids],
    Samples = lists:append([receive {done, P, S} -> S end || P <- Pids]),
    T1 = erlang:monotonic_time(nanosecond),
    Sorted = lists:sort(Samples),
    Len = length(Sorted),
    Pct = fun(Q) -> lists:nth(max(1, round(Q * Len)), Sorted) / 1000 end,
    {round(Per * ?CALLERS / ((T1 - T0) / 1.0e9)), Pct(0.50), Pct(0.99)}.

loop(_F, I, N, Acc) when I > N -> Acc;
loop(F, I, N, Acc) when I rem 10 =:= 0 ->
    T0 = erlang:monotonic_time(nanosecond),
    _ = F(I),
    loop(F, I + 1, N, [erlang:monotonic_time(nanosecond) - T0 | Acc]);
loop(F, I, N, Acc) ->
    _ = F(I),
    loop(F, I + 1, N, Acc).

yes_no(true) -> "yes";
yes_no(false) -> "no".

%% A link in State, made through the store as the linker makes one (then moved by a plan without effects).
link_in_state(A, State) ->
    Now = erlang:system_time(second),
    none = emqx_azure_marketplace_store_jobs:commit_linked(A, <<"sub-", A/binary>>, #{plan_id => <<"payg">>, quantity => undefined}, [], Now),
    case State of
        linked -> ok;
        _ -> {changed, linked, _, none} = emqx_azure_marketplace_store_links:transition(
                 A, fun(F) -> {ok, F#{state := State}, []} end, #{}, undefined, Now)
    end,
    ok.
