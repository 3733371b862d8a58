%% @doc Per-request flow, run in the connection process: route the request to
%% an operation, take the next injected fault for it, apply the global delay,
%% then answer (Entra locally, marketplace API through the emulator's
%% gen_server) and record the request in the stats.
-module(azmp_emulator_router).

-export([handle/2, route/2]).

-type op() :: token | jwks | openid_configuration | resolve | activate
            | get_subscription | list_subscriptions | list_available_plans
            | update_subscription | delete_subscription | list_operations
            | get_operation | update_operation | usage_event | batch_usage_event
            | usage_events | control | not_found | method_not_allowed.
-export_type([op/0]).

-define(JSON, {<<"content-type">>, <<"application/json; charset=utf-8">>}).

%% @doc The azmp_emulator_http handler. Ctx is built by azmp_emulator:init/1.
-spec handle(map(), azmp_emulator_http:request()) -> azmp_emulator_http:reply().
handle(Ctx = #{emu := Emu}, Req = #{method := Method, path := Path}) ->
    {Op, Args} = route(Method, Path),
    case Op of
        control ->
            azmp_emulator_control:handle(Emu, Args, Req);
        _ ->
            Fault = gen_server:call(Emu, {take_fault, Op}, infinity),
            global_delay(Ctx),
            {Reply, Status} = answer(Fault, Op, Args, Req, Ctx),
            Headers = maps:get(headers, Req),
            ReqId = azmp_emulator_util:header(<<"x-ms-requestid">>, Headers),
            CorrId = azmp_emulator_util:header(<<"x-ms-correlationid">>, Headers),
            gen_server:cast(Emu, {record, #{op => Op, method => Method, path => Path,
                                            status => Status, fault => Fault,
                                            request_id => ReqId,
                                            correlation_id => CorrId}}),
            add_ms_headers(Reply, ReqId, CorrId)
    end.

global_delay(#{settings := Tab}) ->
    case ets:lookup(Tab, delay) of
        [{delay, Ms}] when Ms > 0 -> timer:sleep(Ms);
        _ -> ok
    end.

%% -> {Reply, StatusForStats}
answer(none, Op, Args, Req, Ctx) ->
    respond(process(Op, Args, Req, Ctx, true));
answer({delay, Ms}, Op, Args, Req, Ctx) ->
    timer:sleep(Ms),
    respond(process(Op, Args, Req, Ctx, true));
answer({status, 429, RetryAfter}, _Op, _Args, _Req, _Ctx) ->
    respond({429, [{<<"retry-after">>, integer_to_binary(RetryAfter)}],
             fault_body(429)});
answer({status, Code}, _Op, _Args, _Req, _Ctx) ->
    respond({Code, [], fault_body(Code)});
answer(reset, _Op, _Args, _Req, _Ctx) ->
    {reset, reset};
answer({lost_reply, Ms}, Op, Args, Req, Ctx) ->
    %% Azure did the work, but its answer never arrives: the connection is reset after Ms.
    _ = process(Op, Args, Req, Ctx, true),
    timer:sleep(Ms),
    {reset, lost_reply};
answer({stall, Ms}, _Op, _Args, _Req, _Ctx) ->
    {{stall, Ms}, stall};
answer(truncated, Op, Args, Req, Ctx) ->
    {{response, S, H, B}, S} = respond(process(Op, Args, Req, Ctx, false)),
    {{truncated, S, H, B}, S};
answer(malformed, _Op, _Args, _Req, _Ctx) ->
    Body = <<"{\"id\": \"3f1c0e2a-<html>Service Unavailable</html>">>,
    {{response, 200, [?JSON], Body}, 200}.

respond({Status, Headers, Body}) ->
    {Bytes, Hs} = case Body of
                      <<>> -> {<<>>, Headers};
                      _ -> {azmp_emulator_json:encode(Body), [?JSON | Headers]}
                  end,
    {{response, Status, Hs, Bytes}, Status}.

fault_body(Code) ->
    #{<<"error">> => #{<<"code">> => fault_code(Code),
                       <<"message">> => <<"Injected fault (emulator).">>}}.

fault_code(429) -> <<"TooManyRequests">>;
fault_code(503) -> <<"ServiceUnavailable">>;
fault_code(C) when C >= 500 -> <<"InternalServerError">>;
fault_code(_) -> <<"BadRequest">>.

add_ms_headers(reset, _, _) -> reset;
add_ms_headers({stall, _} = S, _, _) -> S;
add_ms_headers({Kind, Status, Headers, Body}, ReqId, CorrId) ->
    Id = fun(undefined) -> azmp_emulator_util:uuid(); (V) -> V end,
    {Kind, Status, [{<<"x-ms-requestid">>, Id(ReqId)},
                    {<<"x-ms-correlationid">>, Id(CorrId)} | Headers], Body}.

