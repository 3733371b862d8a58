%% @doc `emqx ctl azure_marketplace ...' (registered with emqx_ctl inside EMQX; run/1 elsewhere).
%% No command takes or shows a secret.
-module(emqx_azure_marketplace_cli).

-export([cmd/1, run/1]).

-define(USAGE,
    "azure_marketplace status              Azure reachability, token age, backlog, alarms, counters\n"
    "azure_marketplace account <id>        An account's link and linking status\n"
    "azure_marketplace resync <sub_id>     Bring one subscription to Azure's state now\n"
    "azure_marketplace doubt <sub_id>      Check one subscription first at the next reconciliation call\n"
    "azure_marketplace reconcile           Read every subscription from Azure now, apply what we miss\n"
    "azure_marketplace deadlines           Deadlines (trial stops, deletions) not done yet\n"
    "azure_marketplace usage <id>          Usage ledger of an account (last 48 hours)\n"
    "azure_marketplace metrics             Counters in the Prometheus text format\n"
    "azure_marketplace prepare-rollback    Lay the tables out for a build before 2026-12-06 (run once, then roll back)\n").

%% @doc emqx_ctl's callback: prints what run/1 answers.
-spec cmd([string()]) -> ok.
cmd(Args) -> emqx_azure_marketplace_emqx:print(run(Args)).

%% @doc The command's output, as text.
-spec run([string() | binary()]) -> binary().
run(Args) ->
    Strs = [unicode:characters_to_list(A) || A <- Args],
    iolist_to_binary(
        try
            case running() of
                false when Strs =/= [] -> "emqx_azure_marketplace is not running\n";
                _ -> do(Strs)
            end
        catch
            Class:Reason ->
                %% a command must not take the node's CLI down; the reason names what failed
                io_lib:format("error: ~p:~0p~n", [Class, Reason])
        end).

running() -> is_pid(whereis(emqx_azure_marketplace_sup)).

do(["status"]) ->
    #{azure := Azure, backlog := Backlog, alarms := Alarms} = emqx_azure_marketplace_app:health(),
    {ok, Vsn} = application:get_key(emqx_azure_marketplace, vsn),
    [line("version", Vsn),
     line("azure", maps:get(state, Azure)),
     line("azure last answer at", time(maps:get(last_reached_at, Azure))),
     line("azure last failure at", time(maps:get(last_unreachable_at, Azure))),
     line("access token age (s)", maps:get(token_age_s, Azure)),
     line("linking jobs pending", maps:get(linking_jobs, Backlog)),
     line("effects pending", maps:get(effects, Backlog)),
     line("deadlines pending", maps:get(deadlines, Backlog)),
     line("alarms", case Alarms of [] -> "none"; _ -> lists:join(" ", Alarms) end),
     "counters:\n",
     [io_lib:format("  ~ts ~b~n", [counter_name(K), V]) || {K, V} <- emqx_azure_marketplace_metrics:counters()]];
do(["account", Id]) ->
    Account = unicode:characters_to_binary(Id),
    Status = emqx_azure_marketplace:link_status(Account),
    Link = emqx_azure_marketplace_store_links:link(Account),
    [io_lib:format("linking: ~0p~n", [Status]),
     io_lib:format("link: ~0p~n", [Link]),
     io_lib:format("payment method: ~0p~n", [emqx_azure_marketplace:payment_method(Account)]),
     [io_lib:format("deadline: ~ts ~ts at ~ts~s~n", [D, K, time(At), case Done of true -> " (done)"; false -> "" end])
      || #{deployment_id := D, kind := K, at := At, done := Done} <- emqx_azure_marketplace_store_deadlines:deadlines_of(Account)]];
do(["resync", SubId]) ->
    case emqx_azure_marketplace_reconciler:resync(unicode:characters_to_binary(SubId)) of
        {ok, []} -> "in step with Azure: nothing to apply\n";
        {ok, Applied} -> [io_lib:format("applied ~ts to account ~ts~n", [E, A]) || {A, E} <- Applied];
        {error, Reason} -> io_lib:format("error: Azure not asked successfully: ~0p~n", [Reason])
    end;
do(["reconcile"]) ->
    case emqx_azure_marketplace_reconciler:reconcile() of
        {ok, []} -> "every subscription in step with Azure: nothing to apply\n";
        {ok, Applied} -> [io_lib:format("applied ~ts to subscription ~ts~n", [E, S]) || {S, E} <- Applied];
        {error, Reason} -> io_lib:format("error: Azure's list of subscriptions not read: ~0p (nothing applied "
                                         "past the pages read; the periodic pass goes on)~n", [Reason])
    end;
do(["doubt", SubId]) ->
    Sub = unicode:characters_to_binary(SubId),
    case emqx_azure_marketplace_reconciler:doubt(Sub) of
        ok ->
            io_lib:format("~ts is in doubt: the reconciliation's next call~ts reads it with Get Subscription "
                          "before any page, and applies what our state misses~n", [Sub, next_call()]);
        {error, {badarg, subscription_id}} ->
            "error: not a subscription id (1 to 1024 bytes of text): nothing flagged\n";
        {error, not_linked} ->
            io_lib:format("error: no account is linked to subscription ~ts: nothing flagged "
                          "(check the id; `account <id>` shows an account's subscription)~n", [Sub])
    end;
do(["deadlines"]) ->
    case emqx_azure_marketplace_store_deadlines:deadlines_due(16#7fffffffffff) of
        [] -> "no deadline pending\n";
        Ds -> [io_lib:format("~ts ~ts ~ts at ~ts~n", [A, D, K, time(At)])
               || #{account_id := A, deployment_id := D, kind := K, at := At} <- lists:sort(fun(X, Y) -> maps:get(at, X) =< maps:get(at, Y) end, Ds)]
    end;
do(["usage", Id]) ->
    Now = emqx_azure_marketplace_clock:now(),
    case emqx_azure_marketplace:usage_report(unicode:characters_to_binary(Id), Now - 48 * 3600, Now) of
        {ok, []} -> "no usage in the last 48 hours\n";
        {ok, Rows} -> [io_lib:format("~ts ~ts recorded ~ts included ~ts reported ~ts ~ts~n",
                                     [time(H), D, Rec, Inc, Rep, St])
                       || #{hour := H, dimension := D, recorded := Rec, included := Inc, reported := Rep,
                            status := St} <- Rows];
        {error, not_linked} -> "not linked\n"
    end;
do(["metrics"]) ->
    emqx_azure_marketplace_metrics:prometheus();
do(["prepare-rollback"]) ->
    case emqx_azure_marketplace_store:prepare_rollback() of
        {ok, []} -> "the tables are laid out for an earlier build already\n";
        {ok, Done} -> [[D, "\n"] || D <- Done] ++ ["the tables are laid out for an earlier build: roll back now\n"];
        {error, {What, Reason}} -> io_lib:format("failed: ~ts: ~0p (run it again)~n", [What, Reason])
    end;
do(_) ->
    ?USAGE.

line(Label, Value) -> io_lib:format("~-24s ~ts~n", [Label ++ ":", text(Value)]).

text(undefined) -> "-";
text(V) when is_atom(V) -> atom_to_list(V);
text(V) when is_integer(V) -> integer_to_list(V);
text(V) -> V.

%% When the reconciliation's next call is due, as its checkpoint says (none before a first pass).
next_call() ->
    case emqx_azure_marketplace_store_recon:checkpoint() of
        #{next_at_ms := At} when At > 0 ->
            [" (due at ", calendar:system_time_to_rfc3339(At, [{unit, millisecond}, {offset, "Z"}]), ")"];
        _ -> ""
    end.

time(undefined) -> "-";
time(T) when is_integer(T) -> calendar:system_time_to_rfc3339(T, [{offset, "Z"}]).

counter_name({azure_call, Op, O}) -> io_lib:format("azure_call.~s.~s", [Op, O]);
counter_name({webhook, O}) -> io_lib:format("webhook.~s", [O]);
counter_name({link, O}) -> io_lib:format("link.~s", [O]);
counter_name(retries) -> "retries".
