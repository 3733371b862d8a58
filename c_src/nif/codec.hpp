// A typed boundary between Erlang terms and C++ values (the pattern of elixir-nx/fine, without
// exceptions): decode<T> reads a term as a T or says it has the wrong shape, encode makes a term from
// a value, and MapFields reads a map's fields by their pre-made atom keys, turning a wrong shape into
// Error::badarg(<the field's name>). Nothing here throws on a wrong term.
//
//   MapFields f(env, map, "config");                  // not a map -> {badarg, config}
//   f.get(atoms::tenant_id, cfg.tenant_id);            // absent: cfg keeps its default
//   f.get<Positive>(atoms::timeout_ms, cfg.timeout_ms);// decoded as Positive, stored in a long
//   f.require<double>(atoms::quantity, e.quantity);    // absent -> {badarg, quantity}
//   if (auto err = f.finish()) return *err;            // also refuses a key nobody read: {badarg, Key}
//                                                      // (f.error() instead: other keys are ignored)
//
//   return ok_tuple(env, encode(env, std::string_view("id")));   // {ok, <<"id">>}
//   return encode(env, TokenEndpoint::V1);                       // v1, through EnumAtoms<TokenEndpoint>
#pragma once

#include <erl_nif.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "atoms.hpp"
#include "azmp/error.hpp"

namespace azmp::nif {

// Longer than any id, URL or token Azure would accept: refused, which also keeps every NIF call short.
inline constexpr std::size_t kMaxBinaryBytes = 64 * 1024;

// Specialise Codec<T> with `static std::optional<T> decode(ErlNifEnv*, ERL_NIF_TERM)` and/or
// `static ERL_NIF_TERM encode(ErlNifEnv*, const T&)`.
template <typename T, typename = void>
struct Codec;

// The term as a T, or nothing when its shape is wrong.
template <typename T>
std::optional<T> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
    return Codec<T>::decode(env, t);
}

template <typename T>
ERL_NIF_TERM encode(ErlNifEnv* env, const T& v) {
    return Codec<T>::encode(env, v);
}

// ---- scalars ------------------------------------------------------------------------------------

// A binary of at most kMaxBinaryBytes. The view (decode<std::string_view>) is valid during the call.
template <>
struct Codec<std::string_view> {
    static std::optional<std::string_view> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
        ErlNifBinary bin;
        if (!enif_inspect_binary(env, t, &bin) || bin.size > kMaxBinaryBytes) return std::nullopt;
        return std::string_view(reinterpret_cast<const char*>(bin.data), bin.size);
    }
    static ERL_NIF_TERM encode(ErlNifEnv* env, std::string_view s) {
        ERL_NIF_TERM t;
        unsigned char* p = enif_make_new_binary(env, s.size(), &t);
        if (!s.empty()) std::memcpy(p, s.data(), s.size());
        return t;
    }
};

template <>
struct Codec<std::string> {
    static std::optional<std::string> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
        auto v = Codec<std::string_view>::decode(env, t);
        if (!v) return std::nullopt;
        return std::string(*v);
    }
    static ERL_NIF_TERM encode(ErlNifEnv* env, const std::string& s) { return Codec<std::string_view>::encode(env, s); }
};

// true | false
template <>
struct Codec<bool> {
    static std::optional<bool> decode(ErlNifEnv*, ERL_NIF_TERM t) {
        if (enif_is_identical(t, atoms::true_)) return true;
        if (enif_is_identical(t, atoms::false_)) return false;
        return std::nullopt;
    }
    static ERL_NIF_TERM encode(ErlNifEnv*, bool b) { return b ? atoms::true_ : atoms::false_; }
};

template <>
struct Codec<std::int64_t> {
    static std::optional<std::int64_t> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
        ErlNifSInt64 v;
        if (!enif_get_int64(env, t, &v)) return std::nullopt;
        return static_cast<std::int64_t>(v);
    }
    static ERL_NIF_TERM encode(ErlNifEnv* env, std::int64_t v) { return enif_make_int64(env, v); }
};

template <>
struct Codec<std::uint64_t> {
    static ERL_NIF_TERM encode(ErlNifEnv* env, std::uint64_t v) { return enif_make_uint64(env, v); }
};

template <>
struct Codec<int> {
    static ERL_NIF_TERM encode(ErlNifEnv* env, int v) { return enif_make_int(env, v); }
};

// A number: a float, or an integer taken as a double. Encoded as a float (finite values only).
template <>
struct Codec<double> {
    static std::optional<double> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
        double d;
        if (enif_get_double(env, t, &d)) return d;
        ErlNifSInt64 i;
        if (enif_get_int64(env, t, &i)) return static_cast<double>(i);
        return std::nullopt;
    }
    static ERL_NIF_TERM encode(ErlNifEnv* env, double d) { return enif_make_double(env, d); }
};

