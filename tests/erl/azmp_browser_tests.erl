%% The customer's journey in a real browser: headless Chromium (Debian's `chromium', driven over
%% WebDriver by Debian's `chromium-driver', from httpc) walks Azure's "Configure account now" ->
%% the plugin's landing -> the stand-in console's sign-in -> the index page's modal (linking...,
%% then linked) -> the Billing page; an account with a credit card sees the refusal in the modal; a
%% bad token gets the landing's HTML page. It asserts on what the pages show, and saves a
%% screenshot of each step (in $AZMP_SCREENSHOTS, default _build/screenshots; docs/screenshots
%% holds the ones README.md shows). `make test' installs the two packages (make browser-deps).
-module(azmp_browser_tests).

-include_lib("eunit/include/eunit.hrl").

-define(M, emqx_azure_marketplace).
-define(ELEMENT, <<"element-6066-11e4-a52e-4f735466cecf">>).

browser_test_() ->
    {setup, fun setup/0, fun cleanup/1,
     fun(Ctx) -> {timeout, 120, {"the customer's journey in Chromium", fun() -> journey(Ctx) end}} end}.

setup() ->
    {ok, _} = application:ensure_all_started(inets),
    Driver = os:find_executable("chromedriver"),
    Driver =/= false orelse error("chromedriver not found: `make browser-deps' installs chromium and chromium-driver"),
    Emu = azmp_test_env:start_emulator(#{dimensions => [<<"session_minutes">>]}),
    {ok, Console} = azmp_demo_console:start(),
    Metering = #{dimensions => [#{id => <<"session_minutes">>, unit => <<"minute">>, included => #{<<"payg">> => 10}}]},
    Plugin = azmp_test_env:start_plugin(Emu, #{metering => Metering,
                                               landing_redirect_url => <<(azmp_demo_console:url(Console))/binary,
                                                                         "/signin">>}),
    Port = free_port(),
    DriverPort = open_port({spawn_executable, Driver}, [{args, ["--port=" ++ integer_to_list(Port)]},
                                                        exit_status, stderr_to_stdout]),
    Base = "http://127.0.0.1:" ++ integer_to_list(Port),
    true = azmp_test_env:wait_until(fun() -> ready(Base) end, 15000),
    #{emu => Emu, plugin => Plugin, console => Console, driver => DriverPort, base => Base}.

cleanup(#{emu := Emu, plugin := Plugin, console := Console, driver := DriverPort}) ->
    {os_pid, OsPid} = erlang:port_info(DriverPort, os_pid),
    catch port_close(DriverPort),
    _ = os:cmd("kill " ++ integer_to_list(OsPid)),
    azmp_demo_console:stop(Console),
    azmp_test_env:stop_plugin(Plugin),
    azmp_test_env:stop_emulator(Emu).

free_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, P} = inet:port(L),
    gen_tcp:close(L),
    P.

ready(Base) ->
    case httpc:request(get, {Base ++ "/status", []}, [{timeout, 1000}], []) of
        {ok, {{_, 200, _}, _, _}} -> true;
        _ -> false
    end.

