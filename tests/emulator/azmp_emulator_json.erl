%% @doc Minimal, strict JSON (RFC 8259) encoder/decoder for the Azure
%% Marketplace emulator. Test infrastructure only (OTP 25 has no json module).
%%
%% Decoded representation: objects are maps with binary keys, arrays are
%% lists, strings are UTF-8 binaries, numbers are integers or floats, and
%% true/false/null are atoms.
%%
%% Encoding accepts the same, plus atom or string-like keys, other atoms as
%% strings, and it DROPS object members whose value is `undefined' (handy for
%% optional fields).
-module(azmp_emulator_json).

-export([encode/1, decode/1]).

-type json() :: #{binary() => json()} | [json()] | binary() | number()
              | true | false | null.
-export_type([json/0]).

%%% ---------------------------------------------------------------- encode

-spec encode(term()) -> binary().
encode(Term) ->
    iolist_to_binary(enc(Term)).

enc(true) -> <<"true">>;
enc(false) -> <<"false">>;
enc(null) -> <<"null">>;
enc(undefined) -> <<"null">>;
enc(B) when is_binary(B) -> enc_string(B);
enc(A) when is_atom(A) -> enc_string(atom_to_binary(A, utf8));
enc(I) when is_integer(I) -> integer_to_binary(I);
enc(F) when is_float(F) -> float_to_binary(F, [short]);
enc(M) when is_map(M) ->
    Members = [[enc_key(K), $:, enc(V)]
               || {K, V} <- lists:sort(maps:to_list(M)), V =/= undefined],
    [${, lists:join($,, Members), $}];
enc(L) when is_list(L) ->
    [$[, lists:join($,, [enc(E) || E <- L]), $]];
enc(Other) ->
    error({not_json, Other}).

enc_key(K) when is_binary(K) -> enc_string(K);
enc_key(K) when is_atom(K) -> enc_string(atom_to_binary(K, utf8));
enc_key(K) when is_list(K) -> enc_string(unicode:characters_to_binary(K));
enc_key(K) when is_integer(K) -> enc_string(integer_to_binary(K)).

enc_string(B) ->
    [$", esc(B, <<>>), $"].

esc(<<>>, Acc) -> Acc;
esc(<<$", R/binary>>, Acc) -> esc(R, <<Acc/binary, "\\\"">>);
esc(<<$\\, R/binary>>, Acc) -> esc(R, <<Acc/binary, "\\\\">>);
esc(<<$\n, R/binary>>, Acc) -> esc(R, <<Acc/binary, "\\n">>);
esc(<<$\r, R/binary>>, Acc) -> esc(R, <<Acc/binary, "\\r">>);
esc(<<$\t, R/binary>>, Acc) -> esc(R, <<Acc/binary, "\\t">>);
esc(<<$\b, R/binary>>, Acc) -> esc(R, <<Acc/binary, "\\b">>);
esc(<<$\f, R/binary>>, Acc) -> esc(R, <<Acc/binary, "\\f">>);
esc(<<C, R/binary>>, Acc) when C < 16#20 ->
    Hex = iolist_to_binary(io_lib:format("\\u~4.16.0b", [C])),
    esc(R, <<Acc/binary, Hex/binary>>);
esc(<<C, R/binary>>, Acc) -> esc(R, <<Acc/binary, C>>).

%%% ---------------------------------------------------------------- decode

-spec decode(binary() | iodata()) -> {ok, json()} | {error, term()}.
decode(Data) ->
    Bin = iolist_to_binary(Data),
    try
        {Value, Rest} = value(ws(Bin)),
        case ws(Rest) of
            <<>> -> {ok, Value};
            _ -> {error, trailing_data}
        end
    catch
        throw:Reason -> {error, Reason};
        error:Reason -> {error, {invalid_json, Reason}}
    end.

ws(<<C, R/binary>>) when C =:= $\s; C =:= $\t; C =:= $\n; C =:= $\r -> ws(R);
ws(B) -> B.

value(<<${, R/binary>>) -> object(ws(R), #{});
value(<<$[, R/binary>>) -> array(ws(R), []);
value(<<$", R/binary>>) -> string(R, <<>>);
value(<<"true", R/binary>>) -> {true, R};
value(<<"false", R/binary>>) -> {false, R};
value(<<"null", R/binary>>) -> {null, R};
value(<<C, _/binary>> = B) when C =:= $-; C >= $0, C =< $9 -> number(B);
value(<<>>) -> throw(unexpected_end);
value(_) -> throw(unexpected_character).

object(<<$}, R/binary>>, Acc) when map_size(Acc) =:= 0 -> {Acc, R};
object(<<$", R/binary>>, Acc) ->
    {Key, R1} = string(R, <<>>),
    case ws(R1) of
        <<$:, R2/binary>> ->
            {Val, R3} = value(ws(R2)),
            Acc1 = Acc#{Key => Val},
            case ws(R3) of
                <<$,, R4/binary>> -> object_key(ws(R4), Acc1);
                <<$}, R4/binary>> -> {Acc1, R4};
                _ -> throw(bad_object)
            end;
        _ -> throw(bad_object)
    end;
object(_, _) -> throw(bad_object).

object_key(<<$", _/binary>> = B, Acc) -> object(B, Acc);
object_key(_, _) -> throw(bad_object).

array(<<$], R/binary>>, []) -> {[], R};
array(B, Acc) ->
    {Val, R} = value(B),
    case ws(R) of
        <<$,, R1/binary>> -> array(ws(R1), [Val | Acc]);
        <<$], R1/binary>> -> {lists:reverse([Val | Acc]), R1};
        _ -> throw(bad_array)
    end.

string(<<$", R/binary>>, Acc) ->
    case unicode:characters_to_binary(Acc, utf8, utf8) of
        Acc -> {Acc, R};
        _ -> throw(invalid_utf8)
    end;
string(<<$\\, $u, H:4/binary, R/binary>>, Acc) ->
    C = hex(H),
    if
        C >= 16#D800, C =< 16#DBFF ->
            case R of
                <<$\\, $u, L:4/binary, R1/binary>> ->
                    Lo = hex(L),
                    (Lo >= 16#DC00 andalso Lo =< 16#DFFF)
                        orelse throw(bad_surrogate),
                    Cp = 16#10000 + ((C - 16#D800) bsl 10) + (Lo - 16#DC00),
                    string(R1, <<Acc/binary, Cp/utf8>>);
                _ -> throw(bad_surrogate)
            end;
        C >= 16#DC00, C =< 16#DFFF -> throw(bad_surrogate);
        true -> string(R, <<Acc/binary, C/utf8>>)
    end;
string(<<$\\, E, R/binary>>, Acc) ->
    Ch = case E of
             $" -> $";
             $\\ -> $\\;
             $/ -> $/;
             $b -> $\b;
             $f -> $\f;
             $n -> $\n;
             $r -> $\r;
             $t -> $\t;
             _ -> throw(bad_escape)
         end,
    string(R, <<Acc/binary, Ch>>);
string(<<C, _/binary>>, _) when C < 16#20 -> throw(control_character_in_string);
string(<<C, R/binary>>, Acc) -> string(R, <<Acc/binary, C>>);
string(<<>>, _) -> throw(unterminated_string).

hex(<<A, B, C, D>> = H) ->
    lists:all(fun is_hex/1, [A, B, C, D]) orelse throw(bad_unicode_escape),
    binary_to_integer(H, 16).

is_hex(C) -> (C >= $0 andalso C =< $9) orelse (C >= $a andalso C =< $f)
                 orelse (C >= $A andalso C =< $F).

number(B) ->
    {Int, R1} = int_part(B),
    {Frac, R2} = frac_part(R1),
    {Exp, R3} = exp_part(R2),
    Text = <<Int/binary, Frac/binary, Exp/binary>>,
    case {Frac, Exp} of
        {<<>>, <<>>} -> {binary_to_integer(Text), R3};
        {<<>>, _} -> {to_float(<<Int/binary, ".0", Exp/binary>>), R3};
        _ -> {to_float(Text), R3}
    end.

to_float(T) ->
    try binary_to_float(T)
    catch error:badarg -> throw(number_out_of_range)
    end.

int_part(<<$-, R/binary>>) ->
    {D, R1} = int_digits(R),
    {<<$-, D/binary>>, R1};
int_part(B) -> int_digits(B).

int_digits(<<$0, R/binary>>) ->
    case R of
        <<C, _/binary>> when C >= $0, C =< $9 -> throw(leading_zero);
        _ -> {<<$0>>, R}
    end;
int_digits(<<C, _/binary>> = B) when C >= $1, C =< $9 -> digits(B, <<>>);
int_digits(_) -> throw(bad_number).

frac_part(<<$., C, _/binary>> = B) when C >= $0, C =< $9 ->
    <<$., R/binary>> = B,
    {D, R1} = digits(R, <<>>),
    {<<$., D/binary>>, R1};
frac_part(<<$., _/binary>>) -> throw(bad_number);
frac_part(B) -> {<<>>, B}.

exp_part(<<E, R/binary>>) when E =:= $e; E =:= $E ->
    {Sign, R1} = case R of
                     <<$+, X/binary>> -> {<<"+">>, X};
                     <<$-, X/binary>> -> {<<"-">>, X};
                     X -> {<<>>, X}
                 end,
    case R1 of
        <<C, _/binary>> when C >= $0, C =< $9 ->
            {D, R2} = digits(R1, <<>>),
            {<<$e, Sign/binary, D/binary>>, R2};
        _ -> throw(bad_number)
    end;
exp_part(B) -> {<<>>, B}.

digits(<<C, R/binary>>, Acc) when C >= $0, C =< $9 -> digits(R, <<Acc/binary, C>>);
digits(R, Acc) -> {Acc, R}.
