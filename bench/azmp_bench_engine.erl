%% @doc The engine's cost per call (issue 17, part 4), against a server that is not the limit: a
%% local nginx (Debian `nginx-light') answering GET subscription with a fixed JSON body, and the
%% token endpoint with a fixed token. In one run, rounds alternating:
%%   - the NIF client (emqx_azure_marketplace_client:get_subscription/2, 64 callers),
%%   - OTP httpc + jiffy (Debian `erlang-jiffy') doing the same call and decoding the body to a map,
%%   - `wrk' (Debian `wrk', 2 threads, the same 64 connections, the same request headers): the C
%%     ceiling; its CPU is the rusage of the wrk process (bash's `times' for its child);
%%   - when `make bench' built it (AZMP_CURL_FLOOR), a bare libcurl multi loop in C++
%%     (bench/curl_multi_floor.cpp) doing the same GET on the same 64 connections: libcurl's own
%%     cost, the floor under any client built on it.
%% Client CPU is utime+stime of this whole VM (/proc/self/stat) per call, as in azmp_bench.
%% Targets: NIF / httpc+jiffy <= 0.33, NIF / wrk <= 3.
-module(azmp_bench_engine).

-export([main/0, main/1, start_nginx/0, stop_nginx/1]).

-define(CONCURRENCY, 64).
-define(WARMUP_CALLS, 3000).
-define(ROUND_CALLS, 15000).
-define(ROUNDS, 3).
-define(WRK_SECONDS, 2).
-define(RATIO_HTTPC_TARGET, 0.33).
-define(RATIO_WRK_TARGET, 3.0).
-define(PROFILE, azmp_bench_engine_httpc).
-define(SUB_ID, <<"37f9dea2-4345-438f-b0bd-03d40d28c7e0">>).

-spec main() -> ok.
main() -> main(#{}).

%% @doc Opts: round_calls, rounds.
-spec main(map()) -> ok.
main(Opts) ->
    io:format("~n== Engine cost per call against nginx (issue 17 part 4): NIF vs httpc + jiffy vs wrk~n"),
    case missing_tools() of
        [] ->
            try run(Opts)
            catch C:E:St ->
                    io:format("~nENGINE BENCHMARK FAILED: ~p:~p~n~p~n", [C, E, St]),
                    halt(1)
            end;
        Missing ->
            io:format("  skipped: ~s not installed (make bench installs nginx-light, wrk, erlang-jiffy)~n",
                      [string:join(Missing, ", ")])
    end,
    ok.

missing_tools() ->
    [T || {T, Ok} <- [{"nginx", os:find_executable("nginx") =/= false},
                      {"wrk", os:find_executable("wrk") =/= false},
                      {"jiffy", code:which(jiffy) =/= non_existing}], not Ok].

run(Opts) ->
    RoundCalls = maps:get(round_calls, Opts, ?ROUND_CALLS),
    Rounds = maps:get(rounds, Opts, ?ROUNDS),
    {ok, _} = application:ensure_all_started(inets),
    Nginx = start_nginx(),
    try
        measure_all(Nginx, RoundCalls, Rounds)
    after
        stop_nginx(Nginx)
    end.

measure_all(#{url := Url, master := Master} = Nginx, RoundCalls, Rounds) ->
    io:format("  nginx: master OS pid ~s, ~s (worker_processes auto, keep-alive, fixed bodies via"
              " `return')~n", [Master, Url]),
    SubUrl = <<Url/binary, "/api/saas/subscriptions/", (?SUB_ID)/binary, "?api-version=2018-08-31">>,
    C = azmp_bench_load:nif_client(Url, #{}),
    Token = token(Url),
    ok = azmp_bench_load:httpc_setup(?PROFILE, ?CONCURRENCY, 1),
    Nif = azmp_bench_load:nif_call(C, ?SUB_ID),
    Httpc = httpc_jiffy_call(?PROFILE, binary_to_list(SubUrl), Token),
    Kinds = [{nif, Nif}, {httpc, Httpc}, {wrk, wrk}] ++ [{curl, Floor} || Floor <- curl_floor()],
    Conns0 = conns(),
    _ = [run_kind(K, F, ?WARMUP_CALLS, Nginx, SubUrl, Token) || {K, F} <- Kinds, K =/= wrk, K =/= curl],
    PerRound = [[{K, run_kind(K, F, RoundCalls, Nginx, SubUrl, Token)} || {K, F} <- rotate(Kinds, R)]
                || R <- lists:seq(0, Rounds - 1)],
    ConnsMeasured = conns() - Conns0,
    ok = azmp_bench_load:httpc_stop(?PROFILE),
    Sum = maps:from_list([{K, sum([M || Round <- PerRound, {K1, M} <- Round, K1 =:= K])} || {K, _} <- Kinds]),
    print(Sum, PerRound, Rounds, RoundCalls, ConnsMeasured).

conns() -> maps:get(connections_opened, emqx_azure_marketplace_nif:info()).

rotate(L, 0) -> L;
rotate([H | T], N) -> rotate(T ++ [H], N - 1).

%% One round of one client: #{calls, errors, cpu_us, wall_us, srv_cpu_us}.
run_kind(wrk, wrk, _Calls, Nginx, SubUrl, Token) ->
    run_wrk(Nginx, SubUrl, Token);
run_kind(curl, Floor, Calls, Nginx, SubUrl, Token) ->
    run_curl_floor(Floor, Calls, Nginx, SubUrl, Token);
run_kind(_K, F, Calls, Nginx, _SubUrl, _Token) ->
    garbage_collect(),
    S0 = nginx_cpu_us(Nginx),
    W0 = erlang:monotonic_time(microsecond),
    C0 = azmp_bench_os:cpu_us(self),
    #{ok := Ok, errors := Err} = R = azmp_bench_load:run_workers(F, ?CONCURRENCY, Calls),
    C1 = azmp_bench_os:cpu_us(self),
    W1 = erlang:monotonic_time(microsecond),
    S1 = nginx_cpu_us(Nginx),
    Err > 0 andalso io:format("  !! ~b calls failed, first: ~P~n", [Err, maps:get(first_error, R), 20]),
    #{calls => Ok + Err, errors => Err, cpu_us => C1 - C0, wall_us => W1 - W0, srv_cpu_us => S1 - S0}.

%% wrk with the same 64 connections and headers; its CPU is its own rusage, printed by bash.
run_wrk(Nginx, SubUrl, Token) ->
    Cmd = lists:flatten(
            io_lib:format("wrk -t 2 -c ~b -d ~bs -H 'Authorization: Bearer ~s'"
                          " -H 'x-ms-requestid: 0f8fad5b-d9cb-469f-a165-70867728950e'"
                          " -H 'x-ms-correlationid: 7c9e6679-7425-40de-944b-e07fc1f90ae7'"
                          " -H 'Accept: application/json' '~s' 2>&1; times",
                          [?CONCURRENCY, ?WRK_SECONDS, Token, SubUrl])),
    S0 = nginx_cpu_us(Nginx),
    W0 = erlang:monotonic_time(microsecond),
    Out = os:cmd("bash -c \"" ++ escape_dq(Cmd) ++ "\""),
    W1 = erlang:monotonic_time(microsecond),
    S1 = nginx_cpu_us(Nginx),
    Requests = case re:run(Out, "([0-9]+) requests in", [{capture, all_but_first, list}]) of
                   {match, [N]} -> list_to_integer(N);
                   nomatch -> error({wrk_output, Out})
               end,
    Errors = case re:run(Out, "Non-2xx or 3xx responses: ([0-9]+)", [{capture, all_but_first, list}]) of
                 {match, [E]} -> list_to_integer(E);
                 nomatch -> 0
             end,
    %% `times': the shell's own user/sys, then its children's (wrk's) user/sys.
    {match, Times} = re:run(Out, "([0-9]+)m([0-9.]+)s ([0-9]+)m([0-9.]+)s", [global, {capture, all_but_first, list}]),
    [_Shell, [UM, US, SM, SS] | _] = Times,
    Secs = fun(M, S) -> list_to_integer(M) * 60 + list_to_float(S) end,
    Cpu = round((Secs(UM, US) + Secs(SM, SS)) * 1.0e6),
    Errors > 0 andalso io:format("  !! wrk: ~b non-2xx responses~n", [Errors]),
    #{calls => Requests, errors => Errors, cpu_us => Cpu, wall_us => W1 - W0, srv_cpu_us => S1 - S0}.

%% libcurl's own floor (bench/curl_multi_floor.cpp, built by `make bench', named by
%% AZMP_CURL_FLOOR): the path, when there is one.
curl_floor() ->
    case os:getenv("AZMP_CURL_FLOOR") of
        false -> [];
        Path -> [Path || filelib:is_regular(Path)]
    end.

%% The bare libcurl multi loop: the same GET, calls and connections; its CPU is its own rusage.
run_curl_floor(Floor, Calls, Nginx, SubUrl, Token) ->
    S0 = nginx_cpu_us(Nginx),
    Out = os:cmd(lists:flatten(io_lib:format("'~s' '~s' '~s' ~b ~b 2>&1", [Floor, SubUrl, Token, ?CONCURRENCY, Calls]))),
    S1 = nginx_cpu_us(Nginx),
    case re:run(Out, "calls=([0-9]+) errors=([0-9]+) cpu_us=([0-9]+) wall_us=([0-9]+)",
                [{capture, all_but_first, list}]) of
        {match, [N, E, C, W]} ->
            Errors = list_to_integer(E),
            Errors > 0 andalso io:format("  !! libcurl floor: ~b failed calls~n", [Errors]),
            #{calls => list_to_integer(N), errors => Errors, cpu_us => list_to_integer(C),
              wall_us => list_to_integer(W), srv_cpu_us => S1 - S0};
        nomatch ->
            error({curl_floor_output, Out})
    end.

