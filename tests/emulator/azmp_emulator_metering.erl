%% @doc Marketplace Metering API v1 with Azure's rules, as pure functions
%% over the emulator state: at most one accepted event per resource,
%% dimension and hour of effectiveStartTime; events older than 24 h are
%% Expired; batches hold 1..25 events, each with its own status.
%% Shapes follow meteringapi.v1.json.
%%
%% Time is the emulator clock (Ctx now_s: system time + clock offset).
%% Dimensions are per plan (azmp_emulator_fulfillment:plan_dimensions/2).
%% GET /usageEvents sums quantities exactly: each quantity is taken as the
%% decimal it was sent as (a float's shortest round-trip text, which is the
%% sender's text whenever the sender wrote at most 17 significant digits)
%% and summed as an integer scaled by a power of ten, so 0.1 sent ten times
%% sums to 1.0, never 0.9999999999999999. Rows may be overridden by
%% azmp_emulator:set_recon/3 (state key recon).
-module(azmp_emulator_metering).

-export([handle/4]).

-type state() :: map().
-type resp() :: {integer(), [{binary(), binary()}], term()}.

-define(MAX_BATCH, 25).
-define(HOUR, 3600).
-define(DAY, 86400).
-define(FUTURE_SLACK, 300).

%% @doc usage_event | batch_usage_event | usage_events.
-spec handle(atom(), azmp_emulator_http:request(), map(), state()) -> {resp(), state()}.
handle(usage_event, #{body := Body}, Ctx, State) ->
    case azmp_emulator_json:decode(Body) of
        {ok, Event} when is_map(Event) ->
            case event(Event, maps:get(now_s, Ctx), State) of
                {<<"Accepted">>, Msg, State1} -> {{200, [], Msg}, State1};
                {<<"Duplicate">>, Msg, _} -> {{409, [], conflict(Msg)}, State};
                {Code, Msg, _} -> {{400, [], bad_request(Code, Msg)}, State}
            end;
        _ ->
            {{400, [], bad_request(<<"BadArgument">>, #{<<"message">> =>
                                                            <<"The request body is invalid.">>,
                                                        <<"target">> => <<"usageEvent">>})},
             State}
    end;
handle(batch_usage_event, #{body := Body}, Ctx, State) ->
    case azmp_emulator_json:decode(Body) of
        {ok, #{<<"request">> := Events}} when is_list(Events), length(Events) > ?MAX_BATCH ->
            {{400, [], #{<<"code">> => <<"BadArgument">>,
                         <<"message">> => <<"The batch contained more than 25 usage events.">>,
                         <<"target">> => <<"request">>}}, State};
        {ok, #{<<"request">> := [_ | _] = Events}} ->
            NowS = maps:get(now_s, Ctx),
            {Results, State1} =
                lists:mapfoldl(fun(E, S) when is_map(E) ->
                                       {Status, Msg, S1} = event(E, NowS, received(E, S)),
                                       {batch_item(Status, Msg, E, NowS), S1};
                                  (E, S) ->
                                       {batch_item(<<"BadArgument">>,
                                                   #{<<"message">> => <<"Invalid event.">>}, E,
                                                   NowS), S}
                               end, State, Events),
            Styled = case maps:get(answer_style, State1, emulator) of
                         microsoft_samples -> [microsoft_sample(R) || R <- Results];
                         emulator -> Results
                     end,
            {{200, [], #{<<"result">> => Styled, <<"count">> => length(Results)}}, State1};
        _ ->
            {{400, [], #{<<"code">> => <<"BadArgument">>,
                         <<"message">> => <<"The request must contain 1 to 25 usage events.">>,
                         <<"target">> => <<"request">>}}, State}
    end;
handle(usage_events, #{query := Q}, Ctx, State) ->
    Query = [{string:lowercase(K), V} || {K, V} <- azmp_emulator_util:query(Q)],
    Get = fun(K) -> case lists:keyfind(K, 1, Query) of
                        {_, V} when is_binary(V), V =/= <<>> -> V;
                        _ -> undefined
                    end
          end,
    case {parse_date(Get(<<"usagestartdate">>), start),
          parse_date(Get(<<"usageenddate">>), {finish, maps:get(now_s, Ctx)})} of
        {{ok, Start}, {ok, End}} ->
            Filters = [{offer_id, Get(<<"offerid">>)}, {plan_id, Get(<<"planid">>)},
                       {dimension, Get(<<"dimension">>)},
                       {azure_subscription_id, Get(<<"azuresubscriptionid">>)}],
            Recon = Get(<<"reconstatus">>),
            Events = [E || E = #{time := T} <- maps:get(events, State),
                           T >= Start, T =< End,
                           lists:all(fun({_, undefined}) -> true;
                                        ({K, V}) -> maps:get(K, E) =:= V
                                     end, Filters)],
            Rows = [R || R = #{<<"reconStatus">> := RS}
                             <- aggregate(Events, maps:get(recon, State, #{})),
                         Recon =:= undefined orelse Recon =:= RS],
            {{200, [], Rows}, State};
        _ ->
            {{400, [], #{<<"code">> => <<"BadArgument">>,
                         <<"message">> => <<"usageStartDate is required and must be an "
                                            "ISO 8601 date-time.">>,
                         <<"target">> => <<"usageStartDate">>}}, State}
    end.

%%% ---------------------------------------------------------------- events

%% Every batch item received, whatever its answer, counted per {resourceId, dimension,
%% effectiveStartTime} (azmp_emulator:received/1: how many times each slot was sent).
received(E, State) ->
    Key = {maps:get(<<"resourceId">>, E, undefined), maps:get(<<"dimension">>, E, undefined),
           maps:get(<<"effectiveStartTime">>, E, undefined)},
    Received = maps:get(received, State, #{}),
    State#{received => Received#{Key => maps:get(Key, Received, 0) + 1}}.

%% {Status, Message, NewState}; Message is the accepted message (Accepted,
%% Duplicate) or an error detail.
event(E, NowS, State = #{subs := Subs, usage := Usage, cfg := Cfg}) ->
    Rid = maps:get(<<"resourceId">>, E, undefined),
    Dim = maps:get(<<"dimension">>, E, undefined),
    Plan = maps:get(<<"planId">>, E, undefined),
    Qty = maps:get(<<"quantity">>, E, undefined),
    Time = azmp_emulator_util:parse_time(maps:get(<<"effectiveStartTime">>, E, undefined)),
    if
        not is_binary(Rid) -> detail(<<"BadArgument">>, <<"resourceId is required.">>,
                                     <<"resourceId">>, State);
        not is_binary(Dim) -> detail(<<"BadArgument">>, <<"dimension is required.">>,
                                     <<"dimension">>, State);
        not is_binary(Plan) -> detail(<<"BadArgument">>, <<"planId is required.">>,
                                      <<"planId">>, State);
        Time =:= error -> detail(<<"BadArgument">>, <<"effectiveStartTime is invalid.">>,
                                 <<"effectiveStartTime">>, State);
        true ->
            {ok, T} = Time,
            case Subs of
                #{Rid := Sub} ->
                    Dims = azmp_emulator_fulfillment:plan_dimensions(
                             map_get(plan_id, Sub), Cfg),
                    Key = {Rid, Dim, T - (T rem ?HOUR)},
                    if
                        %% Usage up to a cancellation can still be reported (within the 24 h).
                        not (map_get(status, Sub) =:= <<"Subscribed">> orelse
                             (map_get(status, Sub) =:= <<"Unsubscribed">> andalso
                              is_map_key(unsubscribed_at, Sub) andalso T < map_get(unsubscribed_at, Sub))) ->
                            detail(<<"ResourceNotActive">>,
                                   <<"The resource is not in Subscribed state.">>,
                                   <<"resourceId">>, State);
                        map_get(plan_id, Sub) =/= Plan ->
                            detail(<<"BadArgument">>,
                                   <<"The planId does not match the resource's plan.">>,
                                   <<"planId">>, State);
                        not is_number(Qty) orelse Qty =< 0 ->
                            detail(<<"InvalidQuantity">>,
                                   <<"The quantity must be a number greater than 0.">>,
                                   <<"quantity">>, State);
                        T < NowS - ?DAY ->
                            detail(<<"Expired">>,
                                   <<"The effectiveStartTime is older than 24 hours.">>,
                                   <<"effectiveStartTime">>, State);
                        T > NowS + ?FUTURE_SLACK ->
                            detail(<<"BadArgument">>,
                                   <<"The effectiveStartTime is in the future.">>,
                                   <<"effectiveStartTime">>, State);
                        true ->
                            case {lists:member(Dim, Dims), Usage} of
                                {false, _} ->
                                    detail(<<"InvalidDimension">>,
                                           <<"The dimension '", Dim/binary,
                                             "' is not defined for the plan.">>,
                                           <<"dimension">>, State);
                                {true, #{Key := Accepted}} ->
                                    {<<"Duplicate">>, Accepted, State};
                                {true, _} ->
                                    accept(E, Sub, Key, T, NowS, State)
                            end
                    end;
                _ ->
                    detail(<<"ResourceNotFound">>,
                           <<"The resource '", Rid/binary, "' was not found.">>,
                           <<"resourceId">>, State)
            end
    end.

accept(E, Sub, Key, T, NowS, State = #{usage := Usage, events := Events}) ->
    Msg = #{<<"usageEventId">> => azmp_emulator_util:uuid(),
            <<"status">> => <<"Accepted">>,
            <<"messageTime">> => azmp_emulator_util:iso8601(NowS),
            <<"resourceId">> => maps:get(<<"resourceId">>, E),
            <<"quantity">> => maps:get(<<"quantity">>, E),
            <<"dimension">> => maps:get(<<"dimension">>, E),
            <<"effectiveStartTime">> => maps:get(<<"effectiveStartTime">>, E),
            <<"planId">> => maps:get(<<"planId">>, E)},
    {_, _, Hour} = Key,
    Event = #{resource_id => maps:get(id, Sub), dimension => maps:get(<<"dimension">>, E),
              plan_id => maps:get(plan_id, Sub), offer_id => maps:get(offer_id, Sub),
              azure_subscription_id => maps:get(azure_subscription_id, Sub),
              quantity => maps:get(<<"quantity">>, E), time => T, hour => Hour,
              usage_event_id => maps:get(<<"usageEventId">>, Msg), message_time => NowS},
    {<<"Accepted">>, Msg, State#{usage := Usage#{Key => Msg}, events := [Event | Events]}}.

detail(Code, Message, Target, State) ->
    {Code, #{<<"message">> => Message, <<"target">> => Target, <<"code">> => Code}, State}.

conflict(Accepted) ->
    #{<<"additionalInfo">> => #{<<"acceptedMessage">> => Accepted},
      <<"message">> => <<"This usage event already exist.">>,
      <<"code">> => <<"Conflict">>}.

bad_request(Code, Detail) ->
    #{<<"code">> => <<"BadArgument">>,
      <<"message">> => <<"One or more errors have occurred.">>,
      <<"target">> => <<"usageEventRequest">>,
      <<"details">> => [Detail#{<<"code">> => Code}]}.

batch_item(<<"Accepted">>, Msg, _E, _NowS) -> Msg;
batch_item(<<"Duplicate">>, Accepted, E, NowS) ->
    (echo(E))#{<<"status">> => <<"Duplicate">>,
               <<"messageTime">> => azmp_emulator_util:iso8601(NowS),
               <<"error">> => conflict(Accepted)};
batch_item(Status, Detail, E, NowS) ->
    (echo(E))#{<<"status">> => Status,
               <<"messageTime">> => azmp_emulator_util:iso8601(NowS),
               <<"error">> => Detail}.

%% An answer item as Microsoft's samples write it: effectiveStartTime without an offset, the
%% resourceId in upper case.
microsoft_sample(Item = #{<<"effectiveStartTime">> := T, <<"resourceId">> := R}) when is_binary(T), is_binary(R) ->
    Bare = case azmp_emulator_util:parse_time(T) of
               {ok, S} -> list_to_binary(calendar:system_time_to_rfc3339(S, [{unit, second}, {offset, ""}]));
               error -> T
           end,
    Item#{<<"effectiveStartTime">> := binary:part(Bare, 0, min(19, byte_size(Bare))),
          <<"resourceId">> := string:uppercase(R)};
microsoft_sample(Item) ->
    Item.

echo(E) when is_map(E) ->
    maps:with([<<"resourceId">>, <<"resourceUri">>, <<"quantity">>, <<"dimension">>,
               <<"effectiveStartTime">>, <<"planId">>], E);
echo(_) -> #{}.

%%% ------------------------------------------------------------- reporting

parse_date(undefined, start) -> error;
parse_date(undefined, {finish, NowS}) -> {ok, NowS};
parse_date(V, Which) ->
    case azmp_emulator_util:parse_time(V) of
        {ok, T} when Which =/= start, byte_size(V) =:= 10 -> {ok, T + ?DAY - 1};
        {ok, T} -> {ok, T};
        error -> error
    end.

%% Per-day rows; a set_recon/3 override (key {Rid, Dim, DayStart}) replaces
%% reconStatus and/or processedQuantity.
aggregate(Events, Recon) ->
    Groups = lists:foldl(
               fun(E = #{time := T, quantity := Q}, Acc) ->
                       K = {T - (T rem ?DAY), maps:get(resource_id, E),
                            maps:get(dimension, E), maps:get(plan_id, E)},
                       {Sum, N, _} = maps:get(K, Acc, {dec(0), 0, E}),
                       Acc#{K => {dec_add(Sum, dec(Q)), N + 1, E}}
               end, #{}, Events),
    [begin
         Sum = dec_number(DSum),
         Over = maps:get({Rid, Dim, Day}, Recon, #{}),
         #{<<"usageDate">> => azmp_emulator_util:iso8601(Day),
           <<"usageResourceId">> => Rid, <<"dimension">> => Dim, <<"planId">> => Plan,
           <<"planName">> => Plan, <<"offerId">> => maps:get(offer_id, E),
           <<"offerName">> => maps:get(offer_id, E), <<"offerType">> => <<"SaaS">>,
           <<"azureSubscriptionId">> => maps:get(azure_subscription_id, E),
           <<"reconStatus">> => maps:get(recon_status, Over, <<"Accepted">>),
           <<"submittedQuantity">> => Sum,
           <<"processedQuantity">> => maps:get(processed_quantity, Over, Sum),
           <<"submittedCount">> => N}
     end
     || {{Day, Rid, Dim, Plan}, {DSum, N, E}} <- lists:sort(maps:to_list(Groups))].

%%% ------------------------------------------------------ exact decimals

%% A decimal {Digits, Scale, AnyFloat}: Digits / 10^Scale. A float is taken
%% as its shortest round-trip text (what the sender wrote).
dec(I) when is_integer(I) -> {I, 0, false};
dec(F) when is_float(F) ->
    {Mant, Exp} = case string:split(float_to_list(F, [short]), "e") of
                      [M, E] -> {M, list_to_integer(E)};
                      [M] -> {M, 0}
                  end,
    {IntPart, FracPart} = case string:split(Mant, ".") of
                              [A, B] -> {A, B};
                              [A] -> {A, ""}
                          end,
    Digits = list_to_integer(IntPart ++ FracPart),
    Scale = length(FracPart) - Exp,
    case Scale < 0 of
        true -> {Digits * pow10(-Scale), 0, true};
        false -> {Digits, Scale, true}
    end.

dec_add({D1, S1, F1}, {D2, S2, F2}) ->
    S = max(S1, S2),
    {D1 * pow10(S - S1) + D2 * pow10(S - S2), S, F1 orelse F2}.

%% Back to a JSON number: an integer when every summand was an integer,
%% else the double nearest the exact decimal sum.
dec_number({D, 0, false}) -> D;
dec_number({D, S, _}) ->
    list_to_float(integer_to_list(D) ++ ".0e-" ++ integer_to_list(S)).

pow10(N) -> pow10(N, 1).
pow10(0, Acc) -> Acc;
pow10(N, Acc) -> pow10(N - 1, Acc * 10).
