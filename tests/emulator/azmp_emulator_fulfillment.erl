%% @doc SaaS Fulfillment API v2 (api-version 2018-08-31) with state: pure
%% functions from (operation, request, state) to (response, new state).
%% Paths, fields and status codes follow saasapi.v2.json.
%%
%% Realistic nastiness, on purpose: in get and resolve answers the status is
%% padded with trailing spaces ("Subscribed  "), `quantity' is sent as a
%% string in get answers and in resolve's nested subscription, and unknown
%% extra fields appear.
-module(azmp_emulator_fulfillment).

-export([new_subscription/3, handle/5, advance/2, add_operation/3, err/3,
         render_subscription/2, view/2, plans/1, plan_dimensions/2, webhook_body/2]).

-type state() :: map().
-type resp() :: {integer(), [{binary(), binary()}], map() | binary()}.

-define(PUBLISHER, <<"emqx-technologies">>).
-define(DAY, 86400).

%%% ------------------------------------------------------------ subscriptions

%% @doc Create a subscription from add_subscription/2 options. NowS is the
%% emulator clock (created, term dates); the marketplace token's lifetime
%% runs on real time, as every token's does.
-spec new_subscription(map(), integer(), state()) -> {map(), state()}.
new_subscription(Opts, NowS, State = #{subs := Subs, mp_tokens := Toks}) ->
    Id = maps:get(id, Opts, azmp_emulator_util:uuid()),
    Token = maps:get(token, Opts,
                     base64:encode(crypto:strong_rand_bytes(96))),
    TokenTtl = maps:get(marketplace_token_ttl_s, Opts, ?DAY),
    Email = maps:get(beneficiary_email, Opts,
                     maps:get(email, Opts, <<"buyer@example.com">>)),
    %% term: a term unit (<<"P1M">>) or #{term_unit, start_date, end_date}
    %% with dates as Unix seconds.
    Term = maps:get(term, Opts, #{}),
    TermUnit = case Term of
                   U when is_binary(U) -> U;
                   #{} -> maps:get(term_unit, Term, <<"P1M">>)
               end,
    Sub = #{id => Id,
            seq => erlang:unique_integer([positive, monotonic]),
            name => maps:get(name, Opts, <<"emqx-sub-", (binary:part(Id, 0, 8))/binary>>),
            offer_id => maps:get(offer_id, Opts, <<"emqx-cloud-payg">>),
            plan_id => maps:get(plan_id, Opts, <<"payg">>),
            quantity => maps:get(quantity, Opts, undefined),
            status => maps:get(status, Opts, <<"PendingFulfillmentStart">>),
            beneficiary_email => Email,
            purchaser_email => maps:get(purchaser_email, Opts, Email),
            customer_tenant => maps:get(customer_tenant, Opts, azmp_emulator_util:uuid()),
            object_id => azmp_emulator_util:uuid(),
            is_free_trial => maps:get(is_free_trial, Opts, false),
            is_test => maps:get(is_test, Opts, false),
            auto_renew => maps:get(auto_renew, Opts, true),
            term_unit => TermUnit,
            %% As Azure: a subscription waiting for its activation has no term dates yet; its term
            %% starts when it is activated (unless the test gives the dates).
            term_start => maps:get(start_date, as_map(Term), undated(Opts, NowS)),
            term_end => maps:get(end_date, as_map(Term), undated(Opts, NowS + 30 * ?DAY)),
            created => NowS,
            token => Token,
            token_exp => erlang:system_time(second) + TokenTtl,
            azure_subscription_id => azmp_emulator_util:uuid(),
            activations => 0,
            activated_plan => undefined},
    {Sub, State#{subs := Subs#{Id => Sub}, mp_tokens := Toks#{Token => Id}}}.

undated(Opts, T) ->
    case maps:get(status, Opts, <<"PendingFulfillmentStart">>) of
        <<"PendingFulfillmentStart">> -> undefined;
        _ -> T
    end.

as_map(M) when is_map(M) -> M;
as_map(_) -> #{}.

%% The subscription's term as Azure writes it: its dates once it has them.
term_json(Sub = #{term_start := undefined}) ->
    #{<<"termUnit">> => maps:get(term_unit, Sub), <<"chargeDuration">> => null};
term_json(Sub) ->
    #{<<"termUnit">> => maps:get(term_unit, Sub), <<"startDate">> => iso(maps:get(term_start, Sub)),
      <<"endDate">> => iso(maps:get(term_end, Sub)), <<"chargeDuration">> => null}.

%% @doc The emulator's own view of a subscription (atom keys), with its
%% operations.
-spec view(binary(), state()) -> {ok, map()} | {error, not_found}.
view(Id, State = #{subs := Subs}) ->
    case Subs of
        #{Id := Sub} ->
            SubOps = [render_operation(O) || O <- sorted_ops(Id, State)],
            {ok, maps:remove(seq, Sub#{operations => SubOps})};
        _ -> {error, not_found}
    end.

%% @doc Complete publisher-initiated operations whose time has come.
-spec advance(integer(), state()) -> state().
advance(NowMs, State = #{ops := Ops}) ->
    Due = [O || Id <- maps:keys(maps:get(timed_ops, State, #{})),
                O = #{status := <<"InProgress">>, complete_at := At} <- [maps:get(Id, Ops)],
                is_integer(At), At =< NowMs],
    lists:foldl(fun(O, S) -> finish_operation(O, <<"Succeeded">>, S) end, State,
                lists:sort(fun(A, B) -> maps:get(seq, A) =< maps:get(seq, B) end, Due)).

%% @doc An Azure-initiated operation (what a webhook announces). ChangePlan /
%% ChangeQuantity stay InProgress until the publisher PATCHes the operation;
%% Suspend, Reinstate, Unsubscribe and Renew take effect at once.
-spec add_operation(binary(), map(), state()) -> {ok, binary(), state()} | {error, not_found}.
add_operation(SubId, Opts, State = #{subs := Subs}) ->
    case Subs of
        #{SubId := Sub} ->
            Action = maps:get(action, Opts),
            Op0 = new_op(Sub, Action, maps:get(plan_id, Opts, maps:get(plan_id, Sub)),
                         maps:get(quantity, Opts, maps:get(quantity, Sub)), undefined, azure,
                         azmp_emulator_util:now_s(State)),
            Op = maps:merge(Op0, maps:with([id, activity_id], Opts)),
            S1 = put_op(Op, State),
            case Action of
                A when A =:= <<"ChangePlan">>; A =:= <<"ChangeQuantity">> ->
                    {ok, maps:get(id, Op), S1};
                _ ->
                    {ok, maps:get(id, Op), finish_operation(Op, <<"Succeeded">>, S1)}
            end;
        _ -> {error, not_found}
    end.

%% @doc The webhook payload Azure POSTs for an operation, as documented:
%% the operation's fields, operationRequestSource "Azure", the subscription
%% as it is now (for ChangePlan still on the old plan; after Suspend already
%% Suspended) and purchaseToken null. quantity is null when unset.
-spec webhook_body(binary(), state()) -> {ok, map()} | {error, not_found}.
webhook_body(OpId, #{ops := Ops, subs := Subs}) ->
    case Ops of
        #{OpId := O = #{subscription_id := SubId}} ->
            Sub = maps:get(SubId, Subs),
            Rendered = render_subscription(Sub, plain),
            Op = render_operation(O),
            {ok, Op#{<<"quantity">> => null_if_undefined(maps:get(quantity, O)),
                     <<"operationRequestSource">> => <<"Azure">>,
                     <<"subscription">> =>
                         Rendered#{<<"quantity">> =>
                                       null_if_undefined(maps:get(quantity, Sub))},
                     <<"purchaseToken">> => null}};
        _ -> {error, not_found}
    end.

null_if_undefined(undefined) -> null;
null_if_undefined(V) -> V.

%%% ------------------------------------------------------------- the API

%% @doc Handle one fulfillment operation. Ctx has base_url, now_s and now_ms
%% (the emulator clock) and real_s (system time, for token lifetimes); Args
%% holds the path parameters.
-spec handle(atom(), map(), azmp_emulator_http:request(), map(), state()) -> {resp(), state()}.
handle(resolve, _Args, Req, Ctx, State = #{subs := Subs, mp_tokens := Toks}) ->
    Token = azmp_emulator_util:header(<<"x-ms-marketplace-token">>, maps:get(headers, Req)),
    %% a token's lifetime: real time, not the emulator clock
    NowS = maps:get(real_s, Ctx, maps:get(now_s, Ctx)),
    case Token of
        undefined ->
            {err(400, <<"BadArgument">>, <<"The x-ms-marketplace-token header is missing.">>), State};
        _ ->
            %% Clients may or may not URL-decode the landing page token.
            Decoded = uri_string:percent_decode(Token),
            case maps:get(Token, Toks, maps:get(Decoded, Toks, undefined)) of
                undefined ->
                    {err(400, <<"BadArgument">>, <<"The marketplace token is invalid.">>), State};
                Id ->
                    Sub = maps:get(Id, Subs),
                    case maps:get(token_exp, Sub) > NowS of
                        false ->
                            {err(400, <<"BadArgument">>,
                                   <<"The marketplace token has expired.">>), State};
                        true ->
                            Full = render_subscription(Sub, nasty),
                            Body = #{<<"id">> => Id,
                                     <<"subscriptionName">> => maps:get(name, Sub),
                                     <<"offerId">> => maps:get(offer_id, Sub),
                                     <<"planId">> => maps:get(plan_id, Sub),
                                     <<"quantity">> => maps:get(quantity, Sub),
                                     <<"subscription">> => Full},
                            {{200, [], Body}, State}
                    end
            end
    end;
handle(list_subscriptions, _Args, Req, Ctx, State = #{subs := Subs, cfg := Cfg}) ->
    PageSize = maps:get(page_size, Cfg),
    Query = azmp_emulator_util:query(maps:get(query, Req)),
    Offset = case lists:keyfind(<<"continuationToken">>, 1, Query) of
                 {_, T} when is_binary(T) -> decode_continuation(T);
                 _ -> 0
             end,
    case Offset of
        error ->
            {err(400, <<"BadArgument">>, <<"Invalid continuationToken.">>), State};
        _ ->
            %% The ids in creation order, sorted again only when subscriptions were added: a
            %% listing of N subscriptions in pages of 2 sorts once, not N / 2 times.
            {Ids, State1} = ordered_ids(State),
            Page = [maps:get(element(I, Ids), Subs) || I <- lists:seq(Offset + 1, min(Offset + PageSize, tuple_size(Ids)))],
            Next = case map_size(Subs) > Offset + PageSize of
                       true ->
                           Tok = encode_continuation(Offset + PageSize),
                           <<(maps:get(base_url, Ctx))/binary,
                             "/api/saas/subscriptions/?continuationToken=", Tok/binary,
                             "&api-version=2018-08-31">>;
                       false -> undefined
                   end,
            Body = #{<<"subscriptions">> => [render_subscription(S, plain) || S <- Page],
                     <<"@nextLink">> => Next},
            {{200, [], Body}, State1}
    end;
handle(Op, #{sub_id := Id} = Args, Req, Ctx, State = #{subs := Subs}) ->
    case Subs of
        #{Id := Sub} -> with_sub(Op, Sub, Args, Req, Ctx, State);
        _ -> {err(404, <<"EntityNotFound">>,
                    <<"The subscription '", Id/binary, "' was not found.">>), State}
    end.

with_sub(get_subscription, Sub, _Args, _Req, _Ctx, State) ->
    {{200, [], render_subscription(Sub, nasty)}, State};
with_sub(list_available_plans, _Sub, _Args, Req, _Ctx, State = #{cfg := Cfg}) ->
    Query = azmp_emulator_util:query(maps:get(query, Req)),
    Plans = [render_plan(P, Cfg) || P <- maps:get(plans, Cfg),
                               case lists:keyfind(<<"planId">>, 1, Query) of
                                   {_, Want} -> Want =:= P;
                                   false -> true
                               end],
    {{200, [], #{<<"plans">> => Plans}}, State};
with_sub(activate, Sub = #{id := Id, status := Status}, _Args, Req, Ctx, State) ->
    Body = decode_body(Req),
    PlanId = maps:get(plan_id, Sub),
    case {Status, Body} of
        {_, error} ->
            {err(400, <<"BadArgument">>, <<"The request body is not valid JSON.">>), State};
        {_, #{<<"planId">> := P}} when P =/= PlanId, P =/= null ->
            {err(400, <<"BadArgument">>,
                   <<"The planId '", (to_bin(P))/binary,
                     "' does not match the subscription's plan.">>), State};
        {<<"Unsubscribed">>, _} ->
            {err(400, <<"BadArgument">>,
                   <<"The subscription is Unsubscribed and cannot be activated.">>), State};
        {<<"Suspended">>, _} ->
            {err(400, <<"BadArgument">>,
                   <<"The subscription is Suspended and cannot be activated.">>), State};
        _ ->
            NowS = maps:get(now_s, Ctx),
            Sub1 = Sub#{status := <<"Subscribed">>,
                        activations := maps:get(activations, Sub) + 1,
                        activated_plan := PlanId,
                        term_start := case maps:get(term_start, Sub) of undefined -> NowS; T -> T end,
                        term_end := case maps:get(term_end, Sub) of undefined -> NowS + 30 * ?DAY; E -> E end},
            {{200, [], <<>>}, put_sub(Id, Sub1, State)}
    end;
with_sub(update_subscription, Sub = #{status := Status}, _Args, Req, Ctx, State = #{cfg := Cfg}) ->
    Plans = maps:get(plans, Cfg),
    case decode_body(Req) of
        #{<<"planId">> := _, <<"quantity">> := _} ->
            {err(400, <<"BadArgument">>,
                   <<"Only one of planId or quantity can be changed at a time.">>), State};
        _ when Status =/= <<"Subscribed">> ->
            {err(400, <<"BadArgument">>,
                   <<"The subscription is not in Subscribed state.">>), State};
        #{<<"planId">> := P} when is_binary(P) ->
            case lists:member(P, Plans) of
                true -> accepted(new_op(Sub, <<"ChangePlan">>, P, maps:get(quantity, Sub),
                                        op_due(Ctx, Cfg), publisher, maps:get(now_s, Ctx)),
                                 Ctx, State);
                false -> {err(400, <<"BadArgument">>,
                                <<"The plan '", P/binary, "' is not available.">>), State}
            end;
        #{<<"quantity">> := Q} when is_integer(Q), Q > 0 ->
            accepted(new_op(Sub, <<"ChangeQuantity">>, maps:get(plan_id, Sub), Q,
                            op_due(Ctx, Cfg), publisher, maps:get(now_s, Ctx)), Ctx, State);
        _ ->
            {err(400, <<"BadArgument">>,
                   <<"The request body must contain a valid planId or quantity.">>), State}
    end;
with_sub(delete_subscription, Sub = #{id := Id, status := Status}, _Args, _Req, Ctx,
         State = #{cfg := Cfg}) ->
    case Status of
        <<"Unsubscribed">> ->
            {err(400, <<"BadArgument">>, <<"The subscription is already Unsubscribed.">>),
             State};
        _ ->
            Op = new_op(Sub, <<"Unsubscribe">>, maps:get(plan_id, Sub), maps:get(quantity, Sub),
                        op_due(Ctx, Cfg), publisher, maps:get(now_s, Ctx)),
            State1 = put_sub(Id, Sub#{status := <<"Unsubscribed">>, unsubscribed_at => maps:get(now_s, Ctx)}, State),
            accepted(Op, Ctx, State1)
    end;
with_sub(list_operations, #{id := Id}, _Args, _Req, _Ctx, State) ->
    Pending = [render_operation(O) || O = #{status := S} <- sorted_ops(Id, State),
                                      S =:= <<"InProgress">> orelse S =:= <<"NotStarted">>],
    {{200, [], #{<<"operations">> => Pending}}, State};
with_sub(get_operation, #{id := Id}, #{op_id := OpId}, _Req, _Ctx, State = #{ops := Ops}) ->
    case Ops of
        #{OpId := O = #{subscription_id := Id}} -> {{200, [], render_operation(O)}, State};
        _ -> {op_not_found(OpId), State}
    end;
with_sub(update_operation, #{id := Id}, #{op_id := OpId}, Req, _Ctx, State = #{ops := Ops}) ->
    case Ops of
        #{OpId := O = #{subscription_id := Id, status := OpStatus}} ->
            case decode_body(Req) of
                #{<<"status">> := New} when New =:= <<"Success">>; New =:= <<"Failure">> ->
                    case OpStatus of
                        <<"InProgress">> ->
                            Final = case New of
                                        <<"Success">> -> <<"Succeeded">>;
                                        <<"Failure">> -> <<"Failed">>
                                    end,
                            {{200, [], <<>>}, finish_operation(O, Final, State)};
                        _ ->
                            {err(409, <<"Conflict">>,
                                   <<"The operation is already completed with status ",
                                     OpStatus/binary, ".">>), State}
                    end;
                _ ->
                    {err(400, <<"BadArgument">>,
                           <<"status must be Success or Failure.">>), State}
            end;
        _ -> {op_not_found(OpId), State}
    end.

op_not_found(OpId) ->
    err(404, <<"EntityNotFound">>, <<"The operation '", OpId/binary, "' was not found.">>).

op_due(Ctx, Cfg) -> maps:get(now_ms, Ctx) + maps:get(operation_ms, Cfg).

accepted(Op = #{id := OpId, subscription_id := SubId}, Ctx, State) ->
    Loc = <<(maps:get(base_url, Ctx))/binary, "/api/saas/subscriptions/", SubId/binary,
            "/operations/", OpId/binary, "?api-version=2018-08-31">>,
    State1 = put_op(Op, State),
    %% With operation_ms = 0 the change is visible at once.
    State2 = advance(maps:get(now_ms, Ctx), State1),
    {{202, [{<<"operation-location">>, Loc}], <<>>}, State2}.

new_op(Sub, Action, PlanId, Quantity, CompleteAt, Source, NowS) ->
    #{id => azmp_emulator_util:uuid(), activity_id => azmp_emulator_util:uuid(),
      seq => erlang:unique_integer([positive, monotonic]),
      subscription_id => maps:get(id, Sub), offer_id => maps:get(offer_id, Sub),
      publisher_id => ?PUBLISHER, plan_id => PlanId, quantity => Quantity,
      action => Action, time_stamp => NowS,
      status => <<"InProgress">>, complete_at => CompleteAt, source => Source}.

%% Every write of an operation: kept with two indexes, its subscription's operations and the ones
%% due to complete by themselves, so that no request scans every operation of every subscription.
put_op(Op = #{id := Id, subscription_id := SubId}, State = #{ops := Ops}) ->
    OfSub = maps:get(ops_of, State, #{}),
    Ids = maps:get(SubId, OfSub, []),
    Timed = maps:get(timed_ops, State, #{}),
    Timed1 = case Op of
                 #{status := <<"InProgress">>, complete_at := At} when is_integer(At) -> Timed#{Id => true};
                 _ -> maps:remove(Id, Timed)
             end,
    State#{ops := Ops#{Id => Op},
           ops_of => OfSub#{SubId => case lists:member(Id, Ids) of true -> Ids; false -> [Id | Ids] end},
           timed_ops => Timed1}.

put_sub(Id, Sub, State = #{subs := Subs}) -> State#{subs := Subs#{Id => Sub}}.

finish_operation(Op = #{subscription_id := SubId, action := Action}, Final,
                 State = #{subs := Subs}) ->
    State1 = put_op(Op#{status := Final, complete_at := undefined}, State),
    case {Final, Subs} of
        {<<"Succeeded">>, #{SubId := Sub}} ->
            put_sub(SubId, apply_action(Action, Op, Sub), State1);
        _ -> State1
    end.

apply_action(<<"ChangePlan">>, #{plan_id := P}, Sub) -> Sub#{plan_id := P};
apply_action(<<"ChangeQuantity">>, #{quantity := Q}, Sub) -> Sub#{quantity := Q};
apply_action(<<"Unsubscribe">>, Op, Sub) ->
    Sub#{status := <<"Unsubscribed">>, unsubscribed_at => maps:get(time_stamp, Op, erlang:system_time(second))};
apply_action(<<"Suspend">>, _, Sub) -> Sub#{status := <<"Suspended">>};
apply_action(<<"Reinstate">>, _, Sub) -> Sub#{status := <<"Subscribed">>};
apply_action(_, _, Sub) -> Sub.

sorted_ops(SubId, State = #{ops := Ops}) ->
    lists:sort(fun(A, B) -> maps:get(seq, A) =< maps:get(seq, B) end,
               [maps:get(Id, Ops) || Id <- maps:get(SubId, maps:get(ops_of, State, #{}), [])]).

%%% ------------------------------------------------------------ rendering

%% @doc Subscription JSON. `nasty': padded status, quantity as a string and
%% unknown extra fields; `plain': as the schema says.
-spec render_subscription(map(), nasty | plain) -> map().
render_subscription(Sub, Mode) ->
    Status = maps:get(status, Sub),
    Quantity = maps:get(quantity, Sub),
    Base = #{<<"id">> => maps:get(id, Sub),
             <<"publisherId">> => ?PUBLISHER,
             <<"offerId">> => maps:get(offer_id, Sub),
             <<"name">> => maps:get(name, Sub),
             <<"saasSubscriptionStatus">> => Status,
             <<"beneficiary">> => identity(maps:get(beneficiary_email, Sub), Sub),
             <<"purchaser">> => identity(maps:get(purchaser_email, Sub), Sub),
             <<"planId">> => maps:get(plan_id, Sub),
             <<"quantity">> => Quantity,
             <<"term">> => term_json(Sub),
             <<"autoRenew">> => maps:get(auto_renew, Sub),
             <<"isTest">> => maps:get(is_test, Sub),
             <<"isFreeTrial">> => maps:get(is_free_trial, Sub),
             <<"allowedCustomerOperations">> => [<<"Read">>, <<"Update">>, <<"Delete">>],
             <<"sandboxType">> => <<"None">>,
             <<"created">> => iso(maps:get(created, Sub)),
             <<"sessionMode">> => <<"None">>},
    case Mode of
        plain -> Base;
        nasty ->
            Base#{<<"saasSubscriptionStatus">> => <<Status/binary, "  ">>,
                  <<"quantity">> => case Quantity of
                                        undefined -> undefined;
                                        Q -> integer_to_binary(Q)
                                    end,
                  <<"storeFront">> => <<"AzurePortal">>,
                  <<"x-emulator-extra">> => #{<<"nested">> => [1, 2.5, null, #{}]}}
    end.

identity(Email, Sub) ->
    #{<<"emailId">> => Email, <<"objectId">> => maps:get(object_id, Sub),
      <<"tenantId">> => maps:get(customer_tenant, Sub), <<"puid">> => <<"1000300012345678">>}.

render_operation(O) ->
    #{<<"id">> => maps:get(id, O), <<"activityId">> => maps:get(activity_id, O),
      <<"subscriptionId">> => maps:get(subscription_id, O),
      <<"offerId">> => maps:get(offer_id, O), <<"publisherId">> => maps:get(publisher_id, O),
      <<"planId">> => maps:get(plan_id, O), <<"quantity">> => maps:get(quantity, O),
      <<"action">> => maps:get(action, O), <<"timeStamp">> => iso(maps:get(time_stamp, O)),
      <<"status">> => maps:get(status, O)}.

%% @doc The plans every subscription can move to (Plan schema).
-spec plans(map()) -> [map()].
plans(Cfg) -> [render_plan(P, Cfg) || P <- maps:get(plans, Cfg)].

%% @doc The metering dimensions defined for a plan: the `dimensions' setting
%% is a list (every plan) or a map PlanId => [DimensionId] (a plan missing
%% from the map has none).
-spec plan_dimensions(binary(), map()) -> [binary()].
plan_dimensions(Plan, #{dimensions := Dims}) when is_map(Dims) -> maps:get(Plan, Dims, []);
plan_dimensions(_Plan, #{dimensions := Dims}) when is_list(Dims) -> Dims.

render_plan(P, Cfg) ->
    Dims = [#{<<"id">> => D, <<"currency">> => <<"USD">>, <<"pricePerUnit">> => 0.01,
              <<"unitOfMeasure">> => <<"unit">>, <<"displayName">> => D}
            || D <- plan_dimensions(P, Cfg)],
    #{<<"planId">> => P, <<"displayName">> => <<"EMQX Cloud ", P/binary>>,
      <<"isPrivate">> => false, <<"description">> => <<"EMQX Cloud pay as you go">>,
      <<"minQuantity">> => 0, <<"maxQuantity">> => 0, <<"hasFreeTrials">> => false,
      <<"isPricePerSeat">> => false, <<"isStopSell">> => false, <<"market">> => <<"US">>,
      <<"planComponents">> =>
          #{<<"recurrentBillingTerms">> =>
                [#{<<"currency">> => <<"USD">>, <<"price">> => 0.0,
                   <<"termUnit">> => <<"P1M">>, <<"termDescription">> => <<"Monthly">>,
                   <<"meteredQuantityIncluded">> => []}],
            <<"meteringDimensions">> => Dims}}.

