%% The plugin's HTTP listener under abuse, over raw sockets: bodies bounded for every transfer
%% encoding, slow clients cut off, a connection cap, landings deduplicated per token, bounded,
%% rate-limited, and removed when they expire.
-module(azmp_listener_tests).

-include_lib("eunit/include/eunit.hrl").

-define(DAY, 86400).

listener_test_() ->
    {setup,
     fun() ->
         Emu = azmp_test_env:start_emulator(),
         Http = #{port => 0, max_connections => 20, request_timeout_ms => 500, idle_timeout_ms => 2000,
                  landing_per_s => 1000},
         {Emu, azmp_test_env:start_plugin(Emu, #{http => Http, landing_max => 150})}
     end,
     fun({Emu, Plugin}) ->
         azmp_test_env:stop_plugin(Plugin),
         azmp_test_env:stop_emulator(Emu)
     end,
     fun({Emu, _}) ->
         [{"a chunked body over 256 KiB is a 413 at once", fun chunked_too_large/0},
          {"a Content-Length over 256 KiB is a 413 before the body is sent", fun length_too_large/0},
          {"a client that sends its request too slowly is cut off", fun slow_client/0},
          {"connections beyond the cap get a 503 at once", fun connection_cap/0},
          {"a request line over the limit (a 60 KB token) is a 414, then the connection closes",
           fun request_line_too_long/0},
          {"a header over the limit (a 1 MB Authorization) is a 431, then the connection closes",
           fun header_too_long/0},
          {"a browser landing with a valid token is sent to the sign-in page with its landing id",
           fun() -> browser_landing(Emu) end},
          {"a browser landing with a bad or missing token gets a page without the token",
           fun() -> browser_landing_refused(Emu) end},
          {"300 landings of one token: one landing, one call to Azure", {timeout, 60, fun() -> same_token(Emu) end}},
          {"300 landings of one token at once: one landing record, one call to Azure",
           {timeout, 60, fun() -> same_token_at_once(Emu) end}},
          {"landings while Azure is down are bounded, and removed when they expire",
           {timeout, 60, fun() -> azure_down(Emu) end}},
          {"landing resolutions are rate-limited", {timeout, 30, fun() -> rate_limited(Emu) end}}]
     end}.

port() -> emqx_azure_marketplace_app:http_port().

connect() ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, port(), [binary, {active, false}, {packet, raw}]),
    S.

%% The status of the answer on S, and whether the server closed the connection after it.
answer(S) -> answer(S, <<>>).
answer(S, Buf) ->
    case gen_tcp:recv(S, 0, 5000) of
        {ok, More} -> answer(S, <<Buf/binary, More/binary>>);
        {error, closed} -> {status(Buf), closed};
        {error, timeout} -> {status(Buf), open}
    end.

status(<<"HTTP/1.1 ", Code:3/binary, _/binary>>) -> binary_to_integer(Code);
status(_) -> none.

chunked_too_large() ->
    S = connect(),
    ok = gen_tcp:send(S, <<"POST /azure/webhook HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n">>),
    Chunk = binary:copy(<<"a">>, 64 * 1024),
    Sent = send_chunks(S, Chunk, 5),
    ?assert(Sent =< 5),
    ?assertEqual({413, closed}, answer(S)).

%% Sends up to N chunks, stopping when the server has closed the connection.
send_chunks(_S, _Chunk, 0) -> 0;
send_chunks(S, Chunk, N) ->
    case gen_tcp:send(S, [integer_to_binary(byte_size(Chunk), 16), <<"\r\n">>, Chunk, <<"\r\n">>]) of
        ok -> 1 + send_chunks(S, Chunk, N - 1);
        {error, _} -> 0
    end.

length_too_large() ->
    S = connect(),
    ok = gen_tcp:send(S, <<"POST /azure/webhook HTTP/1.1\r\nhost: x\r\ncontent-length: 300000\r\n\r\n">>),
    ?assertEqual({413, closed}, answer(S)).

slow_client() ->
    S = connect(),
    ok = gen_tcp:send(S, <<"GET /azure/landing?token=abc HTTP/1.1\r\nhost: x\r\n">>),
    %% The rest of the head never comes: after the request deadline (500 ms here) the server closes.
    ?assertEqual({none, closed}, answer(S)).

connection_cap() ->
    Held = [connect() || _ <- lists:seq(1, 20)],
    timer:sleep(100),
    Extra = [connect() || _ <- lists:seq(1, 5)],
    ?assertEqual(lists:duplicate(5, {503, closed}), [answer(S) || S <- Extra]),
    [gen_tcp:close(S) || S <- Held],
    %% Room again once they are gone.
    true = azmp_test_env:wait_until(fun() ->
        S = connect(),
        ok = gen_tcp:send(S, <<"GET /nowhere HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n">>),
        answer(S) =:= {404, closed}
    end, 5000).

