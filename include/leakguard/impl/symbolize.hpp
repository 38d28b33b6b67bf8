// leakguard/impl/symbolize.hpp — return addresses to functions, files, lines.
//
// Runs only when a report is built. Each return address is looked up once
// and its frames kept, so a site seen again costs no system call and no
// DWARF read. file:line and inlined frames come from libdw (elfutils) when
// the build found it: it maps the program's files and decodes only the
// compilation units it is asked about, and lines are read from the units'
// line programs without keeping their tables (line_program.hpp), so memory
// grows with what is symbolized, not with the size of the debug info. Function names otherwise
// come from the symbol table (libdw; absl::Symbolize without it; dladdr).
#pragma once

#include <cxxabi.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../report.hpp"
#include "frame_kind.hpp"
#include "function_index.hpp"
#include "line_program.hpp"
#include "sort.hpp"
#include "stacks.hpp"
#include "symbol_table.hpp"

#if !LEAKGUARD_HAVE_LIBDW
#include <absl/debugging/symbolize.h>
#endif

#if LEAKGUARD_HAVE_LIBDW
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>
#endif

namespace leakguard::detail {

// Spells the standard string types the way people write them.
inline void shorten_names(std::string& name) {
  static constexpr std::string_view long_forms[][2] = {
      {"std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >", "std::string"},
      {"std::basic_string<char, std::char_traits<char>, std::allocator<char> >", "std::string"},
      {"std::__cxx11::", "std::"},
  };
  for (const auto& [from, to] : long_forms) {
    for (std::size_t at; (at = name.find(from)) != std::string::npos;) name.replace(at, from.size(), to);
  }
}

inline std::string demangle(const char* name) {
  if (!name) return {};
  int status = 0;
  char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string result = status == 0 && out ? out : name;
  std::free(out);
  shorten_names(result);
  return result;
}

// A compilation unit: its module's debug info and its offset there.
struct unit_key {
  std::uintptr_t dwarf;
  std::uint64_t offset;
  auto operator<=>(const unit_key&) const = default;
};

// A compilation unit's debug info that no lookup has read yet.
struct unread_unit {
  unit_key id;          // stays while the unit's module is loaded
  std::uint64_t bytes;  // its size in .debug_info
};

#if LEAKGUARD_HAVE_LIBDW
// A part of a file, by offset.
struct file_range {
  std::uint64_t begin, end;
};

// Where an ELF file keeps its symbol tables, their names and its section
// headers.
inline std::vector<file_range> symbol_tables(Elf* elf) {
  std::vector<file_range> out;
  GElf_Ehdr file;
  if (gelf_getehdr(elf, &file)) out.push_back({file.e_shoff, file.e_shoff + std::uint64_t{file.e_shnum} * file.e_shentsize});
  auto add = [&](const GElf_Shdr& h) { out.push_back({h.sh_offset, h.sh_offset + h.sh_size}); };
  GElf_Shdr header, names;
  for (Elf_Scn* scn = nullptr; (scn = elf_nextscn(elf, scn)) != nullptr;) {
    if (!gelf_getshdr(scn, &header)) continue;
    if (header.sh_type == SHT_SYMTAB_SHNDX) add(header);
    if (header.sh_type != SHT_SYMTAB && header.sh_type != SHT_DYNSYM) continue;
    add(header);
    if (gelf_getshdr(elf_getscn(elf, header.sh_link), &names)) add(names);
  }
  return out;
}

// Drops the pages of [first, last), page-aligned, of a private mapping of a
// file from the process's resident memory, but any page the process wrote
// to. MADV_DONTNEED leaves a page in the kernel's page cache, so reading it
// again costs a minor fault, not a disk read; on a private mapping it would
// also drop what was written (libelf maps files writable), so only the pages
// /proc/self/pagemap shows unwritten (absent, or still the file's) go.
// Where pagemap cannot be read: MADV_PAGEOUT (Linux 5.4), which keeps every
// page's contents but evicts the file's pages from the cache.
inline void give_back_pages(std::uintptr_t first, std::uintptr_t last, std::uintptr_t page) {
  const int pagemap = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pagemap < 0) {
#ifdef MADV_PAGEOUT
    madvise(reinterpret_cast<void*>(first), last - first, MADV_PAGEOUT);
#endif
    return;
  }
  auto drop = [](std::uintptr_t from, std::uintptr_t to) {
    if (from < to) madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED);
  };
  std::vector<std::uint64_t> entries(std::min<std::size_t>((last - first) / page, 1 << 16));
  std::uintptr_t run = first;  // where the pages that may go start
  for (std::uintptr_t at = first; at < last;) {
    const std::size_t n = std::min<std::size_t>(entries.size(), (last - at) / page);
    const auto bytes = static_cast<ssize_t>(n * sizeof entries[0]);
    if (::pread(pagemap, entries.data(), n * sizeof entries[0], static_cast<off_t>(at / page * sizeof entries[0])) !=
        bytes) {
      last = at;  // what was not read stays
      break;
    }
    for (std::size_t i = 0; i < n; ++i, at += page) {
      const bool present = entries[i] >> 63 & 1, swapped = entries[i] >> 62 & 1, file = entries[i] >> 61 & 1;
      if (swapped || (present && !file)) {  // written: the process's own copy
        drop(run, at);
        run = at + page;
      }
    }
  }
  drop(run, last);
  ::close(pagemap);
}

