%% @doc The plugin's configuration. Inside EMQX it is the plugin config EMQX holds (the dashboard's
%% form, `priv/config.hocon' for defaults), read with `emqx_plugins:get_config/1' and converted to
%% the application environment the rest of the plugin reads; outside EMQX the application
%% environment is the configuration. Validation makes no network call: the client and the webhook
%% authenticator check their configs when they are made, which is local.
-module(emqx_azure_marketplace_config).

-export([load/0, name_vsn/0, from_hocon/1, validate/1, validate_metering/1, apply_env/1, current/0,
         webhook_auth_config/1, redirect_url/1, valid_calls_per_s/1]).

-define(APP, emqx_azure_marketplace).
%% The settings that are plain positive integers (names as in config.hocon and the app env).
-define(TIMINGS, [effects_sweep_ms, tick_ms, lease_s, retry_base_s, retry_max_s, deadline_tick_ms,
                  deadline_claim_s, reconcile_interval_ms, jwks_refresh_interval_s, enforce_window_s]).
%% The reconciliation's ceiling of Azure calls per second: a positive number, not only an integer
%% (0.5: one call every 2 s).
-define(RATE, reconcile_max_calls_per_s).
-define(AZURE_STRINGS, [tenant_id, client_id, client_secret, login_url, marketplace_url, ca_file, proxy]).
-define(AZURE_INTS, [timeout_ms, connect_timeout_ms, max_in_flight]).
%% Plain http to a loopback login_url / marketplace_url: test endpoints (an emulator) only.
-define(AZURE_BOOLS, [allow_insecure_loopback]).
-define(RETRY_INTS, [max_attempts, base_delay_ms, max_delay_ms, max_retry_after_ms]).
%% The metering section's plain positive integers (the meter's timings; the env key `metering').
-define(METERING_TIMINGS, [tick_ms, lease_s, retry_base_s, retry_max_s]).
%% The metering settings the core checks (emqx_azure_marketplace_nif:usage_settings/1).
-define(METERING_CORE, [grace_s, lateness_s, history_days, dedupe_window_s]).

%% The shape the plugin runs with (the application env keys).
-type config() :: #{azure := map(), platform => module(), http := disabled | #{ip := inet:ip_address(), port := inet:port_number()},
                    atom() => term()}.
%% A refusal names the setting, as config.hocon spells it; never its value.
-type error() :: #{msg := binary(), field := binary(), reason := term()}.
-export_type([config/0, error/0]).

%% @doc `<name>-<vsn>', the name EMQX knows the installed package by.
-spec name_vsn() -> binary().
name_vsn() ->
    _ = application:load(?APP),
    {ok, Vsn} = application:get_key(?APP, vsn),
    iolist_to_binary(["emqx_azure_marketplace-", Vsn]).

%% @doc Inside EMQX: EMQX's config for the plugin, checked and put into the application env.
%% Outside EMQX: nothing to do (the application env is the configuration).
-spec load() -> ok | {error, error() | term()}.
load() ->
    case emqx_azure_marketplace_emqx:get_plugin_config(name_vsn()) of
        not_in_emqx -> ok;
        {ok, Hocon} ->
            case from_hocon(Hocon) of
                {ok, Config} -> apply_env(Config);
                {error, _} = Error -> Error
            end;
        {error, Reason} -> {error, {emqx_plugin_config_unreadable, Reason}}
    end.

