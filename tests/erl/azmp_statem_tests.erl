%% A PropEr state machine drives random sequences of link attempts, webhooks, deployment creation and
%% time passing against the real plugin (emulator over HTTPS, webhooks over the HTTP listener), and
%% checks after every step the invariants the product promises:
%%   - one account per subscription;
%%   - no paid deployment runs for an account whose link is pending, suspended or cancelled;
%%   - every deployment stopped by a cancellation has exactly one deletion deadline, and nothing is
%%     deleted while an account is merely suspended.
-module(azmp_statem_tests).

-include_lib("proper/include/proper.hrl").
-include_lib("eunit/include/eunit.hrl").

-export([initial_state/0, command/1, precondition/2, postcondition/3, next_state/3]).
-export([add_subscription/0, link/2, webhook/2, create_deployment/2, pass_time/1]).

-define(M, emqx_azure_marketplace).
-define(MEM, azmp_test_platform).
-define(EMU_KEY, {?MODULE, emulator}).
-define(ACCOUNTS_KEY, {?MODULE, accounts}).
-define(NUMTESTS, list_to_integer(os:getenv("AZMP_STATEM_NUMTESTS", "100"))).

statem_test_() ->
    {setup,
     fun() ->
         Emu = azmp_test_env:start_emulator(),
         persistent_term:put(?EMU_KEY, Emu),
         {Emu, azmp_test_env:start_plugin(Emu)}
     end,
     fun({Emu, Plugin}) ->
         azmp_test_env:stop_plugin(Plugin),
         azmp_test_env:stop_emulator(Emu),
         persistent_term:erase(?EMU_KEY)
     end,
     fun(_) ->
         {timeout, 600, fun() ->
             ?assertEqual(true, proper:quickcheck(prop_invariants(),
                                                  [{numtests, ?NUMTESTS}, {max_size, 25}, {to_file, user}]))
         end}
     end}.

prop_invariants() ->
    ?FORALL(Cmds, commands(?MODULE),
            begin
                new_accounts(),
                %% Debian's PropEr calls erlang:get_stacktrace/0 (gone since OTP 23) when a property
                %% raises: turn exceptions into a failing result that shows what happened.
                {History, State, Result} =
                    try run_commands(?MODULE, Cmds)
                    catch C:E:St -> {[], undefined, {exception, C, E, St}}
                    end,
                ?WHENFAIL(io:format(user, "History: ~p~nState: ~p~nResult: ~p~n", [History, State, Result]),
                          aggregate(command_names(Cmds), Result =:= ok))
            end).

%%--------------------------------------------------------------------
%% Model: which subscriptions exist (as symbolic results); the rest is read from the system.

initial_state() -> #{subs => []}.

