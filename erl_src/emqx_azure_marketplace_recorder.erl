%% @doc Makes recorded usage durable in groups: the samples of every caller waiting at a moment
%% are written in one transaction and one sync of Mnesia's log, then each caller gets its answer.
%% A caller's `ok' still means its sample is on disc; many callers share the cost of the sync.
-module(emqx_azure_marketplace_recorder).

-behaviour(gen_server).

-export([start_link/0, record/1]).
-export([init/1, handle_call/3, handle_cast/2]).

%% The most samples one transaction takes (a bound on its time and on the callers it keeps waiting).
-define(MAX_GROUP, 512).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Records one sample (as emqx_azure_marketplace_store:record_usage_batch/1 takes it).
-spec record(tuple()) -> ok | {error, term()}.
record(Sample) -> gen_server:call(?MODULE, {record, Sample}, 30000).

-spec init([]) -> {ok, #{}}.
init([]) -> {ok, #{}}.

-spec handle_call(term(), gen_server:from(), map()) -> {noreply, map()} | {reply, term(), map()}.
handle_call({record, Sample}, From, S) ->
    Group = [{From, Sample} | waiting(?MAX_GROUP - 1)],
    Results =
        try emqx_azure_marketplace_store:record_usage_batch([X || {_, X} <- Group])
        catch error:{azmp_store, Reason} -> lists:duplicate(length(Group), {error, {store, Reason}})
        end,
    lists:foreach(fun({{F, _}, R}) -> gen_server:reply(F, R) end, lists:zip(Group, Results)),
    {noreply, S};
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) -> {noreply, S}.

%% The record calls already in the mailbox, up to N (gen_server's call protocol, read directly).
waiting(0) ->
    [];
waiting(N) ->
    receive
        {'$gen_call', From, {record, Sample}} -> [{From, Sample} | waiting(N - 1)]
    after 0 ->
        []
    end.