// The process's modules as libdw sees them, and their DWARF.
class dwarf_reader {
 public:
  // Appends the frames of return address `pc` (innermost inlined frame
  // first). True if its unit's debug info was read.
  // `symbol` is the symbol table's name for it (symbol()).
  bool lookup(const void* pc, const std::string& symbol, std::vector<frame>& out) {
    const Dwarf_Addr at = call_of(pc);
    Dwfl_Module* module = module_at(at);
    if (!module) return false;
    // Leakguard's own frames, on top of every stack and trimmed from
    // reports, need no more than their name. Their DWARF is the runtime's,
    // the largest compilation unit of most programs.
    if (is_internal_frame(symbol, {})) {
      out.push_back(frame{pc, symbol, {}, 0});
      return false;
    }
    Dwarf_Addr bias = 0;
    Dwarf_Die cu;
    const std::size_t before = out.size();
    const bool read = find_cu(module, at, cu, bias);
    if (read) {
      read_from(dwarf_getelf(dwarf_cu_getdwarf(cu.cu)));
      add_frames(&cu, at - bias, pc, out);
    }
    read_from(dwfl_module_getelf(module, &bias));  // its symbol table
    if (out.size() == before) out.push_back(frame{pc, {}, {}, 0});
    if (out.back().function.empty()) out.back().function = symbol;
    return read;
  }

