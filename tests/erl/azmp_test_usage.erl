%% Helpers of the metering suites: a linked account, a sample, the ledger.
-module(azmp_test_usage).

-export([linked/1, linked/2, linked_at/2, record/4, report/3]).

-define(M, emqx_azure_marketplace).

%% @doc A new account linked to a new subscription of the emulator's: {AccountId, SubscriptionId}.
%% Linked two days back on the plugin's clock (usage from before the activation is refused, and the
%% suites record usage of the hours before now), which is then put back where it was.
-spec linked(term()) -> {binary(), binary()}.
linked(Emu) -> linked(Emu, #{}).

-spec linked(term(), map()) -> {binary(), binary()}.
linked(Emu, SubOpts) -> linked(Emu, SubOpts, emqx_azure_marketplace_clock:now() - 2 * 86400).

%% @doc linked/1, activated at At (unix s) on the plugin's clock.
-spec linked_at(term(), integer()) -> {binary(), binary()}.
linked_at(Emu, At) -> linked(Emu, #{}, At).

linked(Emu, SubOpts, At) ->
    A = list_to_binary("meter-" ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = azmp_test_platform:add_account(A, #{}),
    {ok, #{id := SubId, token := Token}} = azmp_emulator:add_subscription(Emu, SubOpts),
    Now = emqx_azure_marketplace_clock:now(),
    azmp_test_clock:advance(At - Now),
    ok = ?M:link(A, {token, Token}),
    azmp_test_env:await_linked(A),
    azmp_test_clock:advance(Now - emqx_azure_marketplace_clock:now()),
    {A, SubId}.

%% @doc record_usage with a source id of its own.
-spec record(binary(), binary(), number() | binary(), integer()) -> ok | {error, term()}.
record(A, Dim, Q, AtMs) ->
    ?M:record_usage(A, #{dimension => Dim, quantity => Q, at => AtMs,
                         source_id => integer_to_binary(erlang:unique_integer([positive]))}).

%% @doc The account's ledger, hours From..To.
-spec report(binary(), integer(), integer()) -> [map()].
report(A, From, To) ->
    {ok, Rows} = ?M:usage_report(A, From, To),
    Rows.
