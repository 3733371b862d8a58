%% Fulfillment reconciliation at 100,000 subscriptions (issue 17, part 1): the emulator (on a node
%% of its own, its own OS process) holds AZMP_BENCH_RECON_SUBS (100,000) subscriptions in pages of
%% 100, each linked to an account; one of them suspended in Azure without a webhook.
%%  before: the whole list in one call (list_subscriptions/1, every page followed), as the
%%          reconciler made it every interval until now, with the client's default 30 s timeout;
%%  after:  one full pass in pages, spread over the interval (AZMP_BENCH_RECON_INTERVAL_S, 60 s: a
%%          compressed 5 minutes) at no more than AZMP_BENCH_RECON_RATE (50) calls/s: its duration
%%          against the interval, the calls made, the reconciler's peak process memory and the
%%          VM's peak total memory above what it was before the pass, and whether the lost webhook
%%          was repaired.
%% Run alone: azmp_bench_recon:main().
-module(azmp_bench_recon).

-export([main/0]).

-define(SUBS, list_to_integer(os:getenv("AZMP_BENCH_RECON_SUBS", "100000"))).
-define(INTERVAL_MS, (1000 * list_to_integer(os:getenv("AZMP_BENCH_RECON_INTERVAL_S", "60")))).
-define(RATE, list_to_integer(os:getenv("AZMP_BENCH_RECON_RATE", "50"))).
-define(PAGE, 100).
-define(STORE, emqx_azure_marketplace_store_recon).

