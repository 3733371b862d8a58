%% The fulfillment reconciliation in pages, at a size CI can afford: 3,000 subscriptions in pages of
%% 50 (60 pages), a 12 s interval, at most 40 calls/s. A full pass finishes within its interval at
%% the bounded rate; a lost webhook among them is repaired; a reconciler killed in the middle of a
%% pass resumes it from its checkpoint; a subscription in doubt is checked before the pages.
-module(azmp_recon_tests).

-include_lib("eunit/include/eunit.hrl").

-define(SUBS, 3000).
-define(PAGE, 50).
-define(PAGES, (?SUBS div ?PAGE)).
%% Long enough that a loaded machine's slower page calls (up to ~100 ms each here) still fit a pass
%% in its interval: a pass paced at 80 % of it, or at the ceiling, takes under it.
-define(INTERVAL_MS, 12000).
-define(MAX_RATE, 40).
-define(STORE, emqx_azure_marketplace_store_recon).
-define(MEM, azmp_test_platform).
-define(DAY, 86400).

recon_test_() ->
    {setup,
     fun() ->
         Emu = azmp_test_env:start_emulator(#{page_size => ?PAGE}),
         Plugin = azmp_test_env:start_plugin(Emu, #{reconcile_interval_ms => ?INTERVAL_MS,
                                                    reconcile_max_calls_per_s => ?MAX_RATE}),
         {Emu, Plugin, subscriptions(Emu)}
     end,
     fun({Emu, Plugin, _}) ->
         azmp_test_env:stop_plugin(Plugin),
         azmp_test_env:stop_emulator(Emu)
     end,
     fun({Emu, _, Subs}) ->
         {inorder, [
             {timeout, 60, {"a full pass of 3,000 subscriptions finishes within its interval at the bounded rate, "
                            "and repairs a lost webhook", fun() -> full_pass(Emu, Subs) end}},
             {timeout, 60, {"a reconciler killed in the middle of a pass resumes it from its checkpoint",
                            fun() -> resume(Emu) end}},
             {timeout, 60, {"a subscription in doubt is checked before the pages",
                            fun() -> doubt_first(Emu, Subs) end}},
             {timeout, 60, {"the operator's reconcile runs a full pass, the doubts first",
                            fun() -> operator_pass(Emu, Subs) end}}
         ]}
     end}.

