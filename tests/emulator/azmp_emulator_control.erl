%% @doc The emulator's control API over HTTP (/_emulator/...), so that a
%% standalone instance can be driven with curl. Never faulted, never
%% delayed, not counted in the stats.
%%
%%   POST /_emulator/subscriptions   {planId, offerId, quantity, status, name,
%%                                    email, isFreeTrial, id, token} -> {id, token}
%%   POST /_emulator/subscriptions/bulk {count, status, planId}  -> {ids}
%%   GET  /_emulator/subscriptions/{id}                          -> emulator view
%%   POST /_emulator/operations      {subscriptionId, action, planId, quantity} -> {id}
%%   POST /_emulator/faults          {op, faults: [{"status":503}, {"status":429,
%%                                    "retryAfter":2}, "reset", {"stall":Ms},
%%                                    "truncated", "malformed", {"delay":Ms}]}
%%   POST /_emulator/delay           {ms}
%%   POST /_emulator/expire_tokens
%%   GET  /_emulator/stats ; POST /_emulator/reset_stats
%%   POST /_emulator/sign_jwt        {claims} -> {jwt}
%%   POST /_emulator/webhooks        {target, action, subscriptionId, planId, quantity,
%%                                    operationId, redeliver, forge, tokenVersion, loginUrl,
%%                                    hs256Secret, timeoutMs}
%%                                    -> {status, body, operationId} (502 {error} when
%%                                    the target cannot be reached)
%%   GET  /_emulator/webhooks        -> the webhooks sent so far
%%   POST /_emulator/rotate_signing_key -> {kid}
%%   GET  /_emulator/clock ; POST /_emulator/clock {offset} -> {offset, now}
%%   POST /_emulator/dimensions      {dimensions: [Dim] | {PlanId: [Dim]}}
%%   POST /_emulator/recon           {resourceId, dimension, day (Unix seconds or
%%                                    ISO 8601), reconStatus, processedQuantity}
%%   GET  /_emulator/usage           -> the accepted usage events
-module(azmp_emulator_control).

-export([handle/3]).

