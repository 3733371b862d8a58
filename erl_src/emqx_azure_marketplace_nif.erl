%% @doc The NIF stubs. Every function here is replaced by the C++ library at load time; callers use
%% `emqx_azure_marketplace_client', which turns the asynchronous replies into plain results.
-module(emqx_azure_marketplace_nif).

-export([client_new/1, request/3, cancel/1, info/0, client_stats/1]).
-on_load(init/0).

%% Must equal kAbiVersion in c_src/nif/library.cpp: the library refuses to load otherwise.
-define(ABI_VERSION, 1).

-type client_res() :: reference().
-type call_res() :: reference().
-export_type([client_res/0, call_res/0]).

-spec init() -> ok | {error, term()}.
init() ->
    case code:priv_dir(emqx_azure_marketplace) of
        {error, bad_name} ->
            {error, {priv_dir_not_found, emqx_azure_marketplace}};
        Priv ->
            erlang:load_nif(filename:join(Priv, "emqx_azure_marketplace_nif"), ?ABI_VERSION)
    end.

%% @doc Creates a client from a config map. `{ok, {ClientRes, TimeoutMs}}'.
-spec client_new(map()) -> {ok, {client_res(), pos_integer()}} | {error, term()}.
client_new(_Config) -> erlang:nif_error(nif_not_loaded).

%% @doc Starts an operation; the result arrives as `{azmp_reply, CallRes, Result}'.
-spec request(client_res(), atom(), map()) -> {ok, call_res()} | {error, term()}.
request(_Client, _Op, _Args) -> erlang:nif_error(nif_not_loaded).

%% @doc Abandons a call whose caller stopped waiting.
-spec cancel(call_res()) -> ok.
cancel(_Call) -> erlang:nif_error(nif_not_loaded).

%% @doc Engine figures: ABI, transfers started/active, connections opened, module instances.
-spec info() -> map().
info() -> erlang:nif_error(nif_not_loaded).

%% @doc Client figures: token requests made, calls in flight.
-spec client_stats(client_res()) -> map().
client_stats(_Client) -> erlang:nif_error(nif_not_loaded).
