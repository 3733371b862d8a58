%% Azure's webhooks, end to end: the emulator signs and POSTs them to the plugin's HTTP listener;
%% the plugin authenticates, confirms with Get Operation, acts once, and the control plane follows.
-module(azmp_webhook_tests).

-include_lib("eunit/include/eunit.hrl").

-define(M, emqx_azure_marketplace).
-define(MEM, azmp_test_platform).
-define(DAY, 86400).

webhook_test_() ->
    azmp_test_env:with_plugin(fun(Emu) ->
         [
             {"ChangePlan to a known plan is accepted", fun() -> change_plan(Emu, <<"payg-premium">>, true) end},
             {"ChangePlan to an unknown plan is refused", fun() -> change_plan(Emu, <<"payg-gold">>, false) end},
             {"ChangeQuantity is accepted", fun() -> change_quantity(Emu) end},
             {"Renew updates the term", fun() -> renew(Emu) end},
             {"Suspend stops paid deployments, Reinstate starts them", fun() -> suspend_reinstate(Emu) end},
             {"Unsubscribe: paid stopped and deleted 3 days later, trial runs to its end",
              {timeout, 30, fun() -> unsubscribe(Emu) end}},
             {"subscribing again within 3 days calls the deletions off", fun() -> resubscribe(Emu) end},
             {"a redelivered webhook changes nothing twice", fun() -> redelivery(Emu) end},
             {"forged webhooks are 401 and change nothing", {timeout, 60, fun() -> forged(Emu) end}},
             {"a token with a crit header is 401 and changes nothing", fun() -> crit(Emu) end},
             {"a token whose iss is another tenant's is 401; Entra's v1 and v2 forms pass",
              fun() -> wrong_iss(Emu) end},
             {"two Authorization headers are 401 and change nothing", fun() -> duplicate_authorization(Emu) end},
             {"a 200 KB Renew body is 400; the link keeps only the term's bounded fields",
              fun() -> oversized_renew(Emu) end},
             {"a rotated signing key is fetched once", fun() -> rotation(Emu) end},
             {"unlink by support staff ends as a cancellation", fun() -> support_unlink(Emu) end},
             {"reconciliation repairs a lost Unsubscribe webhook", fun() -> reconcile(Emu) end},
             {"reconciliation catches up effects a crash left undone", fun() -> lost_effects(Emu) end}
         ]
    end).

