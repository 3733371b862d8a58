%% @doc Local Azure Marketplace emulator: Microsoft Entra token endpoints and
%% JWKS, SaaS Fulfillment v2 with state and Metering, on real HTTP and HTTPS
%% listeners on 127.0.0.1, with fault injection. Test and demo
%% infrastructure only.
%%
%% The marketplace API is under "/api" (marketplace_url = Url ++ "/api"),
%% Entra at the root (login_url = Url), control endpoints under "/_emulator".
%%
%% This gen_server owns the state (subscriptions, operations, usage,
%% faults, stats). Connections are served by one process each
%% (azmp_emulator_http); delays are slept in those processes, never here.
-module(azmp_emulator).
-behaviour(gen_server).

-export([set_plan/3, set_answer_style/2, received/1]).
-export([start/1, start_link/1, stop/1,
         http_url/1, https_url/1, ca_file/1, other_ca_file/1, jwks_url/1, info/1,
         add_subscription/2, add_subscriptions/3, subscription/2, add_operation/3,
         inject/3, clear_faults/2, set_delay/2, expire_tokens/1,
         stats/1, reset_stats/1, sign_jwt/2,
         send_webhook/4, send_webhook/5, send_webhook_detailed/5, webhooks/1,
         rotate_signing_key/1, signing_kid/1,
         set_clock_offset/2, clock/1, set_dimensions/2, set_recon/3,
         usage/1, usage_count/1,
         standalone/1, start_standalone/1, main/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-type emu() :: pid().
-type op() :: token | resolve | activate | get_subscription | list_subscriptions
            | list_available_plans | update_subscription | delete_subscription
            | list_operations | get_operation | update_operation | usage_event
            | batch_usage_event | usage_events | jwks | any.
-type fault() :: {status, 100..599} | {status, 429, non_neg_integer()} | reset
               | {stall, non_neg_integer()} | truncated | malformed
               | {delay, non_neg_integer()}
               | {lost_reply, non_neg_integer()}.  % processed, then the connection reset after Ms
-export_type([emu/0, op/0, fault/0]).

-define(OPS, [token, resolve, activate, get_subscription, list_subscriptions,
              list_available_plans, update_subscription, delete_subscription,
              list_operations, get_operation, update_operation, usage_event,
              batch_usage_event, usage_events, jwks, openid_configuration,
              not_found, method_not_allowed, any]).
-define(ACCEPTORS, 8).

%%% ------------------------------------------------------------ lifecycle

%% @doc Start an emulator. Opts (all optional): http_port (0), https_port (0
%% | none), tenant_id, client_id, client_secret, token_ttl_s (3599), dir (for
%% the PEM files; default a fresh /tmp dir, removed again by stop/1),
%% page_size (2), operation_ms (200: when publisher-initiated operations
%% complete), plans ([<<"payg">>, <<"payg-premium">>]), dimensions
%% ([<<"sessions">>, <<"traffic">>, <<"connections">>]: the metering
%% dimensions of every plan; or a map #{PlanId => [DimensionId]}: a plan's
%% own dimensions, none for a plan missing from the map; see
%% set_dimensions/2). An event whose dimension the subscription's plan does
%% not define is InvalidDimension; listAvailablePlans shows each plan's.
-spec start(map()) -> {ok, emu()} | {error, term()}.
start(Opts) ->
    {ok, _} = application:ensure_all_started(ssl),
    {ok, _} = application:ensure_all_started(inets),
    gen_server:start(?MODULE, Opts, []).

-spec start_link(map()) -> {ok, emu()} | {error, term()}.
start_link(Opts) ->
    {ok, _} = application:ensure_all_started(ssl),
    {ok, _} = application:ensure_all_started(inets),
    gen_server:start_link(?MODULE, Opts, []).

-spec stop(emu()) -> ok.
stop(Emu) -> gen_server:stop(Emu).

%%% ------------------------------------------------------------- addresses

-spec http_url(emu()) -> binary().
http_url(Emu) -> url(http, call(Emu, {port, http})).

%% @doc https://127.0.0.1:PORT (the certificate also covers localhost).
-spec https_url(emu()) -> binary().
https_url(Emu) -> url(https, call(Emu, {port, https})).

-spec ca_file(emu()) -> file:filename().
ca_file(Emu) -> call(Emu, {file, ca_file}).

-spec other_ca_file(emu()) -> file:filename().
other_ca_file(Emu) -> call(Emu, {file, other_ca_file}).

%% @doc The tenant's JWKS (v2 keys) URL, on HTTPS unless it is disabled.
-spec jwks_url(emu()) -> binary().
jwks_url(Emu) ->
    #{tenant_id := T} = Info = info(Emu),
    Base = case maps:get(https_url, Info) of
               undefined -> maps:get(http_url, Info);
               U -> U
           end,
    <<Base/binary, "/", T/binary, "/discovery/v2.0/keys">>.

%% @doc Everything a client needs: urls, tenant, client id and secret, files.
-spec info(emu()) -> map().
info(Emu) ->
    I = call(Emu, info),
    Https = case maps:get(https_port, I) of
                undefined -> undefined;
                P -> url(https, P)
            end,
    I#{http_url => url(http, maps:get(http_port, I)), https_url => Https}.

url(_, undefined) -> error(https_disabled);
url(Scheme, Port) ->
    <<(atom_to_binary(Scheme, latin1))/binary, "://127.0.0.1:", (integer_to_binary(Port))/binary>>.

%%% ---------------------------------------------------------------- state

%% @doc Add a subscription. Map keys (optional): plan_id, offer_id, quantity,
%% status, name, beneficiary_email (or email), purchaser_email, is_free_trial,
%% is_test, term (<<"P1M">> or #{term_unit, start_date, end_date}), id,
%% token, marketplace_token_ttl_s (86400; 0 = the token is already expired).
-spec add_subscription(emu(), map()) -> {ok, #{id := binary(), token := binary()}}.
add_subscription(Emu, Map) -> call(Emu, {add_subscription, Map}).

%% @doc N subscriptions at once (a bench's or a test's 100,000), Opts as add_subscription/2's but
%% for `id' and `token' (each gets its own): their ids, in creation (listing) order. To lose a
%% webhook among them, add_operation/3 (a Suspend or an Unsubscribe applies in Azure at once and
%% no webhook is sent unless send_webhook/4 is called).
-spec add_subscriptions(emu(), pos_integer(), map()) -> {ok, [binary()]}.
add_subscriptions(Emu, N, Opts) when is_integer(N), N > 0 ->
    gen_server:call(Emu, {add_subscriptions, N, maps:without([id, token], Opts)}, infinity).

%% @doc The emulator's own view: atom keys (id, status, plan_id, quantity,
%% activations, token, operations, ...).
-spec subscription(emu(), binary()) -> {ok, map()} | {error, not_found}.
subscription(Emu, SubId) -> call(Emu, {subscription, SubId}).

%% @doc An Azure-initiated operation on a subscription (what a webhook
%% announces): Map has action (<<"ChangePlan">>, <<"ChangeQuantity">>,
%% <<"Suspend">>, <<"Reinstate">>, <<"Unsubscribe">>, <<"Renew">>) and
%% optionally plan_id, quantity, id. ChangePlan/ChangeQuantity stay
%% InProgress until PATCHed; the others apply at once (Succeeded).
-spec add_operation(emu(), binary(), map()) -> {ok, binary()} | {error, not_found}.
add_operation(Emu, SubId, Map) -> call(Emu, {add_operation, SubId, Map}).

%% @doc The subscription's plan changes in Azure, and no webhook tells the plugin (a ChangePlan it
%% deferred with a 503, or one whose webhook was lost): the plugin's link keeps the old plan, and
%% Azure answers events on it BadArgument.
-spec set_plan(emu(), binary(), binary()) -> ok | {error, not_found}.
set_plan(Emu, SubId, Plan) when is_binary(SubId), is_binary(Plan) -> call(Emu, {set_plan, SubId, Plan}).

%% @doc How batchUsageEvent answers are written: `emulator' (the default: each item's fields as they
%% were sent) or `microsoft_samples' (as Microsoft's own samples write them: effectiveStartTime
%% without an offset, "2018-12-01T08:30:14", and the resourceId in upper case).
-spec set_answer_style(emu(), emulator | microsoft_samples) -> ok.
set_answer_style(Emu, Style) when Style =:= emulator; Style =:= microsoft_samples ->
    call(Emu, {set_answer_style, Style}).

%%% ---------------------------------------------------------------- clock

%% @doc Move the emulator's clock: from now on its "now" is system time +
%% Seconds (replacing any previous offset; 0 is real time again; negative
%% goes back). It is the time of metering (the 24 h Expired window, the
%% future check, messageTime, the default usageEndDate of GET /usageEvents)
%% and of fulfillment (operation timeStamp, when publisher-initiated
%% operations complete, a new subscription's created date and term).
%% Token lifetimes do NOT follow it: Entra access tokens, webhook JWTs
%% (iat/nbf/exp) and marketplace purchase tokens stay on real time, since
%% the plugin checks JWTs against real time.
%% Example: set_clock_offset(Emu, 25 * 3600) makes an event for the hour
%% reported a moment ago Expired.
-spec set_clock_offset(emu(), integer()) -> ok.
set_clock_offset(Emu, Seconds) when is_integer(Seconds) ->
    call(Emu, {set_clock_offset, Seconds}).

%% @doc The emulator's "now" in Unix seconds: system time + the clock offset.
-spec clock(emu()) -> integer().
clock(Emu) -> erlang:system_time(second) + call(Emu, clock_offset).

%%% ------------------------------------------------------------- metering

%% @doc Replace the metering dimensions at run time: a list (every plan has
%% them) or a map #{PlanId => [DimensionId]} (a plan missing from the map has
%% none). Applies to events received from now on; accepted ones stay.
%% Example: set_dimensions(Emu, #{<<"payg">> => [<<"sessions">>],
%%                                <<"payg-premium">> => [<<"sessions">>, <<"traffic">>]}).
-spec set_dimensions(emu(), [binary()] | #{binary() => [binary()]}) -> ok.
set_dimensions(Emu, Dims) ->
    ok = check_dimensions(Dims),
    call(Emu, {set_dimensions, Dims}).

%% @doc Make Azure disagree in GET /usageEvents (reconciliation tests): the
%% rows of resource R, dimension D and the UTC day containing Day (Unix
%% seconds; any time of the day) report these values instead of their own:
%% recon_status (<<"Submitted">> | <<"Accepted">> | <<"Rejected">> |
%% <<"Mismatch">>; default Accepted) and/or processed_quantity (a number;
%% default the submitted sum). Replaces a previous override of that key;
%% #{} removes it. It may be set before the events arrive. The reconStatus
%% query filter sees the overridden status.
%% Example: set_recon(Emu, #{resource_id => SubId, dimension => <<"sessions">>,
%%                           day => Hour}, #{recon_status => <<"Mismatch">>,
%%                                           processed_quantity => 3}).
-spec set_recon(emu(), #{resource_id := binary(), dimension := binary(), day := integer()},
                #{recon_status => binary(), processed_quantity => number()}) -> ok.
set_recon(Emu, #{resource_id := R, dimension := D, day := Day}, Override)
  when is_binary(R), is_binary(D), is_integer(Day), is_map(Override) ->
    maps:foreach(fun(recon_status, S) ->
                         lists:member(S, [<<"Submitted">>, <<"Accepted">>, <<"Rejected">>,
                                          <<"Mismatch">>]) orelse error({badarg, S});
                    (processed_quantity, Q) when is_number(Q) -> ok;
                    (K, V) -> error({badarg, {K, V}})
                 end, Override),
    call(Emu, {set_recon, {R, D, Day - Day rem 86400}, Override}).

%% @doc The usage events Azure accepted, oldest first: what Azure holds,
%% to compare with the publisher's ledger. Each is #{resource_id,
%% dimension, plan_id, hour (Unix seconds of the UTC hour), time (the
%% effectiveStartTime, Unix seconds), quantity (the number as received),
%% usage_event_id, message_time (emulator clock, Unix seconds)}.
%% Duplicates and rejected events are not in it.
-spec usage(emu()) -> [#{resource_id := binary(), dimension := binary(), hour := integer(),
                         quantity := number(), usage_event_id := binary(), atom() => term()}].
