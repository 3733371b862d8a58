%% @doc Test PKI for the emulator's HTTPS listener, made with the openssl CLI:
%% a CA, a server certificate it signs (SAN IP:127.0.0.1, DNS:localhost,
%% RSA 2048) and an unrelated second CA for "wrong CA fails closed" tests.
%% The SAN also carries DNS:127.0.0.1 because OTP's ssl (httpc) checks an
%% IP-literal host as a DNS name; OpenSSL/libcurl use the IP entry.
-module(azmp_emulator_certs).

-export([generate/1, fresh_dir/0]).

-type files() :: #{ca_file := file:filename(), server_cert := file:filename(),
                   server_key := file:filename(),
                   other_ca_file := file:filename()}.
-export_type([files/0]).

%% @doc A new empty directory under /tmp.
-spec fresh_dir() -> file:filename().
fresh_dir() ->
    Name = io_lib:format("azmp_emulator_~s_~b",
                         [os:getpid(), erlang:unique_integer([positive])]),
    Dir = filename:join("/tmp", lists:flatten(Name)),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Dir.

%% @doc Write ca.pem, server.pem, server.key and other_ca.pem into Dir.
-spec generate(file:filename()) -> files().
generate(Dir) ->
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    F = fun(Name) -> filename:join(Dir, Name) end,
    ok = make_ca(F("ca.key"), F("ca.pem"), "azmp emulator test CA"),
    ok = make_ca(F("other_ca.key"), F("other_ca.pem"), "azmp emulator unrelated CA"),
    ok = file:write_file(F("server.ext"),
                         "basicConstraints=critical,CA:FALSE\n"
                         "keyUsage=critical,digitalSignature,keyEncipherment\n"
                         "extendedKeyUsage=serverAuth\n"
                         "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:127.0.0.1\n"),
    ok = openssl(["req", "-new", "-newkey", "rsa:2048", "-nodes",
                  "-keyout", F("server.key"), "-out", F("server.csr"),
                  "-subj", "/CN=localhost"]),
    ok = openssl(["x509", "-req", "-in", F("server.csr"),
                  "-CA", F("ca.pem"), "-CAkey", F("ca.key"),
                  "-set_serial", integer_to_list(erlang:unique_integer([positive]) + 1000),
                  "-days", "825", "-sha256",
                  "-extfile", F("server.ext"), "-out", F("server.pem")]),
    #{ca_file => F("ca.pem"), server_cert => F("server.pem"),
      server_key => F("server.key"), other_ca_file => F("other_ca.pem")}.

make_ca(Key, Pem, CN) ->
    openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
             "-keyout", Key, "-out", Pem, "-days", "3650",
             "-subj", "/CN=" ++ CN,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"]).

openssl(Args) ->
    Exe = case os:find_executable("openssl") of
              false -> error(openssl_not_found);
              E -> E
          end,
    Port = open_port({spawn_executable, Exe},
                     [{args, Args}, exit_status, stderr_to_stdout, binary]),
    collect(Port, []).

collect(Port, Acc) ->
    receive
        {Port, {data, D}} -> collect(Port, [D | Acc]);
        {Port, {exit_status, 0}} -> ok;
        {Port, {exit_status, N}} ->
            error({openssl_failed, N, iolist_to_binary(lists:reverse(Acc))})
    after 60000 ->
            error(openssl_timeout)
    end.
