%% @doc What the benchmark reads from Linux's /proc: CPU time of a whole OS process or of each of
%% its threads, resident memory, thread and descriptor counts. Works for this VM (`self') and for
%% the emulator's VM (its OS pid).
-module(azmp_bench_os).

-export([clk_tck/0, cpu_us/1, threads_cpu_us/1, rss_kib/1, hwm_kib/1, reset_hwm/1,
         thread_count/1, fd_count/1, self_pid/0, alive/1, thread_group/1]).

-type os_pid() :: self | string().

%% @doc Clock ticks per second of the utime/stime fields (nearly always 100).
-spec clk_tck() -> pos_integer().
clk_tck() ->
    case persistent_term:get({?MODULE, clk_tck}, undefined) of
        undefined ->
            T = case string:to_integer(string:trim(os:cmd("getconf CLK_TCK"))) of
                    {N, _} when is_integer(N), N > 0 -> N;
                    _ -> 100
                end,
            persistent_term:put({?MODULE, clk_tck}, T),
            T;
        T -> T
    end.

-spec self_pid() -> string().
self_pid() -> os:getpid().

%% @doc User + system CPU time of the whole process (every thread), in microseconds.
-spec cpu_us(os_pid()) -> non_neg_integer().
cpu_us(Pid) ->
    {ok, Bin} = file:read_file(["/proc/", dir(Pid), "/stat"]),
    stat_cpu_us(Bin).

%% @doc #{Tid => {Comm, CpuUs}} for every thread alive now.
-spec threads_cpu_us(os_pid()) -> #{string() => {binary(), non_neg_integer()}}.
threads_cpu_us(Pid) ->
    Base = ["/proc/", dir(Pid), "/task/"],
    {ok, Tids} = file:list_dir(Base),
    maps:from_list(
      lists:filtermap(
        fun(Tid) ->
                case {file:read_file([Base, Tid, "/stat"]), file:read_file([Base, Tid, "/comm"])} of
                    {{ok, S}, {ok, C}} -> {true, {Tid, {string:trim(C), stat_cpu_us(S)}}};
                    _ -> false   % the thread ended meanwhile
                end
        end, Tids)).

%% @doc A thread's group, from its name: the BEAM names its own threads; a thread that carries
%% the executable's name and is not the main thread was started by a library (the NIF's engine).
-spec thread_group({string(), binary(), string()}) -> binary().
thread_group({Tid, Comm, MainTid}) ->
    Has = fun(Pat) -> binary:match(Comm, Pat) =/= nomatch end,
    if
        Tid =:= MainTid -> <<"main">>;
        Comm =:= <<"beam.smp">> -> <<"non-BEAM (NIF engine, libcurl)">>;
        true ->
            case {Has(<<"dirty_cpu">>), Has(<<"dirty_io">>), Has(<<"_scheduler">>) orelse Has(<<"_schedule">>)} of
                {true, _, _} -> <<"dirty CPU schedulers">>;
                {_, true, _} -> <<"dirty IO schedulers">>;
                {_, _, true} -> <<"schedulers">>;
                _ -> <<"other BEAM threads (aux, poller, signals)">>
            end
    end.

-spec rss_kib(os_pid()) -> non_neg_integer().
rss_kib(Pid) -> status_kib(Pid, <<"VmRSS:">>).

%% @doc Peak resident size since the process started or since reset_hwm/1.
-spec hwm_kib(os_pid()) -> non_neg_integer().
hwm_kib(Pid) -> status_kib(Pid, <<"VmHWM:">>).

%% @doc Resets VmHWM to the current RSS (writing 5 to clear_refs); false when refused.
-spec reset_hwm(os_pid()) -> boolean().
reset_hwm(Pid) ->
    file:write_file(["/proc/", dir(Pid), "/clear_refs"], <<"5">>) =:= ok.

-spec thread_count(os_pid()) -> non_neg_integer().
thread_count(Pid) ->
    {ok, Tids} = file:list_dir(["/proc/", dir(Pid), "/task"]),
    length(Tids).

-spec fd_count(os_pid()) -> non_neg_integer().
fd_count(Pid) ->
    case file:list_dir(["/proc/", dir(Pid), "/fd"]) of
        {ok, Fds} -> length(Fds);
        {error, _} -> 0
    end.

-spec alive(string()) -> boolean().
alive(Pid) -> filelib:is_dir(["/proc/", Pid]).

%%--------------------------------------------------------------------

dir(self) -> os:getpid();
dir(Pid) when is_list(Pid) -> Pid.

%% Fields after the ")" closing the command name: field 3 (state) first; utime is field 14 and
%% stime field 15, so the 12th and 13th here.
stat_cpu_us(Bin) ->
    [_, After] = string:split(Bin, <<")">>, trailing),
    Fields = binary:split(string:trim(After), <<" ">>, [global, trim_all]),
    Ticks = binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields)),
    Ticks * 1000000 div clk_tck().

status_kib(Pid, Key) ->
    {ok, Bin} = file:read_file(["/proc/", dir(Pid), "/status"]),
    Lines = binary:split(Bin, <<"\n">>, [global]),
    case [L || L <- Lines, binary:longest_common_prefix([L, Key]) =:= byte_size(Key)] of
        [Line | _] ->
            [_, Rest] = binary:split(Line, <<":">>),
            [Num | _] = binary:split(string:trim(Rest), <<" ">>),
            binary_to_integer(Num);
        [] -> 0
    end.
