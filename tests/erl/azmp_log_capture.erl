%% A logger handler for tests: keeps every event, formatted as text, in an ETS table.
-module(azmp_log_capture).

-export([start/0, adding_handler/1, removing_handler/1, log/2, events/0]).

-define(TAB, azmp_log_capture).

%% Creates the table, owned by the caller (logger runs handler callbacks in its own processes).
start() ->
    _ = (catch ets:delete(?TAB)),
    ?TAB = ets:new(?TAB, [named_table, public, duplicate_bag]),
    ok.

adding_handler(Config) ->
    {ok, Config}.

removing_handler(_Config) ->
    ok.

%% Both the formatted line and the raw event, so that nothing a formatter leaves out escapes the check.
log(Event, _Config) ->
    Text = iolist_to_binary([logger_formatter:format(Event, #{single_line => true, depth => unlimited}),
                             io_lib:format("~0p", [maps:get(msg, Event)])]),
    ets:insert(?TAB, {event, Text}),
    ok.

events() -> [T || {event, T} <- ets:tab2list(?TAB)].
