%% @doc The meter's daily reconciliation: what the ledger says Azure took, against Azure's
%% usageEvents, per subscription and dimension (the core compares; differences are logged).
-module(emqx_azure_marketplace_usage_reconcile).

-export([day/1]).

-include_lib("kernel/include/logger.hrl").

-define(NIF, emqx_azure_marketplace_nif).
-define(HISTORY, emqx_azure_marketplace_store_usage_history).
-define(METERING, emqx_azure_marketplace_metering).

%% @doc A day (its first and last second) of the ledger against Azure's usageEvents: the pairs of
%% subscription and dimension that differ, as the core reads them. One query per dimension
%% (configured, or in the day's ledger): with many subscriptions a day's rows are many, and
%% Azure's answer for all dimensions at once is that many times larger.
-spec day({integer(), integer()}) -> {ok, [map()]} | {error, term()}.
day({From, To}) ->
    Ledger = ?HISTORY:usage_between(From, To),
    Dims = lists:usort([Id || #{id := Id} <- maps:get(dimensions, ?METERING:config(), [])] ++
                       [D || #{dimension := D} <- Ledger]),
    Filter = #{usage_start_date => ?METERING:iso(From), usage_end_date => ?METERING:iso(To)},
    case reconcile_dims(Dims, Filter, Ledger, []) of
        {ok, Diffs0} ->
            Diffs = [D#{day => From, billed => ?METERING:format(B), processed => fmt_opt(P)}
                     || D = #{billed := B, processed := P} <- Diffs0],
            Diffs =/= [] andalso
                ?LOG_WARNING(#{msg => "azure_marketplace_usage_reconcile_differences", day => From,
                               differences => length(Diffs)}),
            {ok, Diffs};
        {error, Reason} ->
            Redacted = emqx_azure_marketplace_client:redact(Reason),
            ?LOG_WARNING(#{msg => "azure_marketplace_usage_reconcile_failed", day => From, reason => Redacted}),
            {error, Redacted}
    end.

reconcile_dims([], _Filter, _Ledger, Acc) ->
    {ok, lists:append(lists:reverse(Acc))};
reconcile_dims([Dim | Dims], Filter, Ledger, Acc) ->
    Result = emqx_azure_marketplace_client:get_usage_events(emqx_azure_marketplace_azure:client(),
                                                            Filter#{dimension => Dim}),
    case ?NIF:usage_reconcile_answer([H || H = #{dimension := D} <- Ledger, D =:= Dim], Result) of
        {ok, Diffs} -> reconcile_dims(Dims, Filter, Ledger, [Diffs | Acc]);
        retry -> {error, case Result of {error, Reason} -> Reason; _ -> bad_response end}
    end.

fmt_opt(undefined) -> undefined;
fmt_opt(M) -> ?METERING:format(M).