escape_dq(S) -> lists:flatmap(fun($") -> "\\\""; ($$) -> "\\$"; (Ch) -> [Ch] end, S).

sum(Ms) ->
    maps:from_list([{K, lists:sum([maps:get(K, M) || M <- Ms])}
                    || K <- [calls, errors, cpu_us, wall_us, srv_cpu_us]]).

per_call(#{cpu_us := Cpu, calls := N}) when N > 0 -> Cpu / N;
per_call(_) -> 0.0.

ratio(A, B) -> per_call(A) / max(1.0e-9, per_call(B)).

label(nif) -> "NIF (emqx_azure_marketplace_client)";
label(httpc) -> "httpc + jiffy (baseline)";
label(wrk) -> "wrk -t 2 -c 64 (C ceiling)";
label(curl) -> "bare libcurl multi (no VM: its floor)".

print(Sum, PerRound, Rounds, RoundCalls, ConnsMeasured) ->
    io:format("  ~b rounds alternating (NIF and httpc ~b calls a round, wrk ~b s a round), ~b connections~n",
              [Rounds, RoundCalls, ?WRK_SECONDS, ?CONCURRENCY]),
    io:format("  ~-38s ~8s ~6s ~8s ~9s ~11s ~11s ~11s~n",
              ["client", "calls", "errors", "wall s", "calls/s", "client CPU", "nginx CPU", "nginx"]),
    io:format("  ~-38s ~8s ~6s ~8s ~9s ~11s ~11s ~11s~n",
              ["", "", "", "", "", "us/call", "us/call", "cores used"]),
    [begin
         #{calls := N, errors := E, wall_us := W, srv_cpu_us := S} = M = maps:get(K, Sum),
         io:format("  ~-38s ~8b ~6b ~8.2f ~9b ~11.1f ~11.1f ~11.2f~n",
                   [label(K), N, E, W / 1.0e6, round(N / max(1.0e-9, W / 1.0e6)), per_call(M),
                    S / max(1, N), S / max(1, W)])
     end || K <- [nif, httpc, wrk, curl], is_map_key(K, Sum)],
    #{nif := Nif, httpc := H, wrk := Wrk} = Sum,
    RH = ratio(Nif, H),
    RW = ratio(Nif, Wrk),
    io:format("~n  >> client CPU per call, NIF / httpc+jiffy = ~.3f   (target <= ~.2f: ~s)~n",
              [RH, ?RATIO_HTTPC_TARGET, yes_no(RH =< ?RATIO_HTTPC_TARGET)]),
    io:format("  >> client CPU per call, NIF / wrk         = ~.2f    (target <= ~.1f: ~s)~n",
              [RW, ?RATIO_WRK_TARGET, yes_no(RW =< ?RATIO_WRK_TARGET)]),
    io:format("     per round, NIF / httpc+jiffy: ~s; NIF / wrk: ~s~n",
              [string:join([io_lib:format("~.3f", [ratio(proplists:get_value(nif, R), proplists:get_value(httpc, R))])
                            || R <- PerRound], ", "),
               string:join([io_lib:format("~.2f", [ratio(proplists:get_value(nif, R), proplists:get_value(wrk, R))])
                            || R <- PerRound], ", ")]),
    case Sum of
        #{curl := Curl} ->
            RC = ratio(Curl, Wrk),
            io:format("  >> client CPU per call, bare libcurl / wrk = ~.2f   (the floor under NIF / wrk with libcurl;"
                      " NIF / bare libcurl = ~.2f)~n     per round, bare libcurl / wrk: ~s~n",
                      [RC, ratio(Nif, Curl),
                       string:join([io_lib:format("~.2f", [ratio(proplists:get_value(curl, R), proplists:get_value(wrk, R))])
                                    || R <- PerRound], ", ")]);
        _ ->
            io:format("  (bare libcurl floor not measured: AZMP_CURL_FLOOR names no file; make bench builds it)~n")
    end,
    io:format("     NIF connections opened from the warm-up on: ~b (~b measured calls)~n",
              [ConnsMeasured, Rounds * RoundCalls]),
    io:format("~n  Summary (engine): CPU/call NIF ~.1f us, httpc+jiffy ~.1f us, wrk ~.1f us;"
              " NIF/httpc+jiffy ~.3f (<= ~.2f: ~s), NIF/wrk ~.2f (<= ~.1f: ~s)~n",
              [per_call(Nif), per_call(H), per_call(Wrk), RH, ?RATIO_HTTPC_TARGET,
               yes_no(RH =< ?RATIO_HTTPC_TARGET), RW, ?RATIO_WRK_TARGET, yes_no(RW =< ?RATIO_WRK_TARGET)]),
    ok.

yes_no(true) -> "yes";
yes_no(false) -> "no".

%%% ------------------------------------------------------------------ clients

token(Url) ->
    {ok, {{_, 200, _}, _, Body}} =
        httpc:request(post, {binary_to_list(Url) ++ "/tenant-1/oauth2/v2.0/token", [],
                             "application/x-www-form-urlencoded", "grant_type=client_credentials"},
                      [], [{body_format, binary}]),
    #{<<"access_token">> := T} = jiffy:decode(Body, [return_maps]),
    T.

%% The same GET as the NIF's, decoded to a map by jiffy.
httpc_jiffy_call(Profile, Url, Token) ->
    Auth = "Bearer " ++ binary_to_list(Token),
    fun() ->
            Headers = [{"authorization", Auth},
                       {"x-ms-requestid", binary_to_list(azmp_emulator_util:uuid())},
                       {"x-ms-correlationid", binary_to_list(azmp_emulator_util:uuid())},
                       {"accept", "application/json"}],
            case httpc:request(get, {Url, Headers}, [{timeout, 120000}, {connect_timeout, 60000}],
                               [{body_format, binary}], Profile) of
                {ok, {{_, 200, _}, _, Body}} ->
                    case jiffy:decode(Body, [return_maps]) of
                        #{<<"id">> := _} -> ok;
                        Other -> {error, Other}
                    end;
                Other ->
                    {error, Other}
            end
    end.

%%% -------------------------------------------------------------------- nginx

subscription_json() ->
    <<"{\"id\":\"", (?SUB_ID)/binary, "\",\"publisherId\":\"contoso\",\"offerId\":\"emqx-saas\","
      "\"name\":\"Contoso Cloud Solution\",\"saasSubscriptionStatus\":\"Subscribed\","
      "\"beneficiary\":{\"emailId\":\"test@contoso.com\",\"objectId\":\"da8e3b41-b3a1-4a2b-8a2c-2d1f3e9c6b71\","
      "\"tenantId\":\"b4ab8f44-59ae-45d2-9f2c-32a0f3f2e5f7\",\"puid\":\"10030000A6B2D85E\"},"
      "\"purchaser\":{\"emailId\":\"test@contoso.com\",\"objectId\":\"da8e3b41-b3a1-4a2b-8a2c-2d1f3e9c6b71\","
      "\"tenantId\":\"b4ab8f44-59ae-45d2-9f2c-32a0f3f2e5f7\",\"puid\":\"10030000A6B2D85E\"},"
      "\"planId\":\"payg\",\"quantity\":1,\"term\":{\"termUnit\":\"P1M\",\"startDate\":\"2026-11-01T00:00:00Z\","
      "\"endDate\":\"2026-11-30T00:00:00Z\",\"chargeDuration\":null},\"autoRenew\":true,\"isTest\":false,"
      "\"isFreeTrial\":false,\"allowedCustomerOperations\":[\"Delete\",\"Update\",\"Read\"],"
      "\"sandboxType\":\"None\",\"created\":\"2026-11-01T00:00:00Z\",\"sessionMode\":\"None\"}">>.

token_json() ->
    <<"{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,"
      "\"access_token\":\"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiIyMGU5NDBiMy00Yzc3LTRiMGItOWE1My05ZTE2YTFiMDEwYTciLCJ0aWQiOiJ0ZW5hbnQtMSJ9.c2lnbmF0dXJlLW9mLXRoZS1iZW5jaC10b2tlbg\"}">>.

start_nginx() ->
    Dir = filename:join("/tmp", "azmp_bench_nginx_" ++ os:getpid()),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    {ok, Port} = inet:port(L),
    gen_tcp:close(L),
    Conf = filename:join(Dir, "nginx.conf"),
    ok = file:write_file(Conf, nginx_conf(Dir, Port)),
    Nginx = os:find_executable("nginx"),
    %% master_process on, daemon off: the port's OS pid is the master; it goes with its workers
    %% on SIGTERM.
    P = open_port({spawn_executable, Nginx},
                  [{args, ["-p", Dir, "-c", Conf, "-e", filename:join(Dir, "error.log")]},
                   exit_status, stderr_to_stdout]),
    {os_pid, OsPid} = erlang:port_info(P, os_pid),
    Url = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port)]),
    N = #{port => P, master => integer_to_list(OsPid), url => Url, dir => Dir},
    wait_up(N, 100),
    N.

