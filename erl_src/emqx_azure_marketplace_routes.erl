%% @doc The plugin's HTTP endpoints behind the listener (emqx_azure_marketplace_http): `POST
%% /azure/webhook' (Azure's webhook) and `GET /azure/landing?token=...' (the landing page's back
%% end, for a customer not signed in yet: a redirect or a small page for a browser, JSON otherwise).
-module(emqx_azure_marketplace_routes).

-export([route/5, json/2]).

%% On every landing answer: the URL holds the marketplace token (no referrer, no cache), and the
%% page runs nothing and loads nothing.
-define(LANDING_HEADERS, [{<<"cache-control">>, <<"no-store">>}, {<<"referrer-policy">>, <<"no-referrer">>},
                          {<<"x-content-type-options">>, <<"nosniff">>},
                          {<<"content-security-policy">>,
                           <<"default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
                             "frame-ancestors 'none'">>}]).

%% @doc A request's answer: `{Status, Headers, Body}'. Limits: the listener's (the landing rate).
-spec route(binary(), term(), [{binary(), binary()}], binary(), map()) -> {100..599, [{binary(), binary()}], binary()}.
route(<<"POST">>, {abs_path, Uri}, Headers, Body, _Limits) ->
    case path(Uri) of
        {<<"/azure/webhook">>, _} -> emqx_azure_marketplace_webhook:handle(Headers, Body);
        _ -> json(404, #{error => not_found})
    end;
route(<<"GET">>, {abs_path, Uri}, Headers, _Body, Limits) ->
    case path(Uri) of
        {<<"/azure/landing">>, Query} ->
            {Status, Hs, Body} = landing(Query, wants_html(Headers), Limits),
            {Status, Hs ++ ?LANDING_HEADERS, Body};
        _ -> json(404, #{error => not_found})
    end;
route(_Method, _Uri, _Headers, _Body, _Limits) ->
    json(404, #{error => not_found}).

path(Uri) ->
    case binary:split(Uri, <<"?">>) of
        [Path, Q] -> {Path, Q};
        [Path] -> {Path, <<>>}
    end.

%% A browser (it asks for text/html) gets a redirect or a page; anything else, JSON.
wants_html(Headers) ->
    Accept = string:lowercase(iolist_to_binary([[V, $,] || {<<"accept">>, V} <- Headers])),
    binary:match(Accept, <<"text/html">>) =/= nomatch.

%% GET /azure/landing?token=...: the URL Azure opens in the customer's browser ("Configure account
%% now"). The token is a secret: it is never logged, nor put in any answer.
landing(Query, Html, Limits) ->
    Token = case catch uri_string:dissect_query(Query) of
                Pairs when is_list(Pairs) -> proplists:get_value(<<"token">>, Pairs);
                _ -> undefined
            end,
    case is_binary(Token) andalso Token =/= <<>> andalso byte_size(Token) =< 8192 of
        false ->
            landing_error(Html, missing_token, 400);
        true ->
            case allow_landing(Limits) of
                false ->
                    {Status, Hs, Body} = landing_error(Html, too_many_landings, 429),
                    {Status, [{<<"retry-after">>, <<"1">>} | Hs], Body};
                true ->
                    case emqx_azure_marketplace:landing(Token) of
                        {ok, LandingId} -> landed(Html, LandingId);
                        {error, busy} -> landing_error(Html, busy, 503);
                        {error, Reason} -> landing_error(Html, Reason, 400)
                    end
            end
    end.

%% A browser goes on to the platform's sign-in page (landing_redirect_url), the landing id added
%% to its query; without that setting, or for a programmatic client, the JSON answer.
landed(Html, LandingId) ->
    case application:get_env(emqx_azure_marketplace, landing_redirect_url, <<>>) of
        Url when Html, is_binary(Url), Url =/= <<>> ->
            {303, [{<<"location">>, redirect_location(Url, LandingId)}], <<>>};
        _ ->
            json(200, #{landing_id => LandingId})
    end.

%% Url with landing_id added to its query (what it had kept; checked when configured).
redirect_location(Url, LandingId) ->
    U = uri_string:parse(Url),
    Query = case maps:get(query, U, <<>>) of
                <<>> -> [];
                Q -> uri_string:dissect_query(Q)
            end,
    iolist_to_binary(uri_string:recompose(U#{query => uri_string:compose_query(Query ++ [{<<"landing_id">>, LandingId}])})).

%% The JSON answers are today's; a browser gets a small page of its own in the core's words (what
%% happened, what to do), with the core's status.
landing_error(false, Reason, Status) ->
    json(Status, #{error => Reason});
landing_error(true, Reason, Status) ->
    case emqx_azure_marketplace_nif:landing_error_text(Reason) of
        #{status := S, title := Title, message := Message} -> html(S, Title, Message);
        undefined -> json(Status, #{error => Reason})
    end.

%% A self-contained page: no script, no external resource (the CSP allows its inline style only).
html(Status, Title, Message) ->
    T = escape(Title),
    Body = [<<"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
              "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>">>, T,
            <<" - EMQX Platform</title><style>"
              "body{font-family:system-ui,sans-serif;background:#f5f6f8;color:#222;margin:0}"
              "main{max-width:34rem;margin:12vh auto;background:#fff;border-radius:8px;padding:2rem 2.5rem;"
              "box-shadow:0 2px 12px rgba(0,0,0,.08)}h1{font-size:1.35rem;margin-top:0}p{line-height:1.5}"
              ".brand{color:#00b173;font-weight:600;font-size:.9rem;letter-spacing:.04em}"
              "</style></head><body><main><div class=\"brand\">EMQX Platform</div><h1>">>, T, <<"</h1><p>">>,
            escape(Message), <<"</p></main></body></html>\n">>],
    {Status, [{<<"content-type">>, <<"text/html; charset=utf-8">>}], iolist_to_binary(Body)}.

escape(Text) ->
    << <<(case C of
              $& -> <<"&amp;">>;
              $< -> <<"&lt;">>;
              $> -> <<"&gt;">>;
              $" -> <<"&quot;">>;
              $' -> <<"&#39;">>;
              _ -> <<C>>
          end)/binary>> || <<C>> <= Text >>.

%% At most landing_per_s landings a second reach the plugin (and Azure).
allow_landing(#{counters := C, landing_per_s := PerS}) ->
    Now = erlang:monotonic_time(second),
    case atomics:get(C, 2) of
        Now -> ok;
        Old -> atomics:compare_exchange(C, 2, Old, Now) =:= ok andalso atomics:put(C, 3, 0)
    end,
    atomics:add_get(C, 3, 1) =< PerS.

%% @doc A JSON answer.
-spec json(100..599, map()) -> {100..599, [{binary(), binary()}], binary()}.
json(Status, Map) ->
    {ok, Body} = emqx_azure_marketplace_nif:json_encode(Map),
    {Status, [{<<"content-type">>, <<"application/json">>}], Body}.