%% The request is sent from another process: the server answers (and stops reading) before all of
%% it is sent, and the answer must arrive whatever became of the rest.
oversized(Request) ->
    S = connect(),
    Self = self(),
    Sender = spawn_link(fun() -> Self ! {sent, gen_tcp:send(S, Request)} end),
    Answer = answer(S),
    receive {sent, _} -> ok after 5000 -> unlink(Sender), exit(Sender, kill) end,
    Answer.

request_line_too_long() ->
    Token = binary:copy(<<"t">>, 60 * 1024),
    ?assertEqual({414, closed},
                 oversized([<<"GET /azure/landing?token=">>, Token, <<" HTTP/1.1\r\nhost: x\r\n\r\n">>])).

header_too_long() ->
    Bearer = binary:copy(<<"b">>, 1024 * 1024),
    ?assertEqual({431, closed},
                 oversized([<<"POST /azure/webhook HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ">>, Bearer,
                            <<"\r\ncontent-length: 0\r\n\r\n">>])).

landing(Token) ->
    S = connect(),
    Path = ["/azure/landing?", uri_string:compose_query([{"token", binary_to_list(Token)}])],
    ok = gen_tcp:send(S, [<<"GET ">>, Path, <<" HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n">>]),
    {ok, Reply} = recv_all(S, <<>>),
    [Head, Body] = binary:split(Reply, <<"\r\n\r\n">>),
    {status(Head), Body}.

%% {Status, Headers (lowercase names), Body} of GET Path with an Accept header.
get(Path, Accept) ->
    S = connect(),
    ok = gen_tcp:send(S, [<<"GET ">>, Path, <<" HTTP/1.1\r\nhost: x\r\naccept: ">>, Accept,
                          <<"\r\nconnection: close\r\n\r\n">>]),
    {ok, Reply} = recv_all(S, <<>>),
    [Head, Body] = binary:split(Reply, <<"\r\n\r\n">>),
    [_StatusLine | Lines] = binary:split(Head, <<"\r\n">>, [global]),
    Headers = maps:from_list([{string:lowercase(K), V} || L <- Lines, [K, V] <- [binary:split(L, <<": ">>)]]),
    {status(Head), Headers, Body}.

landing_path(Token) -> ["/azure/landing?", uri_string:compose_query([{"token", binary_to_list(Token)}])].

-define(BROWSER, <<"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8">>).

%% Every landing answer: no caching, no referrer (the URL holds the token), nothing run or loaded.
assert_landing_headers(Headers) ->
    ?assertMatch(#{<<"cache-control">> := <<"no-store">>, <<"referrer-policy">> := <<"no-referrer">>,
                   <<"x-content-type-options">> := <<"nosniff">>,
                   <<"content-security-policy">> := <<"default-src 'none'", _/binary>>}, Headers).