// An integer in [Lo, Hi]. Converts to std::int64_t, so MapFields can store it in a long, an int, ...
template <std::int64_t Lo, std::int64_t Hi>
struct IntIn {
    std::int64_t value;
    operator std::int64_t() const { return value; }
};
using Positive = IntIn<1, std::numeric_limits<int>::max()>;
using NonNegative = IntIn<0, std::numeric_limits<int>::max()>;

template <std::int64_t Lo, std::int64_t Hi>
struct Codec<IntIn<Lo, Hi>> {
    static std::optional<IntIn<Lo, Hi>> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
        auto v = Codec<std::int64_t>::decode(env, t);
        if (!v || *v < Lo || *v > Hi) return std::nullopt;
        return IntIn<Lo, Hi>{*v};
    }
};

// ---- composites ---------------------------------------------------------------------------------

// undefined <-> nothing; anything else is a T.
template <typename T>
struct Codec<std::optional<T>> {
    static std::optional<std::optional<T>> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
        if (enif_is_identical(t, atoms::undefined)) return std::optional<T>{};
        auto v = nif::decode<T>(env, t);
        if (!v) return std::nullopt;
        return std::optional<T>{std::move(*v)};
    }
    static ERL_NIF_TERM encode(ErlNifEnv* env, const std::optional<T>& v) {
        return v ? nif::encode(env, *v) : atoms::undefined;
    }
};

// A proper list of at most Max elements, each a T. Converts to std::vector<T>.
template <typename T, std::size_t Max>
struct ListOf {
    std::vector<T> items;
    operator std::vector<T>() && { return std::move(items); }
};

template <typename T, std::size_t Max>
struct Codec<ListOf<T, Max>> {
    static std::optional<ListOf<T, Max>> decode(ErlNifEnv* env, ERL_NIF_TERM t) {
        ListOf<T, Max> out;
        ERL_NIF_TERM head, tail = t;
        while (enif_get_list_cell(env, tail, &head, &tail)) {
            if (out.items.size() >= Max) return std::nullopt;  // refused before walking the rest
            auto v = nif::decode<T>(env, head);
            if (!v) return std::nullopt;
            out.items.push_back(std::move(*v));
        }
        if (!enif_is_empty_list(env, tail)) return std::nullopt;
        return out;
    }
};

// ---- enums, through a table of names --------------------------------------------------------------

// Specialise with the enum's atoms:
//   template <> struct EnumAtoms<TokenEndpoint> {
//       static constexpr EnumAtom<TokenEndpoint> table[] = {{&atoms::v1, TokenEndpoint::V1}, ...};
//   };
template <typename E>
struct EnumAtom {
    const ERL_NIF_TERM* atom;  // an entry of the atoms table: filled at load
    E value;
};
template <typename E>
struct EnumAtoms;

template <typename E>
struct Codec<E, std::enable_if_t<std::is_enum_v<E>>> {
    static std::optional<E> decode(ErlNifEnv*, ERL_NIF_TERM t) {
        for (const auto& e : EnumAtoms<E>::table)
            if (enif_is_identical(t, *e.atom)) return e.value;
        return std::nullopt;
    }
    // A value missing from the table (a bug) is encoded as `undefined`.
    static ERL_NIF_TERM encode(ErlNifEnv*, E v) {
        for (const auto& e : EnumAtoms<E>::table)
            if (e.value == v) return *e.atom;
        return atoms::undefined;
    }
};

// ---- maps ---------------------------------------------------------------------------------------

// An atom named `name`: the atoms table's when it has one, else made now (names outside the table
// are rare: error fields, reasons from the core). Names longer than an atom may be are `undefined`.
inline ERL_NIF_TERM atom_named(ErlNifEnv* env, std::string_view name) {
    if (ERL_NIF_TERM a = atoms::find(name)) return a;
    if (name.size() > 255) return atoms::undefined;
    return enif_make_atom_len(env, name.data(), name.size());
}

// #{Key => Value, ...} from pairs of terms (keys distinct).
template <std::size_t N>
ERL_NIF_TERM make_map(ErlNifEnv* env, const std::array<std::pair<ERL_NIF_TERM, ERL_NIF_TERM>, N>& pairs) {
    ERL_NIF_TERM keys[N], values[N];
    for (std::size_t i = 0; i < N; ++i) {
        keys[i] = pairs[i].first;
        values[i] = pairs[i].second;
    }
    ERL_NIF_TERM m;
    if (!enif_make_map_from_arrays(env, keys, values, N, &m)) return enif_make_badarg(env);
    return m;
}

// Reads the fields of a map whose keys are atoms, by pre-made atom keys. The first wrong field is
// kept as Error::badarg(<field name>) and later reads do nothing; finish() returns it, or, when
// every read field was right, refuses a key no read asked for (an unknown option: {badarg, Key}, or
// {badarg, What} for a key that is not an atom). Not a map at all: {badarg, What}.
class MapFields {
public:
    MapFields(ErlNifEnv* env, ERL_NIF_TERM map, std::string_view what) : env_(env), map_(map), what_(what) {
        if (!enif_is_map(env, map)) err_ = Error::badarg(std::string(what));
    }