  // The compilation unit whose debug info a lookup of `pc` would read
  // first, if no lookup read it yet: its identity, and its size in
  // .debug_info. Nothing if the lookup would read no new unit.
  std::optional<unread_unit> unread_unit_at(const void* pc, const std::string& symbol) {
    const Dwarf_Addr at = call_of(pc);
    Dwfl_Module* module = module_at(at);
    if (!module || is_internal_frame(symbol, {})) return std::nullopt;  // as lookup()
    Dwarf_Addr bias = 0;
    Dwarf_Die cu;
    if (!find_cu(module, at, cu, bias) || functions_.has(&cu)) return std::nullopt;
    Dwarf* dwarf = dwarf_cu_getdwarf(cu.cu);
    const Dwarf_Off header = dwarf_dieoffset(&cu) - dwarf_cuoffset(&cu);
    Dwarf_Off next = header;
    std::size_t header_size = 0;
    dwarf_next_unit(dwarf, header, &next, &header_size, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
    return unread_unit{{reinterpret_cast<std::uintptr_t>(dwarf), header}, next > header ? next - header : 0};
  }

  // The symbol table's name for the function holding return address `pc`,
  // demangled; empty if no module holds it or no symbol covers it.
  std::string symbol(const void* pc) {
    const Dwarf_Addr at = call_of(pc);
    Dwfl_Module* module = module_at(at);
    if (!module) return {};
    Dwarf_Addr bias = 0;
    read_from(dwfl_module_getelf(module, &bias));
    return demangle(symbols_.try_emplace(module, module).first->second.name_at(at));
  }

  // Gives back the pages of the files that lookups read (debug info),
  // which would otherwise stay in the process's resident memory for good
  // (give_back_pages). A file's symbol tables, their names and its section
  // headers stay: names are read at each lookup, and they are a small part
  // of the file.
  void release_pages() {
    const std::uintptr_t page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
    for (Elf* elf : read_) {
      std::size_t size = 0;
      const auto at = reinterpret_cast<std::uintptr_t>(elf_rawfile(elf, &size));
      if (!at) continue;
      std::vector<file_range> kept = symbol_tables(elf);
      kept.push_back({size, size});
      sort_by(kept, [](const file_range& r) { return r.begin; });
      std::uint64_t from = 0;
      for (const file_range& r : kept) {
        const std::uintptr_t first = (at + from + page - 1) & ~(page - 1), last = (at + r.begin) & ~(page - 1);
        if (first < last) give_back_pages(first, last, page);
        from = std::max<std::uint64_t>(from, r.end);
      }
    }
    read_.clear();
  }

  // Modules were loaded or unloaded since the list was read.
  void refresh() {
    read_.clear();
    cu_tables_.clear();
    symbols_.clear();
    functions_.clear();
    lines_.clear();
    if (!dwfl_) return;
    dwfl_report_begin(dwfl_);
    dwfl_linux_proc_report(dwfl_, getpid());
    dwfl_report_end(dwfl_, nullptr, nullptr);
  }

 private:
  bool start() {
    static constexpr Dwfl_Callbacks callbacks{dwfl_linux_proc_find_elf, find_debuginfo, nullptr, nullptr};
    dwfl_ = dwfl_begin(&callbacks);
    if (!dwfl_) return false;
    refresh();
    return true;
  }

  // Separate debug files of system libraries (libc6-dbg and the like) hold
  // no user's line and cost megabytes once decompressed: not read.
  static int find_debuginfo(Dwfl_Module* module, void** userdata, const char* name, Dwarf_Addr base,
                            const char* file, const char* debuglink, GElf_Word crc, char** debuginfo_file) {
    for (std::string_view system : {"/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/"})
      if (file && std::string_view(file).starts_with(system)) return -1;
    return dwfl_standard_find_debuginfo(module, userdata, name, base, file, debuglink, crc, debuginfo_file);
  }

  // The compilation unit holding `at`: libdw finds it through
  // .debug_aranges, which clang does not emit by default; then through a
  // table of every unit's address ranges, made once per module.
  bool find_cu(Dwfl_Module* module, Dwarf_Addr at, Dwarf_Die& cu, Dwarf_Addr& bias) {
    if (Dwarf_Die* die = dwfl_module_addrdie(module, at, &bias)) {
      cu = *die;
      return true;
    }
    Dwarf* dwarf = dwfl_module_getdwarf(module, &bias);
    if (!dwarf) return false;
    auto [it, made] = cu_tables_.try_emplace(module);
    if (made) it->second = cu_table(dwarf);
    return die_at(it->second, at - bias, cu);
  }

  static std::vector<die_range> cu_table(Dwarf* dwarf) {
    std::vector<die_range> table;
    Dwarf_CU* unit = nullptr;
    Dwarf_Half version;
    std::uint8_t type;
    Dwarf_Die die, split;
    while (dwarf_get_units(dwarf, unit, &unit, &version, &type, &die, &split) == 0) {
      if (type != DW_UT_compile && type != DW_UT_skeleton) continue;
      Dwarf_Addr base, low, high;
      for (std::ptrdiff_t off = 0; (off = dwarf_ranges(&die, off, &base, &low, &high)) > 0;)
        if (low < high) table.push_back({low, high, type == DW_UT_skeleton ? split : die});
    }
    sort_ranges(table);
    return table;
  }

  // The function a DIE names, demangled. Without a linkage name (internal
  // linkage, inlined copies, C) its plain name is qualified by the
  // namespaces and classes that declare it, so that suppressions and the
  // frame rules match inlined frames as they match the others.
  std::string function_name(Dwarf_Die* die) {
    Dwarf_Attribute attr;
    for (int name : {DW_AT_linkage_name, DW_AT_MIPS_linkage_name})
      if (const char* s = dwarf_formstring(dwarf_attr_integrate(die, static_cast<unsigned>(name), &attr)))
        return demangle(s);
    Dwarf_Die decl = *die, next;
    for (int hops = 0; hops < 8; ++hops) {  // to the declaration
      if (!dwarf_formref_die(dwarf_attr(&decl, DW_AT_abstract_origin, &attr), &next) &&
          !dwarf_formref_die(dwarf_attr(&decl, DW_AT_specification, &attr), &next))
        break;
      decl = next;
    }
    const char* plain = dwarf_diename(&decl);
    if (!plain) return {};
    Dwarf_Die unit;  // the declaration's own, which a reference may leave the caller's for
    if (!dwarf_diecu(&decl, &unit, nullptr, nullptr)) return plain;
    return functions_.qualifier(&unit, &decl).value_or(std::string()) + plain;
  }

  // The DIEs inside function `parent` whose code holds `rel`, outermost
  // first: the inlined calls and the blocks between them.
  static void scopes_at(Dwarf_Die* parent, Dwarf_Addr rel, std::vector<Dwarf_Die>& chain) {
    Dwarf_Die child;
    if (dwarf_child(parent, &child) != 0) return;
    do {
      switch (dwarf_tag(&child)) {
        case DW_TAG_subprogram:
        case DW_TAG_inlined_subroutine:
        case DW_TAG_lexical_block:
        case DW_TAG_try_block:
        case DW_TAG_catch_block:
          if (dwarf_haspc(&child, rel) == 1) {
            chain.push_back(child);
            scopes_at(&child, rel, chain);
            return;
          }
          break;
        default:
          break;
      }
    } while (dwarf_siblingof(&child, &child) == 0);
  }

  // One frame per inlined call at `rel` (an address in the unit's terms),
  // then the function they were inlined into.
  void add_frames(Dwarf_Die* cu, Dwarf_Addr rel, const void* pc, std::vector<frame>& out) {
    std::string file;
    int line = 0;
    if (!lines_.line_at(cu, rel, file, line)) {
      if (Dwarf_Line* l = dwarf_getsrc_die(cu, rel)) {
        if (const char* src = dwarf_linesrc(l, nullptr, nullptr)) file = src;
        dwarf_lineno(l, &line);
      }
    }
    std::vector<Dwarf_Die> chain;  // outermost first: the function, then what was inlined into it
    Dwarf_Die function;
    if (functions_.function_at(cu, rel, function)) {
      chain.push_back(function);
      scopes_at(&function, rel, chain);
    }
    bool outermost = false;
    for (auto scope = chain.rbegin(); scope != chain.rend() && !outermost; ++scope) {
      const int tag = dwarf_tag(&*scope);
      if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram) continue;
      outermost = tag == DW_TAG_subprogram;
      out.push_back(frame{pc, function_name(&*scope), file, line});
      if (outermost) break;
      // The caller's line: where this call was inlined.
      Dwarf_Attribute attr;
      Dwarf_Word call_file = 0, call_line = 0;
      dwarf_formudata(dwarf_attr(&*scope, DW_AT_call_file, &attr), &call_file);
      dwarf_formudata(dwarf_attr(&*scope, DW_AT_call_line, &attr), &call_line);
      const char* src = call_file_name(cu, call_file);
      file = src ? src : "";
      line = static_cast<int>(call_line);
    }
    if (!outermost) out.push_back(frame{pc, {}, std::move(file), line});
  }

