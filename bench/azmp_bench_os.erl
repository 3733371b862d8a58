%% prim_file, not file: no round trip through the file server process (which would show in the
%% long-schedule counts).
%% @doc What the benchmark reads from Linux's /proc: CPU time of a whole OS process or of each of
%% its threads, resident memory, thread and descriptor counts. Works for this VM (`self') and for
%% the emulator's VM (its OS pid).
-module(azmp_bench_os).

-export([clk_tck/0, cpu_us/1, threads_cpu_us/1, rss_kib/1, hwm_kib/1, reset_hwm/1,
         thread_count/1, fd_count/1, self_pid/0, alive/1, remember_vm_threads/0, thread_group/1,
         scheduler_preemptions/0, tcp_listen_drops/0]).

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
    {ok, Bin} = prim_file:read_file(["/proc/", dir(Pid), "/stat"]),
    stat_cpu_us(Bin).

%% @doc #{Tid => {Comm, CpuUs}} for every thread alive now.
-spec threads_cpu_us(os_pid()) -> #{string() => {binary(), non_neg_integer()}}.
threads_cpu_us(Pid) ->
    Base = ["/proc/", dir(Pid), "/task/"],
    {ok, Tids} = prim_file:list_dir(Base),
    maps:from_list(
      lists:filtermap(
        fun(Tid) ->
                case {prim_file:read_file([Base, Tid, "/stat"]), prim_file:read_file([Base, Tid, "/comm"])} of
                    {{ok, S}, {ok, C}} -> {true, {Tid, {string:trim(C), stat_cpu_us(S)}}};
                    _ -> false   % the thread ended meanwhile
                end
        end, Tids)).

%% @doc Notes this VM's threads before the NIF library is loaded: every thread that appears later
%% was started by a library (the NIF's engine thread). Such a thread inherits the name of the
%% thread that created it (a scheduler), so names alone cannot tell it apart.
-spec remember_vm_threads() -> ok.
remember_vm_threads() ->
    {ok, Tids} = prim_file:list_dir(["/proc/", os:getpid(), "/task"]),
    persistent_term:put({?MODULE, vm_threads}, maps:from_keys(Tids, true)).

%% @doc A thread's group: main, the BEAM's schedulers, dirty schedulers, other BEAM threads, or
%% threads started later by a library (see remember_vm_threads/0).
-spec thread_group({string(), binary(), string()}) -> binary().
thread_group({Tid, Comm, MainTid}) ->
    Has = fun(Pat) -> binary:match(Comm, Pat) =/= nomatch end,
    VmThreads = persistent_term:get({?MODULE, vm_threads}, #{}),
    if
        Tid =:= MainTid -> <<"main">>;
        not is_map_key(Tid, VmThreads) -> <<"non-BEAM threads (NIF engine)">>;
        true ->
            case {Has(<<"dirty_cpu">>), Has(<<"dirty_io">>), Has(<<"_schedule">>)} of
                {true, _, _} -> <<"dirty CPU schedulers">>;
                {_, true, _} -> <<"dirty IO schedulers">>;
                {_, _, true} -> <<"schedulers">>;
                _ -> <<"other BEAM threads (aux, poller, signals)">>
            end
    end.

%% @doc Involuntary context switches (the OS took the CPU away) summed over this VM's normal
%% scheduler threads: a process running then looks "scheduled" for longer than it worked.
-spec scheduler_preemptions() -> non_neg_integer().
scheduler_preemptions() ->
    Main = os:getpid(),
    Base = ["/proc/", Main, "/task/"],
    {ok, Tids} = prim_file:list_dir(Base),
    lists:sum(
      [begin
           case prim_file:read_file([Base, Tid, "/status"]) of
               {ok, St} -> status_field(St, <<"nonvoluntary_ctxt_switches:">>);
               _ -> 0
           end
       end || Tid <- Tids,
              {ok, C} <- [prim_file:read_file([Base, Tid, "/comm"])],
              thread_group({Tid, string:trim(C), Main}) =:= <<"schedulers">>]).

%% @doc The kernel's (machine-wide) count of connection attempts dropped at a full listen queue:
%% TcpExt ListenOverflows + ListenDrops.
-spec tcp_listen_drops() -> non_neg_integer().
tcp_listen_drops() ->
    case prim_file:read_file("/proc/net/netstat") of
        {ok, Bin} ->
            Lines = [binary:split(L, <<" ">>, [global, trim_all])
                     || L <- binary:split(Bin, <<"\n">>, [global]), L =/= <<>>],
            case [{Names, Values} || [<<"TcpExt:">> | Names] <- Lines,
                                     [<<"TcpExt:">> | Values] <- Lines,
                                     lists:all(fun is_num/1, Values), not lists:all(fun is_num/1, Names)] of
                [{Names, Values} | _] ->
                    Kv = lists:zip(Names, Values),
                    lists:sum([binary_to_integer(V) || {K, V} <- Kv,
                                                       K =:= <<"ListenOverflows">> orelse K =:= <<"ListenDrops">>]);
                [] -> 0
            end;
        _ -> 0
    end.

is_num(B) -> B =/= <<>> andalso lists:all(fun(C) -> C >= $0 andalso C =< $9 end, binary_to_list(B)).

-spec rss_kib(os_pid()) -> non_neg_integer().
rss_kib(Pid) -> status_kib(Pid, <<"VmRSS:">>).

%% @doc Peak resident size since the process started or since reset_hwm/1.
-spec hwm_kib(os_pid()) -> non_neg_integer().
hwm_kib(Pid) -> status_kib(Pid, <<"VmHWM:">>).

%% @doc Resets VmHWM to the current RSS (writing 5 to clear_refs); false when refused.
-spec reset_hwm(os_pid()) -> boolean().
reset_hwm(Pid) ->
    prim_file:write_file(["/proc/", dir(Pid), "/clear_refs"], <<"5">>) =:= ok.

-spec thread_count(os_pid()) -> non_neg_integer().
thread_count(Pid) ->
    {ok, Tids} = prim_file:list_dir(["/proc/", dir(Pid), "/task"]),
    length(Tids).

-spec fd_count(os_pid()) -> non_neg_integer().
fd_count(Pid) ->
    case prim_file:list_dir(["/proc/", dir(Pid), "/fd"]) of
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
    {ok, Bin} = prim_file:read_file(["/proc/", dir(Pid), "/status"]),
    status_field(Bin, Key).

status_field(Bin, Key) ->
    Lines = binary:split(Bin, <<"\n">>, [global]),
    case [L || L <- Lines, binary:longest_common_prefix([L, Key]) =:= byte_size(Key)] of
        [Line | _] ->
            [_, Rest] = binary:split(Line, <<":">>),
            [Num | _] = binary:split(string:trim(Rest), <<" ">>),
            binary_to_integer(Num);
        [] -> 0
    end.