%% @doc The configuration the plugin runs with now (the application env).
-spec current() -> config().
current() ->
    Env = maps:from_list(application:get_all_env(?APP)),
    maps:merge(#{azure => #{}, http => disabled}, Env).

%% @doc Converts EMQX's config (binary keys, hocon's types) to the plugin's shape. A client secret
%% given as `file:///path' is read from that file.
-spec from_hocon(map()) -> {ok, config()} | {error, error()}.
from_hocon(Hocon) when is_map(Hocon) ->
    try
        {ok, convert(Hocon, section(Hocon, azure))}
    catch
        throw:{config_error, Field, Why} -> {error, refusal(Field, Why)}
    end;
from_hocon(_) ->
    {error, refusal(<<"(root)">>, not_a_map)}.

convert(Hocon, Azure0) ->
    RetrySection = section(Azure0, retry, <<"azure.">>),
    Retry = maps:from_list([{K, int(RetrySection, K, <<"azure.retry.">>, K =:= max_attempts)}
                            || K <- ?RETRY_INTS, has(RetrySection, K)]),
    Strings = [{K, V} || K <- ?AZURE_STRINGS, has(Azure0, K), V <- [str(Azure0, K, <<"azure.">>)], V =/= <<>>],
    Ints = [{K, int(Azure0, K, <<"azure.">>, true)} || K <- ?AZURE_INTS, has(Azure0, K)],
    Bools = [{K, bool(Azure0, K, <<"azure.">>)} || K <- ?AZURE_BOOLS, has(Azure0, K)],
    Azure1 = maps:from_list(Strings ++ Ints ++ Bools),
    Azure2 = case has(Azure0, token_endpoint) of
                 true -> Azure1#{token_endpoint => token_endpoint(get(Azure0, token_endpoint))};
                 false -> Azure1
             end,
    Azure3 = case map_size(Retry) of 0 -> Azure2; _ -> Azure2#{retry => Retry} end,
    Azure = secret_from_file(Azure3),
    Platform = case has(Hocon, platform_module) of
                   true ->
                       case str(Hocon, platform_module, <<>>) of
                           <<>> -> #{};
                           M -> #{platform => binary_to_atom(M)}
                       end;
                   false -> #{}
               end,
    Timings0 = maps:from_list([{K, int(Hocon, K, <<>>, K =/= jwks_refresh_interval_s)} || K <- ?TIMINGS, has(Hocon, K)]),
    Timings = case has(Hocon, ?RATE) of
                  true -> Timings0#{?RATE => calls_per_s(get(Hocon, ?RATE))};
                  false -> Timings0
              end,
    Metering = case has(Hocon, metering) of
                   true -> #{metering => metering_env(section(Hocon, metering))};
                   false -> #{}
               end,
    Landing = case has(Hocon, landing) of
                  true -> #{landing_redirect_url => str(section(Hocon, landing), redirect_url, <<"landing.">>)};
                  false -> #{}
              end,
    maps:merge(maps:merge(maps:merge(Timings, Metering), Landing),
               Platform#{azure => Azure, http => http(section(Hocon, http))}).

%% The `metering' section in the application env's shape (emqx_azure_marketplace_metering's
%% header): the types converted here, the values checked by validate/1.
metering_env(M) ->
    Timings = [{K, int(M, K, <<"metering.">>, true)} || K <- ?METERING_TIMINGS, has(M, K)],
    Core = [{K, get(M, K)} || K <- ?METERING_CORE, has(M, K)],
    Dims = case get(M, dimensions) of
               undefined -> [];
               L when is_list(L) ->
                   [{dimensions, [dimension_env(D, dim_field(N)) || {N, D} <- lists:enumerate(L)]}];
               _ -> throw({config_error, <<"metering.dimensions">>, not_a_list})
           end,
    maps:from_list(Timings ++ Core ++ Dims).

dim_field(N) -> iolist_to_binary(["metering.dimensions[", integer_to_list(N), "]"]).

dimension_env(D, Field) when is_map(D) ->
    Prefix = <<Field/binary, ".">>,
    Included = case get(D, included) of
                   undefined -> #{};
                   I when is_map(I) ->
                       maps:from_list([{key(P, <<Prefix/binary, "included">>), quantity(Q, Prefix, P)}
                                       || {P, Q} <- maps:to_list(I)]);
                   _ -> throw({config_error, <<Prefix/binary, "included">>, not_a_map})
               end,
    #{id => str(D, id, Prefix), unit => str(D, unit, Prefix), included => Included};
dimension_env(_, Field) ->
    throw({config_error, Field, not_a_section}).

%% A plan id: hocon gives binaries; atoms and strings are taken as their text.
key(K, _) when is_binary(K) -> K;
key(K, _) when is_atom(K) -> atom_to_binary(K);
key(K, Field) when is_list(K) ->
    case unicode:characters_to_binary(K) of
        B when is_binary(B) -> B;
        _ -> throw({config_error, Field, not_a_plan_id})
    end;
key(_, Field) ->
    throw({config_error, Field, not_a_plan_id}).