usage(Emu) -> call(Emu, usage).

%% @doc How many usage events Azure accepted (length(usage(Emu))).
-spec usage_count(emu()) -> non_neg_integer().
usage_count(Emu) -> length(usage(Emu)).

%% @doc How many times each slot was sent in a batchUsageEvent, whatever Azure answered:
%% #{{ResourceId, Dimension, EffectiveStartTime} => Count} (reset by reset_stats/1).
-spec received(emu()) -> #{{term(), term(), term()} => pos_integer()}.
received(Emu) -> call(Emu, received).

check_dimensions(Dims) when is_list(Dims) ->
    lists:all(fun is_binary/1, Dims) orelse error({badarg, Dims}),
    ok;
check_dimensions(Dims) when is_map(Dims) ->
    maps:foreach(fun(P, L) when is_binary(P), is_list(L) -> ok = check_dimensions(L);
                    (P, L) -> error({badarg, {P, L}})
                 end, Dims);
check_dimensions(Dims) ->
    error({badarg, Dims}).

%%% --------------------------------------------------------------- faults

%% @doc Queue faults for an operation; one is consumed per matching request,
%% in order. Faults for `any' apply when the operation has none queued.
%% @doc Drops the faults still queued for Op.
-spec clear_faults(emu(), op()) -> ok.
clear_faults(Emu, Op) -> call(Emu, {clear_faults, Op}).

-spec inject(emu(), op(), [fault()]) -> ok.
inject(Emu, Op, Faults) when is_list(Faults) ->
    lists:member(Op, ?OPS) orelse error({badarg, Op}),
    lists:foreach(fun check_fault/1, Faults),
    call(Emu, {inject, Op, Faults}).

check_fault({status, C}) when is_integer(C) -> ok;
check_fault({status, 429, S}) when is_integer(S), S >= 0 -> ok;
check_fault(reset) -> ok;
check_fault({stall, Ms}) when is_integer(Ms), Ms >= 0 -> ok;
check_fault(truncated) -> ok;
check_fault(malformed) -> ok;
check_fault({delay, Ms}) when is_integer(Ms), Ms >= 0 -> ok;
check_fault({lost_reply, Ms}) when is_integer(Ms), Ms >= 0 -> ok;
check_fault(F) -> error({bad_fault, F}).

%% @doc Every answer (except /_emulator) waits Ms first.
-spec set_delay(emu(), non_neg_integer()) -> ok.
set_delay(Emu, Ms) when is_integer(Ms), Ms >= 0 -> call(Emu, {set_delay, Ms}).

%% @doc Invalidate every access token issued so far.
-spec expire_tokens(emu()) -> ok.
expire_tokens(Emu) -> call(Emu, expire_tokens).

%%% ---------------------------------------------------------------- stats

%% @doc #{token_requests, requests (newest last), by_op}.
-spec stats(emu()) -> #{token_requests := non_neg_integer(), requests := [map()],
                        by_op := #{atom() => non_neg_integer()}}.
stats(Emu) -> call(Emu, stats).

-spec reset_stats(emu()) -> ok.
reset_stats(Emu) -> call(Emu, reset_stats).

%%% ------------------------------------------------------------------ JWT

%% @doc RS256 JWT of Claims, signed with the emulator's key (kid in header);
%% verifiable with the JWKS it serves.
-spec sign_jwt(emu(), map()) -> binary().
sign_jwt(Emu, Claims) -> azmp_emulator_jwt:sign(call(Emu, key), Claims).

%% @doc The kid the emulator signs with now (tokens, webhooks, sign_jwt/2).
-spec signing_kid(emu()) -> binary().
signing_kid(Emu) -> azmp_emulator_jwt:kid(call(Emu, key)).

%% @doc Key rotation: a new RSA key is added to the JWKS and signs everything
%% from now on; the previous keys stay in the JWKS. Returns the new kid.
-spec rotate_signing_key(emu()) -> binary().
rotate_signing_key(Emu) ->
    Key = azmp_emulator_jwt:new_key(),
    ok = call(Emu, {rotate_signing_key, Key}),
    azmp_emulator_jwt:kid(Key).

%%% ------------------------------------------------------------- webhooks

-type webhook_opts() :: #{plan_id => binary(), quantity => pos_integer(),
                          operation_id => binary(), redeliver => binary(),
                          token_version => v1 | v2,
                          forge => azmp_emulator_webhook:forge(),
                          hs256_secret => pem | der, timeout_ms => pos_integer(),
                          ssl => list(), headers => [{iodata(), iodata()}],
                          login_url => binary(), edit_body => fun((map()) -> map())}.

-spec send_webhook(emu(), binary(), atom() | binary(), binary()) ->
          {ok, integer(), binary()} | {error, term()}.
send_webhook(Emu, TargetUrl, Action, SubId) ->
    send_webhook(Emu, TargetUrl, Action, SubId, #{}).

%% @doc Do what Azure does for an Azure-initiated operation: create the
%% operation (as add_operation/3: ChangePlan/ChangeQuantity InProgress until
%% the publisher PATCHes it, the others Succeeded and applied), then POST
%% the documented webhook JSON to TargetUrl with `Authorization: Bearer JWT'
%% (RS256, the emulator's current signing key, aud = client_id, tid,
%% azp/appid = the marketplace app) and return the endpoint's answer.
%%
%% Action: 'ChangePlan' | 'ChangeQuantity' | 'Renew' | 'Suspend' |
%% 'Unsubscribe' | 'Reinstate', as atom or binary. Opts:
%%   plan_id (ChangePlan; default: the first configured plan other than the
%%   current one), quantity (ChangeQuantity; default current + 1),
%%   operation_id (use this id; an existing id is an error, see redeliver),
%%   redeliver => OperationId (send the same payload again, byte for byte,
%%   with a fresh token; changes nothing), token_version (v1 | v2, default
%%   v2), forge (see azmp_emulator_webhook:forge_kinds/0; a forged webhook
%%   does NOT create or apply the operation: the state is unchanged),
%%   hs256_secret (pem | der, for forge hs256_public_key; default pem),
%%   timeout_ms (15000), ssl (httpc ssl options for an https target),
%%   headers (extra request headers), login_url (the authority the target
%%   is configured with: a v2 token's iss is {login_url}/{tenant}/v2.0;
%%   default the emulator's HTTPS URL, or its HTTP URL without HTTPS),
%%   edit_body (a fun from the webhook's JSON, as a map, to the JSON sent:
%%   an oversized or odd body; the operation itself is what Azure has).
%% The HTTP request runs in the calling process; the webhook handler may call
%% the emulator meanwhile.
-spec send_webhook(emu(), binary(), atom() | binary(), binary(), webhook_opts()) ->
          {ok, integer(), binary()} | {error, term()}.
send_webhook(Emu, TargetUrl, Action, SubId, Opts) ->
    case send_webhook_detailed(Emu, TargetUrl, Action, SubId, Opts) of
        {ok, #{status := Status, body := Body}} -> {ok, Status, Body};
        {error, _} = Error -> Error
    end.

%% @doc As send_webhook/5, but answers #{status, body, operation_id, token,
%% payload} (token is undefined for forge no_token).
-spec send_webhook_detailed(emu(), binary(), atom() | binary(), binary(), webhook_opts()) ->
          {ok, map()} | {error, term()}.
send_webhook_detailed(Emu, TargetUrl, Action0, SubId, Opts) ->
    Checked = [azmp_emulator_webhook:action(Action0),
               azmp_emulator_webhook:forge_kind(maps:get(forge, Opts, none)),
               token_version(maps:get(token_version, Opts, v2))],
    case [E || {error, _} = E <- Checked] of
        [Error | _] -> Error;
        [] ->
            [{ok, Action}, {ok, Forge}, {ok, Version}] = Checked,
            Opts1 = Opts#{forge => Forge, token_version => Version},
            case call(Emu, {prepare_webhook, Action, to_bin(SubId), Opts1}) of
                {ok, #{operation_id := OpId, payload := Payload, token_ctx := TCtx,
                       httpc := Httpc}} ->
                    Token = azmp_emulator_webhook:token(Forge, TCtx,
                                                        erlang:system_time(second)),
                    Target = to_bin(TargetUrl),
                    Result = azmp_emulator_webhook:post(Httpc, Target, Payload, Token, Opts),
                    gen_server:cast(Emu, {webhook_sent,
                                          #{operation_id => OpId, subscription_id => SubId,
                                            action => Action, target => Target,
                                            forge => Forge, token_version => Version,
                                            redelivery => maps:is_key(redeliver, Opts),
                                            token => Token, payload => Payload,
                                            result => Result,
                                            time => erlang:system_time(millisecond)}}),
                    case Result of
                        {ok, Status, Body} ->
                            {ok, #{status => Status, body => Body, operation_id => OpId,
                                   token => Token, payload => Payload}};
                        {error, _} = E -> E
                    end;
                {error, _} = E -> E
            end
    end.

