%% @doc An in-memory control plane for the demo and the tests: accounts, their billing set-up and
%% deployments, and a log of what the plugin asked it to do. Registered globally, so that every node
%% of a test cluster talks to the same one.
-module(azmp_test_platform).

-behaviour(emqx_azure_marketplace_platform).
-behaviour(gen_server).

-export([start/0, stop/0, add_account/2, add_deployment/2, account/1, log/0, reset/0, set_plans/1]).
-export([hold/1, held/0, release/0]).
-export([billing_profile/1, payment_method/1, set_payment_method/2, deployments/1, stop_deployment/2,
         start_deployment/2, delete_deployment/2, plan_known/1, notify/2]).
-export([init/1, handle_call/3, handle_cast/2]).

-define(NAME, {global, ?MODULE}).
%% The accounts' payment methods, {Id, Method}, written by the instance before it answers the call
%% that changed them: the node it runs on reads them without a call (the gating bench asks for them
%% from 64 processes at once; a control plane serves such reads concurrently too).
-define(METHODS, azmp_test_platform_methods).

-type account() :: #{
    profile := emqx_azure_marketplace_platform:billing_profile(),
    payment_method := emqx_azure_marketplace_platform:payment_method(),
    deployments := #{binary() => emqx_azure_marketplace_platform:deployment()},
    notices := [emqx_azure_marketplace_platform:notice()]
}.

%% @doc Starts the (global) instance unless it runs already.
-spec start() -> {ok, pid()}.
start() ->
    case gen_server:start(?NAME, ?MODULE, [], []) of
        {ok, Pid} -> {ok, Pid};
        {error, {already_started, Pid}} -> {ok, Pid}
    end.

-spec stop() -> ok.
stop() -> gen_server:stop(?NAME).

%% @doc Adds an account. Profile keys default to false; `payment_method' defaults from them.
-spec add_account(binary(), map()) -> ok.
add_account(Id, Profile) -> gen_server:call(?NAME, {add_account, Id, Profile}).

-spec add_deployment(binary(), map()) -> ok.
add_deployment(Account, Deployment) -> gen_server:call(?NAME, {add_deployment, Account, Deployment}).

-spec account(binary()) -> {ok, account()} | {error, not_found}.
account(Id) -> gen_server:call(?NAME, {account, Id}).

%% @doc What the plugin asked for, oldest first: `{Action, Account, Arg}'.
-spec log() -> [{atom(), binary(), term()}].
log() -> gen_server:call(?NAME, log).

-spec reset() -> ok.
reset() -> gen_server:call(?NAME, reset).

-spec set_plans([binary()]) -> ok.
set_plans(Plans) -> gen_server:call(?NAME, {set_plans, Plans}).

%% @doc From now on, calls of these kinds (set_payment_method, notify, stop, start, delete) are
%% held: neither performed nor answered, as if the plugin's node died while making them. For the
%% tests that kill a node between a commit and its effects.
-spec hold([atom()]) -> ok.
hold(Kinds) -> gen_server:call(?NAME, {hold, Kinds}).

