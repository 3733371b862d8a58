#include "atoms.hpp"

#include <atomic>

namespace azmp::nif::atoms {

#define AZMP_NIF_DEFINE_ATOM(id, name) ERL_NIF_TERM id = 0;
AZMP_NIF_ATOMS(AZMP_NIF_DEFINE_ATOM)
#undef AZMP_NIF_DEFINE_ATOM

namespace {
struct Entry {
    std::string_view name;
    ERL_NIF_TERM* term;
};
#define AZMP_NIF_ATOM_ENTRY(id, name) Entry{name, &id},
const Entry kTable[] = {AZMP_NIF_ATOMS(AZMP_NIF_ATOM_ENTRY)};
#undef AZMP_NIF_ATOM_ENTRY
}  // namespace

void make_all(ErlNifEnv* env) noexcept {
    // Once per mapping of this image: an upgrade that reuses the image must not write the globals
    // while its entry points read them on other schedulers. Load callbacks run one at a time.
    static std::atomic<bool> made{false};
    if (made.load(std::memory_order_acquire)) return;
    for (const auto& e : kTable) *e.term = enif_make_atom_len(env, e.name.data(), e.name.size());
    made.store(true, std::memory_order_release);
}

ERL_NIF_TERM find(std::string_view name) noexcept {
    for (const auto& e : kTable)
        if (e.name == name) return *e.term;
    return 0;
}

}  // namespace azmp::nif::atoms