%% @doc The webhooks sent so far, oldest first: operation_id,
%% subscription_id, action, target, forge, token_version, redelivery, token,
%% payload (the bytes sent), result, time. Cleared by reset_stats/1.
-spec webhooks(emu()) -> [map()].
webhooks(Emu) -> call(Emu, webhooks).

token_version(V) when V =:= v1; V =:= <<"v1">>; V =:= <<"1.0">>; V =:= 1 -> {ok, v1};
token_version(V) when V =:= v2; V =:= <<"v2">>; V =:= <<"2.0">>; V =:= 2 -> {ok, v2};
token_version(V) -> {error, {bad_token_version, V}}.

to_bin(B) when is_binary(B) -> B;
to_bin(L) when is_list(L) -> unicode:characters_to_binary(L);
to_bin(A) when is_atom(A) -> atom_to_binary(A, utf8).

%%% ----------------------------------------------------------- standalone

%% @doc `erl -noshell -pa DIR -s azmp_emulator standalone 8443': HTTP on
%% 8443, HTTPS on 8444. Returns; the node keeps running.
-spec standalone([atom() | string()]) -> ok.
standalone([Port]) -> {ok, _} = start_standalone(to_int(Port)), ok;
standalone([]) -> {ok, _} = start_standalone(8443), ok.

%% @doc escript-style entry: start and block forever.
-spec main([string()]) -> no_return().
main(Args) ->
    ok = standalone(Args),
    receive after infinity -> ok end.

-spec start_standalone(inet:port_number()) -> {ok, emu()}.
start_standalone(Port) ->
    {ok, Emu} = start(#{http_port => Port, https_port => Port + 1}),
    I = info(Emu),
    io:format("Azure Marketplace emulator~n"
              "  http:   ~s   (login_url; marketplace_url = ~s/api)~n"
              "  https:  ~s   (also https://localhost:~b)~n"
              "  CA:     ~s~n"
              "  tenant: ~s  client_id: ~s  client_secret: ~s~n"
              "  JWKS:   ~s~n"
              "Control:~n"
              "  curl -X POST ~s/_emulator/subscriptions -d '{\"planId\":\"payg\"}'   -> {id, token}~n"
              "  curl -X POST ~s/_emulator/faults -d '{\"op\":\"resolve\",\"faults\":[{\"status\":503},{\"status\":429,\"retryAfter\":2},\"reset\",{\"stall\":5000},\"truncated\",\"malformed\",{\"delay\":1000}]}'~n"
              "  curl ~s/_emulator/stats ; POST /_emulator/reset_stats, /_emulator/expire_tokens,~n"
              "  /_emulator/delay {\"ms\":N}, /_emulator/operations {subscriptionId, action, planId, quantity};~n"
              "  GET /_emulator/subscriptions/{id}~n"
              "Signed webhooks to the publisher (forge: no_token, bad_signature, other_key, alg_none,~n"
              "  hs256_public_key, wrong_aud, wrong_tid, wrong_azp, expired, not_yet_valid, unknown_kid,~n"
              "  wrong_iss, crit):~n"
              "  curl -X POST ~s/_emulator/webhooks -d '{\"target\":\"http://127.0.0.1:8080/azure/webhook\",\"action\":\"Suspend\",\"subscriptionId\":\"ID\"}'~n"
              "  POST /_emulator/rotate_signing_key ; GET /_emulator/webhooks~n",
              [maps:get(http_url, I), maps:get(http_url, I), maps:get(https_url, I), Port + 1,
               maps:get(ca_file, I), maps:get(tenant_id, I), maps:get(client_id, I),
               maps:get(client_secret, I), jwks_url(Emu),
               maps:get(http_url, I), maps:get(http_url, I), maps:get(http_url, I),
               maps:get(http_url, I)]),
    {ok, Emu}.

to_int(A) when is_atom(A) -> list_to_integer(atom_to_list(A));
to_int(L) when is_list(L) -> list_to_integer(L);
to_int(I) when is_integer(I) -> I.

call(Emu, Msg) -> gen_server:call(Emu, Msg, 30000).

%%% ----------------------------------------------------------- gen_server

init(Opts) ->
    process_flag(trap_exit, true),
    Key = azmp_emulator_jwt:new_key(),
    Cfg = #{tenant_id => maps:get(tenant_id, Opts, <<"tenant-1">>),
            client_id => maps:get(client_id, Opts, <<"client-1">>),
            client_secret => maps:get(client_secret, Opts, <<"secret-1">>),
            token_ttl_s => maps:get(token_ttl_s, Opts, 3599),
            key => Key},
    Tokens = ets:new(azmp_emulator_tokens, [set, public, {read_concurrency, true},
                                            {write_concurrency, true}]),
    Settings = ets:new(azmp_emulator_settings, [set, public, {read_concurrency, true}]),
    ets:insert(Settings, {delay, 0}),
    %% signing key and published keys, changed by rotate_signing_key/1
    ets:insert(Settings, {keys, Key, [Key]}),
    ConnCtx = #{emu => self(), cfg => Cfg, tokens => Tokens, settings => Settings},
    Handler = fun(Req) -> azmp_emulator_router:handle(ConnCtx, Req) end,
    HttpsPort = maps:get(https_port, Opts, 0),
    try
        {ok, HL, HP} = azmp_emulator_http:listen(tcp, maps:get(http_port, Opts, 0), []),
        _ = azmp_emulator_http:start_acceptors(tcp, HL, ?ACCEPTORS, Handler, self()),
        {Files, Listeners, SP, OwnedDir} =
            case HttpsPort of
                none ->
                    {#{ca_file => undefined, other_ca_file => undefined}, [{tcp, HL}],
                     undefined, undefined};
                _ ->
                    {Dir, Owned} = case maps:get(dir, Opts, undefined) of
                                       undefined ->
                                           Fresh = azmp_emulator_certs:fresh_dir(),
                                           {Fresh, Fresh};
                                       D -> {D, undefined}
                                   end,
                    F = azmp_emulator_certs:generate(Dir),
                    {ok, SL, P} = azmp_emulator_http:listen(
                                    ssl, HttpsPort,
                                    [{certfile, maps:get(server_cert, F)},
                                     {keyfile, maps:get(server_key, F)}]),
                    _ = azmp_emulator_http:start_acceptors(ssl, SL, ?ACCEPTORS, Handler, self()),
                    {F, [{tcp, HL}, {ssl, SL}], P, Owned}
            end,
        Plans = maps:get(plans, Opts, [<<"payg">>, <<"payg-premium">>]),
        Dims = maps:get(dimensions, Opts,
                        [<<"sessions">>, <<"traffic">>, <<"connections">>]),
        ok = check_dimensions(Dims),
        %% webhooks are POSTed with a stand-alone httpc of our own (unique
        %% profile name: stand-alone profiles use named ETS tables)
        Profile = list_to_atom("azmp_emulator_webhooks_" ++
                                   integer_to_list(erlang:unique_integer([positive]))),
        {ok, Httpc} = inets:start(httpc, [{profile, Profile}], stand_alone),
        State = #{cfg => #{page_size => maps:get(page_size, Opts, 2),
                           operation_ms => maps:get(operation_ms, Opts, 200),
                           plans => Plans,
                           dimensions => Dims},
                  entra => Cfg, key => Key, tokens => Tokens, settings => Settings,
                  listeners => Listeners, http_port => HP, https_port => SP,
                  files => Files, owned_dir => OwnedDir,
                  subs => #{}, mp_tokens => #{}, ops => #{}, usage => #{}, events => [],
                  clock_offset => 0, recon => #{},
                  faults => #{}, stats => empty_stats(),
                  keys => [Key], forge_key => undefined, httpc => Httpc,
                  webhooks => [], webhook_payloads => #{},
                  marketplace_oid => azmp_emulator_util:uuid()},
        {ok, State}
    catch
        error:Reason -> {stop, Reason}
    end.

empty_stats() -> #{token_requests => 0, requests => [], by_op => #{}}.

handle_call({take_fault, Op}, _From, State = #{faults := Faults}) ->
    case Faults of
        #{Op := [F | Rest]} -> {reply, F, State#{faults := Faults#{Op := Rest}}};
        #{any := [F | Rest]} -> {reply, F, State#{faults := Faults#{any := Rest}}};
        _ -> {reply, none, State}
    end;
handle_call({api, Op, Args, Req, Commit}, _From, State) ->
    NowMs = azmp_emulator_util:now_ms(State),
    State1 = azmp_emulator_fulfillment:advance(NowMs, State),
    Ctx = #{base_url => maps:get(base_url, Req), now_ms => NowMs, now_s => NowMs div 1000,
            real_s => erlang:system_time(second)},
    {Resp, State2} = case check_request(Req, State1) of
                         ok -> dispatch(Op, Args, Req, Ctx, State1);
                         Error -> {Error, State1}
                     end,
    {reply, Resp, case Commit of
                      true -> State2;
                      false -> State1
                  end};
handle_call({port, http}, _From, State) -> {reply, maps:get(http_port, State), State};
handle_call({port, https}, _From, State) -> {reply, maps:get(https_port, State), State};
handle_call({file, Which}, _From, State = #{files := F}) -> {reply, maps:get(Which, F), State};
handle_call(info, _From, State = #{entra := E, files := F}) ->
    {reply, #{http_port => maps:get(http_port, State), https_port => maps:get(https_port, State),
              tenant_id => maps:get(tenant_id, E), client_id => maps:get(client_id, E),
              client_secret => maps:get(client_secret, E),
              ca_file => maps:get(ca_file, F), other_ca_file => maps:get(other_ca_file, F)},
     State};
handle_call(key, _From, State) -> {reply, maps:get(key, State), State};
handle_call({add_subscription, Opts}, _From, State) ->
    {Sub, State1} = azmp_emulator_fulfillment:new_subscription(
                      Opts, azmp_emulator_util:now_s(State), State),
    {reply, {ok, maps:with([id, token], Sub)}, State1};
handle_call({add_subscriptions, N, Opts}, _From, State) ->
    NowS = azmp_emulator_util:now_s(State),
    {Ids, State1} = lists:foldl(fun(_, {Acc, S0}) ->
                                        {#{id := Id}, S1} = azmp_emulator_fulfillment:new_subscription(Opts, NowS, S0),
                                        {[Id | Acc], S1}
                                end, {[], State}, lists:seq(1, N)),
    {reply, {ok, lists:reverse(Ids)}, State1};
handle_call({subscription, Id}, _From, State) ->
    State1 = azmp_emulator_fulfillment:advance(azmp_emulator_util:now_ms(State), State),
    {reply, azmp_emulator_fulfillment:view(Id, State1), State1};
handle_call({add_operation, SubId, Opts}, _From, State) ->
    case azmp_emulator_fulfillment:add_operation(SubId, Opts, State) of
        {ok, OpId, State1} -> {reply, {ok, OpId}, State1};
        Error -> {reply, Error, State}
    end;
handle_call({inject, Op, New}, _From, State = #{faults := Faults}) ->
    {reply, ok, State#{faults := Faults#{Op => maps:get(Op, Faults, []) ++ New}}};
handle_call({clear_faults, Op}, _From, State = #{faults := Faults}) ->
    {reply, ok, State#{faults := maps:remove(Op, Faults)}};
handle_call({set_delay, Ms}, _From, State = #{settings := Tab}) ->
    ets:insert(Tab, {delay, Ms}),
    {reply, ok, State};
handle_call(expire_tokens, _From, State = #{tokens := Tab}) ->
    ets:delete_all_objects(Tab),
    {reply, ok, State};
handle_call(stats, _From, State = #{stats := S = #{requests := R}}) ->
    {reply, S#{requests := lists:reverse(R)}, State};
handle_call(reset_stats, _From, State) ->
    {reply, ok, State#{stats := empty_stats(), webhooks := [], received => #{}}};
handle_call(received, _From, State) ->
    {reply, maps:get(received, State, #{}), State};
handle_call(webhooks, _From, State = #{webhooks := W}) ->
    {reply, lists:reverse(W), State};
handle_call({rotate_signing_key, Key}, _From,
            State = #{keys := Keys, settings := Tab, entra := E}) ->
    All = Keys ++ [Key],
    ets:insert(Tab, {keys, Key, All}),
    {reply, ok, State#{key := Key, keys := All, entra := E#{key := Key}}};
handle_call({prepare_webhook, Action, SubId, Opts}, _From, State0) ->
    State = azmp_emulator_fulfillment:advance(azmp_emulator_util:now_ms(State0), State0),
    case prepare_webhook(Action, SubId, Opts, State) of
        {ok, OpId, Payload, State1} ->
            State2 = with_forge_key(maps:get(forge, Opts), State1),
            #{entra := E, key := Key, httpc := Httpc} = State2,
            TCtx = #{key => Key, forge_key => maps:get(forge_key, State2),
                     tenant_id => maps:get(tenant_id, E), client_id => maps:get(client_id, E),
                     oid => maps:get(marketplace_oid, State2),
                     version => maps:get(token_version, Opts),
                     login_url => webhook_login_url(Opts, State2),
                     hs256_secret => maps:get(hs256_secret, Opts, pem)},
            {reply, {ok, #{operation_id => OpId, payload => Payload, token_ctx => TCtx,
                           httpc => Httpc}}, State2};
        {error, _} = Error ->
            {reply, Error, State}
    end;
handle_call({set_clock_offset, S}, _From, State) ->
    {reply, ok, State#{clock_offset := S}};
handle_call(clock_offset, _From, State = #{clock_offset := S}) ->
    {reply, S, State};
handle_call({set_plan, SubId, Plan}, _From, State = #{subs := Subs}) ->
    case Subs of
        #{SubId := Sub} -> {reply, ok, State#{subs := Subs#{SubId := Sub#{plan_id := Plan}}}};
        _ -> {reply, {error, not_found}, State}
    end;
handle_call({set_answer_style, Style}, _From, State) ->
    {reply, ok, State#{answer_style => Style}};
handle_call({set_dimensions, Dims}, _From, State = #{cfg := Cfg}) ->
    {reply, ok, State#{cfg := Cfg#{dimensions := Dims}}};
handle_call({set_recon, Key, Override}, _From, State = #{recon := Recon}) ->
    Recon1 = case map_size(Override) of
                 0 -> maps:remove(Key, Recon);
                 _ -> Recon#{Key => Override}
             end,
    {reply, ok, State#{recon := Recon1}};
handle_call(usage, _From, State = #{events := Events}) ->
    {reply, [maps:with([resource_id, dimension, plan_id, hour, time, quantity,
                        usage_event_id, message_time], E) || E <- lists:reverse(Events)],
     State};
handle_call(_Other, _From, State) ->
    {reply, {error, unknown_call}, State}.

handle_cast({record, Entry = #{op := Op}}, State = #{stats := S}) ->
    #{token_requests := TR, requests := R, by_op := ByOp} = S,
    S1 = S#{token_requests := TR + case Op of token -> 1; _ -> 0 end,
            requests := [Entry | R],
            by_op := ByOp#{Op => maps:get(Op, ByOp, 0) + 1}},
    {noreply, State#{stats := S1}};
handle_cast({webhook_sent, Entry}, State = #{webhooks := W, stats := S}) ->
    #{requests := R, by_op := ByOp} = S,
    #{operation_id := OpId, action := Action, target := Target, forge := Forge,
      result := Result} = Entry,
    Status = case Result of
                 {ok, St, _} -> St;
                 {error, _} -> error
             end,
    Record = #{op => webhook, method => <<"POST">>, path => Target, status => Status,
               fault => none, request_id => undefined, correlation_id => undefined,
               operation_id => OpId, action => Action, forge => Forge},
    S1 = S#{requests := [Record | R], by_op := ByOp#{webhook => maps:get(webhook, ByOp, 0) + 1}},
    {noreply, State#{webhooks := [Entry | W], stats := S1}};
handle_cast(_Msg, State) ->
    {noreply, State}.

handle_info(_Info, State) ->
    {noreply, State}.

terminate(_Reason, #{listeners := Listeners, owned_dir := Dir, httpc := Httpc}) ->
    _ = (catch inets:stop(stand_alone, Httpc)),
    lists:foreach(fun({tcp, L}) -> gen_tcp:close(L);
                     ({ssl, L}) -> ssl:close(L)
                  end, Listeners),
    %% a certificate directory we created ourselves goes away with us
    _ = Dir =:= undefined orelse file:del_dir_r(Dir),
    ok;
terminate(_Reason, _State) ->
    ok.

%%% ------------------------------------------------------------- webhooks

edit_body(#{edit_body := F}, Body) when is_function(F, 1) -> F(Body);
edit_body(_Opts, Body) -> Body.

%% -> {ok, OpId, PayloadBytes, State} | {error, Reason}. A forged webhook's
%% operation is built on a throw-away copy of the state: nothing changes.
prepare_webhook(Action, SubId, Opts, State = #{webhook_payloads := Sent, ops := Ops}) ->
    Forged = maps:get(forge, Opts) =/= none,
    case maps:get(redeliver, Opts, undefined) of
        undefined ->
            case maps:get(subs, State) of
                #{SubId := Sub} ->
                    OpId0 = maps:get(operation_id, Opts, undefined),
                    case OpId0 =/= undefined andalso maps:is_key(OpId0, Ops) of
                        true ->
                            {error, {operation_exists, OpId0}};
                        false ->
                            OpOpts = operation_opts(Action, Sub, Opts, State),
                            {ok, OpId, S1} =
                                azmp_emulator_fulfillment:add_operation(SubId, OpOpts, State),
                            {ok, Body} = azmp_emulator_fulfillment:webhook_body(OpId, S1),
                            Payload = azmp_emulator_json:encode(edit_body(Opts, Body)),
                            case Forged of
                                true -> {ok, OpId, Payload, State};
                                false -> {ok, OpId, Payload,
                                          S1#{webhook_payloads := Sent#{OpId => Payload}}}
                            end
                    end;
                _ -> {error, not_found}
            end;
        OpId ->
            case Ops of
                #{OpId := #{subscription_id := SubId, action := Action}} ->
                    case Sent of
                        #{OpId := Payload} -> {ok, OpId, Payload, State};
                        _ ->
                            %% an operation made by add_operation/3 or by the
                            %% publisher: its payload as of now
                            {ok, Body} = azmp_emulator_fulfillment:webhook_body(OpId, State),
                            Payload = azmp_emulator_json:encode(edit_body(Opts, Body)),
                            {ok, OpId, Payload,
                             case Forged of
                                 true -> State;
                                 false -> State#{webhook_payloads := Sent#{OpId => Payload}}
                             end}
                    end;
                #{OpId := #{subscription_id := S, action := A}} ->
                    {error, {redeliver_mismatch, #{operation_id => OpId, subscription_id => S,
                                                   action => A}}};
                _ -> {error, not_found}
            end
    end.

%% The authority a v2 webhook token names as its issuer: the one the target is
%% configured with (as a publisher configures Entra's), by default ours over
%% HTTPS (as azmp_test_env and jwks_url/1 use), else over HTTP.
webhook_login_url(Opts, State) ->
    case maps:get(login_url, Opts, undefined) of
        undefined ->
            case maps:get(https_port, State) of
                undefined -> url(http, maps:get(http_port, State));
                P -> url(https, P)
            end;
        Url ->
            trim_slashes(to_bin(Url))
    end.

trim_slashes(Url) ->
    case binary:last(Url) of
        $/ when byte_size(Url) > 1 -> trim_slashes(binary:part(Url, 0, byte_size(Url) - 1));
        _ -> Url
    end.

operation_opts(Action, Sub, Opts, #{cfg := Cfg}) ->
    Base = #{action => Action},
    Base1 = case maps:get(operation_id, Opts, undefined) of
                undefined -> Base;
                Id -> Base#{id => to_bin(Id)}
            end,
    case Action of
        <<"ChangePlan">> ->
            Current = maps:get(plan_id, Sub),
            Default = case [P || P <- maps:get(plans, Cfg), P =/= Current] of
                          [P | _] -> P;
                          [] -> Current
                      end,
            Base1#{plan_id => to_bin(maps:get(plan_id, Opts, Default))};
        <<"ChangeQuantity">> ->
            Current = case maps:get(quantity, Sub) of
                          Q when is_integer(Q) -> Q;
                          _ -> 0
                      end,
            Base1#{quantity => maps:get(quantity, Opts, Current + 1)};
        _ -> Base1
    end.

%% The second RSA key forgeries sign with (made once, when first needed).
with_forge_key(Forge, State = #{forge_key := undefined})
  when Forge =:= other_key; Forge =:= unknown_kid ->
    State#{forge_key := azmp_emulator_jwt:new_key()};
with_forge_key(_, State) ->
    State.

%%% ----------------------------------------------------------- API checks

%% Bearer token issued by us, unexpired, not invalidated; api-version.
check_request(#{headers := Headers, query := Q}, #{tokens := Tab}) ->
    Now = erlang:system_time(second),
    Auth = azmp_emulator_util:header(<<"authorization">>, Headers),
    Valid = case Auth of
                <<B:7/binary, Token/binary>> when B =:= <<"Bearer ">>; B =:= <<"bearer ">> ->
                    %% Bytes from the network: a token that is not even UTF-8 is just not ours.
                    try ets:lookup(Tab, string:trim(Token)) of
                        [{_, Exp}] -> Exp > Now;
                        [] -> false
                    catch
                        error:_ -> false
                    end;
                _ -> false
            end,
    Version = try lists:keyfind(<<"api-version">>, 1, azmp_emulator_util:query(Q))
              catch error:_ -> false
              end,
    if
        not Valid ->
            {401, [{<<"www-authenticate">>, <<"Bearer">>}],
             #{<<"error">> => #{<<"code">> => <<"Unauthorized">>,
                                <<"message">> => <<"The authentication token was not provided "
                                                   "or is invalid or expired.">>}}};
        Version =/= {<<"api-version">>, <<"2018-08-31">>} ->
            azmp_emulator_fulfillment:err(
              400, <<"BadArgument">>,
              <<"The api-version query parameter is missing or not supported; "
                "use api-version=2018-08-31.">>);
        true -> ok
    end.

dispatch(Op, _Args, Req, Ctx, State)
  when Op =:= usage_event; Op =:= batch_usage_event; Op =:= usage_events ->
    azmp_emulator_metering:handle(Op, Req, Ctx, State);
dispatch(Op, Args, Req, Ctx, State) ->
    azmp_emulator_fulfillment:handle(Op, Args, Req, Ctx, State).
