%% @doc The outbox: the effects a committed plan still has to perform (azmp_effect), each record
%% claimed by the node that committed it for a while, then by the sweep. Written inside the
%% transaction that commits the plan (emqx_azure_marketplace_store_plans).
-module(emqx_azure_marketplace_store_outbox).

-export([tables/0, effects_pending/0]).
-export([effect/1, effect_done/2, claim_stale_effects/3]).
%% inside another store's transaction
-export([write_tx/4]).

-include("emqx_azure_marketplace.hrl").

-define(DB, emqx_azure_marketplace_db).

-type effect() :: emqx_azure_marketplace_nif:effect().
-type effect_key() :: {integer(), node(), integer()}.
-export_type([effect/0, effect_key/0]).

%% How long the process that committed effects has to perform them before the sweep may.
-define(EFFECT_CLAIM_S, 60).

%% @doc The outbox's table: {Name, Fields, Indexes}.
-spec tables() -> [{atom(), [atom()], [atom()]}].
tables() -> [{azmp_effect, record_info(fields, azmp_effect), []}].

%% @doc How many records of effects are still to perform (a local read).
-spec effects_pending() -> non_neg_integer().
effects_pending() -> ?DB:table_info(azmp_effect, size).

%% @doc Inside a transaction: records effects to be performed (none: nothing recorded); their
%% record's key.
-spec write_tx(binary(), binary() | undefined, [effect()], integer()) -> effect_key() | none.
write_tx(_Account, _SubId, [], _Now) ->
    none;
write_tx(Account, SubId, Effects, Now) ->
    K = {Now, node(), erlang:unique_integer([positive, monotonic])},
    ?DB:write(#azmp_effect{id = K, account_id = Account, subscription_id = SubId, effects = Effects,
                           owner = node(), claimed_until = Now + ?EFFECT_CLAIM_S}),
    K.

%% @doc The effects still to perform of a record, or undefined (all performed).
-spec effect(effect_key()) -> #{account_id := binary(), subscription_id := binary() | undefined,
                                effects := [effect()]} | undefined.
effect(Key) ->
    case ?DB:one(azmp_effect, Key) of
        #azmp_effect{account_id = A, subscription_id = S, effects = Es} -> #{account_id => A, subscription_id => S, effects => Es};
        undefined -> undefined
    end.

%% @doc Strikes one performed effect off the record (the record goes with its last effect).
-spec effect_done(effect_key(), effect()) -> ok.
effect_done(Key, Effect) ->
    ?DB:tx_ok(fun() ->
        case ?DB:wread({azmp_effect, Key}) of
            [R = #azmp_effect{effects = Es}] ->
                case lists:delete(Effect, Es) of
                    [] -> ?DB:delete({azmp_effect, Key});
                    Rest -> ?DB:write(R#azmp_effect{effects = Rest})
                end;
            [] ->
                ok
        end
    end).

%% @doc Claims, until Until, the effects left unperformed: those of Node (which has just restarted:
%% nothing of its own is being performed) and those whose claim has run out at Now.
-spec claim_stale_effects(node() | undefined, integer(), integer()) -> [effect_key()].
claim_stale_effects(Node, Now, Until) ->
    Candidates = [K || #azmp_effect{id = K, owner = O, claimed_until = C} <- ?DB:dirty_all(azmp_effect),
                       O =:= Node orelse C < Now],
    lists:filtermap(
        fun(K) ->
            ?DB:tx_ok(fun() ->
                case ?DB:wread({azmp_effect, K}) of
                    [E = #azmp_effect{owner = O, claimed_until = C}] when O =:= Node; C < Now ->
                        ?DB:write(E#azmp_effect{owner = node(), claimed_until = Until}),
                        {true, K};
                    _ ->
                        false
                end
            end)
        end,
        Candidates).
