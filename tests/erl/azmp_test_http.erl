%% Request helpers for the emulator suites: URLs, forms, a fresh access token, httpc requests
%% decoded as JSON, and raw HTTP/1.1 over gen_tcp where the wire itself is under test; plus the
%% fixture that shares one emulator between a module's tests.
-module(azmp_test_http).

-export([accept_each/2, emulator_tests/1, url/2, sub_url/3, to_list/1, auth/1, token/1, v1_form/0, v2_form/0,
         form/1, json/1, uuid/0, ssl_opts/1, req/4, req/5, catch_error/1, port_of/1, hdr/2, event/4,
         raw_get/2, raw_post/3, recv_all/2]).

-include("azmp_emulator_tests.hrl").

%% One emulator shared by a module's tests, each a {Name, fun(Emu)}. `with' keeps each test
%% reported under its own module and function.
emulator_tests(Tests) ->
    {setup, fun setup/0, fun cleanup/1,
     fun(Emu) ->
             [{Name, {with, Emu, [F]}} || {Name, F} <- Tests]
     end}.

setup() ->
    {ok, _} = application:ensure_all_started(inets),
    {ok, _} = application:ensure_all_started(ssl),
    {ok, Emu} = azmp_emulator:start(#{operation_ms => 300}),
    Emu.

cleanup(Emu) -> ok = azmp_emulator:stop(Emu).

url(Emu, Path) -> <<(azmp_emulator:http_url(Emu))/binary, (list_to_binary(Path))/binary>>.

sub_url(Emu, Id, Suffix) ->
    url(Emu, "/api/saas/subscriptions/" ++ to_list(Id) ++ Suffix ++ ?V).

to_list(B) when is_binary(B) -> binary_to_list(B);
to_list(L) -> L.

auth(Tok) -> [{"authorization", "Bearer " ++ binary_to_list(Tok)}].

token(Emu) ->
    {200, _, #{<<"access_token">> := T}} =
        req(post, url(Emu, "/tenant-1/oauth2/v2.0/token"), [], v2_form()),
    T.

v1_form() ->
    form([{"grant_type", "client_credentials"}, {"client_id", "client-1"},
          {"client_secret", "secret-1"}, {"resource", binary_to_list(?APP)}]).

v2_form() ->
    form([{"grant_type", "client_credentials"}, {"client_id", "client-1"},
          {"client_secret", "secret-1"}, {"scope", binary_to_list(?APP) ++ "/.default"}]).

form(KVs) -> list_to_binary(uri_string:compose_query(KVs)).

json(T) -> azmp_emulator_json:encode(T).

uuid() -> binary_to_list(azmp_emulator_util:uuid()).

ssl_opts(Emu) ->
    [{verify, verify_peer}, {cacertfile, azmp_emulator:ca_file(Emu)}].

req(M, Url, H, Body) -> req(M, Url, H, Body, []).

%% -> {Status, Headers, DecodedJsonOrRawBody}
req(Method, Url, Headers, Body, Ssl) ->
    U = to_list(Url),
    Request = case Method of
                  M when M =:= get; M =:= delete -> {U, Headers};
                  _ -> {U, Headers, content_type(U), Body}
              end,
    HttpOpts = [{timeout, 10000}, {autoredirect, false}] ++
        case Ssl of [] -> []; _ -> [{ssl, Ssl}] end,
    {ok, {{_, Status, _}, RespHeaders, RespBody}} =
        httpc:request(Method, Request, HttpOpts, [{body_format, binary}]),
    Decoded = case azmp_emulator_json:decode(RespBody) of
                  {ok, J} -> J;
                  _ -> RespBody
              end,
    {Status, RespHeaders, Decoded}.

content_type(U) ->
    case string:find(U, "/oauth2/") of
        nomatch -> "application/json";
        _ -> "application/x-www-form-urlencoded"
    end.

catch_error(F) -> try F() catch error:E -> E end.

port_of(Url) ->
    [_, P] = string:split(binary_to_list(Url), ":", trailing),
    list_to_integer(P).

hdr(Name, #{headers := H}) ->
    case lists:keyfind(Name, 1, H) of
        {_, V} -> V;
        false -> undefined
    end.

event(Id, Dim, Q, T) ->
    #{<<"resourceId">> => Id, <<"dimension">> => Dim, <<"quantity">> => Q,
      <<"effectiveStartTime">> => list_to_binary(calendar:system_time_to_rfc3339(
                                                   T, [{offset, "Z"}])),
      <<"planId">> => <<"payg">>}.

%% Raw HTTP/1.1 on gen_tcp: {Status, Body} | {truncated, ContentLength, Got}
%% | {error, Reason}.
raw_get(Port, Path) ->
    raw(Port, ["GET ", Path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"]).

raw_post(Port, Path, Body) ->
    raw(Port, ["POST ", Path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ",
               integer_to_list(byte_size(Body)), "\r\n\r\n", Body]).

raw(Port, Data) ->
    case gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false},
                                                {show_econnreset, true}], 10000) of
        {ok, S} ->
            ok = gen_tcp:send(S, Data),
            R = case recv_all(S, <<>>) of
                    {ok, Resp} -> parse_raw(Resp);
                    Err -> Err
                end,
            gen_tcp:close(S),
            R;
        Err -> Err
    end.

recv_all(S, Acc) ->
    case gen_tcp:recv(S, 0, 20000) of
        {ok, D} -> recv_all(S, <<Acc/binary, D/binary>>);
        {error, closed} -> {ok, Acc};
        {error, _} = E -> E
    end.

parse_raw(Resp) ->
    [Head, Body] = binary:split(Resp, <<"\r\n\r\n">>),
    [<<"HTTP/1.1 ", Code:3/binary, _/binary>> | Lines] = binary:split(Head, <<"\r\n">>, [global]),
    Len = hd([binary_to_integer(V) || L <- Lines,
                                       [K, V] <- [binary:split(L, <<": ">>)],
                                       string:lowercase(K) =:= <<"content-length">>]),
    case byte_size(Body) of
        Len -> {binary_to_integer(Code), Body};
        Got -> {truncated, Len, Got}
    end.

%% @doc Accepts connections on L for ever, each served by Serve(Socket) in a process of its own
%% (the small HTTP servers of the demo's console and the benches).
-spec accept_each(gen_tcp:socket(), fun((gen_tcp:socket()) -> term())) -> no_return().
accept_each(L, Serve) ->
    {ok, S} = gen_tcp:accept(L),
    Pid = spawn(fun() -> receive go -> Serve(S) end end),
    ok = gen_tcp:controlling_process(S, Pid),
    Pid ! go,
    accept_each(L, Serve).
