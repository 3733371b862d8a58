%% @doc Azure's webhook: authenticate (the bearer JWT, checked in C++ against the tenant's JWKS),
%% confirm the operation with Azure, act once (Azure redelivers), answer.
-module(emqx_azure_marketplace_webhook).

-export([handle/2]).

-include("emqx_azure_marketplace.hrl").
-include_lib("kernel/include/logger.hrl").

-define(CLIENT, emqx_azure_marketplace_client).
-define(NIF, emqx_azure_marketplace_nif).

-type headers() :: [{binary() | string(), binary() | string()}] | #{binary() => binary()}.
-type response() :: {100..599, [{binary(), binary()}], binary()}.
-export_type([headers/0, response/0]).

-define(AUTH_TIMEOUT_MS, 10000).

%% @doc Handles one webhook delivery: `{Status, Headers, Body}' for the HTTP answer. 401 for
%% anything not signed by Entra for us; 200 once handled (or already handled); 400 for a body or an
%% operation Azure does not confirm; 503 when Azure cannot be asked now (Azure delivers again).
-spec handle(headers(), binary()) -> response().
handle(Headers, Body) ->
    case authenticate(header(<<"authorization">>, Headers)) of
        ok -> handle_authenticated(Body);
        {error, Reason} ->
            ?LOG_WARNING(#{msg => "azure_marketplace_webhook_unauthenticated", reason => Reason}),
            reply(401, #{error => unauthorized})
    end.

authenticate(undefined) ->
    {error, no_token};
authenticate(Header) ->
    %% Token lifetimes are real time: not the plugin's business clock, which tests move forward.
    Now = erlang:system_time(second),
    Started =
        try
            ?NIF:webhook_authenticate(emqx_azure_marketplace_app:webhook_auth(), Header, Now)
        catch
            error:badarg when is_binary(Header) ->
                %% Made by the library version before a hot upgrade: make it again, once.
                ?NIF:webhook_authenticate(emqx_azure_marketplace_app:renew_webhook_auth(), Header, Now)
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
        {ok, #{<<"id">> := OpId, <<"subscriptionId">> := SubId, <<"action">> := Action} = Hook}
            when is_binary(OpId), is_binary(SubId), is_binary(Action) ->
            case already_handled(OpId) of
                true -> reply(200, #{status => already_handled});
                false -> confirm_and_act(OpId, SubId, Action, Hook)
            end;
        _ ->
            reply(400, #{error => bad_webhook_body})
    end.

already_handled(OpId) -> mnesia:dirty_read(azmp_operation, OpId) =/= [].

confirm_and_act(OpId, SubId, Action, Hook) ->
    C = emqx_azure_marketplace_app:webhook_client(),
    case ?CLIENT:get_operation(C, SubId, OpId) of
        {ok, #{<<"action">> := Action, <<"subscriptionId">> := SubId} = Op} ->
            case act(C, Action, SubId, OpId, Op, Hook) of
                {update_failed, Reason} ->
                    %% Not recorded: Azure delivers again and we answer then.
                    ?LOG_WARNING(#{msg => "azure_marketplace_webhook_deferred", operation_id => OpId,
                                   reason => Reason}),
                    reply(503, #{error => azure_unavailable});
                Outcome ->
                    record(OpId, SubId, Action, Outcome),
                    ?LOG_INFO(#{msg => "azure_marketplace_webhook_handled", operation_id => OpId,
                                subscription_id => SubId, action => Action, outcome => Outcome}),
                    reply(200, #{status => Outcome})
            end;
        {ok, _Other} ->
            reply(400, #{error => operation_mismatch});
        {error, {http, 404, _}} ->
            reply(400, #{error => unknown_operation});
        {error, Reason} ->
            ?LOG_WARNING(#{msg => "azure_marketplace_webhook_deferred", operation_id => OpId,
                           reason => redact(Reason)}),
            reply(503, #{error => azure_unavailable})
    end.

act(C, <<"ChangePlan">>, SubId, OpId, Op, _Hook) ->
    Plan = maps:get(<<"planId">>, Op, undefined),
    Known = is_binary(Plan) andalso emqx_azure_marketplace_platform:plan_known(Plan),
    answer(C, SubId, OpId, Known, change_plan, #{plan_id => Plan});
act(C, <<"ChangeQuantity">>, SubId, OpId, Op, _Hook) ->
    Q = maps:get(<<"quantity">>, Op, undefined),
    answer(C, SubId, OpId, is_integer(Q) andalso Q > 0, change_quantity, #{quantity => Q});
act(_C, <<"Renew">>, SubId, _OpId, _Op, Hook) ->
    Term = maps:get(<<"term">>, maps:get(<<"subscription">>, Hook, #{}), #{}),
    event(SubId, renew, #{term => Term});
act(_C, <<"Suspend">>, SubId, _OpId, _Op, _Hook) ->
    event(SubId, suspend, #{});
act(_C, <<"Reinstate">>, SubId, _OpId, _Op, _Hook) ->
    event(SubId, reinstate, #{});
act(_C, <<"Unsubscribe">>, SubId, _OpId, _Op, _Hook) ->
    event(SubId, unsubscribe, #{});
act(_C, _Unknown, _SubId, _OpId, _Op, _Hook) ->
    ignored.

%% ChangePlan / ChangeQuantity: Azure applies them after 10 s unless we answer Failure.
answer(C, SubId, OpId, true, Event, Info) ->
    case ?CLIENT:update_operation(C, SubId, OpId, success) of
        ok -> event(SubId, Event, Info);
        {error, {http, 409, _}} -> event(SubId, Event, Info);  % already completed: a redelivery
        {error, Reason} -> {update_failed, redact(Reason)}
    end;
answer(C, SubId, OpId, false, _Event, _Info) ->
    _ = ?CLIENT:update_operation(C, SubId, OpId, failure),
    refused.

event(SubId, Event, Info) ->
    case emqx_azure_marketplace_store:link_by_subscription(SubId) of
        #azmp_link{account_id = A} ->
            case emqx_azure_marketplace_lifecycle:apply_event(A, Event, Info) of
                ok -> applied;
                ignored -> ignored;
                {error, not_linked} -> not_linked
            end;
        undefined ->
            not_linked
    end.

record(OpId, SubId, Action, Outcome) ->
    mnesia:dirty_write(#azmp_operation{id = OpId, subscription_id = SubId, action = Action, outcome = Outcome,
                                       at = emqx_azure_marketplace_clock:now()}).

reply(Status, Map) ->
    {ok, Json} = ?NIF:json_encode(Map),
    {Status, [{<<"content-type">>, <<"application/json">>}], Json}.

header(Name, Headers) when is_map(Headers) ->
    header(Name, maps:to_list(Headers));
header(Name, Headers) when is_list(Headers) ->
    Found = [to_bin(V) || {K, V} <- Headers, string:lowercase(to_bin(K)) =:= Name],
    case Found of
        [V | _] -> V;
        [] -> undefined
    end.

to_bin(B) when is_binary(B) -> B;
to_bin(L) when is_list(L) -> unicode:characters_to_binary(L).

redact({http, Status, _Body}) -> {http, Status};
redact(Other) -> Other.
