%% @doc The fulfillment reconciliation's state: where its pass stands (azmp_recon_pass: the next
%% page's continuation, when the pass started, pages read, pages of the last full pass, when the
%% next call is due), the node that runs passes (a lease in the same row: one node at a time, taken
%% over once it runs out), and the subscriptions in doubt (azmp_recon_doubt), checked before pages.
%% The checkpoint is written after each page's repairs, fenced by the lease: a restart, or another
%% node once the lease has run out, resumes the pass where it stands.
-module(emqx_azure_marketplace_store_recon).

-export([tables/0, checkpoint/0, take_lease/3, save/3, release_lease/1]).
-export([flag_doubt/3, doubts/1, clear_doubt/1]).

-include("emqx_azure_marketplace.hrl").

-define(DB, emqx_azure_marketplace_db).

-type checkpoint() :: #{continuation := first | binary(), started_ms := integer(),
                        pages_done := non_neg_integer(), pages_last_pass := non_neg_integer(),
                        next_at_ms := integer(), last_pass_ms := non_neg_integer()}.
-export_type([checkpoint/0]).

%% @doc The reconciliation's tables: {Name, Fields, Indexes}.
-spec tables() -> [{atom(), [atom()], [atom()]}].
tables() ->
    [{azmp_recon_pass, record_info(fields, azmp_recon_pass), []},
     {azmp_recon_doubt, record_info(fields, azmp_recon_doubt), []}].

%% @doc Where the pass stands (a dirty read; before any pass: at the first page, nothing due).
-spec checkpoint() -> checkpoint().
checkpoint() -> to_map(row(?DB:one(azmp_recon_pass, pass))).

%% @doc Takes (or renews) the lease to run passes for Node until UntilMs: the checkpoint, or
%% `{taken, Until}' while another node holds it.
-spec take_lease(node(), integer(), integer()) -> {ok, checkpoint()} | {taken, integer()}.
take_lease(Node, NowMs, UntilMs) ->
    ?DB:tx_or(fun() ->
        case row(one_tx()) of
            #azmp_recon_pass{node = Other, lease_until_ms = U} when Other =/= Node, Other =/= undefined, U > NowMs ->
                {taken, U};
            R ->
                ?DB:write(R#azmp_recon_pass{node = Node, lease_until_ms = UntilMs}),
                {ok, to_map(R)}
        end
    end, {taken, NowMs}).

%% @doc Commits where the pass stands, and renews the lease until UntilMs, if Node still holds it
%% (`lost' otherwise: another node took it over; it goes on from its own reading).
-spec save(node(), checkpoint(), integer()) -> ok | lost.
save(Node, C, UntilMs) ->
    ?DB:tx_or(fun() ->
        case row(one_tx()) of
            #azmp_recon_pass{node = Node} = R ->
                #{continuation := Cont, started_ms := S, pages_done := D, pages_last_pass := L, next_at_ms := N,
                  last_pass_ms := P} = C,
                ?DB:write(R#azmp_recon_pass{continuation = Cont, started_ms = S, pages_done = D, pages_last_pass = L,
                                            next_at_ms = N, lease_until_ms = UntilMs, last_pass_ms = P}),
                ok;
            _ ->
                lost
        end
    end, lost).

%% @doc Node gives the lease up (it stops): another node may take the pass over at once.
-spec release_lease(node()) -> ok.
release_lease(Node) ->
    ?DB:tx_or(fun() ->
        case row(one_tx()) of
            #azmp_recon_pass{node = Node} = R -> ?DB:write(R#azmp_recon_pass{node = undefined, lease_until_ms = 0});
            _ -> ok
        end
    end, ok).

one_tx() ->
    case ?DB:wread({azmp_recon_pass, pass}) of
        [R] -> R;
        [] -> undefined
    end.

row(undefined) -> #azmp_recon_pass{};
row(R) -> R.

to_map(#azmp_recon_pass{continuation = C, started_ms = S, pages_done = D, pages_last_pass = L, next_at_ms = N,
                        last_pass_ms = P}) ->
    #{continuation => C, started_ms => S, pages_done => D, pages_last_pass => L, next_at_ms => N, last_pass_ms => P}.

%% @doc The subscription's state is in doubt (Why: webhook_deferred, webhook_failed, operator,
%% recent_change): the next page of a pass is read after it is checked. Kept with its first Since.
-spec flag_doubt(binary(), atom(), integer()) -> ok.
flag_doubt(SubId, Why, Now) when is_binary(SubId) ->
    ?DB:tx_or(fun() ->
        case ?DB:wread({azmp_recon_doubt, SubId}) of
            [_] -> ok;
            [] -> ?DB:write(#azmp_recon_doubt{subscription_id = SubId, since = Now, why = Why})
        end
    end, ok).

%% @doc Up to Max subscriptions in doubt, the longest in doubt first (a dirty read: the set is small).
-spec doubts(non_neg_integer()) -> [binary()].
doubts(Max) ->
    Sorted = lists:sort([{S, Id} || #azmp_recon_doubt{subscription_id = Id, since = S} <- ?DB:dirty_all(azmp_recon_doubt)]),
    [Id || {_, Id} <- lists:sublist(Sorted, Max)].

%% @doc The subscription was checked.
-spec clear_doubt(binary()) -> ok.
clear_doubt(SubId) ->
    ?DB:tx_or(fun() -> ?DB:delete({azmp_recon_doubt, SubId}) end, ok).