wait_up(_N, 0) -> error(nginx_did_not_start);
wait_up(#{url := Url} = N, Tries) ->
    case httpc:request(get, {binary_to_list(Url) ++ "/ping", []}, [{timeout, 1000}], []) of
        {ok, {{_, 200, _}, _, _}} -> ok;
        _ -> timer:sleep(50), wait_up(N, Tries - 1)
    end.

nginx_conf(Dir, Port) ->
    ["daemon off;\nmaster_process on;\nworker_processes auto;\npid ", Dir, "/nginx.pid;\n"
     "error_log ", Dir, "/error.log warn;\n"
     "events { worker_connections 4096; }\n"
     "http {\n  access_log off;\n  keepalive_requests 100000000;\n  keepalive_timeout 300s;\n"
     "  client_body_temp_path ", Dir, "/body;\n  proxy_temp_path ", Dir, "/proxy;\n"
     "  fastcgi_temp_path ", Dir, "/fcgi;\n  uwsgi_temp_path ", Dir, "/uwsgi;\n  scgi_temp_path ", Dir, "/scgi;\n"
     "  server {\n    listen 127.0.0.1:", integer_to_list(Port), ";\n"
     "    default_type application/json;\n"
     "    location = /ping { return 200 'ok'; }\n"
     "    location = /tenant-1/oauth2/v2.0/token { return 200 '", token_json(), "'; }\n"
     "    location /api/saas/subscriptions/ { return 200 '", subscription_json(), "'; }\n"
     "  }\n}\n"].

%% CPU of the master and its workers.
nginx_cpu_us(#{master := Master}) ->
    Kids = string:tokens(os:cmd("cat /proc/" ++ Master ++ "/task/*/children 2>/dev/null"), " \n"),
    lists:sum([try azmp_bench_os:cpu_us(P) catch _:_ -> 0 end || P <- [Master | Kids]]).

stop_nginx(#{port := P, master := Master, dir := Dir}) ->
    _ = os:cmd("kill -TERM " ++ Master),
    receive {P, {exit_status, _}} -> ok after 5000 -> _ = os:cmd("kill -KILL " ++ Master) end,
    catch port_close(P),
    _ = os:cmd("rm -rf '" ++ Dir ++ "'"),
    io:format("  nginx (OS pid ~s) stopped~n", [Master]),
    ok.
