%% PropEr throws random terms at every NIF function: the answer is a result or badarg, never a crash.
-module(azmp_nif_prop_tests).

-include_lib("proper/include/proper.hrl").
-include_lib("eunit/include/eunit.hrl").

-define(NIF, emqx_azure_marketplace_nif).
-define(NUMTESTS, 100000).

-define(OPS, [resolve, activate, get_subscription, list_subscriptions, list_available_plans, change_plan,
              change_quantity, delete_subscription, list_operations, get_operation, update_operation,
              post_usage, post_usage_batch, get_usage_events]).
-define(KEYS, [subscription_id, plan_id, operation_id, token, quantity, status, event, events, filter,
               tenant_id, client_id, client_secret, login_url, marketplace_url, ca_file, token_endpoint,
               timeout_ms, connect_timeout_ms, max_in_flight, retry, resource_id, dimension,
               effective_start_time, usage_start_date]).

nif_fuzz_test_() ->
    {setup,
     fun() ->
         %% A client whose calls can only fail fast: nothing listens on port 1.
         {ok, {Client, _}} = ?NIF:client_new(#{
             tenant_id => <<"t">>, client_id => <<"c">>, client_secret => <<"s">>,
             login_url => <<"http://127.0.0.1:1">>, marketplace_url => <<"http://127.0.0.1:1/api">>,
             retry => #{max_attempts => 1}, timeout_ms => 1000}),
         Client
     end,
     fun(_) -> flush() end,
     fun(Client) ->
         [{atom_to_list(Name), {timeout, 600, fun() -> check(Name, Prop) end}}
          || {Name, Prop} <- [
                 {client_new, prop_client_new()},
                 {request_any, prop_request_any()},
                 {request_shaped, prop_request_shaped(Client)},
                 {cancel, prop_one_arg(fun ?NIF:cancel/1)},
                 {client_stats, prop_one_arg(fun ?NIF:client_stats/1)},
                 {info, prop_info()}
             ]]
     end}.

check(Name, Prop) ->
    Result = proper:quickcheck(Prop, [{numtests, ?NUMTESTS}, quiet, {on_output, fun(_, _) -> ok end}]),
    flush(),
    ?assertEqual({Name, true}, {Name, Result}).

%% A result, or the badarg exception; anything else (or a VM crash) fails.
acceptable(F) ->
    try F() of
        {ok, _} -> true;
        {error, _} -> true;
        ok -> true;
        M when is_map(M) -> true;
        Other -> {unexpected, Other}
    catch
        error:badarg -> true
    end =:= true.

prop_client_new() ->
    ?FORALL(T, oneof([any(), shaped_map()]), acceptable(fun() -> ?NIF:client_new(T) end)).

prop_request_any() ->
    ?FORALL({A, B, C}, {any(), any(), any()}, acceptable(fun() -> ?NIF:request(A, B, C) end)).

prop_request_shaped(Client) ->
    ?FORALL({Op, Args}, {oneof([elements(?OPS), atom()]), shaped_map()},
            begin
                R = acceptable(fun() -> ?NIF:request(Client, Op, Args) end),
                flush(),
                R
            end).

prop_one_arg(F) ->
    ?FORALL(T, any(), acceptable(fun() -> F(T) end)).

prop_info() ->
    ?FORALL(_, integer(), acceptable(fun() -> ?NIF:info() end)).

%% Maps whose keys are the ones the library looks for, with values of any shape (and sometimes the
%% right shape), so that the deeper validation paths are exercised too.
shaped_map() ->
    ?LET(Pairs, list({elements(?KEYS), value()}), maps:from_list(Pairs)).

value() ->
    oneof([any(), binary(), integer(), float(), atom(), elements([v1, v2, success, failure]),
           list(shaped_leaf()), shaped_leaf()]).

shaped_leaf() ->
    ?LET(Pairs, list({elements(?KEYS), oneof([binary(), integer(), float(), any()])}), maps:from_list(Pairs)).

flush() ->
    receive {azmp_reply, _, _} -> flush()
    after 0 -> ok
    end.
