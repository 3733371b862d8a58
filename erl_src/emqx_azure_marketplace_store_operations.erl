%% @doc Webhook operations (azmp_operation): which of Azure's operations this plugin has handled,
%% and with what outcome, so that a redelivery is answered without acting twice; one process
%% handles an operation at a time (claim_operation/5). An operation that changes a link is
%% recorded as handled in the link's transaction (record_operation_tx/3).
-module(emqx_azure_marketplace_store_operations).

-export([tables/0]).
-export([operation/1, claim_operation/5, release_operation/1, finish_operation/5]).
%% inside another store's transaction
-export([record_operation_tx/3]).

-include("emqx_azure_marketplace.hrl").

-define(DB, emqx_azure_marketplace_db).

%% {OpId, SubId, Action}
-type op() :: {binary(), binary(), binary()}.
-export_type([op/0]).

%% @doc The operations' table: {Name, Fields, Indexes}.
-spec tables() -> [{atom(), [atom()], [atom()]}].
tables() -> [{azmp_operation, record_info(fields, azmp_operation), []}].

%% @doc What is known of an operation, or undefined.
-spec operation(binary()) -> #{state := in_progress | done, outcome := term(), claimed_until := integer()} | undefined.
operation(OpId) ->
    case ?DB:one(azmp_operation, OpId) of
        #azmp_operation{state = S, outcome = O, claimed_until = C} -> #{state => S, outcome => O, claimed_until => C};
        undefined -> undefined
    end.

%% @doc Checks and records at once that this process handles the operation (until Until):
%% `claimed', or `{done, Outcome}' when handled already, or `busy' while another handles it.
-spec claim_operation(binary(), binary(), binary(), integer(), integer()) -> claimed | busy | {done, term()}.
claim_operation(OpId, SubId, Action, Now, Until) ->
    ?DB:tx_ok(fun() ->
        case ?DB:wread({azmp_operation, OpId}) of
            [#azmp_operation{state = done, outcome = O}] ->
                {done, O};
            [#azmp_operation{state = in_progress, claimed_until = C}] when C >= Now ->
                busy;
            _ ->
                ?DB:write(#azmp_operation{id = OpId, subscription_id = SubId, action = Action, at = Now,
                                          state = in_progress, claimed_until = Until}),
                claimed
        end
    end).

%% @doc Gives a claimed operation back, unhandled (Azure delivers it again).
-spec release_operation(binary()) -> ok.
release_operation(OpId) ->
    ?DB:tx_ok(fun() ->
        case ?DB:wread({azmp_operation, OpId}) of
            [#azmp_operation{state = in_progress}] -> ?DB:delete({azmp_operation, OpId});
            _ -> ok
        end
    end).

%% @doc Records an operation handled with Outcome (when no link changed with it).
-spec finish_operation(binary(), binary(), binary(), term(), integer()) -> ok.
finish_operation(OpId, SubId, Action, Outcome, Now) ->
    ?DB:tx_ok(fun() -> record_operation_tx({OpId, SubId, Action}, Outcome, Now) end).

%% @doc Inside a transaction: records the operation (if any) as handled with Outcome.
-spec record_operation_tx(op() | undefined, term(), integer()) -> ok.
record_operation_tx(undefined, _Outcome, _Now) ->
    ok;
record_operation_tx({OpId, SubId, Action}, Outcome, Now) ->
    ?DB:write(#azmp_operation{id = OpId, subscription_id = SubId, action = Action, outcome = Outcome, at = Now,
                              state = done}).
