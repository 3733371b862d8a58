%% @doc Pay-as-you-go usage: recording samples and the ledger. Quantities are exact decimals
%% (6 places); usage is summed per subscription, dimension and UTC hour (the C++ core decides
%% where a sample goes and what an hour bills); `emqx_azure_marketplace_meter' closes the hours and
%% reports them to Azure.
%%
%% Configuration (application env `metering'; inside EMQX from the `metering' section of the
%% plugin's config, see emqx_azure_marketplace_config; checked at start and by validate/1):
%% ```
%% #{dimensions => [#{id => <<"session_minutes">>, unit => <<"minute">>,
%%                    included => #{<<"payg">> => <<"1000">>}}],   % per plan, per term; default 0
%%   grace_s => 300,            % 0 to 86400
%%   lateness_s => 86100,       % how late a sample may come: 0 to 86400, by default 86400 - grace_s
%%   tick_ms => 5000, lease_s => 30, retry_base_s => 60, retry_max_s => 3600,
%%   history_days => 40,        % the days of hours the ledger keeps (at least 35)
%%   dedupe_window_s => 3600}   % a source id counts once this long after it was recorded
%% '''
-module(emqx_azure_marketplace_metering).

-export([record_usage/2, usage_report/3, iso/1]).
-export([config/0, configure/0, decider/1, dedupe_window_s/0, dimension/1, included/2, includes/0,
         quantity_json/1, format/1]).

-include_lib("kernel/include/logger.hrl").

-define(NIF, emqx_azure_marketplace_nif).
-define(LINKS, emqx_azure_marketplace_store_links).
-define(HISTORY, emqx_azure_marketplace_store_usage_history).

-type sample() :: #{dimension := binary(), quantity := number() | binary(), at := integer(), source_id := binary()}.
-type refusal() :: emqx_azure_marketplace_nif:usage_refusal() | {badarg, atom()}.
-export_type([sample/0, refusal/0]).

%% @doc Records a sample of the account's usage: `at' in unix milliseconds, `quantity' a number or
%% an exact decimal binary (<<"12.5">>), `source_id' the caller's id for it (a retried call with the
%% same id counts once). `ok' once it is on disc.
-spec record_usage(binary(), sample()) -> ok | {error, refusal()}.
record_usage(Account, Sample) ->
    case check(Account, Sample) of
        {ok, Dim, Quantity, At, SourceId} -> record(Account, Dim, Quantity, At, SourceId);
        {error, _} = Error -> Error
    end.

