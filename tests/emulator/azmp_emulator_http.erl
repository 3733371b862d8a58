%% @doc A small HTTP/1.1 server on gen_tcp and ssl: keep-alive, pipelining,
%% one process per connection, request bodies by Content-Length (chunked is
%% accepted too), `Expect: 100-continue'. It knows nothing about Azure: each
%% request is given to a handler fun, run in the connection process, whose
%% reply may also be one of the transport faults the emulator injects.
-module(azmp_emulator_http).

-export([listen/3, start_acceptors/5, reason_phrase/1]).

-type transport() :: tcp | ssl.
-type headers() :: [{binary(), iodata()}].
-type request() :: #{method := binary(), path := binary(), query := binary(),
                     headers := [{binary(), binary()}], body := binary(),
                     scheme := http | https, local_port := inet:port_number(),
                     version := {non_neg_integer(), non_neg_integer()}}.
-type reply() :: {response, 100..599, headers(), iodata()}
               | {truncated, 100..599, headers(), iodata()}
               | reset
               | {stall, non_neg_integer()}.
-type handler() :: fun((request()) -> reply()).
-export_type([transport/0, request/0, reply/0, handler/0]).

-define(IDLE_TIMEOUT, 120000).
-define(MAX_HEAD, 65536).
-define(MAX_BODY, 16 * 1024 * 1024).

%%% ------------------------------------------------------------- listening

%% @doc Listen on 127.0.0.1:Port (0 = ephemeral). Extra are transport options
%% (certfile/keyfile for ssl). Returns the listen socket and the real port.
-spec listen(transport(), inet:port_number(), list()) ->
          {ok, term(), inet:port_number()} | {error, term()}.
listen(Transport, Port, Extra) ->
    Opts = [binary, {packet, raw}, {active, false}, {reuseaddr, true},
            {ip, {127, 0, 0, 1}}, {backlog, 4096}, {nodelay, true} | Extra],
    case Transport of
        tcp ->
            case gen_tcp:listen(Port, Opts) of
                {ok, L} -> {ok, Real} = inet:port(L), {ok, L, Real};
                Err -> Err
            end;
        ssl ->
            SslOpts = [{versions, ['tlsv1.2', 'tlsv1.3']}, {log_level, error} | Opts],
            case ssl:listen(Port, SslOpts) of
                {ok, L} -> {ok, {_, Real}} = ssl:sockname(L), {ok, L, Real};
                Err -> Err
            end
    end.

%% @doc Start N acceptor processes (linked to the caller) on the listen
%% socket. Connections stop when Owner dies. They exit when the listen
%% socket is closed.
-spec start_acceptors(transport(), term(), pos_integer(), handler(), pid()) -> [pid()].
start_acceptors(Transport, LSock, N, Handler, Owner) ->
    Port = case Transport of
               tcp -> {ok, P} = inet:port(LSock), P;
               ssl -> {ok, {_, P}} = ssl:sockname(LSock), P
           end,
    Ctx = #{transport => Transport, handler => Handler, owner => Owner,
            local_port => Port},
    [spawn_link(fun() -> accept_loop(LSock, Ctx) end) || _ <- lists:seq(1, N)].

accept_loop(LSock, #{transport := tcp} = Ctx) ->
    case gen_tcp:accept(LSock) of
        {ok, S} ->
            Pid = spawn(fun() -> receive {go, S} -> serve(S, Ctx) end end),
            case gen_tcp:controlling_process(S, Pid) of
                ok -> Pid ! {go, S};
                _ -> gen_tcp:close(S), exit(Pid, kill)
            end,
            accept_loop(LSock, Ctx);
        {error, closed} -> ok;
        {error, _} -> accept_loop(LSock, Ctx)
    end;
accept_loop(LSock, #{transport := ssl} = Ctx) ->
    case ssl:transport_accept(LSock) of
        {ok, T} ->
            Pid = spawn(fun() -> receive {go, T} -> ssl_serve(T, Ctx) end end),
            case ssl:controlling_process(T, Pid) of
                ok -> Pid ! {go, T};
                _ -> catch ssl:close(T), exit(Pid, kill)
            end,
            accept_loop(LSock, Ctx);
        {error, closed} -> ok;
        {error, _} -> accept_loop(LSock, Ctx)
    end.

ssl_serve(T, Ctx) ->
    case ssl:handshake(T, 15000) of
        {ok, S} -> serve(S, Ctx);
        {error, _} -> catch ssl:close(T), ok
    end.

reason_kind(E) when is_tuple(E), tuple_size(E) > 0 -> element(1, E);
reason_kind(E) when is_atom(E) -> E;
reason_kind(_) -> other.

arity(A) when is_list(A) -> length(A);
arity(A) -> A.

%%% ------------------------------------------------------------ connection

serve(S, #{owner := Owner} = Ctx) ->
    erlang:monitor(process, Owner),
    loop(S, Ctx, <<>>, false).

%% Buf: bytes received, not yet consumed. Continued: 100 Continue sent for
%% the request being read.
loop(S, Ctx, Buf, Continued) ->
    case parse(Buf) of
        {ok, Req0, Rest} ->
            Req = Req0#{scheme => scheme(Ctx), local_port => maps:get(local_port, Ctx)},
            Handler = maps:get(handler, Ctx),
            Reply = try Handler(Req)
                    catch exit:{noproc, _} ->
                            %% The emulator was stopped while this connection was open.
                            exit(normal);
                          C:E:St ->
                            %% Without arguments or values: a request holds bearer tokens.
                            error_logger:error_msg("azmp_emulator handler crash ~p:~p at ~p~n",
                                                   [C, reason_kind(E), [{M, F, arity(A), L} || {M, F, A, L} <- St]]),
                            {response, 500, [{<<"content-type">>, <<"application/json">>}],
                             <<"{\"error\":{\"code\":\"InternalServerError\","
                               "\"message\":\"emulator crash\"}}">>}
                    end,
            case execute(S, Ctx, Req, Reply) of
                keep -> loop(S, Ctx, Rest, false);
                close -> ok
            end;
        {more, ExpectContinue} ->
            Continued1 =
                case ExpectContinue andalso not Continued of
                    true -> send(S, Ctx, <<"HTTP/1.1 100 Continue\r\n\r\n">>), true;
                    false -> Continued
                end,
            case recv(S, Ctx) of
                {ok, Data} -> loop(S, Ctx, <<Buf/binary, Data/binary>>, Continued1);
                closed -> close(S, Ctx)
            end;
        {error, Status} ->
            send(S, Ctx, response_bytes(Status, [{<<"content-type">>, <<"text/plain">>}],
                                        reason_phrase(Status), true)),
            close(S, Ctx)
    end.

recv(S, #{transport := T, owner := Owner}) ->
    ok = setopts(T, S, [{active, once}]),
    receive
        {tcp, S, Data} -> {ok, Data};
        {ssl, S, Data} -> {ok, Data};
        {tcp_closed, S} -> closed;
        {ssl_closed, S} -> closed;
        {tcp_error, S, _} -> closed;
        {ssl_error, S, _} -> closed;
        {'DOWN', _, process, Owner, _} -> closed
    after ?IDLE_TIMEOUT ->
            closed
    end.

execute(S, Ctx, Req, {response, Status, Headers, Body}) ->
    Close = wants_close(Req),
    send(S, Ctx, response_bytes(Status, Headers, Body, Close)),
    case Close of
        true -> close(S, Ctx), close;
        false -> keep
    end;
execute(S, Ctx, _Req, {truncated, Status, Headers, Body0}) ->
    Body = case iolist_to_binary(Body0) of
               <<>> -> <<"{}">>;
               B -> B
           end,
    Half = binary:part(Body, 0, byte_size(Body) div 2),
    Head = head_bytes(Status, Headers, byte_size(Body), false),
    send(S, Ctx, [Head, Half]),
    close(S, Ctx),
    close;
execute(S, Ctx, _Req, reset) ->
    abort(S, Ctx),
    close;
execute(S, Ctx, _Req, {stall, Ms}) ->
    timer:sleep(Ms),
    close(S, Ctx),
    close.

wants_close(#{version := Version, headers := Headers}) ->
    Conn = string:lowercase(header(<<"connection">>, Headers, <<>>)),
    case Version of
        {1, 1} -> Conn =:= <<"close">>;
        _ -> Conn =/= <<"keep-alive">>
    end.

scheme(#{transport := tcp}) -> http;
scheme(#{transport := ssl}) -> https.

send(S, #{transport := tcp}, Data) -> gen_tcp:send(S, Data);
send(S, #{transport := ssl}, Data) -> ssl:send(S, Data).

close(S, #{transport := tcp}) -> gen_tcp:close(S);
close(S, #{transport := ssl}) -> ssl:close(S).

%% Close abruptly: linger 0 makes the kernel send RST instead of FIN.
abort(S, #{transport := T} = Ctx) ->
    _ = setopts(T, S, [{linger, {true, 0}}]),
    close(S, Ctx).

setopts(tcp, S, Opts) -> inet:setopts(S, Opts);
setopts(ssl, S, Opts) -> ssl:setopts(S, Opts).

%%% --------------------------------------------------------------- writing

response_bytes(Status, Headers, Body, Close) ->
    B = iolist_to_binary(Body),
    [head_bytes(Status, Headers, byte_size(B), Close), B].

head_bytes(Status, Headers, Len, Close) ->
    [<<"HTTP/1.1 ">>, integer_to_binary(Status), $\s, reason_phrase(Status), <<"\r\n">>,
     [[N, <<": ">>, V, <<"\r\n">>] || {N, V} <- Headers],
     <<"content-length: ">>, integer_to_binary(Len), <<"\r\n">>,
     <<"date: ">>, httpd_util:rfc1123_date(), <<"\r\n">>,
     case Close of
         true -> <<"connection: close\r\n">>;
         false -> <<>>
     end,
     <<"\r\n">>].

-spec reason_phrase(integer()) -> binary().
reason_phrase(200) -> <<"OK">>;
reason_phrase(201) -> <<"Created">>;
reason_phrase(202) -> <<"Accepted">>;
reason_phrase(204) -> <<"No Content">>;
reason_phrase(400) -> <<"Bad Request">>;
reason_phrase(401) -> <<"Unauthorized">>;
reason_phrase(403) -> <<"Forbidden">>;
reason_phrase(404) -> <<"Not Found">>;
reason_phrase(405) -> <<"Method Not Allowed">>;
reason_phrase(409) -> <<"Conflict">>;
reason_phrase(411) -> <<"Length Required">>;
reason_phrase(413) -> <<"Payload Too Large">>;
reason_phrase(429) -> <<"Too Many Requests">>;
reason_phrase(431) -> <<"Request Header Fields Too Large">>;
reason_phrase(500) -> <<"Internal Server Error">>;
reason_phrase(501) -> <<"Not Implemented">>;
reason_phrase(502) -> <<"Bad Gateway">>;
reason_phrase(503) -> <<"Service Unavailable">>;
reason_phrase(504) -> <<"Gateway Timeout">>;
reason_phrase(_) -> <<"Unknown">>.

%%% --------------------------------------------------------------- parsing

%% {ok, Req, Rest} | {more, ExpectContinue} | {error, Status}
parse(Buf) ->
    case erlang:decode_packet(http_bin, Buf, []) of
        {more, _} when byte_size(Buf) > ?MAX_HEAD -> {error, 431};
        {more, _} -> {more, false};
        {ok, {http_request, Method, {abs_path, Target}, Version}, Rest} ->
            parse_headers(Rest, Buf, #{method => method(Method), target => Target,
                                        version => Version}, []);
        {ok, {http_request, _, _, _}, _} -> {error, 400};
        {ok, {http_error, _}, _} -> {error, 400};
        {error, _} -> {error, 400}
    end.

parse_headers(Bin, Buf, Line, Acc) ->
    case erlang:decode_packet(httph_bin, Bin, []) of
        {more, _} when byte_size(Buf) > ?MAX_HEAD -> {error, 431};
        {more, _} -> {more, false};
        {ok, {http_header, _, Name, _, Value}, Rest} ->
            parse_headers(Rest, Buf, Line, [{header_name(Name), Value} | Acc]);
        {ok, http_eoh, Rest} ->
            body(Rest, Line, lists:reverse(Acc));
        {ok, {http_error, _}, _} -> {error, 400};
        {error, _} -> {error, 400}
    end.

body(Rest, #{method := M, target := Target, version := V}, Headers) ->
    {Path, Query} = case binary:split(Target, <<"?">>) of
                        [P, Q] -> {P, Q};
                        [P] -> {P, <<>>}
                    end,
    Req = #{method => M, path => Path, query => Query, headers => Headers,
            version => V},
    Expect = string:lowercase(header(<<"expect">>, Headers, <<>>)) =:= <<"100-continue">>,
    TE = string:lowercase(header(<<"transfer-encoding">>, Headers, <<>>)),
    case {TE, header(<<"content-length">>, Headers, undefined)} of
        {<<"chunked">>, _} ->
            case dechunk(Rest, <<>>) of
                {ok, Body, Rest1} -> {ok, Req#{body => Body}, Rest1};
                more -> {more, Expect};
                error -> {error, 400};
                too_big -> {error, 413}
            end;
        {<<>>, undefined} ->
            {ok, Req#{body => <<>>}, Rest};
        {<<>>, CL} ->
            case catch binary_to_integer(string:trim(CL)) of
                N when is_integer(N), N >= 0, N =< ?MAX_BODY ->
                    case Rest of
                        <<Body:N/binary, Rest1/binary>> -> {ok, Req#{body => Body}, Rest1};
                        _ -> {more, Expect}
                    end;
                N when is_integer(N), N > ?MAX_BODY -> {error, 413};
                _ -> {error, 400}
            end;
        _ -> {error, 501}
    end.

dechunk(_, Acc) when byte_size(Acc) > ?MAX_BODY -> too_big;
dechunk(Bin, Acc) ->
    case binary:split(Bin, <<"\r\n">>) of
        [SizeLine, Rest] ->
            [SizeHex | _] = binary:split(SizeLine, <<";">>),
            case catch binary_to_integer(string:trim(SizeHex), 16) of
                0 -> skip_trailers(Rest, Acc);
                N when is_integer(N), N > 0 ->
                    case Rest of
                        <<Chunk:N/binary, "\r\n", Rest1/binary>> ->
                            dechunk(Rest1, <<Acc/binary, Chunk/binary>>);
                        <<_:N/binary, _, _, _/binary>> -> error;
                        _ -> more
                    end;
                _ -> error
            end;
        [_] -> more
    end.

skip_trailers(Bin, Acc) ->
    case binary:split(Bin, <<"\r\n">>) of
        [<<>>, Rest] -> {ok, Acc, Rest};
        [_Trailer, Rest] -> skip_trailers(Rest, Acc);
        [_] -> more
    end.

method(M) when is_atom(M) -> atom_to_binary(M, latin1);
method(M) -> M.

header_name(N) when is_atom(N) -> string:lowercase(atom_to_binary(N, latin1));
header_name(N) -> string:lowercase(N).

header(Name, Headers, Default) ->
    case lists:keyfind(Name, 1, Headers) of
        {_, V} -> V;
        false -> Default
    end.