%%% --------------------------------------------------------------- helpers

%% @doc Fulfillment error body (FulfillmentInternalServerErrorResponse shape).
-spec err(integer(), binary(), binary()) -> resp().
err(Status, Code, Message) ->
    {Status, [], #{<<"error">> => #{<<"code">> => Code, <<"message">> => Message}}}.

decode_body(#{body := <<>>}) -> #{};
decode_body(#{body := B}) ->
    case azmp_emulator_json:decode(B) of
        {ok, M} when is_map(M) -> M;
        _ -> error
    end.

encode_continuation(N) -> azmp_emulator_jwt:b64url(<<"offset:", (integer_to_binary(N))/binary>>).

decode_continuation(T) ->
    try azmp_emulator_jwt:b64url_decode(T) of
        <<"offset:", N/binary>> -> binary_to_integer(N);
        _ -> error
    catch _:_ -> error
    end.

to_bin(B) when is_binary(B) -> B;
to_bin(T) -> azmp_emulator_json:encode(T).

iso(S) -> azmp_emulator_util:iso8601(S).

%% The subscription ids in creation order (cached until subscriptions are added).
ordered_ids(State = #{subs := Subs}) ->
    case maps:get(ordered_ids, State, {-1, {}}) of
        {N, Ids} when N =:= map_size(Subs) ->
            {Ids, State};
        _ ->
            %% A tuple: a page at any offset is read in the time of its own size.
            Ids = list_to_tuple([Id || {_, Id} <- lists:sort([{Seq, Id} || {Id, #{seq := Seq}} <- maps:to_list(Subs)])]),
            {Ids, State#{ordered_ids => {map_size(Subs), Ids}}}
    end.