%% An included quantity: an exact decimal string ("10.5", what the schema asks for) or a number,
%% kept as given (the core parses it, validate/1 checks it).
quantity(Q, _, _) when is_binary(Q); is_number(Q) -> Q;
quantity(Q, Prefix, Plan) when is_list(Q) ->
    case unicode:characters_to_binary(Q) of
        B when is_binary(B) -> B;
        _ -> throw({config_error, included_field(Prefix, Plan), not_a_quantity})
    end;
quantity(_, Prefix, Plan) ->
    throw({config_error, included_field(Prefix, Plan), not_a_quantity}).

included_field(Prefix, Plan) when is_binary(Plan) -> <<Prefix/binary, "included.", Plan/binary>>;
included_field(Prefix, Plan) when is_atom(Plan) -> included_field(Prefix, atom_to_binary(Plan));
included_field(Prefix, _) -> <<Prefix/binary, "included">>.

section(Map, Key) -> section(Map, Key, <<>>).
section(Map, Key, Prefix) ->
    case get(Map, Key) of
        undefined -> #{};
        M when is_map(M) -> M;
        _ -> throw({config_error, field(Prefix, Key), not_a_section})
    end.

%% hocon gives binary keys; the application env and tests may give atoms.
has(Map, Key) -> get(Map, Key) =/= undefined.
get(Map, Key) ->
    case maps:find(atom_to_binary(Key), Map) of
        {ok, V} -> V;
        error -> maps:get(Key, Map, undefined)
    end.

field(Prefix, Key) -> <<Prefix/binary, (atom_to_binary(Key))/binary>>.

str(Map, Key, Prefix) ->
    case get(Map, Key) of
        B when is_binary(B) -> B;
        L when is_list(L) ->
            case unicode:characters_to_binary(L) of
                B when is_binary(B) -> B;
                _ -> throw({config_error, field(Prefix, Key), not_a_string})
            end;
        _ -> throw({config_error, field(Prefix, Key), not_a_string})
    end.

int(Map, Key, Prefix, Positive) ->
    case get(Map, Key) of
        I when is_integer(I), I > 0 -> I;
        0 when not Positive -> 0;
        _ when Positive -> throw({config_error, field(Prefix, Key), not_a_positive_integer});
        _ -> throw({config_error, field(Prefix, Key), not_a_non_negative_integer})
    end.

calls_per_s(V) ->
    case valid_calls_per_s(V) of
        true -> V;
        false -> throw({config_error, atom_to_binary(?RATE), not_a_positive_number})
    end.

bool(Map, Key, Prefix) ->
    case get(Map, Key) of
        B when is_boolean(B) -> B;
        _ -> throw({config_error, field(Prefix, Key), not_a_boolean})
    end.

token_endpoint(V) when V =:= <<"v1">>; V =:= v1; V =:= "v1" -> v1;
token_endpoint(V) when V =:= <<"v2">>; V =:= v2; V =:= "v2" -> v2;
token_endpoint(_) -> throw({config_error, <<"azure.token_endpoint">>, not_v1_or_v2}).

