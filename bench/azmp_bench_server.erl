%% @doc The emulator as a separate OS process (a second `erl'), so that its CPU time is not
%% counted in the client VM's, plus a tiny HTTP/1.1 client for its control endpoints.
%%
%% The server VM runs serve/1: it starts azmp_emulator standalone and halts as soon as its
%% standard input closes, so it cannot outlive the benchmark VM even if that one crashes.
-module(azmp_bench_server).

-export([serve/1, start/0, stop/1, os_pid/1, url/1, control/3, http/4]).

-define(READY, "AZMP_BENCH_READY").

%%% ------------------------------------------------------- in the server VM

-spec serve([string()] | string()) -> ok.
serve([Port]) -> serve(Port);
serve(Port) ->
    ok = azmp_emulator:standalone([Port]),
    io:format("~s ~s~n", [?READY, os:getpid()]),
    spawn(fun stdin_watch/0),
    ok.

stdin_watch() ->
    case io:get_line('') of
        eof -> erlang:halt(0);
        {error, _} -> erlang:halt(0);
        _ -> stdin_watch()
    end.

%%% ------------------------------------------------------- in the client VM

-type server() :: #{owner := pid(), os_pid := string(), port := inet:port_number(), url := binary()}.

%% @doc Starts an emulator VM on a free loopback port (HTTP on it, HTTPS on the next one).
-spec start() -> server().
start() ->
    Port = free_port_pair(),
    Erl = erl_executable(),
    EmuDir = filename:dirname(code:which(azmp_emulator)),
    BenchDir = filename:dirname(code:which(?MODULE)),
    Args = ["-noshell", "+P", "2000000", "+Q", "65536",
            "-pa", EmuDir, "-pa", BenchDir,
            "-eval", lists:flatten(io_lib:format("azmp_bench_server:serve(\"~b\")", [Port]))],
    Parent = self(),
    Owner = spawn(fun() -> owner(Parent, Erl, Args) end),
    receive
        {Owner, ready, OsPid} ->
            #{owner => Owner, os_pid => OsPid, port => Port,
              url => iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port)])};
        {Owner, failed, Why} -> error({emulator_start_failed, Why})
    after 60000 ->
            exit(Owner, kill),
            error(emulator_start_timeout)
    end.

%% @doc Closes the server's stdin (it halts), kills it if it is still there 5 s later.
-spec stop(server()) -> ok.
stop(#{owner := Owner, os_pid := OsPid}) ->
    Owner ! stop,
    wait_gone(OsPid, 50),
    case azmp_bench_os:alive(OsPid) of
        true -> _ = os:cmd("kill -9 " ++ OsPid), wait_gone(OsPid, 20);
        false -> ok
    end,
    ok.

-spec os_pid(server()) -> string().
os_pid(#{os_pid := P}) -> P.

-spec url(server()) -> binary().
url(#{url := U}) -> U.

%% @doc POST/GET a /_emulator/... control endpoint with a JSON body (a map, or none).
-spec control(server(), binary(), map() | none) -> map().
control(#{url := Url}, Path, Body) ->
    {Method, Bytes} = case Body of
                          none -> {<<"GET">>, <<>>};
                          _ -> {<<"POST">>, azmp_emulator_json:encode(Body)}
                      end,
    {200, Resp} = http(Method, <<Url/binary, "/_emulator/", Path/binary>>,
                       [{<<"content-type">>, <<"application/json">>}], Bytes),
    {ok, Json} = azmp_emulator_json:decode(Resp),
    Json.

%% @doc One HTTP/1.1 request on a fresh connection (Connection: close) -> {Status, Body}.
-spec http(binary(), binary(), [{binary(), binary()}], binary()) -> {pos_integer(), binary()}.
http(Method, Url, Headers, Body) ->
    #{host := Host, port := Port} = U = uri_string:parse(Url),
    Target = case maps:get(query, U, <<>>) of
                 <<>> -> maps:get(path, U);
                 Q -> <<(maps:get(path, U))/binary, "?", Q/binary>>
             end,
    {ok, S} = gen_tcp:connect(binary_to_list(Host), Port, [binary, {active, false}], 10000),
    Req = [Method, " ", Target, " HTTP/1.1\r\nhost: ", Host, ":", integer_to_list(Port),
           "\r\nconnection: close\r\ncontent-length: ", integer_to_list(byte_size(Body)), "\r\n",
           [[N, ": ", V, "\r\n"] || {N, V} <- Headers], "\r\n", Body],
    ok = gen_tcp:send(S, Req),
    Resp = recv_all(S, []),
    gen_tcp:close(S),
    [Head, RespBody] = binary:split(Resp, <<"\r\n\r\n">>),
    [<<"HTTP/1.1 ", Code:3/binary, _/binary>> | _] = binary:split(Head, <<"\r\n">>),
    {binary_to_integer(Code), RespBody}.

%%--------------------------------------------------------------------

recv_all(S, Acc) ->
    case gen_tcp:recv(S, 0, 30000) of
        {ok, D} -> recv_all(S, [Acc, D]);
        {error, closed} -> iolist_to_binary(Acc)
    end.

erl_executable() ->
    Candidate = filename:join([code:root_dir(), "bin", "erl"]),
    case filelib:is_regular(Candidate) of
        true -> Candidate;
        false ->
            case os:find_executable("erl") of
                false -> error(erl_not_found);
                E -> E
            end
    end.

%% A port P with P+1 free too (the emulator's HTTPS listener), both on loopback.
free_port_pair() -> free_port_pair(20).
free_port_pair(0) -> error(no_free_port_pair);
free_port_pair(N) ->
    Opts = [{ip, {127, 0, 0, 1}}, {reuseaddr, true}],
    {ok, L} = gen_tcp:listen(0, Opts),
    {ok, P} = inet:port(L),
    case P < 65535 andalso gen_tcp:listen(P + 1, Opts) of
        {ok, L2} -> gen_tcp:close(L2), gen_tcp:close(L), P;
        _ -> gen_tcp:close(L), free_port_pair(N - 1)
    end.

owner(Parent, Erl, Args) ->
    Port = open_port({spawn_executable, Erl},
                     [{args, Args}, {line, 4096}, stderr_to_stdout, exit_status, binary]),
    owner_wait_ready(Parent, Port).

owner_wait_ready(Parent, Port) ->
    receive
        {Port, {data, {eol, <<?READY, " ", OsPid/binary>>}}} ->
            Parent ! {self(), ready, binary_to_list(OsPid)},
            owner_loop(Port);
        {Port, {data, _BannerLine}} ->
            owner_wait_ready(Parent, Port);
        {Port, {exit_status, S}} ->
            Parent ! {self(), failed, {exit_status, S}}
    end.

%% Drains the server's output; anything it prints after the banner is shown (errors only, in
%% practice).
owner_loop(Port) ->
    receive
        {Port, {data, {_, Line}}} ->
            io:format("  [emulator] ~s~n", [Line]),
            owner_loop(Port);
        {Port, {exit_status, _}} ->
            ok;
        stop ->
            catch port_close(Port),
            ok
    end.

wait_gone(_OsPid, 0) -> ok;
wait_gone(OsPid, N) ->
    case azmp_bench_os:alive(OsPid) of
        true -> timer:sleep(100), wait_gone(OsPid, N - 1);
        false -> ok
    end.
