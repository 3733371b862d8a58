%% @doc The listener of the plugin's HTTP endpoints (emqx_azure_marketplace_routes): `POST /azure/webhook' and
%% `GET /azure/landing?token=...' (the landing page's back end, for a customer not signed in yet).
%%
%% A small HTTP/1.1 server on gen_tcp, built to hold under abuse before any authentication: a cap on
%% open connections (beyond it: 503 and close), bounded request heads (line length and header
%% count), a bounded body for every transfer encoding (413 at once, before reading it), a deadline
%% for reading a whole request and an idle timeout between requests, and landing resolutions
%% rate-limited (Azure is asked at most `landing_per_s' times a second).
-module(emqx_azure_marketplace_http).

-behaviour(gen_server).

-export([start_link/1, port/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-include_lib("kernel/include/logger.hrl").

-define(ACCEPTORS, 4).
-define(MAX_HEADERS, 64).
-define(MAX_LINE, 16384).
%% After refusing an oversized head: at most this much more of the request is read (and dropped),
%% for at most this long, so that the answer is not lost to a reset (see refuse_oversized/3).
-define(DRAIN_BYTES, 4 * 1024 * 1024).
-define(DRAIN_MS, 2000).
-type opts() :: #{ip => inet:ip_address(), port => inet:port_number(), max_connections => pos_integer(),
                  max_body => pos_integer(), request_timeout_ms => pos_integer(), idle_timeout_ms => pos_integer(),
                  landing_per_s => pos_integer()}.

%% @doc Starts the listener (port 0: any). Defaults: 1,024 connections, 256 KiB bodies, 10 s to
%% send a request, 30 s idle, 20 landing resolutions a second.
-spec start_link(opts()) -> {ok, pid()} | {error, term()}.
start_link(Opts) -> gen_server:start_link({local, ?MODULE}, ?MODULE, Opts, []).

%% @doc The port it listens on.
-spec port(pid() | atom()) -> inet:port_number().
port(Server) -> gen_server:call(Server, port).

%%--------------------------------------------------------------------

-spec init(opts()) -> {ok, map()} | {stop, term()}.
init(Opts) ->
    process_flag(trap_exit, true),
    ListenOpts = [binary, {packet, raw}, {active, false}, {reuseaddr, true},
                  {ip, maps:get(ip, Opts, {127, 0, 0, 1})}, {backlog, 1024}, {nodelay, true}],
    case gen_tcp:listen(maps:get(port, Opts, 0), ListenOpts) of
        {ok, L} ->
            {ok, Port} = inet:port(L),
            Limits = #{max_connections => maps:get(max_connections, Opts, 1024),
                       max_body => maps:get(max_body, Opts, 256 * 1024),
                       request_timeout_ms => maps:get(request_timeout_ms, Opts, 10000),
                       idle_timeout_ms => maps:get(idle_timeout_ms, Opts, 30000),
                       landing_per_s => maps:get(landing_per_s, Opts, 20),
                       %% [open connections, landing window second, landings in it]
                       counters => atomics:new(3, [{signed, true}])},
            Self = self(),
            Acceptors = [spawn_link(fun() -> accept(L, Limits, Self) end) || _ <- lists:seq(1, ?ACCEPTORS)],
            {ok, #{listen => L, port => Port, acceptors => Acceptors}};
        {error, Reason} ->
            {stop, Reason}
    end.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(port, _From, S = #{port := P}) -> {reply, P, S}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) -> {noreply, S}.

-spec handle_info(term(), map()) -> {noreply, map()} | {stop, term(), map()}.
handle_info({'EXIT', _Pid, normal}, S) -> {noreply, S};
handle_info({'EXIT', Pid, Reason}, S = #{acceptors := As}) ->
    case lists:member(Pid, As) of
        true -> {stop, {acceptor_died, Reason}, S};
        false -> {noreply, S}
    end;
handle_info(_Msg, S) -> {noreply, S}.

-spec terminate(term(), map()) -> ok.
terminate(_Reason, #{listen := L}) ->
    _ = gen_tcp:close(L),
    ok.

%%--------------------------------------------------------------------
%% Connections

accept(L, Limits = #{counters := C, max_connections := Max}, Owner) ->
    case gen_tcp:accept(L) of
        {ok, S} ->
            case atomics:add_get(C, 1, 1) =< Max of
                true ->
                    Pid = spawn(fun() -> receive {go, S} -> connection(S, Limits, Owner) end end),
                    case gen_tcp:controlling_process(S, Pid) of
                        ok -> Pid ! {go, S};
                        _ -> gen_tcp:close(S), exit(Pid, kill), atomics:sub(C, 1, 1)
                    end;
                false ->
                    %% Over the cap: answered at once, nothing read.
                    atomics:sub(C, 1, 1),
                    _ = gen_tcp:send(S, response(503, [], <<"{\"error\":\"busy\"}">>, close)),
                    gen_tcp:close(S)
            end,
            accept(L, Limits, Owner);
        {error, closed} ->
            ok;
        {error, _} ->
            accept(L, Limits, Owner)
    end.

connection(S, Limits = #{counters := C}, Owner) ->
    Ref = erlang:monitor(process, Owner),
    try
        requests(S, Limits, <<>>)
    after
        erlang:demonitor(Ref, [flush]),
        atomics:sub(C, 1, 1),
        gen_tcp:close(S)
    end.

%% One request after the other on a kept-alive connection. The socket is read raw and the request
%% parsed from a buffer of our own (erlang:decode_packet/3): the driver's own http packet mode
%% closes the socket, unanswered, on a line over its limit; here such a line is answered (414 for
%% the request line, 431 for a header). Buf holds what was received beyond the previous request.
requests(S, Limits = #{idle_timeout_ms := Idle, request_timeout_ms := ReqTimeout}, Buf) ->
    %% The idle timeout runs until the request's first byte; the request's deadline from there.
    case first_bytes(S, Buf, Idle) of
        {ok, Buf1} ->
            Deadline = erlang:monotonic_time(millisecond) + ReqTimeout,
            case packet(S, http_bin, Buf1, Deadline) of
                {ok, {http_request, Method, Uri, Version}, Rest} ->
                    case request(S, Limits, Deadline, Method, Uri, Version, Rest) of
                        {keep_alive, Rest1} -> requests(S, Limits, Rest1);
                        close -> ok
                    end;
                {ok, _Other, _} ->
                    reply(S, 400, #{error => bad_request}, close);
                {error, too_long} ->
                    refuse_oversized(S, 414, request_line_too_long);
                {error, _ClosedOrTimeout} ->
                    ok
            end;
        {error, _ClosedOrTimeout} ->
            ok
    end.

first_bytes(S, <<>>, Timeout) -> gen_tcp:recv(S, 0, Timeout);
first_bytes(_S, Buf, _Timeout) -> {ok, Buf}.

%% The next packet of Type (a request line, a header line, a line) from Buf and then the socket:
%% {ok, Packet, Rest}, or too_long once ?MAX_LINE bytes hold no complete one.
packet(S, Type, Buf, Deadline) ->
    case erlang:decode_packet(Type, Buf, [{packet_size, ?MAX_LINE}]) of
        {ok, Packet, Rest} ->
            {ok, Packet, Rest};
        {more, _} when byte_size(Buf) < ?MAX_LINE ->
            case gen_tcp:recv(S, 0, remaining(Deadline)) of
                {ok, More} -> packet(S, Type, <<Buf/binary, More/binary>>, Deadline);
                {error, _} = E -> E
            end;
        {more, _} ->
            {error, too_long};
        {error, _} ->
            %% decode_packet's only error for these types: a line over packet_size
            {error, too_long}
    end.

request(S, Limits, Deadline, Method, Uri, Version, Buf) ->
    case headers(S, Deadline, Buf, []) of
        {ok, Headers, Rest} ->
            Close = close_after(Version, Headers),
            case body(S, Limits, Deadline, Headers, Rest) of
                {ok, Body, Rest1} ->
                    {Status, RespHeaders, RespBody} =
                        emqx_azure_marketplace_routes:route(method(Method), Uri, Headers, Body, Limits),
                    ok = send(S, response(Status, RespHeaders, RespBody, Close)),
                    case Close of
                        keep_alive -> {keep_alive, Rest1};
                        close -> close
                    end;
                {error, too_large} ->
                    reply(S, 413, #{error => body_too_large}, close);
                {error, bad_request} ->
                    reply(S, 400, #{error => bad_request}, close);
                {error, _TimeoutOrClosed} ->
                    close
            end;
        {error, too_many_headers} ->
            reply(S, 431, #{error => too_many_headers}, close);
        {error, too_long} ->
            refuse_oversized(S, 431, header_too_long);
        {error, bad_request} ->
            reply(S, 400, #{error => bad_request}, close);
        {error, _TimeoutOrClosed} ->
            close
    end.

remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

headers(_S, _Deadline, _Buf, Acc) when length(Acc) > ?MAX_HEADERS ->
    {error, too_many_headers};
headers(S, Deadline, Buf, Acc) ->
    case packet(S, httph_bin, Buf, Deadline) of
        {ok, {http_header, _, Name, _, Value}, Rest} -> headers(S, Deadline, Rest, [{header_name(Name), Value} | Acc]);
        {ok, http_eoh, Rest} -> {ok, lists:reverse(Acc), Rest};
        {ok, _, _} -> {error, bad_request};
        {error, _} = E -> E
    end.

header_name(Name) when is_atom(Name) -> string:lowercase(atom_to_binary(Name));
header_name(Name) -> string:lowercase(Name).

header(Name, Headers) ->
    case lists:keyfind(Name, 1, Headers) of
        {_, V} -> V;
        false -> undefined
    end.

close_after(Version, Headers) ->
    case {Version, string:lowercase(iolist_to_binary([V || {<<"connection">>, V} <- Headers]))} of
        {_, <<"close">>} -> close;
        {{1, 1}, _} -> keep_alive;
        {_, <<"keep-alive">>} -> keep_alive;
        _ -> close
    end.

%% The body, bounded whatever its transfer encoding: too large is known before it is read.
body(S, Limits = #{max_body := Max}, Deadline, Headers, Buf) ->
    Chunked = case header(<<"transfer-encoding">>, Headers) of
                  undefined -> false;
                  TE -> string:lowercase(string:trim(TE)) =:= <<"chunked">>
              end,
    Length = header(<<"content-length">>, Headers),
    case {Chunked, Length} of
        {true, undefined} ->
            continue(S, Headers),
            chunks(S, Limits, Deadline, Buf, 0, []);
        {true, _} ->
            {error, bad_request};  % both: a request smuggling attempt
        {false, undefined} ->
            {ok, <<>>, Buf};
        {false, L} ->
            case string:to_integer(L) of
                {N, <<>>} when N >= 0, N =< Max ->
                    continue(S, Headers),
                    read(S, N, Buf, Deadline);
                {N, <<>>} when N > Max -> {error, too_large};
                _ -> {error, bad_request}
            end
    end.

continue(S, Headers) ->
    case header(<<"expect">>, Headers) of
        undefined -> ok;
        E -> string:lowercase(E) =:= <<"100-continue">> andalso send(S, <<"HTTP/1.1 100 Continue\r\n\r\n">>)
    end.

%% N bytes: {ok, Bytes, Rest}.
read(_S, N, Buf, _Deadline) when byte_size(Buf) >= N ->
    <<Bytes:N/binary, Rest/binary>> = Buf,
    {ok, Bytes, Rest};
read(S, N, Buf, Deadline) ->
    case gen_tcp:recv(S, N - byte_size(Buf), remaining(Deadline)) of
        {ok, More} -> {ok, <<Buf/binary, More/binary>>, <<>>};
        {error, _} = E -> E
    end.

chunks(S, Limits = #{max_body := Max}, Deadline, Buf, Size, Acc) ->
    case packet(S, line, Buf, Deadline) of
        {ok, L, Rest} ->
            [Hex | _] = binary:split(string:trim(L), <<";">>),
            case catch binary_to_integer(string:trim(Hex), 16) of
                0 ->
                    case trailers(S, Deadline, Rest) of
                        {ok, Rest1} -> {ok, iolist_to_binary(lists:reverse(Acc)), Rest1};
                        Error -> Error
                    end;
                N when is_integer(N), N > 0, Size + N > Max ->
                    {error, too_large};
                N when is_integer(N), N > 0 ->
                    case read(S, N + 2, Rest, Deadline) of
                        {ok, <<Chunk:N/binary, "\r\n">>, Rest1} ->
                            chunks(S, Limits, Deadline, Rest1, Size + N, [Chunk | Acc]);
                        {ok, _, _} -> {error, bad_request};
                        {error, _} = E -> E
                    end;
                _ ->
                    {error, bad_request}
            end;
        {error, too_long} ->
            {error, bad_request};
        {error, _} = E ->
            E
    end.

%% After the last chunk: trailer lines (ignored) up to an empty line, a bounded number of them.
trailers(S, Deadline, Buf) -> trailers(S, Deadline, Buf, ?MAX_HEADERS).

trailers(_S, _Deadline, _Buf, 0) -> {error, bad_request};
trailers(S, Deadline, Buf, N) ->
    case packet(S, line, Buf, Deadline) of
        {ok, <<"\r\n">>, Rest} -> {ok, Rest};
        {ok, _Trailer, Rest} -> trailers(S, Deadline, Rest, N - 1);
        {error, too_long} -> {error, bad_request};
        {error, _} = E -> E
    end.

method(M) when is_atom(M) -> atom_to_binary(M);
method(M) -> M.

send(S, Data) ->
    case gen_tcp:send(S, Data) of
        ok -> ok;
        {error, _} -> ok  % the client went away; the connection ends
    end.

%% A request head over the limit: the answer, then the connection closed gracefully. The client is
%% most likely still sending; closing a socket with unread data makes TCP reset it, and a reset can
%% destroy the answer before the client reads it. So: our side shut down after the answer, then what
%% the client still sends read and thrown away, bounded in bytes and time, then the close.
refuse_oversized(S, Status, Error) ->
    ?LOG_NOTICE(#{msg => "azure_marketplace_http_head_too_large", status => Status, limit_bytes => ?MAX_LINE}),
    reply(S, Status, #{error => Error}, close),
    _ = gen_tcp:shutdown(S, write),
    drain(S, ?DRAIN_BYTES, erlang:monotonic_time(millisecond) + ?DRAIN_MS).

drain(S, Left, Deadline) when Left > 0 ->
    case gen_tcp:recv(S, 0, remaining(Deadline)) of
        {ok, Data} -> drain(S, Left - byte_size(Data), Deadline);
        {error, _} -> close
    end;
drain(_S, _Left, _Deadline) ->
    close.

reply(S, Status, Map, Close) ->
    {Status, Hs, Body} = emqx_azure_marketplace_routes:json(Status, Map),
    ok = send(S, response(Status, Hs, Body, Close)),
    close.

response(Status, Headers, Body, Close) ->
    Conn = case Close of close -> <<"close">>; keep_alive -> <<"keep-alive">> end,
    [<<"HTTP/1.1 ">>, integer_to_binary(Status), <<" ">>, reason(Status), <<"\r\n">>,
     [[K, <<": ">>, V, <<"\r\n">>] || {K, V} <- Headers],
     <<"content-length: ">>, integer_to_binary(iolist_size(Body)), <<"\r\nconnection: ">>, Conn,
     <<"\r\n\r\n">>, Body].

reason(200) -> <<"OK">>;
reason(303) -> <<"See Other">>;
reason(400) -> <<"Bad Request">>;
reason(401) -> <<"Unauthorized">>;
reason(404) -> <<"Not Found">>;
reason(413) -> <<"Payload Too Large">>;
reason(414) -> <<"URI Too Long">>;
reason(429) -> <<"Too Many Requests">>;
reason(431) -> <<"Request Header Fields Too Large">>;
reason(503) -> <<"Service Unavailable">>.