%% `file:///path': the secret is that file's content (a trailing newline is not part of it).
secret_from_file(#{client_secret := <<"file://", Path/binary>>} = Azure) ->
    case file:read_file(Path) of
        {ok, Bin} -> Azure#{client_secret := string:trim(Bin, trailing, "\r\n")};
        {error, Reason} -> throw({config_error, <<"azure.client_secret">>, {file_unreadable, Path, Reason}})
    end;
secret_from_file(Azure) ->
    Azure.

http(Http) ->
    case get(Http, enable) of
        false -> disabled;
        _ ->
            Ip = case has(Http, ip) of
                     false -> {127, 0, 0, 1};
                     true ->
                         case inet:parse_address(binary_to_list(str(Http, ip, <<"http.">>))) of
                             {ok, A} -> A;
                             {error, _} -> throw({config_error, <<"http.ip">>, not_an_ip_address})
                         end
                 end,
            Port = case get(Http, port) of
                       undefined -> 8480;
                       P when is_integer(P), P >= 0, P =< 65535 -> P;
                       _ -> throw({config_error, <<"http.port">>, not_a_port})
                   end,
            #{ip => Ip, port => Port}
    end.

refusal(Field, Why) -> #{msg => <<"invalid_config">>, field => Field, reason => Why}.

%% @doc Checks a configuration without touching the network: the platform module, the client
%% config, the webhook authenticator config, the timings, the reconciliation's ceiling of calls per
%% second, the metering settings the core checks.
%% The client and the authenticator made here are dropped.
-spec validate(config()) -> ok | {error, error()}.
validate(Config) ->
    Azure = maps:get(azure, Config, #{}),
    Checks = [
        fun() -> required(Azure) end,
        fun() -> platform(maps:get(platform, Config, application:get_env(?APP, platform, undefined))) end,
        fun() -> azure_checked(emqx_azure_marketplace_client:new(Azure)) end,
        fun() -> azure_checked(emqx_azure_marketplace_nif:webhook_auth_new(webhook_auth_config(Azure))) end,
        fun() ->
            case [K || K <- ?TIMINGS, maps:is_key(K, Config),
                       not valid_timing(K, maps:get(K, Config))] of
                [] -> ok;
                [K | _] -> {error, refusal(atom_to_binary(K), not_a_positive_integer)}
            end
        end,
        fun() ->
            case maps:is_key(?RATE, Config) andalso not valid_calls_per_s(maps:get(?RATE, Config)) of
                true -> {error, refusal(atom_to_binary(?RATE), not_a_positive_number)};
                false -> ok
            end
        end,
        fun() -> validate_metering(maps:get(metering, Config, #{})) end,
        fun() -> redirect_url(maps:get(landing_redirect_url, Config, <<>>)) end
    ],
    run(Checks).

%% @doc The page a browser landing from Azure is sent to (the platform's sign-in), `landing_id'
%% added to its query: an absolute http(s) URL with a host, whose query (if any) is well-formed.
%% Empty: browsers get the JSON answer too.
-spec redirect_url(term()) -> ok | {error, error()}.
redirect_url(<<>>) -> ok;
redirect_url(Url) when is_binary(Url) ->
    case uri_string:parse(Url) of
        #{scheme := Scheme, host := Host} = U when Host =/= <<>> ->
            Query = maps:get(query, U, <<>>),
            case lists:member(string:lowercase(Scheme), [<<"http">>, <<"https">>]) andalso
                 (Query =:= <<>> orelse is_list(uri_string:dissect_query(Query))) of
                true -> ok;
                false -> {error, refusal(<<"landing.redirect_url">>, not_an_http_url)}
            end;
        _ -> {error, refusal(<<"landing.redirect_url">>, not_an_http_url)}
    end;
redirect_url(_) ->
    {error, refusal(<<"landing.redirect_url">>, not_an_http_url)}.