browser_landing(Emu) ->
    {ok, #{token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    Url = <<"https://console.example.com/signin?from=azure&lang=en">>,
    ok = application:set_env(emqx_azure_marketplace, landing_redirect_url, Url),
    try
        {303, Hs, <<>>} = get(landing_path(Token), ?BROWSER),
        assert_landing_headers(Hs),
        #{<<"location">> := Location} = Hs,
        #{host := <<"console.example.com">>, path := <<"/signin">>, query := Q} = uri_string:parse(Location),
        [{<<"from">>, <<"azure">>}, {<<"lang">>, <<"en">>}, {<<"landing_id">>, Id}] = uri_string:dissect_query(Q),
        ?assertEqual(nomatch, binary:match(Location, Token)),
        %% the same token, asked for JSON (a programmatic client): today's answer, the same landing
        {200, JHs, JBody} = get(landing_path(Token), <<"application/json">>),
        assert_landing_headers(JHs),
        ?assertEqual({ok, #{<<"landing_id">> => Id}}, emqx_azure_marketplace_nif:json_decode(JBody))
    after
        application:unset_env(emqx_azure_marketplace, landing_redirect_url)
    end.

browser_landing_refused(_Emu) ->
    ok = application:set_env(emqx_azure_marketplace, landing_redirect_url, <<"https://console.example.com/signin">>),
    try
        Bad = <<"not-a-token-<script>alert(1)</script>">>,
        {400, Hs, Page} = get(landing_path(Bad), ?BROWSER),
        assert_landing_headers(Hs),
        ?assertMatch(#{<<"content-type">> := <<"text/html; charset=utf-8">>}, Hs),
        ?assertNotEqual(nomatch, binary:match(Page, <<"invalid or has expired">>)),
        ?assertNotEqual(nomatch, binary:match(Page, <<"please submit a ticket to get help">>)),
        [?assertEqual(nomatch, binary:match(Page, Never)) || Never <- [<<"not-a-token">>, <<"<script">>, <<"src=">>,
                                                                      <<"href=">>]],
        {400, MHs, Missing} = get(<<"/azure/landing">>, ?BROWSER),
        assert_landing_headers(MHs),
        ?assertNotEqual(nomatch, binary:match(Missing, <<"Configure account now">>)),
        %% JSON clients keep the JSON error
        {400, JHs, JBody} = get(landing_path(Bad), <<"application/json">>),
        assert_landing_headers(JHs),
        ?assertEqual({ok, #{<<"error">> => <<"invalid_token">>}}, emqx_azure_marketplace_nif:json_decode(JBody))
    after
        application:unset_env(emqx_azure_marketplace, landing_redirect_url)
    end.

recv_all(S, Buf) ->
    case gen_tcp:recv(S, 0, 5000) of
        {ok, More} -> recv_all(S, <<Buf/binary, More/binary>>);
        {error, closed} -> {ok, Buf}
    end.

resolves(Emu) -> length([x || #{op := resolve} <- maps:get(requests, azmp_emulator:stats(Emu))]).

same_token(Emu) ->
    {ok, #{token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = azmp_emulator:reset_stats(Emu),
    Answers = [landing(Token) || _ <- lists:seq(1, 300)],
    ?assertEqual([200], lists:usort([St || {St, _} <- Answers])),
    ?assertEqual(1, length(lists:usort([B || {_, B} <- Answers]))),
    ?assertEqual(1, resolves(Emu)).

%% The copies arrive together (a browser retrying, a proxy replaying): the check that the token has
%% no landing yet and the landing's record are one transaction, and the copies that find the token
%% being resolved wait for that resolution instead of asking Azure again.
same_token_at_once(Emu) ->
    {ok, #{token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    ok = azmp_emulator:reset_stats(Emu),
    ok = azmp_emulator:inject(Emu, resolve, [{delay, 200}]),  % Azure takes its time: they overlap
    Before = landings(),
    restart_listener(#{port => 0, max_connections => 1024, landing_per_s => 1000}),
    Self = self(),
    Pids = [spawn_link(fun() -> Self ! {landed, self(), landing(Token)} end) || _ <- lists:seq(1, 300)],
    Answers = [receive {landed, P, A} -> A end || P <- Pids],
    ok = azmp_emulator:clear_faults(Emu, resolve),
    ?assertEqual(#{statuses => [200], landing_ids => 1, landings => 1, resolves => 1},
                 #{statuses => lists:usort([St || {St, _} <- Answers]),
                   landing_ids => length(lists:usort([B || {_, B} <- Answers])),
                   landings => landings() - Before, resolves => resolves(Emu)}).

azure_down(Emu) ->
    ok = azmp_emulator:inject(Emu, resolve, lists:duplicate(1000, {status, 503})),
    Answers = [landing(base64:encode(crypto:strong_rand_bytes(48))) || _ <- lists:seq(1, 200)],
    ok = azmp_emulator:clear_faults(Emu, resolve),
    Kept = length([x || {200, _} <- Answers]),
    Busy = length([x || {503, _} <- Answers]),
    %% At most landing_max (150 here, with the earlier test's one) are kept; the rest are told to come back.
    ?assertEqual(200, Kept + Busy),
    ?assert(Kept =< 150 andalso Busy >= 50),
    ?assert(landings() =< 150),
    %% A day later they have expired; the deadlines runner removes them.
    azmp_test_clock:advance(?DAY + 60),
    try
        ?assert(azmp_test_env:wait_until(fun() -> landings() =:= 0 end, 10000))
    after
        azmp_test_clock:reset()
    end.

landings() -> emqx_azure_marketplace_store_landings:landing_count().

%% The listener again, with other limits.
restart_listener(Opts) ->
    ok = supervisor:terminate_child(emqx_azure_marketplace_sup, http),
    ok = supervisor:delete_child(emqx_azure_marketplace_sup, http),
    {ok, _} = supervisor:start_child(emqx_azure_marketplace_sup,
                                     #{id => http, start => {emqx_azure_marketplace_http, start_link, [Opts]}}),
    ok.

rate_limited(Emu) ->
    %% The listener again, with 5 landings a second.
    restart_listener(#{port => 0, landing_per_s => 5}),
    {ok, #{token := Token}} = azmp_emulator:add_subscription(Emu, #{}),
    Statuses = [St || {St, _} <- [landing(Token) || _ <- lists:seq(1, 30)]],
    ?assert(length([x || 429 <- Statuses]) >= 10),
    ?assert(lists:member(200, Statuses)).
