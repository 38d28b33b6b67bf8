// leakguard/impl/symbol_table.hpp — a module's functions from its symbol
// table, sorted by address.
//
// libdw names an address by reading the module's whole symbol table each
// time (dwfl_module_addrname); a suppression's decision names every return
// address of a stack, and a test program's table holds tens of thousands of
// functions. Sorted once per module, a name is a binary search. libdw is
// asked only for an address that no sized function holds and that one of
// its other candidates might name (a label without a size, a sized
// symbol that is not a function): in a stripped system library, none.
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
      Elf* elf = nullptr;
      Dwarf_Addr bias = 0;
      const char* name = dwfl_module_getsym_info(module, i, &sym, &address, &section, &elf, &bias);
      const int type = GELF_ST_TYPE(sym.st_info);
      if (!name || !*name || section == SHN_UNDEF || type == STT_SECTION || type == STT_FILE || type == STT_TLS)
        continue;
      if ((type == STT_FUNC || type == STT_GNU_IFUNC) && sym.st_size > 0)
        entries_.push_back({address, static_cast<std::uint32_t>(std::min<GElf_Xword>(sym.st_size, UINT32_MAX)),
                            static_cast<std::uint32_t>(i) & index_mask, rank(GELF_ST_BIND(sym.st_info)) & 3u});
      else if (sym.st_size > 0)
        others_.push_back({address, address + sym.st_size});
      else if (section < SHN_LORESERVE)  // libdw names an absolute symbol's own address only
        others_.push_back({address, section_end(elf, section, bias, address)});
    }
    // Aliases share an address: the first by binding (global, weak, local)
    // names it, as libdw prefers. Addresses leave the key's top bits free.
    sort_by(entries_, [](const entry& e) { return e.low << 2 | e.rank; });
    auto same_address = [](const entry& a, const entry& b) { return a.low == b.low; };
    entries_.erase(std::unique(entries_.begin(), entries_.end(), same_address), entries_.end());
    entries_.shrink_to_fit();
    sort_by(others_, [](const range& r) { return r.begin; });
    for (std::size_t i = 1; i < others_.size(); ++i) others_[i].end = std::max(others_[i].end, others_[i - 1].end);
    others_.shrink_to_fit();
  }

  // The name of the function whose code holds `at` (an address in the
  // process), as the symbol table spells it; null if no sized function
  // symbol holds it.
  const char* function_at(GElf_Addr at) const {
    auto after = std::upper_bound(entries_.begin(), entries_.end(), at,
                                  [](GElf_Addr a, const entry& e) { return a < e.low; });
    if (after == entries_.begin()) return nullptr;
    const entry& e = *(after - 1);
    if (at - e.low >= e.size) return nullptr;
    GElf_Sym sym;
    GElf_Addr address;
    return dwfl_module_getsym_info(module_, static_cast<int>(e.index), &sym, &address, nullptr, nullptr, nullptr);
  }

  // Whether libdw might name `at` by a symbol other than a sized function:
  // a sized symbol of another type holds it, or a label without a size
  // lies before it in its section.
  bool others_may_name(GElf_Addr at) const {
    auto after = std::upper_bound(others_.begin(), others_.end(), at,
                                  [](GElf_Addr a, const range& r) { return a < r.begin; });
    return after != others_.begin() && at < (after - 1)->end;
  }

  // libdw's name for `at` (dwfl_module_addrname), from the sorted table
  // where that can tell.
  const char* name_at(GElf_Addr at) const {
    if (const char* name = function_at(at)) return name;
    return others_may_name(at) ? dwfl_module_addrname(module_, at) : nullptr;
  }

 private:
  struct entry {
    GElf_Addr low;
    std::uint32_t size;
    std::uint32_t index : 30;  // no symbol table holds 2^30 symbols
    std::uint32_t rank : 2;
  };
  static constexpr std::uint32_t index_mask = (1u << 30) - 1;

  // What another symbol could name: from its address to its end, or, for
  // a label without a size, to its section's end. `end` holds the greatest
  // end up to this one, so one search answers.
  struct range {
    GElf_Addr begin, end;
  };

  static std::uint32_t rank(int binding) { return binding == STB_GLOBAL ? 0 : binding == STB_WEAK ? 1 : 2; }

  // In the process's addresses; past every address if the section cannot
  // be read (libdw is then asked).
  static GElf_Addr section_end(Elf* elf, GElf_Word section, Dwarf_Addr bias, GElf_Addr fallback) {
    GElf_Shdr header;
    Elf_Scn* scn = elf ? elf_getscn(elf, section) : nullptr;
    if (!scn || !gelf_getshdr(scn, &header)) return ~GElf_Addr{0};
    return std::max(fallback, header.sh_addr + header.sh_size + bias);
  }

  Dwfl_Module* module_;
  std::vector<entry> entries_;
  std::vector<range> others_;
};

}  // namespace leakguard::detail
#endif