%% -> {Status, Headers, BodyTerm}; Commit = false: no side effect.
process(token, #{version := V, tenant := T}, Req, Ctx = #{tokens := Tab}, Commit) ->
    Cfg = live_cfg(Ctx),
    Form = azmp_emulator_util:query(maps:get(body, Req)),
    {Status, Body, Issued} = azmp_emulator_entra:token(V, T, Form, Cfg),
    case {Issued, Commit} of
        {{Token, Exp}, true} -> ets:insert(Tab, {Token, Exp});
        _ -> ok
    end,
    {Status, [{<<"cache-control">>, <<"no-store, no-cache">>}], Body};
process(jwks, #{tenant := T}, _Req, Ctx, _Commit) ->
    {Status, Body, _} = azmp_emulator_entra:jwks(T, live_cfg(Ctx)),
    {Status, [], Body};
process(openid_configuration, #{tenant := T}, Req, #{cfg := Cfg}, _Commit) ->
    {Status, Body, _} = azmp_emulator_entra:openid_configuration(T, base_url(Req), Cfg),
    {Status, [], Body};
process(not_found, _, _Req, _Ctx, _Commit) ->
    azmp_emulator_fulfillment:err(404, <<"NotFound">>, <<"No such resource.">>);
process(method_not_allowed, _, _Req, _Ctx, _Commit) ->
    azmp_emulator_fulfillment:err(405, <<"MethodNotAllowed">>,
                                  <<"The HTTP method is not allowed on this resource.">>);
process(Op, Args, Req, #{emu := Emu}, Commit) ->
    gen_server:call(Emu, {api, Op, Args, Req#{base_url => base_url(Req)}, Commit}, infinity).

%% The Entra config with the current signing key and the published keys
%% (azmp_emulator:rotate_signing_key/1 changes them at run time).
live_cfg(#{cfg := Cfg, settings := Tab}) ->
    case ets:lookup(Tab, keys) of
        [{keys, Signing, All}] -> Cfg#{key := Signing, keys => All};
        [] -> Cfg
    end.

base_url(#{scheme := Scheme, headers := Headers, local_port := Port}) ->
    Host = case azmp_emulator_util:header(<<"host">>, Headers) of
               undefined -> <<"127.0.0.1:", (integer_to_binary(Port))/binary>>;
               H -> H
           end,
    <<(atom_to_binary(Scheme, latin1))/binary, "://", Host/binary>>.

%%% --------------------------------------------------------------- routing

%% @doc Map method and path to an operation and its path arguments.
-spec route(binary(), binary()) -> {op(), map()}.
route(Method, Path) ->
    try [uri_string:percent_decode(S) || S <- binary:split(Path, <<"/">>, [global]), S =/= <<>>] of
        Segs -> route_segments(Method, Segs)
    catch
        _:_ -> {not_found, #{}}  % not a path we serve (e.g. invalid UTF-8 once decoded)
    end.

route_segments(Method, Segs) ->
    case {Method, Segs} of
        {_, [<<"_emulator">> | Rest]} -> {control, #{segments => Rest, method => Method}};
        {_, [<<"api">> | Rest]} -> api(Method, Rest);
        {<<"POST">>, [T, <<"oauth2">>, <<"token">>]} -> {token, #{version => v1, tenant => T}};
        {<<"POST">>, [T, <<"oauth2">>, <<"v2.0">>, <<"token">>]} ->
            {token, #{version => v2, tenant => T}};
        {_, [_, <<"oauth2">>, <<"token">>]} -> {method_not_allowed, #{}};
        {_, [_, <<"oauth2">>, <<"v2.0">>, <<"token">>]} -> {method_not_allowed, #{}};
        {<<"GET">>, [T, <<"discovery">>, <<"v2.0">>, <<"keys">>]} -> {jwks, #{tenant => T}};
        {<<"GET">>, [T, <<"discovery">>, <<"keys">>]} -> {jwks, #{tenant => T}};
        {<<"GET">>, [T, <<"v2.0">>, <<".well-known">>, <<"openid-configuration">>]} ->
            {openid_configuration, #{tenant => T}};
        _ -> {not_found, #{}}
    end.

api(M, [<<"saas">>, <<"subscriptions">>]) ->
    only(M, <<"GET">>, list_subscriptions, #{});
api(<<"POST">>, [<<"saas">>, <<"subscriptions">>, <<"resolve">>]) ->
    {resolve, #{}};
api(M, [<<"saas">>, <<"subscriptions">>, Id]) ->
    case M of
        <<"GET">> -> {get_subscription, #{sub_id => Id}};
        <<"PATCH">> -> {update_subscription, #{sub_id => Id}};
        <<"DELETE">> -> {delete_subscription, #{sub_id => Id}};
        _ -> {method_not_allowed, #{}}
    end;
api(M, [<<"saas">>, <<"subscriptions">>, Id, <<"activate">>]) ->
    only(M, <<"POST">>, activate, #{sub_id => Id});
api(M, [<<"saas">>, <<"subscriptions">>, Id, <<"listAvailablePlans">>]) ->
    only(M, <<"GET">>, list_available_plans, #{sub_id => Id});
api(M, [<<"saas">>, <<"subscriptions">>, Id, <<"operations">>]) ->
    only(M, <<"GET">>, list_operations, #{sub_id => Id});
api(M, [<<"saas">>, <<"subscriptions">>, Id, <<"operations">>, OpId]) ->
    case M of
        <<"GET">> -> {get_operation, #{sub_id => Id, op_id => OpId}};
        <<"PATCH">> -> {update_operation, #{sub_id => Id, op_id => OpId}};
        _ -> {method_not_allowed, #{}}
    end;
api(M, [<<"usageEvent">>]) -> only(M, <<"POST">>, usage_event, #{});
api(M, [<<"batchUsageEvent">>]) -> only(M, <<"POST">>, batch_usage_event, #{});
api(M, [<<"usageEvents">>]) -> only(M, <<"GET">>, usage_events, #{});
api(_, _) -> {not_found, #{}}.

only(M, M, Op, Args) -> {Op, Args};
only(_, _, _, _) -> {method_not_allowed, #{}}.
