%% @doc Linking jobs (azmp_job): an account's linking in progress (or failed), which survives
%% restarts and which any node may pick up once its lease has run out. A job's step commits its
%% outcome in one transaction with the claim on the subscription, the link (the links store's,
%% through its *_tx functions) and the effects it plans (the outbox's).
-module(emqx_azure_marketplace_store_jobs).

-export([tables/0, jobs_unfinished/0]).
-export([job/1, job_phase/1, jobs_ready/1, start_job/3, claim_job/3, resume_jobs_of/1, decide_link/4, commit_linked/5,
         commit_link_failed/4, retry_job/4, job_activating/2]).
%% inside another store's transaction
-export([new_job_tx/3]).

-include("emqx_azure_marketplace.hrl").

-define(DB, emqx_azure_marketplace_db).
-define(LINKS, emqx_azure_marketplace_store_links).
-define(OUTBOX, emqx_azure_marketplace_store_outbox).

-type effect() :: ?OUTBOX:effect().
-type effect_key() :: ?OUTBOX:effect_key().

%% @doc The jobs' table: {Name, Fields, Indexes}.
-spec tables() -> [{atom(), [atom()], [atom()]}].
tables() -> [{azmp_job, record_info(fields, azmp_job), []}].

%% @doc How many jobs are not finished (failed ones are: a local read).
-spec jobs_unfinished() -> non_neg_integer().
jobs_unfinished() ->
    length(?DB:dirty_select(azmp_job, [{?DB:pattern(azmp_job, [{#azmp_job.phase, '$1'}]), [{'=/=', '$1', failed}], [true]}])).

%% @doc The account's linking job, or undefined.
-spec job(binary()) -> map() | undefined.
job(Account) -> job_map(?DB:one(azmp_job, Account)).

job_map(undefined) ->
    undefined;
job_map(#azmp_job{} = J) ->
    #{account_id => J#azmp_job.account_id, phase => J#azmp_job.phase, reason => J#azmp_job.reason,
      work => J#azmp_job.work, subscription_id => J#azmp_job.subscription_id, owner => J#azmp_job.owner,
      lease_until => J#azmp_job.lease_until, attempts => J#azmp_job.attempts}.

%% @doc The phase of the account's linking job, or undefined (no map built).
-spec job_phase(binary()) -> resolving | activating | failed | undefined.
job_phase(Account) ->
    case ?DB:one(azmp_job, Account) of
        #azmp_job{phase = P} -> P;
        undefined -> undefined
    end.

%% @doc Jobs still to work on whose lease has run out at Now.
-spec jobs_ready(integer()) -> [map()].
jobs_ready(Now) ->
    Head = ?DB:pattern(azmp_job, [{#azmp_job.phase, '$1'}, {#azmp_job.lease_until, '$2'}]),
    MS = [{Head, [{'=/=', '$1', failed}, {'=<', '$2', Now}], ['$_']}],
    [job_map(J) || J <- ?DB:dirty_select(azmp_job, MS)].

%% @doc Records a new linking job (replacing a failed one).
-spec start_job(binary(), {token, binary()} | {resolved, map()}, integer()) -> ok | {error, link_in_progress}.
start_job(Account, Work, Now) ->
    ?DB:tx_ok(fun() -> new_job_tx(Account, Work, Now) end).

%% @doc Inside a transaction: start_job/3's work (a landing redeemed starts the account's job).
-spec new_job_tx(binary(), {token, binary()} | {resolved, map()}, integer()) -> ok | {error, link_in_progress}.
new_job_tx(Account, Work, Now) ->
    case ?DB:wread({azmp_job, Account}) of
        [#azmp_job{phase = P}] when P =/= failed ->
            {error, link_in_progress};
        _ ->
            Phase = case Work of {token, _} -> resolving; {resolved, _} -> activating end,
            ?DB:write(#azmp_job{account_id = Account, phase = Phase, work = Work, owner = node(),
                                lease_until = 0, updated_at = Now}),
            ok
    end.

%% @doc One node works on a job at a time: the lease says which, and until when.
-spec claim_job(binary(), integer(), integer()) -> {ok, map()} | taken.
claim_job(Account, Now, Until) ->
    ?DB:tx_or(fun() ->
        case ?DB:wread({azmp_job, Account}) of
            [J = #azmp_job{phase = P, lease_until = L}] when P =/= failed, L =< Now ->
                J1 = J#azmp_job{owner = node(), lease_until = Until},
                ?DB:write(J1),
                {ok, job_map(J1)};
            _ ->
                taken
        end
    end, taken).

%% @doc Node has just started: no step of its own is running, so the jobs it owned need not wait for
%% their lease to run out -- except one that may have sent its activation: Azure can still be
%% working on it, and Get Subscription would not show it yet. Such a job waits out its lease.
-spec resume_jobs_of(node()) -> ok.
resume_jobs_of(Node) ->
    ?DB:tx_ok(fun() ->
        Own = ?DB:match_object(?DB:pattern(azmp_job, [{#azmp_job.owner, Node}])),
        _ = [?DB:write(J#azmp_job{lease_until = 0}) || J = #azmp_job{phase = P, subscription_id = S} <- Own,
                                                       P =:= resolving orelse (P =:= activating andalso S =:= undefined)],
        ok
    end).

%% @doc The link decision and the claim on the subscription in one transaction: one account per
%% subscription. Decide(Facts) runs inside it; its verdict moves the job (activating, deleted,
%% failed) and its effects are committed with it.
-spec decide_link(binary(), binary(), map(), fun((map()) -> {term(), [effect()]})) ->
    {link | already_linked | {refuse, atom()}, effect_key() | none} | gone.
decide_link(Account, SubId, Sub, Decide) ->
    ?DB:tx_ok(fun() ->
        Now = maps:get(now, Sub),
        case ?DB:wread({azmp_job, Account}) of
            [J = #azmp_job{phase = P}] when P =/= failed ->
                Facts = (?LINKS:claim_facts_tx(Account, SubId))#{status => maps:get(status, Sub)},
                {Verdict, Effects} = Decide(Facts),
                case Verdict of
                    link ->
                        ?LINKS:write_claim_tx(SubId, Account),
                        ?DB:write(J#azmp_job{phase = activating, subscription_id = SubId,
                                             work = {resolved, maps:get(subscription, Sub)},
                                             attempts = 0, updated_at = Now});
                    already_linked ->
                        ?DB:delete({azmp_job, Account});
                    {refuse, Reason} ->
                        ?DB:write(J#azmp_job{phase = failed, reason = Reason, work = undefined, updated_at = Now})
                end,
                {Verdict, emqx_azure_marketplace_store_plans:effects_tx(Account, SubId, Effects, Now)};
            _ ->
                gone
        end
    end).

%% @doc The job's subscription was activated: the link, the end of the job and the effects, at once.
-spec commit_linked(binary(), binary(), map(), [effect()], integer()) -> effect_key() | none.
commit_linked(Account, SubId, Fields = #{plan_id := _, quantity := _}, Effects, Now) ->
    ?DB:tx_ok(fun() ->
        ?LINKS:write_linked_tx(Account, SubId, Fields, Now),
        ?DB:delete({azmp_job, Account}),
        emqx_azure_marketplace_store_plans:effects_tx(Account, SubId, Effects, Now)
    end).

%% @doc Linking gave up: the job fails with Reason, the account's claim (if any, and not linked)
%% is given back, and the effects are committed with it.
-spec commit_link_failed(binary(), atom(), [effect()], integer()) -> effect_key() | none.
commit_link_failed(Account, Reason, Effects, Now) ->
    ?DB:tx_ok(fun() ->
        SubId =
            case ?DB:wread({azmp_job, Account}) of
                [J = #azmp_job{subscription_id = S}] ->
                    ?DB:write(J#azmp_job{phase = failed, reason = Reason, work = undefined, updated_at = Now}),
                    S;
                [] ->
                    undefined
            end,
        ?LINKS:release_claim_tx(Account, SubId),
        emqx_azure_marketplace_store_plans:effects_tx(Account, SubId, Effects, Now)
    end).

%% @doc Azure unreachable: the job's next attempt waits until RetryAt.
-spec retry_job(binary(), non_neg_integer(), integer(), integer()) -> ok.
retry_job(Account, Attempts, RetryAt, Now) ->
    ?DB:tx_ok(fun() ->
        case ?DB:wread({azmp_job, Account}) of
            [Cur] -> ?DB:write(Cur#azmp_job{attempts = Attempts, lease_until = RetryAt, updated_at = Now});
            [] -> ok
        end
    end).

%% @doc Is the account's job still activating SubId (not failed or finished by another node)?
-spec job_activating(binary(), binary()) -> boolean().
job_activating(Account, SubId) ->
    case ?DB:one(azmp_job, Account) of
        #azmp_job{phase = activating, subscription_id = SubId} -> true;
        _ -> false
    end.

