%% @doc Azure's webhook: authenticate (the bearer JWT, checked in C++ against the tenant's JWKS),
%% confirm the operation with Azure, act once (Azure redelivers), answer.
-module(emqx_azure_marketplace_webhook).

-export([handle/2]).

-include_lib("kernel/include/logger.hrl").

-define(CLIENT, emqx_azure_marketplace_client).
-define(NIF, emqx_azure_marketplace_nif).

-type headers() :: [{binary() | string(), binary() | string()}] | #{binary() => binary()}.
-type response() :: {100..599, [{binary(), binary()}], binary()}.
-export_type([headers/0, response/0]).

-define(AUTH_TIMEOUT_MS, 10000).
-define(STORE, emqx_azure_marketplace_store).
%% The handler holds an operation this long at most (two Azure calls of at most 8 s each).
-define(CLAIM_S, 30).
%% A copy delivered while the operation is being handled waits this long for its outcome.
-define(WAIT_MS, 9000).
-define(POLL_MS, 20).
%% Azure's webhook bodies are about 1 KiB. Anything much larger is refused before it is decoded: the
%% listener's own limit (256 KiB) is for every endpoint, and nothing of a body is kept but a few
%% bounded fields.
-define(MAX_BODY_BYTES, 64 * 1024).

%% @doc Handles one webhook delivery: `{Status, Headers, Body}' for the HTTP answer. 401 for
%% anything not signed by Entra for us (or with more than one Authorization header); 200 once
%% handled (or already handled); 400 for a body over 64 KiB, or a body or an operation Azure does
%% not confirm; 503 when Azure cannot be asked now (Azure delivers again).
-spec handle(headers(), binary()) -> response().
handle(Headers, Body) ->
    {Status, _, _} = Response = respond(Headers, Body),
    ok = emqx_azure_marketplace_metrics:webhook(Status),
    Response.

respond(Headers, Body) ->
    case authorization(Headers) of
        {ok, _} when byte_size(Body) > ?MAX_BODY_BYTES ->
            %% Refused before any work on it (no signature check, no JSON decoding).
            ?LOG_WARNING(#{msg => "azure_marketplace_webhook_body_too_large", bytes => byte_size(Body),
                           limit => ?MAX_BODY_BYTES}),
            reply(400, #{error => webhook_body_too_large});
        {ok, Header} ->
            case authenticate(Header) of
                ok -> handle_authenticated(Body);
                {error, Reason} -> unauthenticated(Reason)
            end;
        {error, Reason} ->
            unauthenticated(Reason)
    end.

%% The reason only: never the header, which holds a bearer token.
unauthenticated(Reason) ->
    ?LOG_WARNING(#{msg => "azure_marketplace_webhook_unauthenticated", reason => Reason}),
    reply(401, #{error => unauthorized}).

%% The one Authorization header. Two (in any case) are refused outright, the NIF not asked: which
%% one counts would depend on who parses the request (a proxy may take the first, we the last), and
%% a request that authenticates depending on that is not authenticated.
authorization(Headers) ->
    case header_values(<<"authorization">>, Headers) of
        [Header] -> {ok, Header};
        [] -> {error, no_token};
        [_, _ | _] -> {error, duplicate_authorization}
    end.

authenticate(Header) ->
    %% Token lifetimes are real time: not the plugin's business clock, which tests move forward.
    Now = erlang:system_time(second),
    Started =
        try
            ?NIF:webhook_authenticate(emqx_azure_marketplace_azure:webhook_auth(), Header, Now)
        catch
            error:badarg when is_binary(Header) ->
                %% Made by the library version before a hot upgrade: make it again, once.
                ?NIF:webhook_authenticate(emqx_azure_marketplace_azure:renew_webhook_auth(), Header, Now)
        end,
    case Started of
        {ok, Call} ->
            receive
                {azmp_reply, Call, {ok, _Claims}} -> ok;
                {azmp_reply, Call, {error, Reason}} -> {error, Reason}
            after ?AUTH_TIMEOUT_MS ->
                {error, timeout}
            end;
        {error, Reason} ->
            {error, Reason}
    end.

handle_authenticated(Body) ->
    case ?NIF:json_decode(Body) of
        {ok, #{<<"id">> := OpId, <<"subscriptionId">> := SubId, <<"action">> := Action} = Hook} ->
            %% A body that can never be valid is a 400: Azure would redeliver a 503 forever.
            case ?NIF:valid_id(OpId) andalso ?NIF:valid_id(SubId) andalso ?NIF:valid_id(Action) of
                true -> handle_operation(OpId, SubId, Action, Hook, deadline());
                false -> reply(400, #{error => bad_webhook_body})
            end;
        _ ->
            reply(400, #{error => bad_webhook_body})
    end.

deadline() -> erlang:monotonic_time(millisecond) + ?WAIT_MS.

%% One process handles an operation: the check that it is not handled yet and the record that it
%% is being handled are one transaction. Copies delivered meanwhile wait for its outcome (reading,
%% not claiming, while its claim lasts).
handle_operation(OpId, SubId, Action, Hook, Deadline) ->
    Now = emqx_azure_marketplace_clock:now(),
    case ?STORE:claim_operation(OpId, SubId, Action, Now, Now + ?CLAIM_S) of
        {done, _Outcome} ->
            reply(200, #{status => already_handled});
        busy ->
            await_operation(OpId, SubId, Action, Hook, Deadline);
        claimed ->
            try
                confirm_and_act(OpId, SubId, Action, Hook)
            catch
                Class:Reason ->
                    ok = ?STORE:release_operation(OpId),
                    ?LOG_ERROR(#{msg => "azure_marketplace_webhook_failed", operation_id => OpId, class => Class,
                                 reason => Reason}),
                    reply(503, #{error => internal_error})
            end
    end.

await_operation(OpId, SubId, Action, Hook, Deadline) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        true ->
            timer:sleep(?POLL_MS),
            case ?STORE:operation(OpId) of
                #{state := done} ->
                    reply(200, #{status => already_handled});
                #{state := in_progress, claimed_until := Until} ->
                    case Until >= emqx_azure_marketplace_clock:now() of
                        true -> await_operation(OpId, SubId, Action, Hook, Deadline);
                        false -> handle_operation(OpId, SubId, Action, Hook, Deadline)
                    end;
                undefined ->
                    %% Given back (Azure was unreachable): one of the waiting copies tries again.
                    handle_operation(OpId, SubId, Action, Hook, Deadline)
            end;
        false ->
            reply(503, #{error => operation_in_progress})
    end.

confirm_and_act(OpId, SubId, Action, Hook) ->
    C = emqx_azure_marketplace_azure:webhook_client(),
    case ?CLIENT:get_operation(C, SubId, OpId) of
        {ok, Op} ->
            Facts = operation_facts(Op),
            PlanKnown = is_binary(maps:get(plan_id, Facts)) andalso
                            emqx_azure_marketplace_platform:plan_known(maps:get(plan_id, Facts)),
            {Outcome, Event, Effects} = ?NIF:plan_webhook(Action, SubId, Facts, PlanKnown),
            case answer(C, SubId, OpId, Effects) of
                ok ->
                    finish(Outcome, Event, {OpId, SubId, Action}, Facts, Hook);
                {error, Reason} ->
                    %% Not recorded: Azure delivers again and we answer then.
                    ok = ?STORE:release_operation(OpId),
                    ?LOG_WARNING(#{msg => "azure_marketplace_webhook_deferred", operation_id => OpId, reason => Reason}),
                    reply(503, #{error => azure_unavailable})
            end;
        {error, {http, 404, _}} ->
            ok = ?STORE:release_operation(OpId),
            reply(400, #{error => unknown_operation});
        {error, Reason} ->
            ok = ?STORE:release_operation(OpId),
            ?LOG_WARNING(#{msg => "azure_marketplace_webhook_deferred", operation_id => OpId, reason => emqx_azure_marketplace_client:redact(Reason)}),
            reply(503, #{error => azure_unavailable})
    end.

%% What Get Operation says, in the shape the core reads; anything malformed reads as absent (and
%% a missing action or subscription as a mismatch).
operation_facts(Op) ->
    #{action => id_or_empty(maps:get(<<"action">>, Op, <<>>)),
      subscription_id => id_or_empty(maps:get(<<"subscriptionId">>, Op, <<>>)),
      plan_id => case maps:get(<<"planId">>, Op, undefined) of
                     P when is_binary(P) -> case ?NIF:valid_id(P) of true -> P; false -> undefined end;
                     _ -> undefined
                 end,
      quantity => quantity(maps:get(<<"quantity">>, Op, undefined)),
      at => time_ms(maps:get(<<"timeStamp">>, Op, undefined))}.

id_or_empty(B) ->
    case ?NIF:valid_id(B) of
        true -> B;
        false -> <<>>
    end.

%% Azure sends quantities as numbers or strings.
quantity(Q) when is_integer(Q), abs(Q) < 1 bsl 62 -> Q;
quantity(Q) when is_binary(Q), byte_size(Q) < 20 ->
    try binary_to_integer(string:trim(Q)) catch error:badarg -> undefined end;
quantity(_) -> undefined.

time_ms(T) when is_binary(T), byte_size(T) < 64 ->
    try calendar:rfc3339_to_system_time(binary_to_list(T), [{unit, millisecond}])
    catch _:_ -> undefined
    end;
time_ms(_) ->
    undefined.

%% The answer Azure waits for (ChangePlan, ChangeQuantity), before anything is recorded.
answer(C, SubId, OpId, Effects) ->
    lists:foldl(
        fun({answer_operation, success}, ok) ->
                case ?CLIENT:update_operation(C, SubId, OpId, success) of
                    ok -> ok;
                    {error, {http, 409, _}} -> ok;  % completed already: we answered before a crash
                    {error, Reason} -> {error, emqx_azure_marketplace_client:redact(Reason)}
                end;
           ({answer_operation, failure}, ok) ->
                _ = ?CLIENT:update_operation(C, SubId, OpId, failure),
                ok;
           (_, Acc) ->
                Acc
        end,
        ok, Effects).

finish(act, Event, Op = {OpId, SubId, Action}, Facts, Hook) ->
    Outcome =
        case ?STORE:link_by_subscription(SubId) of
            #{account_id := A} ->
                case emqx_azure_marketplace_lifecycle:apply_event(A, Event, info(Facts, Hook), {Op, maps:get(at, Facts)}) of
                    ok -> applied;
                    ignored -> ignored;
                    stale -> stale;
                    {error, not_linked} -> not_linked
                end;
            undefined ->
                ok = ?STORE:finish_operation(OpId, SubId, Action, not_linked, emqx_azure_marketplace_clock:now()),
                not_linked
        end,
    handled(OpId, SubId, Action, Outcome);
finish(mismatch, _Event, {OpId, _, _}, _Facts, _Hook) ->
    ok = ?STORE:release_operation(OpId),
    reply(400, #{error => operation_mismatch});
finish(Outcome, _Event, {OpId, SubId, Action}, _Facts, _Hook) ->
    ok = ?STORE:finish_operation(OpId, SubId, Action, Outcome, emqx_azure_marketplace_clock:now()),
    handled(OpId, SubId, Action, Outcome).

handled(OpId, SubId, Action, Outcome) ->
    ?LOG_INFO(#{msg => "azure_marketplace_webhook_handled", operation_id => OpId, subscription_id => SubId,
                action => Action, outcome => Outcome}),
    reply(200, #{status => Outcome}).

%% The link's fields as Azure has them now: plan and quantity from Get Operation, and the term, which
%% Get Operation does not give, from the body, bounded (see term/1).
info(#{plan_id := Plan, quantity := Q}, Hook) ->
    maps:filter(fun(_, V) -> V =/= undefined end, #{plan_id => Plan, quantity => Q, term => emqx_azure_marketplace_metering:subscription_term(Hook)}).

reply(Status, Map) ->
    {ok, Json} = ?NIF:json_encode(Map),
    {Status, [{<<"content-type">>, <<"application/json">>}], Json}.

%% Every value of the header Name (lower case), in any case of its name.
header_values(Name, Headers) when is_map(Headers) ->
    header_values(Name, maps:to_list(Headers));
header_values(Name, Headers) when is_list(Headers) ->
    [to_bin(V) || {K, V} <- Headers, string:lowercase(to_bin(K)) =:= Name].

to_bin(B) when is_binary(B) -> B;
to_bin(L) when is_list(L) -> unicode:characters_to_binary(L).