-spec handle(pid(), map(), azmp_emulator_http:request()) -> azmp_emulator_http:reply().
handle(Emu, #{segments := Segs, method := M}, #{body := Body}) ->
    Json = case Body of
               <<>> -> {ok, #{}};
               _ -> azmp_emulator_json:decode(Body)
           end,
    try
        case Json of
            {ok, In} when is_map(In) -> reply(200, route(M, Segs, In, Emu));
            _ -> reply(400, #{<<"error">> => <<"body must be a JSON object">>})
        end
    catch
        throw:{Status, Msg} -> reply(Status, #{<<"error">> => Msg});
        error:E -> reply(400, #{<<"error">> => iolist_to_binary(io_lib:format("~p", [E]))})
    end.

route(<<"POST">>, [<<"subscriptions">>], In, Emu) ->
    Opts = maps:from_list(
             [{K, V} || {JK, K} <- [{<<"planId">>, plan_id}, {<<"offerId">>, offer_id},
                                    {<<"quantity">>, quantity}, {<<"status">>, status},
                                    {<<"name">>, name}, {<<"email">>, beneficiary_email},
                                    {<<"isFreeTrial">>, is_free_trial}, {<<"id">>, id},
                                    {<<"token">>, token},
                                    {<<"marketplaceTokenTtlS">>, marketplace_token_ttl_s}],
                        V <- [maps:get(JK, In, undefined)], V =/= undefined]),
    {ok, #{id := Id, token := Token}} = azmp_emulator:add_subscription(Emu, Opts),
    #{<<"id">> => Id, <<"token">> => Token};
route(<<"POST">>, [<<"subscriptions">>, <<"bulk">>], In, Emu) ->
    %% {count, status, planId}: that many subscriptions at once -> {ids}
    Opts = maps:from_list([{K, V} || {JK, K} <- [{<<"planId">>, plan_id}, {<<"status">>, status}],
                                     V <- [maps:get(JK, In, undefined)], V =/= undefined]),
    {ok, Ids} = azmp_emulator:add_subscriptions(Emu, maps:get(<<"count">>, In), Opts),
    #{<<"ids">> => Ids};
route(<<"GET">>, [<<"subscriptions">>, Id], _In, Emu) ->
    case azmp_emulator:subscription(Emu, Id) of
        {ok, View} -> jsonable(View);
        {error, not_found} -> throw({404, <<"not found">>})
    end;
route(<<"POST">>, [<<"operations">>], In, Emu) ->
    Opts = maps:from_list(
             [{K, V} || {JK, K} <- [{<<"action">>, action}, {<<"planId">>, plan_id},
                                    {<<"quantity">>, quantity}],
                        V <- [maps:get(JK, In, undefined)], V =/= undefined]),
    case azmp_emulator:add_operation(Emu, maps:get(<<"subscriptionId">>, In), Opts) of
        {ok, OpId} -> #{<<"id">> => OpId};
        {error, not_found} -> throw({404, <<"not found">>})
    end;
route(<<"POST">>, [<<"faults">>], #{<<"op">> := Op, <<"faults">> := Fs}, Emu) ->
    ok = azmp_emulator:inject(Emu, binary_to_existing_atom(Op, utf8), [fault(F) || F <- Fs]),
    #{};
route(<<"POST">>, [<<"delay">>], #{<<"ms">> := Ms}, Emu) ->
    ok = azmp_emulator:set_delay(Emu, Ms),
    #{};
route(<<"POST">>, [<<"expire_tokens">>], _In, Emu) ->
    ok = azmp_emulator:expire_tokens(Emu),
    #{};
route(<<"GET">>, [<<"stats">>], _In, Emu) ->
    jsonable(azmp_emulator:stats(Emu));
route(<<"POST">>, [<<"reset_stats">>], _In, Emu) ->
    ok = azmp_emulator:reset_stats(Emu),
    #{};
route(<<"POST">>, [<<"sign_jwt">>], #{<<"claims">> := Claims}, Emu) ->
    #{<<"jwt">> => azmp_emulator:sign_jwt(Emu, Claims)};
route(<<"POST">>, [<<"webhooks">>], In, Emu) ->
    Get = fun(K) -> case maps:get(K, In, undefined) of
                        undefined -> throw({400, <<"missing ", K/binary>>});
                        V -> V
                    end
          end,
    Opts = maps:from_list(
             [{K, V} || {JK, K} <- [{<<"planId">>, plan_id}, {<<"quantity">>, quantity},
                                    {<<"operationId">>, operation_id},
                                    {<<"redeliver">>, redeliver}, {<<"forge">>, forge},
                                    {<<"tokenVersion">>, token_version},
                                    {<<"hs256Secret">>, hs256_secret},
                                    {<<"timeoutMs">>, timeout_ms},
                                    {<<"loginUrl">>, login_url}],
                        V0 <- [maps:get(JK, In, undefined)], V0 =/= undefined, V0 =/= null,
                        V <- [webhook_opt(K, V0)]]),
    case azmp_emulator:send_webhook_detailed(Emu, Get(<<"target">>), Get(<<"action">>),
                                             Get(<<"subscriptionId">>), Opts) of
        {ok, #{status := Status, body := Body, operation_id := OpId}} ->
            #{<<"status">> => Status, <<"operationId">> => OpId,
              <<"body">> => case azmp_emulator_json:decode(Body) of
                                {ok, J} -> J;
                                _ -> Body
                            end};
        {error, not_found} ->
            throw({404, <<"not found">>});
        {error, Reason} ->
            throw({case Reason of
                       {bad_action, _} -> 400;
                       {bad_forge, _} -> 400;
                       {bad_token_version, _} -> 400;
                       {operation_exists, _} -> 409;
                       {redeliver_mismatch, _} -> 409;
                       _ -> 502
                   end, iolist_to_binary(io_lib:format("~p", [Reason]))})
    end;
route(<<"GET">>, [<<"webhooks">>], _In, Emu) ->
    jsonable([maps:remove(result, W#{status => case maps:get(result, W) of
                                                     {ok, S, _} -> S;
                                                     {error, R} -> iolist_to_binary(
                                                                     io_lib:format("~p", [R]))
                                                 end})
              || W <- azmp_emulator:webhooks(Emu)]);
route(<<"POST">>, [<<"rotate_signing_key">>], _In, Emu) ->
    #{<<"kid">> => azmp_emulator:rotate_signing_key(Emu)};
route(<<"POST">>, [<<"clock">>], #{<<"offset">> := S}, Emu) when is_integer(S) ->
    ok = azmp_emulator:set_clock_offset(Emu, S),
    route(<<"GET">>, [<<"clock">>], #{}, Emu);
route(<<"GET">>, [<<"clock">>], _In, Emu) ->
    Now = azmp_emulator:clock(Emu),
    #{<<"offset">> => Now - erlang:system_time(second), <<"now">> => Now,
      <<"nowIso">> => azmp_emulator_util:iso8601(Now)};
route(<<"POST">>, [<<"dimensions">>], #{<<"dimensions">> := D}, Emu) ->
    ok = azmp_emulator:set_dimensions(Emu, D),
    #{};
route(<<"POST">>, [<<"recon">>], In = #{<<"resourceId">> := R, <<"dimension">> := D,
                                        <<"day">> := Day0}, Emu) ->
    Day = case Day0 of
              I when is_integer(I) -> I;
              B -> {ok, T} = azmp_emulator_util:parse_time(B), T
          end,
    Over = maps:from_list([{K, V} || {JK, K} <- [{<<"reconStatus">>, recon_status},
                                                 {<<"processedQuantity">>, processed_quantity}],
                                     V <- [maps:get(JK, In, undefined)], V =/= undefined]),
    ok = azmp_emulator:set_recon(Emu, #{resource_id => R, dimension => D, day => Day}, Over),
    #{};
route(<<"GET">>, [<<"usage">>], _In, Emu) ->
    jsonable(azmp_emulator:usage(Emu));
route(_, _, _, _) ->
    throw({404, <<"unknown control endpoint">>}).

webhook_opt(hs256_secret, <<"der">>) -> der;
webhook_opt(hs256_secret, _) -> pem;
webhook_opt(_, V) -> V.

fault(<<"reset">>) -> reset;
fault(<<"truncated">>) -> truncated;
fault(<<"malformed">>) -> malformed;
fault(#{<<"status">> := 429, <<"retryAfter">> := S}) -> {status, 429, S};
fault(#{<<"status">> := C}) -> {status, C};
fault(#{<<"stall">> := Ms}) -> {stall, Ms};
fault(#{<<"delay">> := Ms}) -> {delay, Ms};
fault(F) -> throw({400, <<"bad fault: ", (azmp_emulator_json:encode(F))/binary>>}).

%% Atom-keyed maps, tuples and atoms in stats/views -> JSON-friendly terms.
jsonable(M) when is_map(M) ->
    maps:from_list([{key(K), jsonable(V)} || {K, V} <- maps:to_list(M)]);
jsonable(L) when is_list(L) -> [jsonable(E) || E <- L];
jsonable(T) when is_tuple(T) -> [jsonable(E) || E <- tuple_to_list(T)];
jsonable(undefined) -> null;
jsonable(A) when is_atom(A) -> A;
jsonable(X) -> X.

key(K) when is_atom(K) -> atom_to_binary(K, utf8);
key(K) when is_binary(K) -> K;
key(K) -> iolist_to_binary(io_lib:format("~p", [K])).

reply(Status, Body) ->
    {response, Status, [{<<"content-type">>, <<"application/json">>}],
     azmp_emulator_json:encode(Body)}.