journey(#{emu := Emu, base := Base} = Ctx) ->
    ok = azmp_test_platform:add_account(<<"alice">>, #{}),
    ok = azmp_test_platform:add_account(<<"bob">>, #{credit_card => true}),
    Session = new_session(Base),
    try
        W = {Base, Session},
        %% Alice: Azure's "Configure account now" opens the landing URL; she is not signed in.
        {ok, #{token := AliceToken}} = azmp_emulator:add_subscription(Emu, #{name => <<"alice-payg">>}),
        ok = azmp_emulator:inject(Emu, activate, [{delay, 2500}]),  % Azure takes its time: the modal shows it
        go(W, landing_url(AliceToken)),
        ?assertMatch({match, _}, re:run(url(W), "/signin\\?landing_id=")),
        ?assertEqual(nomatch, binary:match(url(W), AliceToken)),
        wait_text(W, <<"Sign in to link your Azure Billing Account">>),
        shot(W, "1-sign-in"),
        type(W, <<"#account">>, <<"alice">>),
        click(W, <<"#signin">>),
        wait_text(W, <<"linking">>),
        wait_text(W, <<"Wait for the system to finish syncing">>),
        shot(W, "2-modal-linking"),
        wait_text(W, <<"Status: linked">>),
        wait_text(W, <<"Your EMQX account is linked to your Azure Billing Account">>),
        shot(W, "3-modal-linked"),
        %% usage recorded meanwhile shows in the statement
        Now = emqx_azure_marketplace_clock:now(),
        ok = ?M:record_usage(<<"alice">>, #{dimension => <<"session_minutes">>, quantity => 42, at => Now * 1000,
                                            source_id => <<"browser-1">>}),
        click(W, <<"#modal-billing">>),  % the modal's own link: it covers the page
        wait_text(W, <<"Payment Method">>),
        ?assertEqual(<<"Azure Marketplace Subscription">>, text(W, <<"#payment-method">>)),
        wait_text(W, <<"session_minutes">>),
        shot(W, "4-billing"),
        go(W, console(Ctx, "/logout")),
        %% Bob has a credit card set up: the modal says linking failed, and why.
        {ok, #{token := BobToken}} = azmp_emulator:add_subscription(Emu, #{name => <<"bob-payg">>}),
        go(W, landing_url(BobToken)),
        type(W, <<"#account">>, <<"bob">>),
        click(W, <<"#signin">>),
        wait_text(W, <<"Status: failed">>),
        wait_text(W, <<"The EMQX account already has been set up a credit card">>),
        wait_text(W, <<"please submit a ticket to get help">>),
        shot(W, "5-modal-refused"),
        %% A bad token: the landing's own page, without the token.
        Bad = <<"expired-token-0000">>,
        go(W, landing_url(Bad)),
        wait_text(W, <<"This link is invalid or has expired">>),
        ?assertEqual(nomatch, binary:match(text(W, <<"body">>), Bad)),
        shot(W, "6-bad-token")
    after
        delete_session(Base, Session)
    end.

landing_url(Token) ->
    iolist_to_binary(["http://127.0.0.1:", integer_to_list(emqx_azure_marketplace_app:http_port()),
                      "/azure/landing?", uri_string:compose_query([{<<"token">>, Token}])]).

console(#{console := C}, Path) -> <<(azmp_demo_console:url(C))/binary, (list_to_binary(Path))/binary>>.

%%--------------------------------------------------------------------
%% WebDriver (W3C), over httpc

new_session(Base) ->
    Caps = #{capabilities => #{alwaysMatch => #{
        browserName => <<"chrome">>,
        <<"goog:chromeOptions">> => #{binary => <<"/usr/bin/chromium">>,
                                      args => [<<"--headless=new">>, <<"--no-sandbox">>, <<"--disable-gpu">>,
                                               <<"--disable-dev-shm-usage">>, <<"--window-size=1000,700">>]}}}},
    #{<<"sessionId">> := Id} = call(post, Base ++ "/session", Caps),
    binary_to_list(Id).

delete_session(Base, Session) ->
    catch call(delete, Base ++ "/session/" ++ Session, undefined),
    ok.

call({Base, Session}, Method, Path, Body) -> call(Method, Base ++ "/session/" ++ Session ++ Path, Body).

call(Method, Url, Body) ->
    Request = case Body of
                  undefined -> {Url, []};
                  _ -> {ok, Json} = emqx_azure_marketplace_nif:json_encode(Body), {Url, [], "application/json", Json}
              end,
    {ok, {{_, Status, _}, _, Reply}} = httpc:request(Method, Request, [{timeout, 60000}], [{body_format, binary}]),
    {ok, #{<<"value">> := Value}} = emqx_azure_marketplace_nif:json_decode(Reply),
    Status =:= 200 orelse error({webdriver, Status, Value}),
    Value.

go(W, Url) -> call(W, post, "/url", #{url => Url}).

url(W) -> call(W, get, "/url", undefined).

find(W, Css) ->
    #{?ELEMENT := E} = call(W, post, "/element", #{using => <<"css selector">>, value => Css}),
    binary_to_list(E).

text(W, Css) -> call(W, get, "/element/" ++ find(W, Css) ++ "/text", undefined).

type(W, Css, Text) -> call(W, post, "/element/" ++ find(W, Css) ++ "/value", #{text => Text}).

click(W, Css) -> call(W, post, "/element/" ++ find(W, Css) ++ "/click", #{}).

%% Waits until the page shows Text (the body's rendered text).
wait_text(W, Text) ->
    Shows = fun() -> binary:match(catch_text(W), Text) =/= nomatch end,
    case azmp_test_env:wait_until(Shows, 15000) of
        true -> ok;
        false -> error({page_does_not_show, Text, url(W), catch_text(W)})
    end.

catch_text(W) ->
    try text(W, <<"body">>) of
        T when is_binary(T) -> T
    catch _:_ -> <<>>
    end.

shot(W, Name) ->
    Dir = os:getenv("AZMP_SCREENSHOTS", "_build/screenshots"),
    ok = filelib:ensure_path(Dir),
    Png = base64:decode(call(W, get, "/screenshot", undefined)),
    <<137, "PNG", _/binary>> = Png,
    ok = file:write_file(filename:join(Dir, Name ++ ".png"), Png).
