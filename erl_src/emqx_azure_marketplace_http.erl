%% @doc The plugin's HTTP endpoints on OTP inets httpd: `POST /azure/webhook' (Azure's webhook) and
%% `GET /azure/landing?token=...' (the landing page's back end, for a customer not signed in yet).
-module(emqx_azure_marketplace_http).

-behaviour(gen_server).

-export([start_link/1, port/1]).
-export([do/1]).
-export([init/1, handle_call/3, handle_cast/2, terminate/2]).

-include_lib("inets/include/httpd.hrl").

%% @doc Starts the listener: `#{ip => inet:ip_address(), port => inet:port_number()}' (port 0: any).
-spec start_link(map()) -> {ok, pid()} | {error, term()}.
start_link(Opts) -> gen_server:start_link({local, ?MODULE}, ?MODULE, Opts, []).

%% @doc The port it listens on.
-spec port(pid() | atom()) -> inet:port_number().
port(Server) -> gen_server:call(Server, port).

-spec init(map()) -> {ok, pid()} | {stop, term()}.
init(Opts) ->
    process_flag(trap_exit, true),
    {ok, _} = application:ensure_all_started(inets),
    %% Inside EMQX its files live under EMQX's data dir; elsewhere in the user's cache.
    Dir = case emqx_azure_marketplace_emqx:data_dir() of
              undefined -> filename:basedir(user_cache, "emqx_azure_marketplace_httpd");
              Data -> filename:join([Data, "plugins", "emqx_azure_marketplace", "httpd"])
          end,
    ok = filelib:ensure_path(Dir),
    Conf = [
        {port, maps:get(port, Opts, 0)},
        {bind_address, maps:get(ip, Opts, {127, 0, 0, 1})},
        {server_name, "emqx_azure_marketplace"},
        {server_root, Dir},
        {document_root, Dir},
        {modules, [?MODULE]},
        {max_body_size, 256 * 1024},
        {keep_alive, true}
    ],
    %% The instance runs under inets' supervisor; this process owns it (stops it in terminate/2).
    case inets:start(httpd, Conf) of
        {ok, Httpd} -> {ok, Httpd};
        {error, Reason} -> {stop, Reason}
    end.

-spec handle_call(term(), gen_server:from(), pid()) -> {reply, term(), pid()}.
handle_call(port, _From, Httpd) ->
    {port, Port} = lists:keyfind(port, 1, httpd:info(Httpd, [port])),
    {reply, Port, Httpd}.

-spec handle_cast(term(), pid()) -> {noreply, pid()}.
handle_cast(_Msg, Httpd) -> {noreply, Httpd}.

-spec terminate(term(), pid()) -> ok.
terminate(_Reason, Httpd) ->
    _ = inets:stop(httpd, Httpd),
    ok.

%% @doc inets httpd callback.
-spec do(#mod{}) -> {proceed, list()}.
do(#mod{method = Method, request_uri = Uri, parsed_header = Headers, entity_body = Body}) ->
    {Path, Query} = split(Uri),
    {Status, RespHeaders, RespBody} = route(Method, Path, Query, Headers, Body),
    Len = integer_to_list(byte_size(RespBody)),
    Hs = [{code, Status}, {content_length, Len} | [{binary_to_list(K), binary_to_list(V)} || {K, V} <- RespHeaders]],
    {proceed, [{response, {response, Hs, [RespBody]}}]}.

route("POST", "/azure/webhook", _Query, Headers, Body) ->
    emqx_azure_marketplace_webhook:handle(Headers, iolist_to_binary(Body));
route("GET", "/azure/landing", Query, _Headers, _Body) ->
    case proplists:get_value("token", Query) of
        undefined ->
            json(400, #{error => missing_token});
        Token ->
            case emqx_azure_marketplace:landing(unicode:characters_to_binary(Token)) of
                {ok, LandingId} -> json(200, #{landing_id => LandingId});
                {error, Reason} -> json(400, #{error => Reason})
            end
    end;
route(_Method, _Path, _Query, _Headers, _Body) ->
    json(404, #{error => not_found}).

json(Status, Map) ->
    {ok, Body} = emqx_azure_marketplace_nif:json_encode(Map),
    {Status, [{<<"content-type">>, <<"application/json">>}], Body}.

split(Uri) ->
    case string:split(Uri, "?") of
        [Path, Q] ->
            case uri_string:dissect_query(Q) of
                Pairs when is_list(Pairs) -> {Path, Pairs};
                {error, _, _} -> {Path, []}
            end;
        [Path] ->
            {Path, []}
    end.
