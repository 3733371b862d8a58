%% Shared set-up for the Erlang suites: an emulator on loopback and clients pointed at it.
-module(azmp_test_env).

-export([start_emulator/0, start_emulator/1, stop_emulator/1, client/2, client_config/2, wait_until/2]).

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
            http -> Base
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
