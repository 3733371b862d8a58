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
-define(LINKS, emqx_azure_marketplace_store_links).
-define(OPERATIONS, emqx_azure_marketplace_store_operations).
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
            reply({400, #{error => webhook_body_too_large}});
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
    reply({401, #{error => unauthorized}}).

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
    case ?NIF:plan_webhook(#{step => delivery, body => Body}) of
        {act, Delivery} -> handle_operation(Delivery, deadline());
        {reply, Reply} -> reply(Reply)
    end.

deadline() -> erlang:monotonic_time(millisecond) + ?WAIT_MS.

%% One process handles an operation: the check that it is not handled yet and the record that it
%% is being handled are one transaction. Copies delivered meanwhile wait for its outcome (reading,
%% not claiming, while its claim lasts).
handle_operation(D = #{operation_id := OpId, subscription_id := SubId, action := Action}, Deadline) ->
    Now = emqx_azure_marketplace_clock:now(),
    case ?OPERATIONS:claim_operation(OpId, SubId, Action, Now, Now + ?CLAIM_S) of
        {done, _Outcome} ->
            reply({200, #{status => already_handled}});
        busy ->
            await_operation(D, Deadline);
        claimed ->
            try
                confirm_and_act(D)
            catch
                Class:Reason ->
                    ok = ?OPERATIONS:release_operation(OpId),
                    ok = emqx_azure_marketplace_store_recon:flag_doubt(SubId, webhook_failed,
                                                                       emqx_azure_marketplace_clock:now()),
                    ?LOG_ERROR(#{msg => "azure_marketplace_webhook_failed", operation_id => OpId, class => Class,
                                 reason => Reason}),
                    reply({503, #{error => internal_error}})
            end
    end.

await_operation(D = #{operation_id := OpId}, Deadline) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        true ->
            timer:sleep(?POLL_MS),
            case ?OPERATIONS:operation(OpId) of
                #{state := done} ->
                    reply({200, #{status => already_handled}});
                #{state := in_progress, claimed_until := Until} ->
                    case Until >= emqx_azure_marketplace_clock:now() of
                        true -> await_operation(D, Deadline);
                        false -> handle_operation(D, Deadline)
                    end;
                undefined ->
                    %% Given back (Azure was unreachable): one of the waiting copies tries again.
                    handle_operation(D, Deadline)
            end;
        false ->
            reply({503, #{error => operation_in_progress}})
    end.

%% Get Operation's answer, planned by the core (asking the platform whether it sells a new plan
%% when the core needs to know); then the plan performed.
confirm_and_act(D = #{operation_id := OpId, subscription_id := SubId}) ->
    C = emqx_azure_marketplace_azure:webhook_client(),
    Result = ?CLIENT:get_operation(C, SubId, OpId),
    perform(plan(D#{step => operation, result => Result}), D, C, Result).

plan(Facts) ->
    case ?NIF:plan_webhook(Facts) of
        #{need := {plan_known, Plan}} -> plan(Facts#{plan_known => emqx_azure_marketplace_platform:plan_known(Plan)});
        Plan -> Plan
    end.

%% The answer Azure waits for (ChangePlan, ChangeQuantity) first, before anything is recorded; then
%% the event applied, or the outcome recorded, or the claim given back.
perform(P = #{answer := Answer}, D = #{operation_id := OpId, subscription_id := SubId}, C, _) when Answer =/= none ->
    Result = ?CLIENT:update_operation(C, SubId, OpId, Answer),
    case ?NIF:plan_webhook(#{step => answered, answer => Answer, result => Result}) of
        proceed -> perform(P#{answer := none}, D, C, Result);
        GiveUp -> perform(GiveUp, D, C, Result)
    end;
perform(#{release := true, deferred := Deferred, reply := Reply}, #{operation_id := OpId, subscription_id := SubId},
        _C, Result) ->
    %% Not recorded: Azure delivers again and we answer then. Meanwhile the subscription's state is
    %% in doubt: the reconciliation asks Azure for it first.
    ok = ?OPERATIONS:release_operation(OpId),
    ok = emqx_azure_marketplace_store_recon:flag_doubt(SubId, webhook_deferred, emqx_azure_marketplace_clock:now()),
    Deferred andalso ?LOG_WARNING(#{msg => "azure_marketplace_webhook_deferred", operation_id => OpId,
                                    reason => failure_reason(Result)}),
    reply(Reply);
perform(#{apply := #{event := Event, info := Info, at := At}}, D, _C, _) ->
    #{operation_id := OpId, subscription_id := SubId, action := Action} = D,
    Outcome =
        case ?LINKS:link_by_subscription(SubId) of
            #{account_id := A} ->
                Known = maps:filter(fun(_, V) -> V =/= undefined end, Info),
                case emqx_azure_marketplace_lifecycle:apply_event(A, Event, Known, {{OpId, SubId, Action}, At}) of
                    ok -> applied;
                    ignored -> ignored;
                    stale -> stale;
                    {error, not_linked} -> not_linked
                end;
            undefined ->
                ok = ?OPERATIONS:finish_operation(OpId, SubId, Action, not_linked, emqx_azure_marketplace_clock:now()),
                not_linked
        end,
    handled(D, Outcome, {200, #{status => Outcome}});
perform(#{record := Outcome, reply := Reply}, D = #{operation_id := OpId, subscription_id := SubId, action := Action},
        _C, _) ->
    ok = ?OPERATIONS:finish_operation(OpId, SubId, Action, Outcome, emqx_azure_marketplace_clock:now()),
    handled(D, Outcome, Reply).

handled(#{operation_id := OpId, subscription_id := SubId, action := Action}, Outcome, Reply) ->
    ?LOG_INFO(#{msg => "azure_marketplace_webhook_handled", operation_id => OpId, subscription_id => SubId,
                action => Action, outcome => Outcome}),
    reply(Reply).

reply({Status, Map}) ->
    {ok, Json} = ?NIF:json_encode(Map),
    {Status, [{<<"content-type">>, <<"application/json">>}], Json}.

%% Every value of the header Name (lower case), in any case of its name.
header_values(Name, Headers) when is_map(Headers) ->
    header_values(Name, maps:to_list(Headers));
header_values(Name, Headers) when is_list(Headers) ->
    [to_bin(V) || {K, V} <- Headers, string:lowercase(to_bin(K)) =:= Name].

to_bin(B) when is_binary(B) -> B;
to_bin(L) when is_list(L) -> unicode:characters_to_binary(L).

%% Why a call the plan gave up on failed, for the log (never an answer's body).
failure_reason({error, Reason}) -> emqx_azure_marketplace_client:redact(Reason);
failure_reason(_) -> unreadable_answer.