  const char* call_file_name(Dwarf_Die* cu, Dwarf_Word index) {
    if (const char* name = lines_.file_name(cu, index)) return name;
    Dwarf_Files* files = nullptr;
    std::size_t count = 0;
    if (dwarf_getsrcfiles(cu, &files, &count) != 0 || index >= count) return nullptr;
    return dwarf_filesrc(files, index, nullptr, nullptr);
  }

  // The call before return address `pc`, not the return.
  static Dwarf_Addr call_of(const void* pc) { return reinterpret_cast<std::uintptr_t>(pc) - 1; }

  // The module that holds `at`; null if none, or libdw did not start.
  Dwfl_Module* module_at(Dwarf_Addr at) {
    if (!dwfl_ && !start()) return nullptr;
    return dwfl_addrmodule(dwfl_, at);
  }

  void read_from(Elf* elf) {
    if (elf && std::find(read_.begin(), read_.end(), elf) == read_.end()) read_.push_back(elf);
  }

  Dwfl* dwfl_ = nullptr;
  std::unordered_map<Dwfl_Module*, std::vector<die_range>> cu_tables_;
  std::unordered_map<Dwfl_Module*, symbol_table> symbols_;
  function_index functions_;
  line_programs lines_;
  std::vector<Elf*> read_;  // files lookups read since pages were last given back
};
#endif

