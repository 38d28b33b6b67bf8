// leakguard/impl/symbol_table.hpp — a module's functions from its symbol
// table, sorted by address.
//
// libdw names an address by reading the module's whole symbol table each
// time (dwfl_module_addrname); a suppression's decision names every return
// address of a stack, and a test program's table holds tens of thousands of
// functions. Sorted once per module, a name is a binary search.
#pragma once

#if LEAKGUARD_HAVE_LIBDW
#include <elfutils/libdwfl.h>
#include <gelf.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "sort.hpp"

namespace leakguard::detail {

class symbol_table {
 public:
  explicit symbol_table(Dwfl_Module* module) : module_(module) {
    const int count = dwfl_module_getsymtab(module);
    for (int i = 1; i < count; ++i) {
      GElf_Sym sym;
      GElf_Addr address = 0;
      GElf_Word section = 0;
      const char* name = dwfl_module_getsym_info(module, i, &sym, &address, &section, nullptr, nullptr);
      const int type = GELF_ST_TYPE(sym.st_info);
      if (!name || !*name || section == SHN_UNDEF || (type != STT_FUNC && type != STT_GNU_IFUNC)) continue;
      entries_.push_back({address, static_cast<std::uint32_t>(std::min<GElf_Xword>(sym.st_size, UINT32_MAX)),
                          static_cast<std::uint32_t>(i) & index_mask, rank(GELF_ST_BIND(sym.st_info)) & 3u});
    }
    // Aliases share an address: the first by binding (global, weak, local)
    // names it, as libdw prefers. Addresses leave the key's top bits free.
    sort_by(entries_, [](const entry& e) { return e.low << 2 | e.rank; });
    auto same_address = [](const entry& a, const entry& b) { return a.low == b.low; };
    entries_.erase(std::unique(entries_.begin(), entries_.end(), same_address), entries_.end());
    entries_.shrink_to_fit();
  }

  // The name of the function whose code holds `at` (an address in the
  // process), as the symbol table spells it; null if no sized function
  // symbol holds it.
  const char* name_at(GElf_Addr at) const {
    auto after = std::upper_bound(entries_.begin(), entries_.end(), at,
                                  [](GElf_Addr a, const entry& e) { return a < e.low; });
    if (after == entries_.begin()) return nullptr;
    const entry& e = *(after - 1);
    if (at - e.low >= e.size) return nullptr;
    GElf_Sym sym;
    GElf_Addr address;
    return dwfl_module_getsym_info(module_, static_cast<int>(e.index), &sym, &address, nullptr, nullptr, nullptr);
  }

 private:
  struct entry {
    GElf_Addr low;
    std::uint32_t size;
    std::uint32_t index : 30;  // no symbol table holds 2^30 symbols
    std::uint32_t rank : 2;
  };
  static constexpr std::uint32_t index_mask = (1u << 30) - 1;

  static std::uint32_t rank(int binding) { return binding == STB_GLOBAL ? 0 : binding == STB_WEAK ? 1 : 2; }

  Dwfl_Module* module_;
  std::vector<entry> entries_;
};

}  // namespace leakguard::detail
#endif
