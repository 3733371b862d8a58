%% Shared set-up for the Erlang suites: an emulator on loopback and clients pointed at it.
-module(azmp_test_env).

-export([start_emulator/0, start_emulator/1, stop_emulator/1, client/2, client_config/2, wait_until/2]).
-export([start_plugin/1, start_plugin/2, stop_plugin/1, webhook_url/0, await_status/2, await_linked/1,
         with_plugin/1]).

start_emulator() -> start_emulator(#{}).

start_emulator(Opts) ->
    {ok, _} = application:ensure_all_started(ssl),
    {ok, Emu} = azmp_emulator:start(Opts),
    Emu.

stop_emulator(Emu) -> azmp_emulator:stop(Emu).

%% Client config for `http' or `https' against Emu; Extra overrides.
client_config(Emu, #{transport := Transport} = Extra) ->
    Url =
        case Transport of
            http -> azmp_emulator:http_url(Emu);
            https -> azmp_emulator:https_url(Emu)
        end,
    Base = #{
        tenant_id => <<"tenant-1">>,
        client_id => <<"client-1">>,
        client_secret => <<"secret-1">>,
        login_url => Url,
        marketplace_url => <<Url/binary, "/api">>,
        timeout_ms => 10000,
        retry => #{max_attempts => 4, base_delay_ms => 10, max_delay_ms => 50, max_retry_after_ms => 2000}
    },
    WithCa =
        case Transport of
            https -> Base#{ca_file => iolist_to_binary(azmp_emulator:ca_file(Emu))};
            %% the emulator's plain http endpoint: a test endpoint, said so
            http -> Base#{allow_insecure_loopback => true}
        end,
    maps:merge(WithCa, maps:remove(transport, Extra)).

client(Emu, Extra) ->
    {ok, C} = emqx_azure_marketplace_client:new(client_config(Emu, Extra)),
    C.

%% Polls F until it returns true, at most TimeoutMs.
wait_until(F, TimeoutMs) when TimeoutMs =< 0 -> F();
wait_until(F, TimeoutMs) ->
    case F() of
        true -> true;
        false ->
            timer:sleep(20),
            wait_until(F, TimeoutMs - 20)
    end.

%% The plugin application against Emu, on this node: Mnesia in a fresh directory, the in-memory
%% platform, fast ticks. Returns what stop_plugin/1 needs.
start_plugin(Emu) -> start_plugin(Emu, #{}).

start_plugin(Emu, Extra) ->
    Dir = filename:join("/tmp", "azmp_mnesia_" ++ os:getpid() ++ "_" ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = application:set_env(mnesia, dir, Dir),
    {ok, _} = azmp_test_platform:start(),
    ok = azmp_test_platform:reset(),
    azmp_test_clock:reset(),
    Azure = client_config(Emu, #{transport => https, timeout_ms => 5000,
                                 retry => #{max_attempts => 2, base_delay_ms => 10, max_delay_ms => 50}}),
    Env = maps:merge(#{azure => Azure, platform => azmp_test_platform, clock => azmp_test_clock,
                       http => #{port => 0}, tick_ms => 100, deadline_tick_ms => 200,
                       retry_base_s => 1, retry_max_s => 2, lease_s => 5,
                       %% every unknown kid may refresh the JWKS: the suites rotate keys back to back
                       jwks_refresh_interval_s => 0,
                       %% set every time: a suite's metering (history_days below the minimum, set
                       %% behind the start's check) must not reach the next suite's start
                       metering => #{}}, Extra),
    [ok = application:set_env(emqx_azure_marketplace, K, V) || {K, V} <- maps:to_list(Env)],
    {ok, _} = application:ensure_all_started(emqx_azure_marketplace),
    #{dir => Dir}.

stop_plugin(#{dir := Dir}) ->
    ok = application:stop(emqx_azure_marketplace),
    stopped = mnesia:stop(),
    ok = mnesia:delete_schema([node()]),
    _ = file:del_dir_r(Dir),
    azmp_test_clock:reset(),
    ok.

%% The plugin's webhook URL.
webhook_url() ->
    iolist_to_binary(["http://127.0.0.1:", integer_to_list(emqx_azure_marketplace_app:http_port()), "/azure/webhook"]).

%% Waits until the account's link status has the given status; returns the status map.
await_status(Account, Status) ->
    F = fun() -> maps:get(status, emqx_azure_marketplace:link_status(Account)) =:= Status end,
    case wait_until(F, 15000) of
        true -> emqx_azure_marketplace:link_status(Account);
        false -> error({status_not_reached, Account, Status, emqx_azure_marketplace:link_status(Account)})
    end.

%% An EUnit fixture: an emulator and the plugin around the tests that Instantiate(Emu) gives.
with_plugin(Instantiate) ->
    {setup,
     fun() ->
         Emu = start_emulator(),
         {Emu, start_plugin(Emu)}
     end,
     fun({Emu, Plugin}) ->
         stop_plugin(Plugin),
         stop_emulator(Emu)
     end,
     fun({Emu, _}) -> Instantiate(Emu) end}.

%% Waits until the account is linked and the control plane has heard of it (payment method set,
%% notice sent: these follow the recorded link).
await_linked(Account) ->
    Status = await_status(Account, linked),
    true = wait_until(fun() ->
        {ok, #{payment_method := M, notices := Ns}} = azmp_test_platform:account(Account),
        M =:= azure_marketplace_subscription andalso lists:any(fun(#{kind := K}) -> K =:= linked end, Ns)
    end, 5000),
    Status.
