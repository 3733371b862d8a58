// What the product rules' and metering's glue share: reading an entry point's positional
// arguments with the field named on error, and the link state's atoms.
#pragma once

#include <type_traits>
#include <utility>

#include "azmp/decisions.hpp"
#include "codec.hpp"

namespace azmp::nif {

template <>
struct EnumAtoms<LinkState> {
    static constexpr EnumAtom<LinkState> table[] = {
        {&atoms::none, LinkState::None},           {&atoms::pending, LinkState::Pending},
        {&atoms::linked, LinkState::Linked},       {&atoms::suspended, LinkState::Suspended},
        {&atoms::unsubscribed, LinkState::Unsubscribed}};
};

// Reads an entry point's arguments in order, as MapFields reads a map's fields: the first wrong one
// is kept as {badarg, Field} and the reads after it do nothing. Check ok() before using what was read.
class Args {
public:
    explicit Args(ErlNifEnv* env) : env_(env) {}

    // Decodes `t` as As (by default the type of `out`) into `out`; a wrong shape is {badarg, Field}.
    template <typename As = void, typename Out>
    bool read(ERL_NIF_TERM t, ERL_NIF_TERM field, Out& out) {
        using D = std::conditional_t<std::is_void_v<As>, Out, As>;
        if (!ok()) return false;
        auto v = decode<D>(env_, t);
        if (!v) return fail(field);
        out = static_cast<Out>(std::move(*v));
        return true;
    }

    bool fail(ERL_NIF_TERM field) {
        if (ok()) reason_ = enif_make_tuple2(env_, atoms::badarg, field);
        return false;
    }
    // A map's error ({badarg, Field}), when it is the first.
    bool take(const MapFields& f) {
        if (ok() && f.error()) reason_ = encode(env_, *f.error());
        return ok();
    }

    bool ok() const { return reason_ == 0; }
    ERL_NIF_TERM raise() const { return enif_raise_exception(env_, reason_); }

private:
    ErlNifEnv* env_;
    ERL_NIF_TERM reason_ = 0;  // {badarg, Field} once an argument is wrong (0 is never a term)
};

}  // namespace azmp::nif
