%% Gating decisions per second, and their latency, on one scheduler: one process calling the public
%% API (Mnesia read of the link + the C++ decision) in a loop. Printed next to the bare NIF decision
%% measured in the same run (the baseline: what the state lookup costs on top).
-module(azmp_bench_gating).

-export([main/0]).


-define(CALLS, 300000).
-define(ACCOUNTS, 1000).

main() ->
    Emu = azmp_test_env:start_emulator(),
    Plugin = azmp_test_env:start_plugin(Emu, #{http => disabled}),
    try run() after
        azmp_test_env:stop_plugin(Plugin),
        azmp_test_env:stop_emulator(Emu)
    end.

run() ->
    io:format("~n== Gating decisions on one scheduler (~B calls, ~B accounts in Mnesia)~n", [?CALLS, ?ACCOUNTS]),
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
    _ = measure(Bare, 20000),
    _ = measure(Api, 20000),
    {BareRate, BareP50, BareP99} = measure(Bare, ?CALLS),
    {ApiRate, ApiP50, ApiP99} = measure(Api, ?CALLS),
    io:format("  ~-44s ~12s ~10s ~10s~n", ["", "decisions/s", "p50 us", "p99 us"]),
    io:format("  ~-44s ~12B ~10.2f ~10.2f~n", ["public API (Mnesia read + C++ decision)", ApiRate, ApiP50, ApiP99]),
    io:format("  ~-44s ~12B ~10.2f ~10.2f~n", ["bare NIF decision (baseline)", BareRate, BareP50, BareP99]),
    io:format("  >> public API / bare NIF throughput = ~.2f~n", [ApiRate / BareRate]),
    io:format("  >> target: at least 200000/s: ~s (~B); p99 under 50 us: ~s (~.2f)~n",
              [yes_no(ApiRate >= 200000), ApiRate, yes_no(ApiP99 < 50), ApiP99]),
    ok.

%% Runs F(I) for I in 1..N in this process: rate over the whole run, and p50/p99 of single calls
%% (timed one by one on every 10th call, so the timing itself weighs little on the rate).
measure(F, N) ->
    T0 = erlang:monotonic_time(nanosecond),
    Samples = loop(F, 1, N, []),
    T1 = erlang:monotonic_time(nanosecond),
    Sorted = lists:sort(Samples),
    Len = length(Sorted),
    P = fun(Q) -> lists:nth(max(1, round(Q * Len)), Sorted) / 1000 end,
    {round(N / ((T1 - T0) / 1.0e9)), P(0.50), P(0.99)}.

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
