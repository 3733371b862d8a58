%% @doc Landings (azmp_landing) and the tokens they were made for (azmp_landing_token): a
%% customer's arrival from Azure with a marketplace token, kept until they sign in and redeem it
%% (it then becomes the account's linking job, in the same transaction). One process resolves a
%% token however many copies of its landing arrive at once.
-module(emqx_azure_marketplace_store_landings).

-export([tables/0]).
-export([landing/1, landing_count/0, landing_of_token/3, claim_landing/4, release_landing/2, put_landing/5,
         redeem_landing/4, delete_expired_landings/1]).

-include("emqx_azure_marketplace.hrl").

-define(DB, emqx_azure_marketplace_db).

%% @doc The tables of landings and their tokens: {Name, Fields, Indexes}.
-spec tables() -> [{atom(), [atom()], [atom()]}].
tables() ->
    [{azmp_landing, record_info(fields, azmp_landing), []},
     {azmp_landing_token, record_info(fields, azmp_landing_token), []}].

%% @doc A landing's work and expiry, or undefined.
-spec landing(binary()) -> #{work := term(), expires_at := integer()} | undefined.
landing(Id) ->
    case ?DB:one(azmp_landing, Id) of
        #azmp_landing{work = W, expires_at = At} -> #{work => W, expires_at => At};
        undefined -> undefined
    end.

%% @doc How many landings are kept.
-spec landing_count() -> non_neg_integer().
landing_count() -> ?DB:table_info(azmp_landing, size).

%% @doc What is known of a token (by its hash), read without a lock: its live landing, `refused'
%% (Azure refused it a moment ago), `busy' (a process is resolving it) or `none'.
-spec landing_of_token(binary(), integer(), fun((integer()) -> boolean())) -> {ok, binary()} | refused | busy | none.
landing_of_token(Hash, Now, Usable) ->
    token_state(?DB:dirty_read(azmp_landing_token, Hash), fun(Id) -> ?DB:dirty_read(azmp_landing, Id) end,
                Now, Usable).

token_state([#azmp_landing_token{landing_id = {refused, Until}}], _Read, Now, _Usable) when Until >= Now -> refused;
token_state([#azmp_landing_token{landing_id = {resolving, Until}}], _Read, Now, _Usable) when Until >= Now -> busy;
token_state([#azmp_landing_token{landing_id = Id}], Read, _Now, Usable) when is_binary(Id) ->
    case Read(Id) of
        [#azmp_landing{expires_at = At}] -> case Usable(At) of true -> {ok, Id}; false -> none end;
        [] -> none
    end;
token_state(_, _Read, _Now, _Usable) ->
    none.

%% @doc The check that a token has no landing and the claim of its resolution, in one transaction:
%% one process resolves a token however many copies of its landing arrive at once. `claimed' (this
%% process resolves it, until Until, then puts the landing or releases the claim), or what
%% landing_of_token/3 says.
-spec claim_landing(binary(), integer(), integer(), fun((integer()) -> boolean())) ->
    {ok, binary()} | refused | busy | claimed.
claim_landing(Hash, Now, Until, Usable) ->
    ?DB:tx_ok(fun() ->
        case token_state(?DB:wread({azmp_landing_token, Hash}), fun(Id) -> ?DB:read(azmp_landing, Id) end,
                         Now, Usable) of
            none ->
                ?DB:write(#azmp_landing_token{token_hash = Hash, landing_id = {resolving, Until}}),
                claimed;
            Known ->
                Known
        end
    end).

%% @doc Ends a claim without a landing: `refused' until Until (Azure refused the token: copies get
%% that answer without asking again), or `free' (the resolution failed: the next copy claims it).
-spec release_landing(binary(), {refused, integer()} | free) -> ok.
release_landing(Hash, Outcome) ->
    ?DB:tx_ok(fun() ->
        case ?DB:wread({azmp_landing_token, Hash}) of
            [#azmp_landing_token{landing_id = {resolving, _}}] ->
                case Outcome of
                    free -> ?DB:delete({azmp_landing_token, Hash});
                    {refused, _} -> ?DB:write(#azmp_landing_token{token_hash = Hash, landing_id = Outcome})
                end;
            _ ->
                ok
        end
    end).

%% @doc Keeps a landing (durably: it is acknowledged to the customer next), unless Max landings
%% are kept already (`busy': landings are made before anyone signs in, so they are bounded; the
%% token's claim is then released).
-spec put_landing(binary(), binary(), term(), integer(), pos_integer()) -> ok | {error, busy}.
put_landing(Id, Hash, Work, ExpiresAt, Max) ->
    case ?DB:table_info(azmp_landing, size) < Max of
        true ->
            ?DB:tx_ok(fun() ->
                ?DB:write(#azmp_landing{id = Id, work = Work, expires_at = ExpiresAt}),
                ?DB:write(#azmp_landing_token{token_hash = Hash, landing_id = Id})
            end);
        false ->
            release_landing(Hash, free),
            {error, busy}
    end.

%% @doc Removes the landings expired at Now (and their tokens' entries); how many.
-spec delete_expired_landings(integer()) -> non_neg_integer().
delete_expired_landings(Now) ->
    Head = ?DB:pattern(azmp_landing, [{#azmp_landing.expires_at, '$1'}]),
    Ids = ?DB:dirty_select(azmp_landing, [{Head, [{'=<', '$1', Now}], [{element, #azmp_landing.id, '$_'}]}]),
    TokenHead = ?DB:pattern(azmp_landing_token, [{#azmp_landing_token.token_hash, '$1'},
                                                 {#azmp_landing_token.landing_id, '$2'}]),
    Tokens = ?DB:dirty_select(azmp_landing_token, [{TokenHead, [], [{{'$1', '$2'}}]}]),
    Gone = sets:from_list(Ids),
    %% a claim or a refusal whose time has passed (its process died, or it is old news) goes too
    Done = fun({_, Until}) -> Until < Now; (Id) -> sets:is_element(Id, Gone) end,
    ?DB:tx_ok(fun() ->
        _ = [?DB:delete({azmp_landing, Id}) || Id <- Ids],
        _ = [?DB:delete({azmp_landing_token, H}) || {H, Id} <- Tokens, Done(Id)],
        ok
    end),
    length(Ids).

%% @doc Turns a landing into the account's linking job, once: the landing is consumed in the same
%% transaction. Usable(ExpiresAt) says whether it may still be used.
-spec redeem_landing(binary(), binary(), integer(), fun((integer()) -> boolean())) ->
    ok | {error, landing_expired | link_in_progress}.
redeem_landing(Account, Id, Now, Usable) ->
    ?DB:tx_ok(fun() ->
        case ?DB:wread({azmp_landing, Id}) of
            [#azmp_landing{work = Work, expires_at = At}] ->
                case Usable(At) of
                    true ->
                        case emqx_azure_marketplace_store_jobs:new_job_tx(Account, Work, Now) of
                            ok -> ?DB:delete({azmp_landing, Id}), ok;
                            Error -> Error
                        end;
                    false ->
                        ?DB:delete({azmp_landing, Id}),
                        {error, landing_expired}
                end;
            [] ->
                {error, landing_expired}
        end
    end).