// An answer of a decision (symbolizer::remembered, decide_stack) that is
// not kept: the question is asked again next time.
inline constexpr int answer_not_kept = INT_MIN;

// Return addresses to frames, each looked up once. One lock serialises
// lookups (libdw and absl::Symbolize are not thread-safe); they run only
// while a report is built, never on an allocation's path, and reports in
// on_leak=log mode are built on one thread.
class symbolizer {
 public:
  spin_lock lock;

  // REQUIRES: lock. Appends the frames of return address `pc`.
  void frames_of(const void* pc, std::vector<frame>& out) {
    const std::vector<frame>& frames = frames_at(pc);
    out.insert(out.end(), frames.begin(), frames.end());
  }

  // REQUIRES: lock. The frames of `pc`, as frames_of, kept in the cache:
  // valid until the lock is released.
  const std::vector<frame>& frames_at(const void* pc) {
    return cached(cache_, pc, [&] { return look_up(pc); });
  }

  // REQUIRES: lock. The symbol table's name for the function that holds
  // `pc` (the outermost of the frames frames_at() gives), demangled. It
  // reads no debug info: where a name decides alone (a suppression's
  // pattern), the debug info is not read at all.
  const std::string& symbol_at(const void* pc) {
    return cached(names_, pc, [&] {
#if LEAKGUARD_HAVE_LIBDW
      std::string name = dwarf_.symbol(pc);
      if (!name.empty()) return name;
#endif
      return symbol_name(pc);
    });
  }

  // REQUIRES: lock. What `decide()` says of return address `pc` when
  // that depends on `pc` and `key` alone: asked once per address and key.
  // A stack's decision (decide_stack) takes each of its frames in turn, and
  // stacks share most frames: a framework's, the test runner's. An answer
  // of answer_not_kept is asked for again next time.
  template <class Decide>
  int remembered(const void* pc, std::uint64_t key, Decide decide) {
    if (key != remembered_key_) {
      remembered_.clear();
      remembered_key_ = key;
    }
    const auto at = reinterpret_cast<std::uintptr_t>(pc);
    if (const auto it = remembered_.find(at); it != remembered_.end()) return it->second;
    const int answer = decide();
    if (answer != answer_not_kept) remembered_.emplace(at, answer);
    return answer;
  }

  // REQUIRES: lock. The unit whose debug info looking up `pc` would read
  // first, if none of it was read yet (see unread_unit).
  std::optional<unread_unit> unread_unit_at(const void* pc) {
    if (knows(pc)) return std::nullopt;
#if LEAKGUARD_HAVE_LIBDW
    return dwarf_.unread_unit_at(pc, symbol_at(pc));
#else
    return std::nullopt;
#endif
  }

  // REQUIRES: lock. The bytes that scans read instead of unit `id`'s debug
  // info (suppression_for): a unit is read once they outweigh it.
  std::uint64_t& scanned_instead_of(const unit_key& id) { return scanned_instead_[id]; }

