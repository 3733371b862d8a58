%% @doc The NIF stubs. Every function here is replaced by the C++ library at load time; callers use
%% `emqx_azure_marketplace_client', which turns the asynchronous replies into plain results.
-module(emqx_azure_marketplace_nif).

-export([client_new/1, request/3, cancel/1, info/0, client_stats/1]).
-export([webhook_auth_new/1, webhook_authenticate/3]).
-export([json_decode/1, json_encode/1]).
-export([decide_link/3, next_link_state/2, decide_create/2, decide_deployment/3]).
-on_load(init/0).

%% Must equal kAbiVersion in c_src/nif/library.cpp: the library refuses to load otherwise.
-define(ABI_VERSION, 2).

-type client_res() :: reference().
-type auth_res() :: reference().
-type link_state() :: none | pending | linked | suspended | unsubscribed.
-type call_res() :: reference().
-export_type([client_res/0, call_res/0, auth_res/0, link_state/0]).

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

%% @doc Creates a webhook authenticator: `login_url', `tenant_id', `audience' (our client id),
%% optional `ca_file', `timeout_ms' (> 0), `min_refresh_interval_s' (0..86400), `skew_s' (0..3600),
%% `authorized_apps' (1..16 non-empty binaries). A wrong field: `{error, {badarg, Field}}'.
-spec webhook_auth_new(map()) -> {ok, auth_res()} | {error, term()}.
webhook_auth_new(_Config) -> erlang:nif_error(nif_not_loaded).

%% @doc Checks an Authorization header; the verdict arrives as
%% `{azmp_reply, CallRes, {ok, Claims} | {error, Reason}}'.
-spec webhook_authenticate(auth_res(), binary(), integer()) -> {ok, call_res()} | {error, term()}.
webhook_authenticate(_Auth, _Header, _Now) -> erlang:nif_error(nif_not_loaded).

-spec json_decode(binary()) -> {ok, term()} | {error, bad_json | too_large}.
json_decode(_Bin) -> erlang:nif_error(nif_not_loaded).

-spec json_encode(term()) -> {ok, binary()} | {error, term()}.
json_encode(_Term) -> erlang:nif_error(nif_not_loaded).

%% @doc May `AccountId' link the subscription? `link', `already_linked' or `{refuse, Reason}'.
-spec decide_link(binary(), map(), map()) -> link | already_linked | {refuse, atom()}.
decide_link(_AccountId, _Profile, _Sub) -> erlang:nif_error(nif_not_loaded).

%% @doc The link state after an event, or `ignore' when the event does not apply.
-spec next_link_state(link_state(), atom()) -> {ok, link_state()} | ignore.
next_link_state(_State, _Event) -> erlang:nif_error(nif_not_loaded).

-spec decide_create(link_state(), boolean()) -> ok | {error, atom()}.
decide_create(_State, _Trial) -> erlang:nif_error(nif_not_loaded).

-spec decide_deployment(link_state(), map(), integer()) -> keep | {stop, atom()} | {delete, integer()}.
decide_deployment(_State, _Deployment, _Now) -> erlang:nif_error(nif_not_loaded).