%% ?SUBS subscriptions in Azure, each linked to an account (through the store, as the linker would,
%% a month ago: outside the enforce window).
subscriptions(Emu) ->
    {ok, Ids} = azmp_emulator:add_subscriptions(Emu, ?SUBS, #{status => <<"Subscribed">>}),
    Then = emqx_azure_marketplace_clock:now() - 30 * ?DAY,
    Parent = self(),
    Chunks = chunks(Ids, 100),
    Pids = [spawn_link(fun() ->
                           [none = emqx_azure_marketplace_store_jobs:commit_linked(
                                      <<"recon-", Id/binary>>, Id, #{plan_id => <<"payg">>, quantity => undefined}, [], Then)
                            || Id <- Chunk],
                           Parent ! {linked, self()}
                       end) || Chunk <- Chunks],
    [receive {linked, P} -> ok end || P <- Pids],
    list_to_tuple(Ids).

chunks([], _) -> [];
chunks(L, N) when length(L) =< N -> [L];
chunks(L, N) -> {H, T} = lists:split(N, L), [H | chunks(T, N)].

%% An account of the platform with a paid deployment, linked to the Nth subscription.
account(Subs, N) ->
    Sub = element(N, Subs),
    A = <<"recon-", Sub/binary>>,
    ok = ?MEM:add_account(A, #{}),
    ok = ?MEM:add_deployment(A, #{id => <<A/binary, "-paid">>, trial => false}),
    {A, Sub}.

state(A) -> maps:get(state, emqx_azure_marketplace_store_links:link(A)).

%% Waits for the end of the pass under way (or the next one's): the checkpoint after it.
%% The checkpoint as the pass that ends next left it, as seen then (the next pass may start at once):
%% the first time it is back at the first page after being in the middle of a pass. (Paced passes
%% take the same time to the millisecond: the end is told by the continuation, not the figures.)
await_pass_end() ->
    #{continuation := C0} = ?STORE:checkpoint(),
    await_pass_end(C0 =/= first, erlang:monotonic_time(millisecond) + 3 * ?INTERVAL_MS + 20000).

await_pass_end(InPass, Deadline) ->
    Cp = #{continuation := C} = ?STORE:checkpoint(),
    case {InPass, C} of
        {true, first} -> Cp;
        _ ->
            ?assert(erlang:monotonic_time(millisecond) < Deadline),
            timer:sleep(5),
            await_pass_end(C =/= first, Deadline)
    end.

page_calls(Emu) -> maps:get(list_subscriptions, maps:get(by_op, azmp_emulator:stats(Emu)), 0).

full_pass(Emu, Subs) ->
    %% Suspended in Azure, the webhook lost; in the middle of the list.
    {A, Sub} = account(Subs, ?SUBS div 2 + 7),
    {ok, _} = azmp_emulator:add_operation(Emu, Sub, #{action => <<"Suspend">>}),
    ?assertEqual(linked, state(A)),
    %% The pass under way (the first: its size unknown, at the ceiling): all 60 pages, within the
    %% interval, and no faster than the ceiling allows.
    #{pages_last_pass := Pages, last_pass_ms := Took} = await_pass_end(),
    ?assertEqual(?PAGES, Pages),
    ?assert(Took =< ?INTERVAL_MS),
    ?assert(Took >= (?PAGES - 1) * 1000 div ?MAX_RATE),
    %% The next pass is spread over the interval (it aims at 80 % of it): paced, still within it,
    %% one call a page; the lost webhook repaired by then.
    ok = azmp_emulator:reset_stats(Emu),
    #{pages_last_pass := Pages2, last_pass_ms := Took2} = await_pass_end(),
    Calls = page_calls(Emu),
    ?assertEqual(?PAGES, Pages2),
    ?assert(Took2 =< ?INTERVAL_MS),
    ?assert(Took2 >= ?INTERVAL_MS div 2),
    ?assertEqual(?PAGES, Calls),
    ?assertEqual(suspended, state(A)),
    ?assertMatch(#{state := stopped}, deployment(A)),
    ?debugFmt("passes of ~B pages: ~B ms, then ~B ms paced (~B page calls); interval ~B ms",
              [?PAGES, Took, Took2, Calls, ?INTERVAL_MS]).

deployment(A) ->
    {ok, #{deployments := Ds}} = ?MEM:account(A),
    maps:get(<<A/binary, "-paid">>, Ds).

resume(Emu) ->
    %% In the middle of a pass: kill the reconciler; its supervisor starts it again.
    %% (a third through a pass, not at the end of one waiting for the next)
    true = azmp_test_env:wait_until(fun() -> D = maps:get(pages_done, ?STORE:checkpoint()),
                                             D >= ?PAGES div 3 andalso D =< ?PAGES div 2 end,
                                    2 * ?INTERVAL_MS + 10000),
    Old = whereis(emqx_azure_marketplace_reconciler),
    #{started_ms := Started, pages_done := Done} = ?STORE:checkpoint(),
    ok = azmp_emulator:reset_stats(Emu),
    exit(Old, kill),
    true = azmp_test_env:wait_until(fun() ->
        P = whereis(emqx_azure_marketplace_reconciler), is_pid(P) andalso P =/= Old end, 5000),
    #{started_ms := Started2, pages_last_pass := Pages} = await_pass_end(),
    %% The same pass, finished from where it stood: only the pages it had not read (the one being
    %% read when it was killed may be read again).
    ?assertEqual(Started, Started2),
    ?assertEqual(?PAGES, Pages),
    Calls = page_calls(Emu),
    ?debugFmt("killed after ~B of ~B pages; ~B page calls after the restart", [Done, ?PAGES, Calls]),
    ?assert(Calls =< ?PAGES - Done + 1),
    ?assert(Calls < ?PAGES).

doubt_first(Emu, Subs) ->
    %% Reinstated in Azure, the webhook lost, near the end of the list; an operator flags it when a
    %% pass has just started: it is checked before the next page, not when the pass reaches it.
    {B, Sub} = account(Subs, ?SUBS - 3),
    {ok, _} = azmp_emulator:add_operation(Emu, Sub, #{action => <<"Suspend">>}),
    _ = emqx_azure_marketplace_reconciler:resync(Sub),
    true = azmp_test_env:wait_until(fun() -> state(B) =:= suspended end, 5000),
    {ok, _} = azmp_emulator:add_operation(Emu, Sub, #{action => <<"Reinstate">>}),
    true = azmp_test_env:wait_until(fun() ->
        #{continuation := C, pages_done := D} = ?STORE:checkpoint(), C =/= first andalso D < 5 end,
        2 * ?INTERVAL_MS + 10000),
    ok = emqx_azure_marketplace_reconciler:doubt(Sub),
    true = azmp_test_env:wait_until(fun() -> state(B) =:= linked end, ?INTERVAL_MS),
    #{pages_done := D} = ?STORE:checkpoint(),
    ?debugFmt("in doubt: checked with ~B of ~B pages read", [D, ?PAGES]),
    ?assert(D < ?PAGES - 5),
    %% Its doubt is settled once the repair is (another may have been added since: a pass flags
    %% recent suspensions).
    ?assert(azmp_test_env:wait_until(fun() -> not lists:member(Sub, ?STORE:doubts(10)) end, 5000)).

operator_pass(Emu, Subs) ->
    {C, SubC} = account(Subs, 11),
    {D, SubD} = account(Subs, ?SUBS - 1),
    %% Both cancelled in Azure, no webhook; the one near the end is in doubt: it comes first.
    {ok, _} = azmp_emulator:add_operation(Emu, SubC, #{action => <<"Unsubscribe">>}),
    {ok, _} = azmp_emulator:add_operation(Emu, SubD, #{action => <<"Unsubscribe">>}),
    ok = emqx_azure_marketplace_reconciler:doubt(SubD),
    {ok, Applied} = emqx_azure_marketplace:reconcile(),
    ?assertEqual(unsubscribed, state(C)),
    ?assertEqual(unsubscribed, state(D)),
    %% (The periodic pass may have repaired one of them just before.)
    case {index({SubD, unsubscribe}, Applied), index({SubC, unsubscribe}, Applied)} of
        {ID, IC} when is_integer(ID), is_integer(IC) -> ?assert(ID < IC);
        _ -> ok
    end.

index(X, L) ->
    case lists:splitwith(fun(Y) -> Y =/= X end, L) of
        {Before, [_ | _]} -> length(Before);
        {_, []} -> none
    end.