  // REQUIRES: lock. How many return addresses were looked up in debug info
  // (decide_stack gives pages back after each; tests count them).
  std::uint64_t lookups() const { return lookups_; }

  // REQUIRES: lock. Changes when the cache is dropped (a module unloaded):
  // what was derived from it is stale.
  std::uint64_t epoch() const { return epoch_; }

  // REQUIRES: lock. Whether return address `pc` was looked up.
  bool knows(const void* pc) const { return cache_.contains(reinterpret_cast<std::uintptr_t>(pc)); }

  // REQUIRES: lock. A module loaded since the last lookup is added; one
  // unloaded takes the cache with it (its addresses may hold another now).
  void follow_loader() {
    struct counts {
      unsigned long long adds = 0, subs = 0;
    } now;
    {
      lock_guard g(loader_lock());
      dl_iterate_phdr(
          [](dl_phdr_info* info, std::size_t size, void* data) {
            if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs)
              *static_cast<counts*>(data) = {info->dlpi_adds, info->dlpi_subs};
            return 1;
          },
          &now);
    }
    if (now.adds == adds_ && now.subs == subs_) return;
    if (now.subs != subs_) {
      cache_.clear();
      names_.clear();
      remembered_.clear();
      ++epoch_;
    }
#if LEAKGUARD_HAVE_LIBDW
    dwarf_.refresh();  // units are read again, under keys of their own
    scanned_instead_.clear();
#endif
    adds_ = now.adds;
    subs_ = now.subs;
  }

  // REQUIRES: lock. After a stack's new addresses were looked up; inside a
  // batch, when the outermost batch ends (symbolizer_batch).
  void release_pages() {
#if LEAKGUARD_HAVE_LIBDW
    if (batches_ == 0) dwarf_.release_pages();
#endif
  }

 private:
  // The entry of `pc` in `cache`, made by `make` if missing.
  template <class Map, class Make>
  static const typename Map::mapped_type& cached(Map& cache, const void* pc, Make make) {
    auto [it, made] = cache.try_emplace(reinterpret_cast<std::uintptr_t>(pc));
    if (made) {
      try {
        it->second = make();
      } catch (...) {
        cache.erase(it);
        throw;
      }
    }
    return it->second;
  }

  std::vector<frame> look_up(const void* pc) {
    const std::string& symbol = symbol_at(pc);
    std::vector<frame> out;
#if LEAKGUARD_HAVE_LIBDW
    if (dwarf_.lookup(pc, symbol, out)) ++lookups_;
#endif
    if (out.empty()) out.push_back(frame{pc, symbol, {}, 0});
    else if (out.back().function.empty()) out.back().function = symbol;
    if (out.back().file.empty()) out.back().module = module_offset(pc);
    return out;
  }

  // "path+0x1f2e": the object holding the call before return address `pc`,
  // and the return address's offset in it, as addr2line takes it.
  static std::string module_offset(const void* pc) {
    Dl_info info;
    const void* at = reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(pc) - 1);
    if (!dladdr(at, &info) || !info.dli_fname || !info.dli_fbase) return {};
    std::string path = info.dli_fname;
    if (path.empty()) path = program_path();
    char offset[2 + 16 + 2];
    std::snprintf(offset, sizeof offset, "+0x%zx",
                  reinterpret_cast<std::uintptr_t>(pc) - reinterpret_cast<std::uintptr_t>(info.dli_fbase));
    return path + offset;
  }

  static std::string program_path() {
    char buf[4096];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("(program)");
  }

  // The function's name from the symbol table (absl::Symbolize, where libdw,
  // which reads the same tables, is missing); for a stripped shared library
  // (libstdc++.so), from its dynamic one (dladdr).
  static std::string symbol_name(const void* pc) {
    const void* at = reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(pc) - 1);
    std::string function;
#if !LEAKGUARD_HAVE_LIBDW
    char name[1024];
    if (absl::Symbolize(at, name, sizeof name)) function = name;
