%% The demo behind `make demo`: the client at work against the bundled Azure emulator, narrated.
%% It plays what the control plane does when a customer arrives from the Azure portal, and exits 0
%% only when every step came out as Azure's documentation says it should.
-module(azmp_demo).

-export([main/0]).

-define(C, emqx_azure_marketplace_client).

main() ->
    try run() of
        ok ->
            say("~nThe story held: every step answered as expected.~n", []),
            halt(0)
    catch
        throw:{demo_failed, Step, What} ->
            say("~nDEMO FAILED at ~ts: ~p~n", [Step, What]),
            halt(1);
        C:E:St ->
            say("~nDEMO CRASHED: ~p:~p~n~p~n", [C, E, St]),
            halt(2)
    end.

run() ->
    {ok, _} = application:ensure_all_started(ssl),
    {ok, Emu} = azmp_emulator:start(#{}),
    Url = azmp_emulator:https_url(Emu),
    say("Azure emulator up: ~ts (Entra + SaaS Fulfillment v2 + Metering), its own CA at ~ts~n",
        [Url, azmp_emulator:ca_file(Emu)]),

    step("1. A client for our publisher app (TLS verified against the emulator's CA)"),
    {ok, C} = ?C:new(#{
        tenant_id => <<"tenant-1">>,
        client_id => <<"client-1">>,
        client_secret => <<"secret-1">>,
        login_url => Url,
        marketplace_url => <<Url/binary, "/api">>,
        ca_file => iolist_to_binary(azmp_emulator:ca_file(Emu)),
        token_endpoint => v2
    }),
    say("   client created; the secret stays inside the NIF (the term is ~w)~n", [C]),

    step("2. A customer subscribes in the Azure portal and lands on our page with ?token=..."),
    {ok, #{id := SubId, token := Token}} =
        azmp_emulator:add_subscription(Emu, #{plan_id => <<"payg">>, name => <<"Contoso MQTT">>}),
    say("   marketplace token: ~ts... (~B bytes, never logged in full)~n",
        [binary:part(Token, 0, min(8, byte_size(Token))), byte_size(Token)]),

    step("3. Resolve the token (the first call fetches an Entra token, once, then reuses it)"),
    Resolved = expect("resolve", ?C:resolve(C, Token)),
    #{<<"id">> := SubId, <<"planId">> := Plan, <<"subscriptionName">> := Name,
      <<"subscription">> := #{<<"saasSubscriptionStatus">> := Status0}} = Resolved,
    say("   subscription ~ts \"~ts\", plan ~ts, status ~ts~n", [SubId, Name, Plan, Status0]),
    check("one token request so far", 1, maps:get(token_requests, ?C:stats(C))),

    step("4. Activate: billing starts in Azure only now"),
    ok = expect("activate", ?C:activate(C, SubId, Plan, undefined)),
    #{<<"saasSubscriptionStatus">> := Status1} = expect("get", ?C:get_subscription(C, SubId)),
    say("   status now ~ts (Azure pads it with spaces; the client trims)~n", [Status1]),
    check("status after activation", <<"Subscribed">>, Status1),

    step("5. Report this hour's usage in one batch (at most 25 events per batch)"),
    Hour = this_hour(),
    Event = #{resource_id => SubId, plan_id => Plan, effective_start_time => Hour, quantity => 42},
    #{<<"result">> := Items} =
        expect("batch", ?C:post_usage_batch(C, [
            Event#{dimension => <<"sessions">>},
            Event#{dimension => <<"traffic">>, quantity => 1.5},
            Event#{dimension => <<"gigawatts">>}
        ])),
    [say("   ~ts ~p -> ~ts~n", [maps:get(<<"dimension">>, I), maps:get(<<"quantity">>, I),
                                  maps:get(<<"status">>, I)]) || I <- Items],
    check("per-item statuses", [<<"Accepted">>, <<"Accepted">>, <<"InvalidDimension">>],
          [maps:get(<<"status">>, I) || I <- Items]),
    Dup = expect("post_usage", ?C:post_usage(C, Event#{dimension => <<"sessions">>})),
    say("   the same hour again: Azure answers 409 and the client returns the event it already has "
        "(usageEventId ~ts)~n", [maps:get(<<"usageEventId">>, Dup)]),

    step("6. Azure has a bad moment: the next read gets a 503, and is retried"),
    ok = azmp_emulator:reset_stats(Emu),
    ok = azmp_emulator:inject(Emu, get_subscription, [{status, 503}]),
    _ = expect("get after 503", ?C:get_subscription(C, SubId)),
    #{requests := Reqs} = azmp_emulator:stats(Emu),
    Gets = [R || #{op := get_subscription} = R <- Reqs],
    [say("   attempt ~B: HTTP ~p, x-ms-requestid ~ts~n", [N, S, Rid])
     || {N, #{status := S, request_id := Rid}} <- lists:zip(lists:seq(1, length(Gets)), Gets)],
    check("two attempts, 503 then 200", [503, 200], [S || #{status := S} <- Gets]),
    check("a retried request keeps its request id", 1, length(lists:usort([R || #{request_id := R} <- Gets]))),

    step("7. A plan change is asynchronous: Azure gives an operation to follow"),
    OpId = expect("change_plan", ?C:change_plan(C, SubId, <<"payg-premium">>)),
    #{<<"status">> := OpStatus, <<"action">> := Action} = expect("get_operation", ?C:get_operation(C, SubId, OpId)),
    say("   operation ~ts: ~ts, ~ts~n", [OpId, Action, OpStatus]),

    step("8. A wrong secret is a clear error that does not contain the secret"),
    {ok, Bad} = ?C:new(#{tenant_id => <<"tenant-1">>, client_id => <<"client-1">>,
                         client_secret => <<"not-the-secret">>, login_url => Url,
                         marketplace_url => <<Url/binary, "/api">>,
                         ca_file => iolist_to_binary(azmp_emulator:ca_file(Emu))}),
    BadResult = ?C:get_subscription(Bad, SubId),
    say("   ~p~n", [BadResult]),
    check("auth error", {error, {auth, <<"invalid_client">>}}, BadResult),

    say("~nEntra token requests by the client over the whole story: ~B~n",
        [maps:get(token_requests, ?C:stats(C))]),
    azmp_emulator:stop(Emu),
    ok.

%%--------------------------------------------------------------------

step(Title) -> say("~n~ts~n", [Title]).

say(Fmt, Args) -> io:format(standard_io, Fmt, Args).

expect(_Step, ok) -> ok;
expect(_Step, {ok, V}) -> V;
expect(Step, Other) -> throw({demo_failed, Step, Other}).

check(_What, Expected, Expected) -> ok;
check(What, Expected, Got) -> throw({demo_failed, What, #{expected => Expected, got => Got}}).

this_hour() ->
    {{Y, Mo, D}, {H, _, _}} = calendar:universal_time(),
    {{Y, Mo, D}, {H, 0, 0}}.