%% A linked account with a paid and a trial deployment.
linked_account(Emu) ->
    A = list_to_binary("acct-" ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = ?MEM:add_account(A, #{}),
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = ?M:link(A, {token, Token}),
    azmp_test_env:await_linked(A),
    Now = emqx_azure_marketplace_clock:now(),
    ok = ?MEM:add_deployment(A, #{id => <<A/binary, "-paid">>, trial => false}),
    ok = ?MEM:add_deployment(A, #{id => <<A/binary, "-trial">>, trial => true, trial_ends_at => Now + 2 * ?DAY}),
    {A, SubId}.

send(Emu, Action, SubId) -> send(Emu, Action, SubId, #{}).
send(Emu, Action, SubId, Opts) ->
    azmp_emulator:send_webhook(Emu, azmp_test_env:webhook_url(), Action, SubId, Opts).

deployment(A, Suffix) ->
    {ok, #{deployments := Ds}} = ?MEM:account(A),
    maps:get(<<A/binary, Suffix/binary>>, Ds, gone).

change_plan(Emu, Plan, Accepted) ->
    {A, SubId} = linked_account(Emu),
    ok = ?MEM:set_plans([<<"payg">>, <<"payg-premium">>]),
    {ok, 200, _} = send(Emu, 'ChangePlan', SubId, #{plan_id => Plan}),
    [#{operation_id := OpId}] = [W || W = #{subscription_id := S} <- azmp_emulator:webhooks(Emu), S =:= SubId],
    {ok, Op} = emqx_azure_marketplace_client:get_operation(emqx_azure_marketplace_azure:client(), SubId, OpId),
    Link = emqx_azure_marketplace_store_links:link(A),
    case Accepted of
        true ->
            ?assertEqual(<<"Succeeded">>, maps:get(<<"status">>, Op)),
            ?assertEqual(Plan, maps:get(plan_id, Link));
        false ->
            ?assertEqual(<<"Failed">>, maps:get(<<"status">>, Op)),
            ?assertEqual(<<"payg">>, maps:get(plan_id, Link))
    end.

change_quantity(Emu) ->
    {A, SubId} = linked_account(Emu),
    {ok, 200, _} = send(Emu, 'ChangeQuantity', SubId, #{quantity => 7}),
    ?assertEqual(7, maps:get(quantity, emqx_azure_marketplace_store_links:link(A))).

renew(Emu) ->
    {A, SubId} = linked_account(Emu),
    {ok, 200, _} = send(Emu, 'Renew', SubId),
    ?assertMatch(#{<<"startDate">> := _}, maps:get(term, emqx_azure_marketplace_store_links:link(A))),
    ?assertMatch(#{status := linked}, ?M:link_status(A)).

suspend_reinstate(Emu) ->
    {A, SubId} = linked_account(Emu),
    {ok, 200, _} = send(Emu, 'Suspend', SubId),
    ?assertMatch(#{status := suspended}, ?M:link_status(A)),
    ?assertMatch(#{state := stopped}, deployment(A, <<"-paid">>)),
    ?assertMatch(#{state := running}, deployment(A, <<"-trial">>)),
    %% Stopped, not deleted; no new paid deployment.
    ?assertEqual([], emqx_azure_marketplace_store_deadlines:deadlines_of(A)),
    ?assertEqual({error, subscription_suspended}, ?M:can_create_deployment(A, #{trial => false})),
    {ok, 200, _} = send(Emu, 'Reinstate', SubId),
    ?assertMatch(#{status := linked}, ?M:link_status(A)),
    ?assertMatch(#{state := running}, deployment(A, <<"-paid">>)),
    ?assertEqual(ok, ?M:can_create_deployment(A, #{trial => false})).

unsubscribe(Emu) ->
    {A, SubId} = linked_account(Emu),
    {ok, 200, _} = send(Emu, 'Unsubscribe', SubId),
    ?assertMatch(#{status := unsubscribed}, ?M:link_status(A)),
    ?assertEqual(none, ?M:payment_method(A)),
    ?assertMatch(#{state := stopped}, deployment(A, <<"-paid">>)),
    ?assertMatch(#{state := running}, deployment(A, <<"-trial">>)),
    ?assertEqual({error, subscription_cancelled}, ?M:can_create_deployment(A, #{trial => false})),
    %% One day later: nothing deleted yet, the trial still runs.
    azmp_test_clock:advance(?DAY),
    azmp_test_run:deadlines_pass(),
    ?assertMatch(#{state := stopped}, deployment(A, <<"-paid">>)),
    ?assertMatch(#{state := running}, deployment(A, <<"-trial">>)),
    %% Trial ends on day 2: stopped, and deleted 3 days after that.
    azmp_test_clock:advance(?DAY + 60),
    azmp_test_run:deadlines_pass(),
    ?assertMatch(#{state := stopped}, deployment(A, <<"-trial">>)),
    %% Day 3: the paid deployment stopped at cancellation is deleted.
    azmp_test_clock:advance(?DAY),
    azmp_test_run:deadlines_pass(),
    ?assertEqual(gone, deployment(A, <<"-paid">>)),
    ?assertMatch(#{state := stopped}, deployment(A, <<"-trial">>)),
    azmp_test_clock:advance(2 * ?DAY),
    azmp_test_run:deadlines_pass(),
    ?assertEqual(gone, deployment(A, <<"-trial">>)),
    %% Each deletion ran once.
    Deletes = [D || {delete, Acc, D} <- ?MEM:log(), Acc =:= A],
    ?assertEqual(2, length(Deletes)),
    azmp_test_clock:reset().

resubscribe(Emu) ->
    {A, SubId} = linked_account(Emu),
    {ok, 200, _} = send(Emu, 'Unsubscribe', SubId),
    ?assertMatch(#{state := stopped}, deployment(A, <<"-paid">>)),
    {ok, #{token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = ?M:link(A, {token, Token}),
    azmp_test_env:await_linked(A),
    azmp_test_clock:advance(4 * ?DAY),
    azmp_test_run:deadlines_pass(),
    %% Kept (stopped, for the customer to start again), and nothing left to run.
    ?assertMatch(#{state := stopped}, deployment(A, <<"-paid">>)),
    ?assertMatch(#{state := running}, deployment(A, <<"-trial">>)),
    ?assertEqual([], [D || D <- emqx_azure_marketplace_store_deadlines:deadlines_of(A), maps:get(done, D) =:= false]),
    azmp_test_clock:reset().

redelivery(Emu) ->
    {A, SubId} = linked_account(Emu),
    {ok, 200, _} = send(Emu, 'Suspend', SubId),
    [#{operation_id := OpId}] = [W || W = #{subscription_id := S} <- azmp_emulator:webhooks(Emu), S =:= SubId],
    Before = ?MEM:log(),
    {ok, 200, Body} = send(Emu, 'Suspend', SubId, #{redeliver => OpId}),
    ?assertMatch({ok, #{<<"status">> := <<"already_handled">>}}, emqx_azure_marketplace_nif:json_decode(Body)),
    ?assertEqual(Before, ?MEM:log()),
    ?assertMatch(#{status := suspended}, ?M:link_status(A)).

forged(Emu) ->
    {A, SubId} = linked_account(Emu),
    Kinds = [no_token, bad_signature, other_key, alg_none, hs256_public_key, wrong_aud, wrong_tid, wrong_azp,
             expired, not_yet_valid, unknown_kid],
    Before = {?M:link_status(A), ?MEM:log(), emqx_azure_marketplace_store_links:link(A)},
    [?assertMatch({Kind, {ok, 401, _}}, {Kind, send(Emu, 'Unsubscribe', SubId, #{forge => Kind})}) || Kind <- Kinds],
    [?assertMatch({Kind, {ok, 401, _}}, {Kind, send(Emu, 'Unsubscribe', SubId, #{forge => Kind, token_version => v1})})
     || Kind <- [wrong_azp, expired]],
    ?assertEqual(Before, {?M:link_status(A), ?MEM:log(), emqx_azure_marketplace_store_links:link(A)}).

%% What a refused webhook must leave as it was.
snapshot(A) -> {?M:link_status(A), ?MEM:log(), emqx_azure_marketplace_store_links:link(A)}.

%% Each {Forge, TokenVersion}: 401, nothing changed.
refused(Emu, A, SubId, Cases) ->
    Before = snapshot(A),
    [?assertMatch({Kind, V, {ok, 401, _}}, {Kind, V, send(Emu, 'Unsubscribe', SubId, #{forge => Kind, token_version => V})})
     || {Kind, V} <- Cases],
    ?assertEqual(Before, snapshot(A)).

%% Signed with the published key, every claim right: only the header's crit (an extension nobody
%% implements, RFC 7515 §4.1.11) is wrong.
crit(Emu) ->
    {A, SubId} = linked_account(Emu),
    refused(Emu, A, SubId, [{crit, v2}, {crit, v1}]).

%% iss naming another tenant (tid still ours), in either of Entra's forms: refused. Genuine tokens
%% of both forms (v1 https://sts.windows.net/{tenant}/, v2 {login_url}/{tenant}/v2.0) pass.
wrong_iss(Emu) ->
    {A, SubId} = linked_account(Emu),
    refused(Emu, A, SubId, [{wrong_iss, v2}, {wrong_iss, v1}]),
    {ok, 200, _} = send(Emu, 'Suspend', SubId, #{token_version => v1}),
    ?assertMatch(#{status := suspended}, ?M:link_status(A)),
    {ok, 200, _} = send(Emu, 'Reinstate', SubId, #{token_version => v2}),
    ?assertMatch(#{status := linked}, ?M:link_status(A)).

%% A genuine token, twice (also in two cases of the name), on Azure's own Suspend: 401 and nothing
%% done, whichever header would have been read. The same request with one header is handled.
duplicate_authorization(Emu) ->
    {A, SubId} = linked_account(Emu),
    %% Entra's tokens are not bound to one delivery: a Renew's serves.
    {ok, #{status := 200, token := Token}} =
        azmp_emulator:send_webhook_detailed(Emu, azmp_test_env:webhook_url(), 'Renew', SubId, #{}),
    {ok, OpId} = azmp_emulator:add_operation(Emu, SubId, #{action => <<"Suspend">>}),
    {ok, Body} = emqx_azure_marketplace_nif:json_encode(
                   #{<<"id">> => OpId, <<"subscriptionId">> => SubId, <<"action">> => <<"Suspend">>,
                     <<"status">> => <<"Succeeded">>}),
    Auth = <<"Bearer ", Token/binary>>,
    Before = snapshot(A),
    ?assertMatch({401, _}, post_webhook([{"Authorization", Auth}, {"Authorization", Auth}], Body)),
    ?assertMatch({401, _}, post_webhook([{"Authorization", Auth}, {"authorization", Auth}], Body)),
    ?assertMatch({401, _}, post_webhook([{"Authorization", <<"Bearer not.a.jwt">>}, {"Authorization", Auth}], Body)),
    ?assertEqual(Before, snapshot(A)),
    ?assertMatch({200, _}, post_webhook([{"Authorization", Auth}], Body)),
    ?assertMatch(#{status := suspended}, ?M:link_status(A)).

%% POST /azure/webhook on a socket of our own (httpc keeps one value per header name).
post_webhook(Headers, Body) ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, emqx_azure_marketplace_app:http_port(), [binary, {active, false}], 5000),
    ok = gen_tcp:send(S, ["POST /azure/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n",
                          "Content-Type: application/json\r\n",
                          [[K, ": ", V, "\r\n"] || {K, V} <- Headers],
                          "Content-Length: ", integer_to_list(byte_size(Body)), "\r\n\r\n", Body]),
    {ok, Resp} = azmp_test_http:recv_all(S, <<>>),
    ok = gen_tcp:close(S),
    [Head, RespBody] = binary:split(Resp, <<"\r\n\r\n">>),
    <<"HTTP/1.1 ", Code:3/binary, _/binary>> = Head,
    {binary_to_integer(Code), RespBody}.

%% The body's subscription.term with Extra merged in, and Top added at the top level.
edit_term(Extra, Top) ->
    fun(B = #{<<"subscription">> := Sub = #{<<"term">> := T}}) ->
            maps:merge(B#{<<"subscription">> := Sub#{<<"term">> := maps:merge(T, Extra)}}, Top)
    end.

oversized_renew(Emu) ->
    {A, SubId} = linked_account(Emu),
    Link = fun() -> emqx_azure_marketplace_store_links:link(A) end,
    Term0 = maps:get(term, Link()),
    %% 200 KB, most of it inside the term: refused before decoding, the link as it was.
    Junk = binary:copy(<<"x">>, 200 * 1024),
    {ok, #{status := 400, payload := Big}} =
        azmp_emulator:send_webhook_detailed(Emu, azmp_test_env:webhook_url(), 'Renew', SubId,
                                            #{edit_body => edit_term(#{<<"notes">> => Junk}, #{})}),
    ?assert(byte_size(Big) > 200 * 1024),
    ?assertEqual(Term0, maps:get(term, Link())),
    %% Under the bound, with junk in and around the term: only its three fields are kept.
    Some = binary:copy(<<"y">>, 20 * 1024),
    {ok, #{status := 200, payload := Small}} =
        azmp_emulator:send_webhook_detailed(Emu, azmp_test_env:webhook_url(), 'Renew', SubId,
                                            #{edit_body => edit_term(#{<<"notes">> => Some}, #{<<"extra">> => Some})}),
    {ok, #{<<"subscription">> := #{<<"term">> := Sent}}} = emqx_azure_marketplace_nif:json_decode(Small),
    ?assertEqual(maps:with([<<"startDate">>, <<"endDate">>, <<"termUnit">>], Sent), maps:get(term, Link())),
    Kept = maps:get(term, Link()),
    ?assert(byte_size(term_to_binary(Link())) < 4096),
    %% A term whose fields are not a term's (an overlong date, an odd unit) leaves the link's term alone.
    lists:foreach(
      fun(Bad) ->
              {ok, 200, _} = send(Emu, 'Renew', SubId, #{edit_body => edit_term(Bad, #{})}),
              ?assertEqual({Bad, Kept}, {Bad, maps:get(term, Link())})
      end,
      [#{<<"endDate">> => <<"2026-01-01T00:00:00", Some/binary>>},
       #{<<"startDate">> => <<"2026-02-30">>},
       #{<<"startDate">> => 20260101},
       #{<<"termUnit">> => <<"P1W">>},
       #{<<"termUnit">> => <<"P100Y">>}]).

rotation(Emu) ->
    {A, SubId} = linked_account(Emu),
    ok = azmp_emulator:reset_stats(Emu),
    _NewKid = azmp_emulator:rotate_signing_key(Emu),
    {ok, 200, _} = send(Emu, 'Suspend', SubId),
    {ok, 200, _} = send(Emu, 'Reinstate', SubId),
    ?assertEqual(1, maps:get(jwks, maps:get(by_op, azmp_emulator:stats(Emu)), 0)),
    ?assertMatch(#{status := linked}, ?M:link_status(A)).

support_unlink(Emu) ->
    {A, SubId} = linked_account(Emu),
    ?assertEqual(ok, ?M:unlink(A)),
    ?assertMatch(#{status := unsubscribed}, ?M:link_status(A)),
    {ok, EmuSub} = azmp_emulator:subscription(Emu, SubId),
    ?assertMatch(#{status := <<"Unsubscribed">>}, EmuSub),
    ?assertMatch(#{state := stopped}, deployment(A, <<"-paid">>)),
    ?assertMatch(#{state := running}, deployment(A, <<"-trial">>)),
    ?assertEqual(none, ?M:payment_method(A)),
    ?assertEqual({error, not_linked}, ?M:unlink(A)),
    %% Azure's own Unsubscribe webhook arriving afterwards changes nothing.
    Before = ?MEM:log(),
    {ok, 200, _} = send(Emu, 'Unsubscribe', SubId),
    ?assertEqual(Before, ?MEM:log()).

reconcile(Emu) ->
    {A, SubId} = linked_account(Emu),
    %% Cancelled in Azure, but the webhook never arrived.
    {ok, _} = emqx_azure_marketplace_client:delete_subscription(
        azmp_test_env:client(Emu, #{transport => http}), SubId),
    ?assertMatch(#{status := linked}, ?M:link_status(A)),
    {ok, Applied} = ?M:reconcile(),
    ?assert(lists:member({SubId, unsubscribe}, Applied)),
    ?assertMatch(#{status := unsubscribed}, ?M:link_status(A)),
    ?assertMatch(#{state := stopped}, deployment(A, <<"-paid">>)).

%% A node died right after committing a state change, before stopping anything: the state says
%% suspended (or cancelled) while the paid deployment still runs.
lost_effects(Emu) ->
    {A, SubA} = linked_account(Emu),
    {B, SubB} = linked_account(Emu),
    %% Azure has them suspended and cancelled (the webhooks came and were committed, then the crash).
    {ok, _} = azmp_emulator:add_operation(Emu, SubA, #{action => <<"Suspend">>}),
    {ok, _} = azmp_emulator:add_operation(Emu, SubB, #{action => <<"Unsubscribe">>}),
    commit_state_only(A, suspended),
    commit_state_only(B, unsubscribed),
    ?assertMatch(#{state := running}, deployment(A, <<"-paid">>)),
    {ok, Applied} = ?M:reconcile(),
    ?assert(lists:member({A, enforced}, Applied)),
    ?assert(lists:member({B, enforced}, Applied)),
    ?assertMatch(#{state := stopped}, deployment(A, <<"-paid">>)),
    ?assertMatch(#{state := running}, deployment(A, <<"-trial">>)),
    ?assertMatch(#{state := stopped}, deployment(B, <<"-paid">>)),
    ?assertEqual(none, ?M:payment_method(B)),
    {ok, #{payment_method := none}} = ?MEM:account(B),
    Pending = [maps:get(key, D) || D <- emqx_azure_marketplace_store_deadlines:deadlines_of(B), maps:get(done, D) =:= false],
    ?assertEqual(lists:sort([{B, <<B/binary, "-paid">>, delete}, {B, <<B/binary, "-trial">>, stop}]),
                 lists:sort(Pending)),
    %% Caught up once: a second pass finds nothing to do.
    {ok, Again} = ?M:reconcile(),
    ?assertNot(lists:member({A, enforced}, Again)),
    ?assertNot(lists:member({B, enforced}, Again)).

commit_state_only(Account, State) ->
    %% The state change alone, as a crash right after its commit would leave it (no effects).
    {changed, _, _, none} = emqx_azure_marketplace_store_links:transition(
        Account, fun(F) -> {ok, F#{state := State}, []} end, #{}, undefined, emqx_azure_marketplace_clock:now()),
    ok.
