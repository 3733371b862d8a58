%% A stand-in for the EMQX Platform console, on loopback, for the demo and the browser test (test
%% code: never shipped). It plays the platform's side of the product documentation's story: the
%% sign-in page Azure's "Configure account now" ends on (through the plugin's landing, which sends
%% the browser here with `landing_id'), the index page whose modal polls `link_status/1', and the
%% Billing page with the Payment Method and a usage statement (`usage_report/3').
%%
%% Plain HTML and a few lines of JS; one request per connection; the signed-in account is a cookie.
-module(azmp_demo_console).

-export([start/0, stop/1, url/1]).

-define(M, emqx_azure_marketplace).

%% @doc Starts the console on a free loopback port: {ok, Console}.
-spec start() -> {ok, #{port := inet:port_number(), pid := pid()}}.
start() ->
    Self = self(),
    Pid = spawn(fun() ->
        {ok, L} = gen_tcp:listen(0, [binary, {packet, http_bin}, {active, false}, {ip, {127, 0, 0, 1}},
                                     {reuseaddr, true}]),
        {ok, Port} = inet:port(L),
        Self ! {console_port, self(), Port},
        azmp_test_http:accept_each(L, fun serve/1)
    end),
    receive {console_port, Pid, Port} -> {ok, #{port => Port, pid => Pid}} end.

-spec stop(#{pid := pid()}) -> ok.
stop(#{pid := Pid}) -> exit(Pid, kill), ok.

%% @doc The console's URL for Path.
-spec url(#{port := inet:port_number()}) -> binary().
url(#{port := Port}) -> iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port)]).

serve(S) ->
    case gen_tcp:recv(S, 0, 5000) of
        {ok, {http_request, 'GET', {abs_path, Uri}, _}} ->
            Headers = headers(S, #{}),
            [Path | Q] = binary:split(Uri, <<"?">>),
            Query = case Q of [Qs] -> maps:from_list(uri_string:dissect_query(Qs)); [] -> #{} end,
            {Status, Hs, Body} = try page(Path, Query, account(Headers))
                                 catch C:E -> {500, [], io_lib:format("~p:~p", [C, E])} end,
            gen_tcp:send(S, [<<"HTTP/1.1 ">>, integer_to_binary(Status), <<" X\r\nconnection: close\r\n">>,
                             [[K, <<": ">>, V, <<"\r\n">>] || {K, V} <- Hs],
                             <<"content-length: ">>, integer_to_binary(iolist_size(Body)), <<"\r\n\r\n">>, Body]);
        _ ->
            ok
    end,
    gen_tcp:close(S).

headers(S, Acc) ->
    case gen_tcp:recv(S, 0, 5000) of
        {ok, {http_header, _, Name, _, V}} -> headers(S, Acc#{string:lowercase(iolist_to_binary([atom_or(Name)])) => V});
        _ -> Acc
    end.

atom_or(A) when is_atom(A) -> atom_to_binary(A);
atom_or(B) -> B.

account(#{<<"cookie">> := C}) ->
    case [V || P <- binary:split(C, <<";">>, [global]), [K, V] <- [binary:split(string:trim(P), <<"=">>)],
               K =:= <<"account">>, V =/= <<>>] of
        [A | _] -> A;
        [] -> undefined
    end;
account(_) -> undefined.

%%--------------------------------------------------------------------
%% Pages

%% Sign-in: where the plugin's landing sends the browser. Already signed in: straight to the
%% index page, the landing linked to the account.
page(<<"/signin">>, #{<<"landing_id">> := Id}, Account) when Account =/= undefined ->
    link_and_go(Account, Id);
page(<<"/signin">>, Q, _) ->
    Landing = maps:get(<<"landing_id">>, Q, <<>>),
    html(<<"Sign in">>, [
        <<"<div class=card><h1>Sign in to EMQX Platform</h1>">>,
        case Landing of
            <<>> -> <<>>;
            _ -> <<"<p class=note>Sign in to link your Azure Billing Account.</p>">>
        end,
        <<"<form action=/login method=get><label>Account <input id=account name=account autofocus></label>"
          "<input type=hidden name=landing_id value=\"">>, esc(Landing), <<"\">"
          "<label>Password <input type=password name=password value=demo></label>"
          "<button id=signin type=submit>Sign in</button></form></div>">>]);
page(<<"/login">>, #{<<"account">> := Account} = Q, _) when Account =/= <<>> ->
    Cookie = {<<"set-cookie">>, <<"account=", (uri_string:quote(Account))/binary, "; Path=/; SameSite=Lax">>},
    {S, Hs, B} = case maps:get(<<"landing_id">>, Q, <<>>) of
                     <<>> -> redirect(<<"/">>);
                     Id -> link_and_go(Account, Id)
                 end,
    {S, [Cookie | Hs], B};
page(<<"/logout">>, _, _) ->
    {S, Hs, B} = redirect(<<"/signin">>),
    {S, [{<<"set-cookie">>, <<"account=; Path=/; Max-Age=0">>} | Hs], B};
page(_, _, undefined) ->
    redirect(<<"/signin">>);
page(<<"/">>, Q, Account) ->
    Modal = case maps:get(<<"linking">>, Q, <<>>) of
                <<"1">> ->
                    %% The modal polls the link status until it settles (what the seed's pop-up shows).
                    [<<"<div id=modal class=modal><div class=card><h2 id=modal-title>Linking to your Azure Billing "
                       "Account&hellip;</h2><p id=modal-message>Wait for the system to finish syncing.</p>"
                       "<p class=status>Status: <b id=modal-status>linking&hellip;</b></p>"
                       "<a id=modal-billing href=/billing>Billing</a> &middot; <a href=/>Close</a></div></div>"
                       "<script>(function poll(){fetch('/api/link_status').then(r=>r.json()).then(s=>{"
                       "document.getElementById('modal-status').textContent="
                       "(s.status==='resolving'||s.status==='activating')?'linking\\u2026 ('+s.status+')':s.status;"
                       "document.getElementById('modal-title').textContent=s.title||'';"
                       "document.getElementById('modal-message').textContent=s.message||'';"
                       "if(s.status!=='linked'&&s.status!=='failed')setTimeout(poll,300);});})();</script>">>];
                _ -> <<>>
            end,
    html(<<"Index">>, [nav(Account), <<"<div class=card><h1>Deployments</h1><p>Welcome, ">>, esc(Account),
                       <<".</p></div>">>, Modal]);
page(<<"/api/link_status">>, _, Account) ->
    Status = maps:with([status, reason, title, message], ?M:link_status(Account)),
    {ok, Json} = emqx_azure_marketplace_nif:json_encode(Status),
    {200, [{<<"content-type">>, <<"application/json">>}, {<<"cache-control">>, <<"no-store">>}], Json};
page(<<"/billing">>, _, Account) ->
    Now = emqx_azure_marketplace_clock:now(),
    Rows = case ?M:usage_report(Account, (Now div 3600 - 47) * 3600, (Now div 3600) * 3600) of
               {ok, R} -> R;
               {error, _} -> []
           end,
    html(<<"Billing">>, [nav(Account), <<"<div class=card><h1>Billing</h1><table><tr><th>Payment Method</th><td id=payment-method>">>,
                         method(?M:payment_method(Account)), <<"</td></tr></table></div>">>,
                         <<"<div class=card><h2>Usage statement</h2>">>, statement(Rows), <<"</div>">>]);
page(_, _, _) ->
    {404, [{<<"content-type">>, <<"text/plain">>}], <<"not found">>}.

link_and_go(Account, LandingId) ->
    _ = ?M:link(Account, {landing, LandingId}),  % the modal shows how it goes, refusals included
    redirect(<<"/?linking=1">>).

statement([]) ->
    <<"<p>No usage in the last 48 hours.</p>">>;
statement(Rows) ->
    [<<"<table class=usage><tr><th>Hour (UTC)</th><th>Dimension</th><th>Recorded</th><th>Included</th>"
       "<th>Billed above the included quantity</th><th>Status</th></tr>">>,
     [[<<"<tr><td>">>, hour(H), <<"</td><td>">>, esc(D), <<"</td><td>">>, esc(Rec), <<"</td><td>">>, esc(Inc),
       <<"</td><td>">>, esc(Rep), <<"</td><td>">>, atom_to_binary(St), <<"</td></tr>">>]
      || #{hour := H, dimension := D, recorded := Rec, included := Inc, reported := Rep, status := St} <- Rows],
     <<"</table>">>].

hour(T) ->
    {{Y, Mo, D}, {Hh, _, _}} = calendar:system_time_to_universal_time(T, second),
    io_lib:format("~4..0B-~2..0B-~2..0B ~2..0B:00", [Y, Mo, D, Hh]).

method(azure_marketplace_subscription) -> <<"Azure Marketplace Subscription">>;
method(credit_card) -> <<"Credit card">>;
method(available_credits) -> <<"Available Credits">>;
method(_) -> <<"None">>.

nav(Account) ->
    [<<"<nav><b>EMQX Platform</b> <a href=/>Index</a> <a id=billing-link href=/billing>Billing</a>"
       "<span>">>, esc(Account), <<" &middot; <a href=/logout>Sign out</a></span></nav>">>].

redirect(To) -> {303, [{<<"location">>, To}], <<>>}.

html(Title, Body) ->
    {200, [{<<"content-type">>, <<"text/html; charset=utf-8">>}],
     [<<"<!DOCTYPE html><html><head><meta charset=utf-8><title>">>, Title, <<" - EMQX Platform (demo)</title><style>"
        "body{font-family:system-ui,sans-serif;background:#f5f6f8;margin:0;color:#222}"
        "nav{background:#1d2939;color:#fff;padding:.8rem 1.5rem}nav a{color:#cfe;margin-left:1.2rem}"
        "nav span{float:right}.card{background:#fff;border-radius:8px;padding:1.2rem 2rem;margin:1.5rem auto;"
        "max-width:48rem;box-shadow:0 2px 12px rgba(0,0,0,.08)}label{display:block;margin:.6rem 0}"
        "button{background:#00b173;color:#fff;border:0;padding:.5rem 1.4rem;border-radius:4px}"
        ".modal{position:fixed;inset:0;background:rgba(0,0,0,.35);padding-top:10vh}"
        "table{border-collapse:collapse}td,th{padding:.3rem .8rem;border-bottom:1px solid #eee;text-align:left}"
        ".note{color:#555}</style></head><body>">>, Body, <<"</body></html>">>]}.

esc(B) when is_binary(B) ->
    << <<(case C of $& -> <<"&amp;">>; $< -> <<"&lt;">>; $> -> <<"&gt;">>; $" -> <<"&quot;">>;
                    $' -> <<"&#39;">>; _ -> <<C>> end)/binary>> || <<C>> <= B >>;
esc(undefined) -> <<>>.