main() ->
    _ = azmp_test_peer:ensure_distributed(),
    Paths = [P || P <- code:get_path(), filelib:is_dir(P)],
    {ok, Peer, Node} = peer:start(#{name => list_to_atom("azmp_bench_recon_emulator_" ++ os:getpid()),
                                    args => ["+P", "2000000", "-pa" | Paths], wait_boot => 30000}),
    Emu = erpc:call(Node, azmp_test_env, start_emulator, [#{page_size => ?PAGE}]),
    %% The client's default timeout (30 s), as a plugin configured by hand has it.
    Azure = azmp_test_env:client_config(Emu, #{transport => https, timeout_ms => 30000}),
    Plugin = azmp_test_env:start_plugin(Emu, #{http => disabled, azure => Azure,
                                               %% no pass until the bench starts one
                                               reconcile_interval_ms => 86400000,
                                               reconcile_max_calls_per_s => ?RATE}),
    try
        run(Node, Emu)
    after
        azmp_test_env:stop_plugin(Plugin),
        peer:stop(Peer)
    end.

run(Node, Emu) ->
    N = ?SUBS,
    io:format("~n== fulfillment reconciliation: ~B subscriptions in pages of ~B, interval ~B s, "
              "at most ~B calls/s~n", [N, ?PAGE, ?INTERVAL_MS div 1000, ?RATE]),
    {EmuUs, Ids} = timer:tc(fun() ->
        {ok, L} = erpc:call(Node, azmp_emulator, add_subscriptions, [Emu, N, #{status => <<"Subscribed">>}], infinity),
        L
    end),
    {LinkUs, {Lost, LostSub}} = timer:tc(fun() -> setup(Node, Emu, N, Ids) end),
    io:format("  set-up: ~B subscriptions in the emulator (~.1f s), each linked (~.1f s)~n",
              [N, EmuUs / 1.0e6, LinkUs / 1.0e6]),
    before(Node, Emu),
    'after'(Node, Emu, Lost, LostSub).

setup(Node, Emu, N, Ids) ->
    %% Links written as the linker writes them, 1,000 to a transaction, a month ago (outside the
    %% enforce window: the pass's end plans nothing again).
    Then = emqx_azure_marketplace_clock:now() - 30 * 86400,
    lists:foreach(fun(Chunk) ->
                          {atomic, _} = mnesia:transaction(fun() ->
                              [emqx_azure_marketplace_store_links:write_linked_tx(
                                   <<"bench-", Id/binary>>, Id, #{plan_id => <<"payg">>, quantity => undefined}, Then)
                               || Id <- Chunk]
                          end)
                  end, chunks(Ids, 1000)),
    %% The lost webhook: suspended in Azure, in the middle of the list, linked to an account with a
    %% paid deployment.
    Sub = lists:nth(N div 2 + 17, Ids),
    A = <<"bench-", Sub/binary>>,
    ok = azmp_test_platform:add_account(A, #{}),
    ok = azmp_test_platform:add_deployment(A, #{id => <<A/binary, "-paid">>, trial => false}),
    {ok, _} = erpc:call(Node, azmp_emulator, add_operation, [Emu, Sub, #{action => <<"Suspend">>}]),
    {A, Sub}.

chunks([], _) -> [];
chunks(L, N) when length(L) =< N -> [L];
chunks(L, N) -> {H, T} = lists:split(N, L), [H | chunks(T, N)].

%% The whole list in one call, as every pass made it before.
before(Node, Emu) ->
    ok = erpc:call(Node, azmp_emulator, reset_stats, [Emu]),
    M0 = erlang:memory(total),
    T0 = erlang:monotonic_time(millisecond),
    Result = emqx_azure_marketplace_client:list_subscriptions(emqx_azure_marketplace_azure:client()),
    Ms = erlang:monotonic_time(millisecond) - T0,
    Pages = page_calls(Node, Emu),
    Outcome = case Result of
                  {ok, L} -> io_lib:format("~B subscriptions, the whole list in memory (~.1f MiB of terms)",
                                           [length(L), erts_debug:flat_size(L) * 8 / 1048576]);
                  {error, R} -> io_lib:format("failed: ~p, nothing repaired", [R])
              end,
    io:format("  before: the whole list in one call: ~.1f s, ~B page requests, ~ts; VM memory +~.1f MiB~n",
              [Ms / 1000, Pages, Outcome, (erlang:memory(total) - M0) / 1048576]),
    ok.

'after'(Node, Emu, Lost, LostSub) ->
    garbage_collect(),
    Rec = whereis(emqx_azure_marketplace_reconciler),
    ok = erpc:call(Node, azmp_emulator, reset_stats, [Emu]),
    Base = erlang:memory(total),
    Self = self(),
    Sampler = spawn_link(fun() -> sample(Self, Rec, Base, 0, 0) end),
    %% The pass starts now (rather than one interval after the plugin's start).
    ok = application:set_env(emqx_azure_marketplace, reconcile_interval_ms, ?INTERVAL_MS),
    T0 = erlang:monotonic_time(millisecond),
    Rec ! tick,
    true = azmp_test_env:wait_until(fun() ->
        #{continuation := C, pages_last_pass := L} = ?STORE:checkpoint(), C =:= first andalso L > 0
    end, 3 * ?INTERVAL_MS),
    Wall = erlang:monotonic_time(millisecond) - T0,
    Sampler ! {stop, self()},
    {PeakProc, PeakVm} = receive {peaks, P, V} -> {P, V} end,
    #{pages_last_pass := Pages, last_pass_ms := Took} = ?STORE:checkpoint(),
    Calls = page_calls(Node, Emu),
    Repaired = maps:get(state, emqx_azure_marketplace_store_links:link(Lost)) =:= suspended,
    io:format("  after: one pass in pages: ~.1f s (~B ms first page to last; ~.1f s wall) for an interval of ~B s "
              "(~B %) -> ~ts~n",
              [Took / 1000, Took, Wall / 1000, ?INTERVAL_MS div 1000, round(100 * Took / ?INTERVAL_MS),
               case Took =< ?INTERVAL_MS of true -> "within it"; false -> "NOT within it" end]),
    io:format("    calls: ~B page calls for ~B pages (~.1f calls/s, ceiling ~B)~n",
              [Calls, Pages, Calls * 1000 / max(1, Took), ?RATE]),
    io:format("    peak memory during the pass: reconciler process ~.1f KiB; VM total +~.1f MiB above before~n",
              [PeakProc / 1024, PeakVm / 1048576]),
    io:format("    lost webhook (~ts suspended in Azure, no webhook): ~ts~n",
              [LostSub, case Repaired of true -> "repaired (link suspended)"; false -> "NOT repaired" end]),
    io:format("    paced passes after this one (their size now known) aim at 80 % of the interval: at first "
              "~B ms between pages~n", [paced_gap(Pages)]),
    ok.

%% The gap the core gives between the pages of a pass whose size it knows, on time.
paced_gap(Pages) ->
    Next = <<"https://marketplaceapi.microsoft.com/api/saas/subscriptions?continuationToken=x">>,
    #{next_in_ms := Gap} = emqx_azure_marketplace_nif:plan_reconcile(
        #{step => page, result => {ok, #{<<"subscriptions">> => [], <<"@nextLink">> => Next}}, now => 0,
          links => #{}, pace => #{now_ms => 0, started_ms => 0, interval_ms => ?INTERVAL_MS, pages_done => 1,
                                   pages_last_pass => Pages, max_calls_per_s => ?RATE}}),
    Gap.

sample(Parent, Rec, Base, PeakProc, PeakVm) ->
    receive
        {stop, From} -> From ! {peaks, PeakProc, PeakVm}, Parent
    after 50 ->
        P = case erlang:process_info(Rec, memory) of {memory, M} -> M; undefined -> 0 end,
        sample(Parent, Rec, Base, max(PeakProc, P), max(PeakVm, erlang:memory(total) - Base))
    end.

page_calls(Node, Emu) ->
    maps:get(list_subscriptions, maps:get(by_op, erpc:call(Node, azmp_emulator, stats, [Emu])), 0).
