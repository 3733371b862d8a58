%% @doc Deadlines (azmp_deadline): what is to be done to an account's deployment at a given time
%% (suspend, delete), one pending deadline per account, deployment and kind. Plans schedule and
%% cancel them inside the transaction that commits them (write_effect_tx/2); one node at a time
%% runs a due deadline (claim_deadline/3); its end is committed with its own plan's effects
%% (emqx_azure_marketplace_store_plans:finish_deadline/4).
-module(emqx_azure_marketplace_store_deadlines).

-export([tables/0, deadlines_pending/0]).
-export([deadlines_due/1, deadlines_of/1, claim_deadline/3]).
%% inside another store's transaction
-export([write_effect_tx/2, done_tx/1]).

-include("emqx_azure_marketplace.hrl").

-define(DB, emqx_azure_marketplace_db).

%% @doc The deadlines' table: {Name, Fields, Indexes}.
-spec tables() -> [{atom(), [atom()], [atom()]}].
tables() -> [{azmp_deadline, record_info(fields, azmp_deadline), []}].

%% @doc How many deadlines are not done (a local read).
-spec deadlines_pending() -> non_neg_integer().
deadlines_pending() ->
    length(?DB:dirty_select(azmp_deadline, [{?DB:pattern(azmp_deadline, [{#azmp_deadline.done, false}]), [], [true]}])).

%% @doc Inside a transaction, a plan's deadline effect. One pending deadline per account,
%% deployment and kind: a pending one is kept as it is; a finished or cancelled one is replaced.
%% `changed' when anything was written.
-spec write_effect_tx(binary(), {schedule_deadline, binary(), stop | delete, integer()} | cancel_deadlines) ->
          changed | unchanged.
write_effect_tx(Account, {schedule_deadline, Deployment, Kind, At}) ->
    Key = {Account, Deployment, Kind},
    case ?DB:wread({azmp_deadline, Key}) of
        [#azmp_deadline{done = false}] ->
            unchanged;
        _ ->
            ?DB:write(#azmp_deadline{key = Key, account_id = Account, deployment_id = Deployment, kind = Kind, at = At}),
            changed
    end;
write_effect_tx(Account, cancel_deadlines) ->
    Pending = ?DB:match_object(?DB:pattern(azmp_deadline, [{#azmp_deadline.account_id, Account},
                                                           {#azmp_deadline.done, false}])),
    lists:foreach(fun(D) -> ?DB:write(D#azmp_deadline{done = true}) end, Pending),
    case Pending of
        [] -> unchanged;
        _ -> changed
    end.

%% @doc The account's deadlines, pending or done.
-spec deadlines_of(binary()) -> [map()].
deadlines_of(Account) ->
    [deadline_map(D) || D <- ?DB:dirty_match_object(?DB:pattern(azmp_deadline, [{#azmp_deadline.account_id, Account}]))].

deadline_map(#azmp_deadline{key = K, account_id = A, deployment_id = D, kind = Kind, at = At, done = Done}) ->
    #{key => K, account_id => A, deployment_id => D, kind => Kind, at => At, done => Done}.

%% @doc Deadlines due at Now, not done.
-spec deadlines_due(integer()) -> [map()].
deadlines_due(Now) ->
    Head = ?DB:pattern(azmp_deadline, [{#azmp_deadline.at, '$1'}, {#azmp_deadline.done, false}]),
    MS = [{Head, [{'=<', '$1', Now}], ['$_']}],
    [deadline_map(D) || D <- ?DB:dirty_select(azmp_deadline, MS)].

%% @doc Claims a due deadline for this node until Until (unix seconds), in a transaction: exactly
%% one node wins a deadline while its claim lasts.
-spec claim_deadline(term(), integer(), integer()) -> {ok, map()} | taken.
claim_deadline(Key, Now, Until) ->
    ?DB:tx_or(fun() ->
        case ?DB:wread({azmp_deadline, Key}) of
            [D = #azmp_deadline{done = false, at = At, claimed_until = C}] when At =< Now, C < Now ->
                claimed(D#azmp_deadline{claimed_by = node(), claimed_until = Until});
            _ ->
                taken
        end
    end, taken).

claimed(D) ->
    ?DB:write(D),
    {ok, deadline_map(D)}.

%% @doc Inside a transaction: the deadline is done (gone already: nothing to do).
-spec done_tx(term()) -> ok.
done_tx(Key) ->
    case ?DB:wread({azmp_deadline, Key}) of
        [D] -> ?DB:write(D#azmp_deadline{done = true});
        [] -> ok
    end.