command(#{subs := Subs}) ->
    Account = elements([1, 2, 3]),
    frequency(
        [{2, {call, ?MODULE, add_subscription, []}},
         {1, {call, ?MODULE, create_deployment, [Account, boolean()]}},
         {1, {call, ?MODULE, pass_time, [elements([3600, 86400, 2 * 86400])]}}] ++
        [{3, {call, ?MODULE, link, [Account, elements(Subs)]}} || Subs =/= []] ++
        [{3, {call, ?MODULE, webhook, [elements(['Suspend', 'Reinstate', 'Unsubscribe', 'Renew']), elements(Subs)]}}
         || Subs =/= []]
    ).

precondition(_S, _Call) -> true.

next_state(S = #{subs := Subs}, Sub, {call, _, add_subscription, []}) -> S#{subs := [Sub | Subs]};
next_state(S, _Res, _Call) -> S.

postcondition(_S, Call, Res) ->
    case invariants() of
        true -> true;
        Violation ->
            io:format(user, "~nInvariant violated after ~p -> ~p:~n~p~n", [Call, Res, Violation]),
            false
    end.

%%--------------------------------------------------------------------
%% Commands

add_subscription() ->
    {ok, #{id := Id, token := Token}} = azmp_emulator:add_subscription(emu(), #{}),
    {Id, Token}.

%% Links and waits until the attempt is over (linked or refused).
link(N, {_Id, Token}) ->
    A = account(N),
    case ?M:link(A, {token, Token}) of
        ok ->
            azmp_test_env:wait_until(fun() ->
                case emqx_azure_marketplace_store_jobs:job(A) of
                    undefined -> true;
                    Job -> maps:get(phase, Job) =:= failed
                end
            end, 15000),
            ?M:link_status(A);
        Other ->
            Other
    end.

webhook(Action, {Id, _Token}) ->
    case azmp_emulator:send_webhook(emu(), azmp_test_env:webhook_url(), Action, Id, #{}) of
        {ok, Status, _} -> Status;
        {error, Reason} -> {error, Reason}
    end.

%% Creates a deployment when, and only when, the plugin allows it.
create_deployment(N, Trial) ->
    A = account(N),
    case ?M:can_create_deployment(A, #{trial => Trial}) of
        ok ->
            Id = list_to_binary("dep-" ++ integer_to_list(erlang:unique_integer([positive]))),
            Now = emqx_azure_marketplace_clock:now(),
            ok = ?MEM:add_deployment(A, #{id => Id, trial => Trial, trial_ends_at => Now + 86400}),
            created;
        {error, Reason} ->
            Reason
    end.

pass_time(Seconds) ->
    azmp_test_clock:advance(Seconds),
    azmp_test_run:deadlines_pass().

%%--------------------------------------------------------------------
%% Invariants, read from the system itself

invariants() ->
    Links = emqx_azure_marketplace_store_links:links_changed_since(0),
    SubIds = [maps:get(subscription_id, L) || L <- Links],
    OnePerSubscription = length(SubIds) =:= length(lists:usort(SubIds)),
    Accounts = persistent_term:get(?ACCOUNTS_KEY),
    PerAccount = [account_ok(A) || A <- Accounts],
    case {OnePerSubscription, [R || R <- PerAccount, R =/= ok]} of
        {true, []} -> true;
        {false, _} ->
            Dups = SubIds -- lists:usort(SubIds),
            {violated, one_account_per_subscription, [L || L <- Links, lists:member(maps:get(subscription_id, L), Dups)]};
        {_, Bad} -> {violated, Bad}
    end.

account_ok(A) ->
    State = emqx_azure_marketplace_lifecycle:link_state(A),
    Deployments = emqx_azure_marketplace_platform:deployments(A),
    %% Pending ones: what a cancellation scheduled and has not run (or been called off) yet.
    Deadlines = [{D, K} || #{deployment_id := D, kind := K, done := false} <- emqx_azure_marketplace_store_deadlines:deadlines_of(A)],
    PaidRunning = [Id || #{id := Id, trial := false, state := running} <- Deployments],
    Stopped = [Id || #{id := Id, state := stopped} <- Deployments],
    if
        PaidRunning =/= [], State =/= linked, State =/= none ->
            {paid_running_while, State, A, PaidRunning};
        State =:= unsubscribed ->
            Missing = [Id || Id <- Stopped, length([x || {D, delete} <- Deadlines, D =:= Id]) =/= 1],
            case Missing of
                [] -> ok;
                _ -> {stopped_without_one_deletion_deadline, A, Missing}
            end;
        State =:= suspended, Deadlines =/= [] ->
            {deletion_scheduled_while_suspended, A, Deadlines};
        true ->
            ok
    end.

%%--------------------------------------------------------------------

emu() -> persistent_term:get(?EMU_KEY).

%% Three fresh accounts per test case, so that cases do not see each other's state.
new_accounts() ->
    Base = integer_to_list(erlang:unique_integer([positive])),
    Accounts = [list_to_binary("sm-" ++ Base ++ "-" ++ integer_to_list(N)) || N <- [1, 2, 3]],
    [ok = ?MEM:add_account(A, #{}) || A <- Accounts],
    persistent_term:put(?ACCOUNTS_KEY, Accounts).

account(N) -> lists:nth(N, persistent_term:get(?ACCOUNTS_KEY)).
