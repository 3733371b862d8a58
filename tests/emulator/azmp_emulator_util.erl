%% @doc Small helpers shared by the emulator modules: GUIDs and UTC times.
-module(azmp_emulator_util).

-export([uuid/0, iso8601/1, parse_time/1, query/1, header/2, now_s/1, now_ms/1]).

%% @doc The emulator's "now" for metering and fulfillment (Unix seconds):
%% system time + the state's clock_offset (azmp_emulator:set_clock_offset/2).
%% Token and JWT lifetimes do NOT use it: they stay on real time.
-spec now_s(map()) -> integer().
now_s(State) -> erlang:system_time(second) + maps:get(clock_offset, State, 0).

%% @doc As now_s/1, in milliseconds.
-spec now_ms(map()) -> integer().
now_ms(State) -> erlang:system_time(millisecond) + 1000 * maps:get(clock_offset, State, 0).

%% @doc A random (v4) GUID as a lowercase binary.
-spec uuid() -> binary().
uuid() ->
    <<A:32, B:16, _:4, C:12, _:2, D:14, E:48>> = crypto:strong_rand_bytes(16),
    iolist_to_binary(io_lib:format("~8.16.0b-~4.16.0b-4~3.16.0b-~4.16.0b-~12.16.0b",
                                   [A, B, C, 16#8000 bor D, E])).

%% @doc Unix seconds -> "YYYY-MM-DDTHH:MM:SSZ".
-spec iso8601(integer()) -> binary().
iso8601(Seconds) ->
    list_to_binary(calendar:system_time_to_rfc3339(Seconds, [{unit, second}, {offset, "Z"}])).

%% @doc Parse an ISO 8601 / RFC 3339 date-time to Unix seconds (floor).
%% Accepts a missing offset (UTC), a date only, and "HH:MM" without seconds.
-spec parse_time(term()) -> {ok, integer()} | error.
parse_time(Bin) when is_binary(Bin) ->
    S = binary_to_list(Bin),
    Candidates = case S of
                     [_, _, _, _, $-, _, _, $-, _, _] -> [S ++ "T00:00:00Z"];
                     _ -> [S, S ++ "Z", S ++ ":00Z", S ++ ":00"]
                 end,
    try_parse(Candidates);
parse_time(_) ->
    error.

try_parse([]) -> error;
try_parse([C | Rest]) ->
    try calendar:rfc3339_to_system_time(C, [{unit, second}]) of
        T when is_integer(T) -> {ok, T}
    catch _:_ -> try_parse(Rest)
    end.

%% @doc Decode a query string (or form body) into [{Key, Value}].
-spec query(binary()) -> [{binary(), binary() | true}].
query(<<>>) -> [];
query(Q) ->
    case uri_string:dissect_query(Q) of
        L when is_list(L) -> L;
        _ -> []
    end.

%% @doc Header value by lowercase name, or undefined.
-spec header(binary(), [{binary(), binary()}]) -> binary() | undefined.
header(Name, Headers) ->
    case lists:keyfind(Name, 1, Headers) of
        {_, V} -> V;
        false -> undefined
    end.