%% @doc Checks a metering config (the application env `metering', as validate/1 does for a whole
%% config; the start checks the one it runs with). The dimensions: each a valid id, a unit, and
%% included quantities the core reads as exact non-negative decimals; the timings positive; the
%% core's rules for the grace, the lateness, the history, the dedupe window and the ids (each once).
-spec validate_metering(term()) -> ok | {error, error()}.
validate_metering(Metering) when is_map(Metering) ->
    run([fun() -> dimensions(maps:get(dimensions, Metering, [])) end,
         fun() ->
             %% The core's rules for every timing and for the ids (each once): the first refused.
             case emqx_azure_marketplace_nif:usage_settings(Metering) of
                 {_, []} -> ok;
                 {_, [{dimensions, {repeated_id, N}} | _]} ->
                     {error, refusal(<<(dim_field(N))/binary, ".id">>, repeated_id)};
                 {_, [{K, Why} | _]} -> {error, refusal(field(<<"metering.">>, K), Why)}
             end
         end]);
validate_metering(_) ->
    {error, refusal(<<"metering">>, not_a_map)}.

dimensions(Dims) when is_list(Dims) ->
    run([fun() -> dimension(D, dim_field(N)) end || {N, D} <- lists:enumerate(Dims)]);
dimensions(_) ->
    {error, refusal(<<"metering.dimensions">>, not_a_list)}.

dimension(#{} = D, Field) ->
    Prefix = <<Field/binary, ".">>,
    Included = maps:get(included, D, #{}),
    case {emqx_azure_marketplace_nif:valid_id(maps:get(id, D, undefined)), maps:get(unit, D, undefined)} of
        {false, _} -> {error, refusal(<<Prefix/binary, "id">>, not_a_valid_id)};
        {true, U} when not is_binary(U); U =:= <<>> -> {error, refusal(<<Prefix/binary, "unit">>, required)};
        {true, _} when not is_map(Included) -> {error, refusal(<<Prefix/binary, "included">>, not_a_map)};
        {true, _} ->
            case [P || {P, Q} <- lists:sort(maps:to_list(Included)), not plan_quantity(P, Q)] of
                [] -> ok;
                [P | _] -> {error, refusal(included_field(Prefix, P), not_a_non_negative_decimal)}
            end
    end;
dimension(_, Field) ->
    {error, refusal(Field, not_a_map)}.

%% A plan id (as the link records it: a binary) with a quantity the core reads (0 allowed).
plan_quantity(Plan, Q) ->
    emqx_azure_marketplace_nif:valid_id(Plan) andalso emqx_azure_marketplace_nif:usage_quantity(Q) =/= error.

%% @doc A ceiling of Azure calls per second the reconciliation can run with: a positive number
%% (a float, or an integer the core reads: within 64 bits).
-spec valid_calls_per_s(term()) -> boolean().
valid_calls_per_s(V) when is_float(V) -> V > 0;
valid_calls_per_s(V) when is_integer(V) -> V > 0 andalso V < 1 bsl 63;
valid_calls_per_s(_) -> false.

%% 0 for the JWKS refresh means: an unknown key id may refresh every time.
valid_timing(jwks_refresh_interval_s, V) -> is_integer(V) andalso V >= 0;
valid_timing(_, V) -> is_integer(V) andalso V > 0.

run([]) -> ok;
run([C | Rest]) ->
    case C() of
        ok -> run(Rest);
        {error, _} = E -> E
    end.

required(Azure) ->
    case [K || K <- [tenant_id, client_id, client_secret], not is_binary(maps:get(K, Azure, undefined))
                                                           orelse maps:get(K, Azure) =:= <<>>] of
        [] -> ok;
        [K | _] -> {error, refusal(field(<<"azure.">>, K), required)}
    end.

platform(undefined) ->
    {error, refusal(<<"platform_module">>, required)};
platform(M) when is_atom(M) ->
    case code:ensure_loaded(M) of
        {module, M} ->
            case [FA || {F, A} = FA <- emqx_azure_marketplace_platform:behaviour_info(callbacks),
                        not erlang:function_exported(M, F, A)] of
                [] -> ok;
                Missing -> {error, refusal(<<"platform_module">>, {callbacks_missing, Missing})}
            end;
        _ -> {error, refusal(<<"platform_module">>, {not_loadable, M})}
    end;
platform(_) ->
    {error, refusal(<<"platform_module">>, not_a_module)}.

%% @doc The webhook authenticator's config: webhooks are signed for our app (aud = our client id)
%% by our tenant's Entra.
-spec webhook_auth_config(map()) -> map().
webhook_auth_config(Azure) ->
    Cfg = (maps:with([login_url, tenant_id, ca_file, allow_insecure_loopback], Azure))#{
        audience => maps:get(client_id, Azure, <<>>),
        %% An unknown kid refreshes the JWKS at most this often (forged tokens cannot make us hammer Entra).
        min_refresh_interval_s => application:get_env(?APP, jwks_refresh_interval_s, 60)
    },
    case Cfg of
        #{ca_file := F} when is_list(F) -> Cfg#{ca_file := list_to_binary(F)};
        _ -> Cfg
    end.

%% @doc Puts a configuration into the application env.
-spec apply_env(config()) -> ok.
apply_env(Config) ->
    _ = application:load(?APP),
    maps:foreach(fun(K, V) -> ok = application:set_env(?APP, K, V) end, Config),
    %% recording keeps what it reads of the metering config in a persistent term
    _ = emqx_azure_marketplace_metering:configure(),
    ok.

%% What the library's own validation (a client, a webhook authenticator made and dropped) says of
%% the `azure' config, as a refusal naming the field.
azure_checked({ok, _}) -> ok;
azure_checked({error, {badarg, F}}) -> {error, refusal(field(<<"azure.">>, F), invalid)};
azure_checked({error, {insecure_endpoint, F, Hint}}) -> {error, refusal(field(<<"azure.">>, F), {insecure_endpoint, Hint})};
azure_checked({error, Other}) -> {error, refusal(<<"azure">>, Other)}.