    // An optional field: absent leaves `out` as it is. The value is decoded as As (by default the
    // type of `out`) and then stored in `out`. False when the field (or an earlier one) is wrong.
    template <typename As = void, typename Out>
    bool get(ERL_NIF_TERM key, Out& out) {
        return read<As>(key, out, false);
    }

    // A field that must be present.
    template <typename As = void, typename Out>
    bool require(ERL_NIF_TERM key, Out& out) {
        return read<As>(key, out, true);
    }

    // A field's raw term, for values that need a decoder of their own (nested maps, lists);
    // report their errors with fail().
    std::optional<ERL_NIF_TERM> term(ERL_NIF_TERM key) {
        if (err_) return std::nullopt;
        const bool first_read = remember(key);
        ERL_NIF_TERM v;
        if (!enif_get_map_value(env_, map_, key, &v)) return std::nullopt;
        if (first_read) ++present_;
        return v;
    }

    // Records `e` as this map's error (when it is the first).
    void fail(Error e) {
        if (!err_) err_ = std::move(e);
    }
    void fail(ERL_NIF_TERM key) { fail(Error::badarg(name_of(key))); }

    bool ok() const { return !err_.has_value(); }

    // The first error, for maps whose other keys are ignored (finish() refuses them).
    const std::optional<Error>& error() const { return err_; }

    // The first error, else the first key no read asked for, else nothing.
    std::optional<Error> finish() {
        if (err_) return err_;
        std::size_t size = 0;
        if (!enif_get_map_size(env_, map_, &size) || size == present_) return std::nullopt;
        ErlNifMapIterator it;
        if (!enif_map_iterator_create(env_, map_, &it, ERL_NIF_MAP_ITERATOR_FIRST))
            return Error::badarg(std::string(what_));
        ERL_NIF_TERM k, v;
        while (!err_ && enif_map_iterator_get_pair(env_, &it, &k, &v)) {
            if (!enif_is_atom(env_, k)) err_ = Error::badarg(std::string(what_));
            else if (!asked(k)) err_ = Error::badarg(name_of(k));
            enif_map_iterator_next(env_, &it);
        }
        enif_map_iterator_destroy(env_, &it);
        return err_;
    }

private:
    template <typename As, typename Out>
    bool read(ERL_NIF_TERM key, Out& out, bool required) {
        using D = std::conditional_t<std::is_void_v<As>, Out, As>;
        auto t = term(key);
        if (!t) {
            if (required) fail(key);
            return ok();
        }
        auto v = nif::decode<D>(env_, *t);
        if (!v) {
            fail(key);
            return false;
        }
        out = static_cast<Out>(std::move(*v));
        return true;
    }

    // False when `key` was read before.
    bool remember(ERL_NIF_TERM key) {
        if (asked(key)) return false;
        if (n_asked_ < asked_.size()) asked_[n_asked_++] = key;
        return true;
    }
    bool asked(ERL_NIF_TERM key) const {
        for (std::size_t i = 0; i < n_asked_; ++i)
            if (enif_is_identical(asked_[i], key)) return true;
        return false;
    }
    std::string name_of(ERL_NIF_TERM key) const {
        char buf[256];
        if (enif_get_atom(env_, key, buf, sizeof buf, ERL_NIF_LATIN1) <= 0) return std::string(what_);
        return buf;
    }

    ErlNifEnv* env_;
    ERL_NIF_TERM map_;
    std::string_view what_;
    std::optional<Error> err_;
    std::size_t present_ = 0;          // fields read that the map has
    std::array<ERL_NIF_TERM, 32> asked_{};  // keys read so far: a map of more fields needs a larger array
    std::size_t n_asked_ = 0;
};

// Error -> timeout | overloaded | {http, Status, Body} | {transport, D} | {bad_response, D} | {auth, D}
//          | {badarg, Field} | {insecure_endpoint, Field, Hint}
template <>
struct Codec<Error> {
    static ERL_NIF_TERM encode(ErlNifEnv* env, const Error& e) {
        auto bin = [env](const std::string& s) { return Codec<std::string_view>::encode(env, s); };
        switch (e.kind) {
            case ErrorKind::Timeout: return atoms::timeout;
            case ErrorKind::Overloaded: return atoms::overloaded;
            case ErrorKind::Http: return enif_make_tuple3(env, atoms::http, enif_make_long(env, e.status), bin(e.detail));
            case ErrorKind::Transport: return enif_make_tuple2(env, atoms::transport, bin(e.detail));
            case ErrorKind::BadResponse: return enif_make_tuple2(env, atoms::bad_response, bin(e.detail));
            case ErrorKind::Auth: return enif_make_tuple2(env, atoms::auth, bin(e.detail));
            case ErrorKind::Badarg: return enif_make_tuple2(env, atoms::badarg, atom_named(env, e.detail));
            case ErrorKind::InsecureEndpoint:
                return enif_make_tuple3(env, atoms::insecure_endpoint, atom_named(env, e.detail),
                                        bin(Error::kInsecureEndpointHint));
        }
        return atoms::error;
    }
};

}  // namespace azmp::nif