#endif
    Dl_info info;
    if (function.empty() && dladdr(at, &info) && info.dli_sname) function = demangle(info.dli_sname);
    shorten_names(function);
    return function;
  }

  std::unordered_map<std::uintptr_t, std::vector<frame>> cache_;
  std::unordered_map<std::uintptr_t, std::string> names_;
  std::unordered_map<std::uintptr_t, int> remembered_;
  std::uint64_t remembered_key_ = 0;
  std::map<unit_key, std::uint64_t> scanned_instead_;
  std::uint64_t lookups_ = 0;
  std::uint64_t epoch_ = 0;
  unsigned long long adds_ = 0, subs_ = 0;
  int batches_ = 0;  // symbolizer_batch objects alive
  friend class symbolizer_batch;
#if LEAKGUARD_HAVE_LIBDW
  dwarf_reader dwarf_;
#endif
};

inline symbolizer& the_symbolizer() {
  static no_destroy<symbolizer> s;
  return s.get();
}

// While one lives, the debug info lookups read stays mapped until the last
// one ends, instead of being given back after each lookup: the decisions
// and stacks of one report often read one unit again and again, and each
// time would fault its pages back in. A report's resident cost is then the
// units that report reads.
class symbolizer_batch {
 public:
  symbolizer_batch() : sym_(the_symbolizer()) {
    lock_guard g(sym_.lock);
    ++sym_.batches_;
  }
  ~symbolizer_batch() {
    lock_guard g(sym_.lock);
    --sym_.batches_;
    sym_.release_pages();
  }
  symbolizer_batch(const symbolizer_batch&) = delete;
  symbolizer_batch& operator=(const symbolizer_batch&) = delete;

 private:
  symbolizer& sym_;
};

struct symbolized_stack {
  std::vector<frame> frames;  // leakguard's own frames trimmed
  std::string site;
};

inline std::string frame_site(const frame& f) {
  if (!f.file.empty()) return f.file + ':' + std::to_string(f.line);
  if (!f.function.empty()) return f.function;
  char buf[2 + 16 + 1];
  std::snprintf(buf, sizeof buf, "%p", f.pc);
  return buf;
}

// A captured stack's frames, trimmed: leakguard's frames gone from its top,
// at most `depth` return addresses kept, and the user's site picked: the
// first frame that is neither leakguard's nor the standard library's.
// `all` holds the frames of each return address in turn, `pc_index` which
// one each frame is of.
inline symbolized_stack trimmed(const stack_trace* stack, std::vector<frame> all,
                                const std::vector<std::uint32_t>& pc_index, int depth) {
  symbolized_stack result;
  if (!stack) return result;
  if (stack == not_recorded()) {
    result.site = "(stack not recorded: leakguard out of memory)";
    return result;
  }
  // Depth counts return addresses, as captured; inlined frames come free.
  std::size_t first = 0;
  while (first < all.size() && is_internal_frame(all[first].function, all[first].file)) ++first;
  if (first < all.size()) {
    const std::size_t keep = std::min<std::size_t>(static_cast<std::size_t>(depth), stack->user_depth);
    for (std::size_t i = first; i < all.size() && pc_index[i] < pc_index[first] + keep; ++i)
      result.frames.push_back(std::move(all[i]));
  }
  // The site: the first frame of the user's code with a line (a library
  // shipped without debug info, zlib's deflateInit2_, is not the user's),
  // then any such frame without one, else the first named frame.
  auto named = [](const frame& f) { return !f.file.empty() || !f.function.empty(); };
  for (bool need_line : {true, false}) {
    for (const frame& f : result.frames) {
      if (named(f) && (!need_line || f.line > 0) && !is_library_frame(f.function, f.file) &&
          !is_internal_frame(f.function, f.file)) {
        result.site = frame_site(f);
        break;
      }
    }
    if (!result.site.empty()) break;
  }
  for (auto it = result.frames.begin(); result.site.empty() && it != result.frames.end(); ++it)
    if (named(*it)) result.site = frame_site(*it);
  if (result.site.empty() && !result.frames.empty()) result.site = frame_site(result.frames.front());
  return result;
}