check(Account, #{dimension := Dim, quantity := Q, at := At, source_id := SourceId}) ->
    case {?NIF:valid_id(Account), ?NIF:valid_id(Dim), is_integer(At) andalso abs(At) < 1 bsl 50,
          ?NIF:valid_id(SourceId)} of
        {false, _, _, _} -> {error, {badarg, account_id}};
        {_, false, _, _} -> {error, {badarg, dimension}};
        {_, _, false, _} -> {error, {badarg, at}};
        {_, _, _, false} -> {error, {badarg, source_id}};
        _ ->
            case ?NIF:usage_quantity(Q) of
                {ok, Micros} -> {ok, Dim, Micros, At, SourceId};
                error -> {error, bad_quantity}
            end
    end;
check(_Account, Sample) when is_map(Sample) ->
    [Missing | _] = [K || K <- [dimension, quantity, at, source_id], not maps:is_key(K, Sample)],
    {error, {badarg, Missing}};
check(_Account, _Sample) ->
    {error, {badarg, sample}}.

record(Account, Dim, Quantity, At, SourceId) ->
    {State, CancelledAt, SubId, ActivatedAt} =
        case ?LINKS:link_usage(Account) of
            {_, _, _, _} = Link -> Link;
            undefined -> {emqx_azure_marketplace_lifecycle:link_state(Account), undefined, <<>>, undefined}
        end,
    Hour = ?NIF:usage_hour(At),
    Facts = {Quantity, At, Hour, State, CancelledAt, ActivatedAt, is_map_key(Dim, maps:get(dimension_ids, recording()))},
    emqx_azure_marketplace_recorder:record({Account, SourceId, {SubId, Dim, Hour}, Quantity, Facts}).

%% @doc What the core decides of a sample (the recorder's Decide for a group, given it by the supervisor), on the facts its
%% caller gathered, the bucket's state, the time of the group's transaction and the grace.
%% TotalOf(Hour) is what that hour of the sample's subscription and dimension holds already.
-spec decider(integer()) -> fun((tuple(), boolean(), fun((integer()) -> non_neg_integer())) ->
                                   {ok, integer(), integer() | undefined, integer()}
                                   | {error, emqx_azure_marketplace_nif:usage_refusal()}).
decider(Now) ->
    #{grace_s := Grace, lateness_s := Lateness} = recording(),
    Current = ?NIF:usage_hour(Now * 1000),
    fun({Quantity, At, Hour, State, CancelledAt, ActivatedAt, DimKnown}, Open, TotalOf) ->
        ?NIF:usage_plan_record(#{dimension_known => DimKnown, quantity => Quantity, at_ms => At, state => State,
                                 cancelled_at => CancelledAt, activated_at => ActivatedAt, now => Now,
                                 grace_s => Grace, lateness_s => Lateness, bucket_open => Open,
                                 own_total => TotalOf(Hour), current_total => TotalOf(Current)})
    end.

%% @doc The ledger of the account's subscription from hour From to hour To (unix seconds, UTC):
%% per hour and dimension what was recorded, what the included quantity covered, what was reported
%% under which plan and what became of it (Azure's event id, carry-forwards in and out, rejections,
%% whether an attempt's outcome is still unknown). Quantities are exact decimal binaries.
-spec usage_report(binary(), integer(), integer()) -> {ok, [map()]} | {error, not_linked}.
usage_report(Account, From, To) when is_integer(From), is_integer(To) ->
    case ?LINKS:link_state(Account) of
        #{subscription_id := SubId} -> {ok, [row(R) || R <- ?HISTORY:usage_rows(SubId, From, To)]};
        undefined -> {error, not_linked}
    end.

row(R = #{recorded := Rec, absorbed := Abs, reported := Rep, carried_in := In, carried_out := Out}) ->
    Base = maps:with([hour, dimension, status, event_id, message_time, reason, attempts, plan_id, outcome_unknown], R),
    Base#{recorded => fmt(Rec), included => fmt(Abs), reported => fmt(Rep),
          carried_in => [#{from_hour => H, quantity => fmt(Q), why => W} || {H, Q, W} <- In],
          carried_out => case Out of
                             {H, Q, W} -> #{to_hour => H, quantity => fmt(Q), why => W};
                             undefined -> undefined
                         end,
          azure_quantity => case maps:get(azure_quantity, R) of undefined -> undefined; A -> fmt(A) end}.

fmt(Micros) -> ?NIF:usage_format(Micros).

%% @doc Micro-units as exact decimal text.
-spec format(integer()) -> binary().
format(Micros) -> fmt(Micros).

%% @doc A time (unix s) as Azure's metering API writes it: ISO 8601 in UTC.
-spec iso(integer()) -> binary().
iso(T) -> list_to_binary(calendar:system_time_to_rfc3339(T, [{unit, second}, {offset, "Z"}])).

%%--------------------------------------------------------------------
%% Configuration

%% @doc The metering config: the application env `metering' with every timing resolved by the core
%% (the operator's where accepted, else the default; a refused one is logged once per change).
-spec config() -> map().
config() -> element(1, configure()).

%% What recording reads of the config, kept in a persistent term rather than read from the
%% application env for every sample: the grace, the dimension ids, the dedupe window. Made again
%% by configure/0 when the config changed (at start, when a config is applied, and at the
%% recorder's sweep, at least every minute).
-define(RECORDING, {?MODULE, recording}).

recording() ->
    case persistent_term:get(?RECORDING, undefined) of
        {_, _, R} -> R;
        undefined -> element(2, configure())
    end.

%% @doc Reads the metering config (application env `metering') again, for recording: call it after
%% changing the env at runtime (else the change is seen within a minute).
-spec configure() -> {map(), map()}.
configure() ->
    Env = application:get_env(emqx_azure_marketplace, metering, #{}),
    case persistent_term:get(?RECORDING, undefined) of
        {Env, Config, R} ->
            {Config, R};
        _ ->
            {Settings, Refused} = ?NIF:usage_settings(Env),
            Refused =/= [] andalso
                ?LOG_WARNING(#{msg => "azure_marketplace_metering_setting_ignored", refused => Refused,
                               used => maps:with([K || {K, _} <- Refused], Settings)}),
            Config = maps:merge(Env, Settings),
            R = maps:with([grace_s, lateness_s, dedupe_window_s], Settings),
            R1 = R#{dimension_ids => maps:from_list([{Id, true} || #{id := Id} <- dimensions(Env)])},
            persistent_term:put(?RECORDING, {Env, Config, R1}),
            {Config, R1}
    end.

dimensions(#{dimensions := Dims}) when is_list(Dims) -> [D || D = #{id := _} <- Dims];
dimensions(_) -> [].

%% @doc How long a source id counts once after it was recorded (`dedupe_window_s', 3600 s), the
%% config read again first (configure/0).
-spec dedupe_window_s() -> pos_integer().
dedupe_window_s() ->
    {_, #{dedupe_window_s := Window}} = configure(),
    Window.

%% @doc The configured dimension with this id, or undefined.
-spec dimension(binary()) -> map() | undefined.
dimension(Id) ->
    case [D || D = #{id := I} <- maps:get(dimensions, config(), []), I =:= Id] of
        [D | _] -> D;
        [] -> undefined
    end.

%% @doc The quantity of Dimension included in Plan's fee per term, in micro-units (0 by default).
-spec included(binary(), binary() | undefined) -> non_neg_integer().
included(Dim, Plan) -> (includes())(Dim, Plan).

%% @doc included/2 for many hours (an hour's close): the config read once.
-spec includes() -> fun((binary(), binary() | undefined) -> non_neg_integer()).
includes() ->
    %% The first dimension of an id counts, as in dimension/1.
    Table = maps:from_list(lists:reverse([{Id, maps:get(included, D, #{})}
                                          || D = #{id := Id} <- maps:get(dimensions, config(), [])])),
    fun(Dim, Plan) ->
        case Table of
            #{Dim := #{Plan := Q}} ->
                {ok, M} = ?NIF:usage_quantity(Q),
                M;
            _ ->
                0
        end
    end.

%% @doc A quantity for Azure's JSON: an integer when whole, else the float closest to the decimal.
-spec quantity_json(non_neg_integer()) -> number().
quantity_json(Micros) when Micros rem 1000000 =:= 0 -> Micros div 1000000;
quantity_json(Micros) -> Micros / 1000000.