%% @doc The calls held so far: `{Kind, Account, Arg}'.
-spec held() -> [{atom(), binary(), term()}].
held() -> gen_server:call(?NAME, held).

%% @doc Holds nothing any more; the calls held are dropped, never performed.
-spec release() -> ok.
release() -> gen_server:call(?NAME, release).

%%--------------------------------------------------------------------
%% emqx_azure_marketplace_platform callbacks

-spec billing_profile(binary()) -> {ok, emqx_azure_marketplace_platform:billing_profile()} | {error, not_found}.
billing_profile(Id) ->
    case account(Id) of
        {ok, #{profile := P}} -> {ok, P};
        Error -> Error
    end.

-spec payment_method(binary()) -> emqx_azure_marketplace_platform:payment_method().
payment_method(Id) ->
    try ets:lookup(?METHODS, Id) of
        [{_, M}] -> M;
        [] -> none
    catch
        error:badarg ->  % the instance runs on another node
            case account(Id) of
                {ok, #{payment_method := M}} -> M;
                {error, not_found} -> none
            end
    end.

-spec set_payment_method(binary(), azure_marketplace_subscription | none) -> ok.
set_payment_method(Id, M) -> gen_server:call(?NAME, {set_payment_method, Id, M}).

-spec deployments(binary()) -> [emqx_azure_marketplace_platform:deployment()].
deployments(Id) ->
    case account(Id) of
        {ok, #{deployments := Ds}} -> lists:sort(maps:values(Ds));
        {error, not_found} -> []
    end.

-spec stop_deployment(binary(), binary()) -> ok.
stop_deployment(A, D) -> gen_server:call(?NAME, {deployment, stop, A, D}).

-spec start_deployment(binary(), binary()) -> ok.
start_deployment(A, D) -> gen_server:call(?NAME, {deployment, start, A, D}).

-spec delete_deployment(binary(), binary()) -> ok.
delete_deployment(A, D) -> gen_server:call(?NAME, {deployment, delete, A, D}).

-spec plan_known(binary()) -> boolean().
plan_known(Plan) -> gen_server:call(?NAME, {plan_known, Plan}).

-spec notify(binary(), emqx_azure_marketplace_platform:notice()) -> ok.
notify(A, Notice) -> gen_server:call(?NAME, {notify, A, Notice}).

%%--------------------------------------------------------------------
%% gen_server

-spec init([]) -> {ok, map()}.
init([]) ->
    ?METHODS = ets:new(?METHODS, [named_table, protected, {read_concurrency, true}]),
    {ok, #{accounts => #{}, log => [], plans => [<<"payg">>, <<"payg-premium">>], hold => [], held => []}}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()} | {noreply, map()}.
handle_call(Req, From, S) ->
    Reply = handle(Req, From, S),
    ok = methods_in_step(Req, element(tuple_size(Reply), Reply)),  % before the caller is answered
    Reply.

%% The only calls that change a payment method.
methods_in_step(reset, _S) ->
    true = ets:delete_all_objects(?METHODS),
    ok;
methods_in_step({add_account, Id, _}, S) -> method_in_step(Id, S);
methods_in_step({set_payment_method, Id, _}, S) -> method_in_step(Id, S);
methods_in_step(_, _S) -> ok.

method_in_step(Id, #{accounts := As}) ->
    true = case As of
               #{Id := #{payment_method := M}} -> ets:insert(?METHODS, {Id, M});
               _ -> ets:delete(?METHODS, Id)
           end,
    ok.

handle(Req, From, S = #{hold := Hold, held := H}) ->
    case held_entry(Req) of
        {Kind, _, _} = Entry when Hold =/= [] ->
            case lists:member(Kind, Hold) of
                true -> {noreply, S#{held := [Entry | H]}};
                false -> call(Req, From, S)
            end;
        _ ->
            call(Req, From, S)
    end.

held_entry({deployment, Op, A, D}) -> {Op, A, D};
held_entry({set_payment_method, A, M}) -> {set_payment_method, A, M};
held_entry({notify, A, N}) -> {notify, A, N};
held_entry(_) -> none.

call({hold, Kinds}, _From, S) ->
    {reply, ok, S#{hold := Kinds}};
call(held, _From, S = #{held := H}) ->
    {reply, lists:reverse(H), S};
call(release, _From, S) ->
    {reply, ok, S#{hold := [], held := []}};
call({add_account, Id, P}, _From, S = #{accounts := As}) ->
    Profile = #{
        credit_card => maps:get(credit_card, P, false),
        available_credits => maps:get(available_credits, P, false),
        other_marketplace_link => maps:get(other_marketplace_link, P, false)
    },
    Method =
        case Profile of
            #{credit_card := true} -> credit_card;
            #{available_credits := true} -> available_credits;
            _ -> none
        end,
    A = #{profile => Profile, payment_method => Method, deployments => #{}, notices => []},
    {reply, ok, S#{accounts := As#{Id => A}}};
call({add_deployment, Id, D0}, _From, S) ->
    D = maps:merge(#{trial => false, trial_ends_at => undefined, state => running, stopped_at => undefined}, D0),
    with_account(Id, S, fun(A = #{deployments := Ds}) -> {ok, A#{deployments := Ds#{maps:get(id, D) => D}}} end);
call({account, Id}, _From, S = #{accounts := As}) ->
    case As of
        #{Id := A} -> {reply, {ok, A}, S};
        _ -> {reply, {error, not_found}, S}
    end;
call(log, _From, S = #{log := L}) ->
    {reply, lists:reverse(L), S};
call(reset, _From, S) ->
    {reply, ok, S#{accounts := #{}, log := [], hold := [], held := []}};
call({set_plans, Plans}, _From, S) ->
    {reply, ok, S#{plans := Plans}};
call({plan_known, Plan}, _From, S = #{plans := Plans}) ->
    {reply, lists:member(Plan, Plans), S};
call({set_payment_method, Id, M}, _From, S) ->
    with_account(Id, log({set_payment_method, Id, M}, S), fun(A) -> {ok, A#{payment_method := M}} end);
call({notify, Id, Notice}, _From, S) ->
    with_account(Id, log({notify, Id, Notice}, S), fun(A = #{notices := Ns}) -> {ok, A#{notices := Ns ++ [Notice]}} end);
call({deployment, stop, Id, DId}, From, S = #{accounts := As}) ->
    %% Each call is logged; a running deployment that stops is logged once more, as `stopped'.
    S1 = case As of
             #{Id := #{deployments := #{DId := #{state := running}}}} -> log({stopped, Id, DId}, S);
             _ -> S
         end,
    deployment(stop, Id, DId, From, S1);
call({deployment, Op, Id, DId}, From, S) ->
    deployment(Op, Id, DId, From, S).

deployment(Op, Id, DId, _From, S) ->
    with_account(Id, log({Op, Id, DId}, S), fun(A = #{deployments := Ds}) ->
        case {Op, Ds} of
            {delete, _} -> {ok, A#{deployments := maps:remove(DId, Ds)}};
            {stop, #{DId := D}} ->
                {ok, A#{deployments := Ds#{DId := D#{state := stopped, stopped_at := azmp_test_clock:now()}}}};
            {start, #{DId := D}} ->
                {ok, A#{deployments := Ds#{DId := D#{state := running, stopped_at := undefined}}}};
            _ -> {ok, A}
        end
    end).

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) -> {noreply, S}.

with_account(Id, S = #{accounts := As}, F) ->
    case As of
        #{Id := A0} ->
            {ok, A} = F(A0),
            {reply, ok, S#{accounts := As#{Id := A}}};
        _ ->
            {reply, ok, S}
    end.

log(Entry, S = #{log := L}) -> S#{log := [Entry | L]}.