// What reports ask again of one stack (a server's leak at the same line, a
// framework's bookkeeping at every test's end, the frames above a scope):
// its trimmed frames, and which suppression drops its blocks.
struct stack_memo {
  int shown_depth = -1;  // -1: `shown` not made
  symbolized_stack shown;
  std::uint64_t decided_for = 0;  // decide_stack's key + 1; 0: not decided
  int decision = 0;
};

// REQUIRES: the symbolizer's lock. All are dropped with the symbolizer's
// cache (a module unloaded: its epoch), and when there are many: a leak
// reached through ever new call paths makes ever new stacks, and each memo
// holds its own copy of the frames.
inline stack_memo& memo_of(const stack_trace* stack, const symbolizer& sym) {
  constexpr std::size_t max_memos = 4096;
  struct memo_table {
    std::unordered_map<const stack_trace*, stack_memo> memos;
    std::uint64_t epoch = 0;
  };
  static no_destroy<memo_table> table;
  memo_table& t = table.get();
  if (t.epoch != sym.epoch() || (t.memos.size() >= max_memos && !t.memos.contains(stack))) {
    t.memos.clear();
    t.epoch = sym.epoch();
  }
  return t.memos[stack];
}

// Symbolizes each of `stacks` (trimmed, above) under one hold of the
// symbolizer: the loader is checked once for all of them. The pages of debug
// info read are given back after each stack (a unit's first lookup reads all
// of it), or inside a symbolizer_batch when the batch ends.
inline std::vector<symbolized_stack> symbolize_each(std::span<const stack_trace* const> stacks, int depth) {
  std::vector<symbolized_stack> out(stacks.size());
  symbolizer& sym = the_symbolizer();
  lock_guard serialised(sym.lock);
  sym.follow_loader();
  std::vector<frame> all;
  std::vector<std::uint32_t> pc_index;
  for (std::size_t s = 0; s < stacks.size(); ++s) {
    const stack_trace* stack = stacks[s];
    if (!stack || stack == not_recorded()) {
      out[s] = trimmed(stack, {}, {}, depth);
      continue;
    }
    stack_memo& m = memo_of(stack, sym);
    if (m.shown_depth != depth) {
      all.clear();
      pc_index.clear();
      for (std::uint32_t i = 0; i < stack->depth; ++i) {
        sym.frames_of(stack->frames[i], all);
        pc_index.resize(all.size(), i);
      }
      sym.release_pages();
      m.shown = trimmed(stack, std::move(all), pc_index, depth);
      m.shown_depth = depth;
    }
    out[s] = m.shown;
  }
  return out;
}

// The answer `decide(sym, pc)` gives for `stack`, given each return address
// (leakguard's own included) in turn until it returns something other than
// `read_on`: `decide` looks up what it needs of each (frames_at, symbol_at),
// and is asked once for each `key` (what else the answer depends on; the
// last one is remembered, memo_of), unless it answers answer_not_kept. The debug info a lookup read is given
// back after it, not after the stack (two return addresses in two large
// compilation units would otherwise hold both units' pages at once), unless
// a symbolizer_batch holds it for the rest of a report.
template <class Decide>
int decide_stack(const stack_trace* stack, std::uint64_t key, int read_on, Decide decide) {
  symbolizer& sym = the_symbolizer();
  lock_guard serialised(sym.lock);
  sym.follow_loader();
  stack_memo& m = memo_of(stack, sym);
  if (m.decided_for == key + 1) return m.decision;
  int answer = read_on;
  for (std::uint32_t i = 0; i < stack->depth && answer == read_on; ++i) {
    const std::uint64_t before = sym.lookups();
    answer = decide(sym, stack->frames[i]);
    if (sym.lookups() != before) sym.release_pages();
  }
  sym.release_pages();
  if (answer != answer_not_kept) {
    m.decided_for = key + 1;
    m.decision = answer;
  }
  return answer;
}

inline symbolized_stack symbolize(const stack_trace* stack, int depth) {
  return std::move(symbolize_each({&stack, 1}, depth).front());
}

}  // namespace leakguard::detail
