%% @doc Load generators and the two clients under comparison: the NIF (through
%% emqx_azure_marketplace_client) and OTP httpc doing the same call with its own token, JSON
%% decoding of the body included.
-module(azmp_bench_load).

-export([nif_client/2, nif_call/2, httpc_setup/3, httpc_stop/1, httpc_call/4, token/1,
         run_workers/3, sched_snapshot/0, sched_busy_us/3]).

%%% ----------------------------------------------------------------- clients

-spec nif_client(binary(), map()) -> emqx_azure_marketplace_client:client().
nif_client(Url, Extra) ->
    Config = maps:merge(
               #{tenant_id => <<"tenant-1">>,
                 client_id => <<"client-1">>,
                 client_secret => <<"secret-1">>,
                 login_url => Url,
                 marketplace_url => <<Url/binary, "/api">>,
                 timeout_ms => 120000,
                 connect_timeout_ms => 60000,
                 max_in_flight => 20000,
                 %% the bench server: plain http on loopback, a test endpoint
                 allow_insecure_loopback => true,
                 %% No retries: httpc does none either, and a failure must show as a failure.
                 retry => #{max_attempts => 1, base_delay_ms => 0, max_delay_ms => 0,
                            max_retry_after_ms => 0}},
               Extra),
    {ok, C} = emqx_azure_marketplace_client:new(Config),
    C.

%% @doc One GET subscription through the NIF: ok | {error, Why}.
-spec nif_call(emqx_azure_marketplace_client:client(), binary()) -> fun(() -> ok | {error, term()}).
nif_call(C, SubId) ->
    fun() ->
            case emqx_azure_marketplace_client:get_subscription(C, SubId) of
                {ok, #{<<"id">> := _}} -> ok;
                Other -> {error, Other}
            end
    end.

%% @doc A client-credentials token from the emulator's Entra v2 endpoint.
-spec token(binary()) -> binary().
token(Url) ->
    Form = <<"grant_type=client_credentials&client_id=client-1&client_secret=secret-1"
             "&scope=20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default">>,
    {200, Body} = azmp_bench_server:http(
                    <<"POST">>, <<Url/binary, "/tenant-1/oauth2/v2.0/token">>,
                    [{<<"content-type">>, <<"application/x-www-form-urlencoded">>}], Form),
    {ok, #{<<"access_token">> := Token}} = azmp_emulator_json:decode(Body),
    Token.

%% @doc A dedicated httpc profile: keep-alive, at most MaxSessions connections, one request at a
%% time on each (no pipelining, no queueing behind a busy connection).
-spec httpc_setup(atom(), pos_integer(), pos_integer()) -> ok.
httpc_setup(Profile, MaxSessions, _Unused) ->
    {ok, _} = inets:start(httpc, [{profile, Profile}]),
    ok = httpc:set_options([{max_sessions, MaxSessions},
                            {max_keep_alive_length, 1},
                            {keep_alive_timeout, 120000},
                            {max_pipeline_length, 0},
                            {pipeline_timeout, 0}], Profile).

%% @doc Stops the profile: every connection it has closes.
-spec httpc_stop(atom()) -> ok.
httpc_stop(Profile) ->
    _ = inets:stop(httpc, Profile),
    ok.

%% @doc The same GET through httpc; Decode: decode the JSON body like the NIF does.
-spec httpc_call(atom(), binary(), binary(), boolean()) -> fun(() -> ok | {error, term()}).
httpc_call(Profile, Url, Token, Decode) ->
    Auth = "Bearer " ++ binary_to_list(Token),
    fun() ->
            Headers = [{"authorization", Auth},
                       {"x-ms-requestid", binary_to_list(azmp_emulator_util:uuid())},
                       {"x-ms-correlationid", binary_to_list(azmp_emulator_util:uuid())}],
            case httpc:request(get, {Url, Headers}, [{timeout, 120000}, {connect_timeout, 60000}],
                               [{body_format, binary}], Profile) of
                {ok, {{_, 200, _}, _, Body}} when Decode ->
                    case azmp_emulator_json:decode(Body) of
                        {ok, #{<<"id">> := _}} -> ok;
                        Other -> {error, Other}
                    end;
                {ok, {{_, 200, _}, _, _Body}} ->
                    ok;
                Other ->
                    {error, Other}
            end
    end.

%%% ------------------------------------------------------------------- load

%% @doc Concurrency processes share Total calls of F (each does its share in a loop).
%% -> #{ok := N, errors := N, first_error := term()}.
-spec run_workers(fun(() -> ok | {error, term()}), pos_integer(), pos_integer()) -> map().
run_workers(F, Concurrency, Total) ->
    Self = self(),
    Shares = [Total div Concurrency + case I =< Total rem Concurrency of true -> 1; false -> 0 end
              || I <- lists:seq(1, Concurrency)],
    Pids = [spawn_link(fun() -> Self ! {self(), worker(F, N, 0, 0, none)} end) || N <- Shares],
    lists:foldl(
      fun(Pid, #{ok := Ok, errors := Err, first_error := FE}) ->
              receive
                  {Pid, {O, E, F1}} ->
                      #{ok => Ok + O, errors => Err + E,
                        first_error => case FE of none -> F1; _ -> FE end}
              after 600000 -> error(worker_timeout)
              end
      end, #{ok => 0, errors => 0, first_error => none}, Pids).

worker(_F, 0, Ok, Err, FE) -> {Ok, Err, FE};
worker(F, N, Ok, Err, FE) ->
    case F() of
        ok -> worker(F, N - 1, Ok + 1, Err, FE);
        {error, Why} ->
            worker(F, N - 1, Ok, Err + 1, case FE of none -> Why; _ -> FE end)
    end.

%%% ------------------------------------------------------- scheduler busy time

-spec sched_snapshot() -> list().
sched_snapshot() ->
    lists:sort(erlang:statistics(scheduler_wall_time_all)).

%% @doc Busy time of the normal schedulers and of the dirty CPU schedulers between two snapshots,
%% in microseconds of wall time (spinning while idle is not busy).
-spec sched_busy_us(list(), list(), non_neg_integer()) -> {non_neg_integer(), non_neg_integer()}.
sched_busy_us(Before, After, WallUs) ->
    N = erlang:system_info(schedulers),
    D = erlang:system_info(dirty_cpu_schedulers),
    Fracs = [{Id, case T1 - T0 of 0 -> 0.0; DT -> (A1 - A0) / DT end}
             || {{Id, A0, T0}, {Id, A1, T1}} <- lists:zip(Before, After)],
    Sum = fun(Lo, Hi) -> round(lists:sum([F || {Id, F} <- Fracs, Id >= Lo, Id =< Hi]) * WallUs) end,
    {Sum(1, N), Sum(N + 1, N + D)}.
