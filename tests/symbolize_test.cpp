// The symbolizer (impl/symbolize.hpp): return addresses to frames, with
// file:line and inlined calls from libdw, each address looked up only once.
#include <doctest/doctest.h>
#include <leakguard/impl/frame_kind.hpp>
#include <leakguard/impl/function_index.hpp>
#include <leakguard/impl/report_format.hpp>
#include <leakguard/impl/symbol_table.hpp>
#include <leakguard/impl/symbolize.hpp>
#include <leakguard/impl/thread_state.hpp>

#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace {

namespace lg = leakguard::detail;

// The address its call returns to: a point in the caller, at the call's line.
__attribute__((noinline)) const void* return_address() {
  const void* r = __builtin_return_address(0);
  asm volatile("" ::: "memory");  // no tail call
  return r;
}

int inlined_line = 0;
__attribute__((always_inline)) inline const void* inlined_call() {
  inlined_line = __LINE__ + 1;
  return return_address();
}

std::vector<leakguard::frame> frames_of(const void* pc) {
  lg::internal_guard guard;
  lg::symbolizer& s = lg::the_symbolizer();
  lg::lock_guard serialised(s.lock);
  s.follow_loader();
  std::vector<leakguard::frame> out;
  s.frames_of(pc, out);
  return out;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The read system calls this process has made (/proc/self/io), or -1.
long long read_calls() {
  std::FILE* f = std::fopen("/proc/self/io", "r");
  if (!f) return -1;
  char line[128];
  long long n = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "syscr: %lld", &n) == 1) break;
  std::fclose(f);
  return n;
}

}  // namespace

TEST_SUITE("symbolize") {

TEST_CASE("a return address names its function, file and line") {
  const int line = __LINE__ + 1;
  const void* pc = return_address();
  const std::vector<leakguard::frame> frames = frames_of(pc);
  REQUIRE(!frames.empty());
  const leakguard::frame& f = frames.back();
  CHECK(f.pc == pc);
  CHECK(f.function.find("DOCTEST_ANON_FUNC") != std::string::npos);
#if LEAKGUARD_HAVE_LIBDW
  CHECK(ends_with(f.file, "symbolize_test.cpp"));
  CHECK(f.line == line);
#else
  (void)line;
#endif
}

// Return addresses that are never symbolized: stack `i` of the depot tests.
const lg::stack_trace* intern_nth(std::uintptr_t i, int user_depth = 2) {
  void* frames[2] = {reinterpret_cast<void*>(0x7000'0000'0000 + 16 * i), reinterpret_cast<void*>(0x1234)};
  return lg::depot.intern(frames, 2, user_depth);
}

TEST_CASE("the stack depot keeps each stack once, at one address, while its table grows") {
  // More stacks than the first table (65536 slots) holds: it grows, more
  // than once, and each stack interned before is found at the same address.
  constexpr std::uintptr_t n = 200'000;
  std::vector<const lg::stack_trace*> first(n);
  for (std::uintptr_t i = 0; i < n; ++i) first[i] = intern_nth(i);
  CHECK(std::count(first.begin(), first.end(), nullptr) == 0);
  CHECK(std::count(first.begin(), first.end(), lg::not_recorded()) == 0);
  std::size_t moved = 0;
  for (std::uintptr_t i = 0; i < n; ++i) moved += intern_nth(i) != first[i];
  CHECK(moved == 0);
  std::vector<const lg::stack_trace*> sorted = first;
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::unique(sorted.begin(), sorted.end()) == sorted.end());
  CHECK(first[7]->frames[0] == reinterpret_cast<void*>(0x7000'0000'0000 + 16 * 7));
  // The same frames asked for at another depth are another stack.
  CHECK(intern_nth(7, 3) != first[7]);
  CHECK(intern_nth(7, 3) == intern_nth(7, 3));
}

TEST_CASE("threads interning the same stacks while the depot grows agree on every address") {
  constexpr std::uintptr_t n = 100'000, offset = 1'000'000;  // not the previous test's stacks
  constexpr int threads = 4;
  std::vector<std::vector<const lg::stack_trace*>> seen(threads, std::vector<const lg::stack_trace*>(n));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      for (std::uintptr_t k = 0; k < n; ++k) {
        const std::uintptr_t i = t % 2 ? n - 1 - k : k;  // half from each end
        seen[t][i] = intern_nth(offset + i);
      }
    });
  for (std::thread& w : workers) w.join();
  std::size_t differ = 0;
  for (int t = 1; t < threads; ++t) differ += seen[t] != seen[0];
  CHECK(differ == 0);
  CHECK(std::count(seen[0].begin(), seen[0].end(), lg::not_recorded()) == 0);
}

TEST_CASE("a stack symbolized again, after more stacks than the symbolizer keeps, reads the same") {
  // Each stack: this test's return address, then one of many others (the
  // bytes of this test's code). More stacks than the per-stack memos hold,
  // so that the first one's memo is dropped before it is asked for again.
  const void* pc = return_address();
  auto stack_with = [&](std::uintptr_t second) {
    void* frames[2] = {const_cast<void*>(pc), reinterpret_cast<void*>(second)};
    return lg::depot.intern(frames, 2, 2);
  };
  const auto base = reinterpret_cast<std::uintptr_t>(pc);
  const lg::stack_trace* first = stack_with(base + 1);
  REQUIRE(first != nullptr);
  const lg::symbolized_stack before = lg::symbolize(first, 2);
  for (std::uintptr_t i = 2; i < 5002; ++i) (void)lg::symbolize(stack_with(base + i), 2);
  const lg::symbolized_stack after = lg::symbolize(first, 2);
  CHECK(after.site == before.site);
  REQUIRE(after.frames.size() == before.frames.size());
  for (std::size_t i = 0; i < after.frames.size(); ++i) {
    CHECK(after.frames[i].function == before.frames[i].function);
    CHECK(after.frames[i].line == before.frames[i].line);
  }
  CHECK(before.frames.front().function.find("DOCTEST_ANON_FUNC") != std::string::npos);
}

#if LEAKGUARD_HAVE_LIBDW
TEST_CASE("an inlined call is a frame of its own, at the line it was inlined from") {
  const int line = __LINE__ + 1;
  const void* pc = inlined_call();
  const std::vector<leakguard::frame> frames = frames_of(pc);
  std::string shown;
  for (const leakguard::frame& f : frames) shown += f.function + " at " + f.file + ":" + std::to_string(f.line) + "\n";
  INFO(shown);
  REQUIRE(frames.size() == 2);
  // Qualified, even without a linkage name (internal linkage).
  CHECK(leakguard::detail::qualified_name(frames[0].function) == "(anonymous namespace)::inlined_call");
  CHECK(ends_with(frames[0].file, "symbolize_test.cpp"));
  CHECK(frames[0].line == inlined_line);
  CHECK(frames[1].function.find("DOCTEST_ANON_FUNC") != std::string::npos);
  CHECK(frames[1].line == line);
  CHECK((frames[0].pc == pc && frames[1].pc == pc));
}
#endif

#if LEAKGUARD_HAVE_LIBDW
// The reader runs the line program itself (libdw would keep the unit's whole
// table in memory): on every address of this file's unit it must give what
// libdw gives, and the unit's file names as libdw spells them.
// This file's compilation unit, read by libdw on its own.
struct this_unit {
  int fd = -1;
  Dwarf* dwarf = nullptr;
  Dwarf_Die cu{};
  Dwarf_Half version = 0;

  this_unit() {
    Dl_info info{};
    REQUIRE(dladdr(reinterpret_cast<const void*>(&return_address), &info) != 0);
    fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    dwarf = dwarf_begin(fd, DWARF_C_READ);
    REQUIRE(dwarf != nullptr);
    const Dwarf_Addr here =
        reinterpret_cast<std::uintptr_t>(&return_address) - reinterpret_cast<std::uintptr_t>(info.dli_fbase);
    bool found = false;
    Dwarf_CU* unit = nullptr;
    std::uint8_t type;
    Dwarf_Die die, split;
    while (!found && dwarf_get_units(dwarf, unit, &unit, &version, &type, &die, &split) == 0) {
      Dwarf_Addr base, low, high;
      for (std::ptrdiff_t off = 0; (off = dwarf_ranges(&die, off, &base, &low, &high)) > 0;)
        if (low <= here && here < high) found = true;
      if (found) cu = die;
    }
    REQUIRE(found);
  }
  this_unit(const this_unit&) = delete;
  this_unit& operator=(const this_unit&) = delete;
  ~this_unit() {
    dwarf_end(dwarf);
    ::close(fd);
  }
};

TEST_CASE("the line program reader agrees with libdw on every address of a unit") {
  this_unit u;
  Dwarf_Die& cu = u.cu;
  const Dwarf_Half version = u.version;
  lg::line_programs lines;
  Dwarf_Files* files = nullptr;
  std::size_t file_count = 0;
  REQUIRE(dwarf_getsrcfiles(&cu, &files, &file_count) == 0);
  for (std::size_t i = version < 5 ? 1 : 0; i < file_count; ++i) {
    const char* mine = lines.file_name(&cu, i);
    REQUIRE(mine != nullptr);
    CHECK(std::string(mine) == dwarf_filesrc(files, i, nullptr, nullptr));
  }
  long addresses = 0, same = 0, outside = 0, unreadable = 0;
  std::string first_difference;
  Dwarf_Addr base, low, high;
  for (std::ptrdiff_t off = 0; (off = dwarf_ranges(&cu, off, &base, &low, &high)) > 0;) {
    for (Dwarf_Addr a = low; a < high && low >= 0x1000; ++a) {  // below 0x1000: code the linker dropped
      std::string file, theirs;
      int line = 0, their_line = 0;
      if (!lines.line_at(&cu, a, file, line)) {
        ++unreadable;
        continue;
      }
      if (Dwarf_Line* l = dwarf_getsrc_die(&cu, a)) {
        theirs = dwarf_linesrc(l, nullptr, nullptr);
        dwarf_lineno(l, &their_line);
      }
      ++addresses;
      if (file.empty()) ++outside;  // between sequences: padding, no return address lies there
      else if (file == theirs && line == their_line) ++same;
      else if (first_difference.empty())
        first_difference = std::to_string(a) + ": " + file + ":" + std::to_string(line) + " vs " + theirs + ":" +
                           std::to_string(their_line);
    }
  }
  INFO("first difference: ", first_difference);
  CHECK(unreadable == 0);
  CHECK(addresses > 1000);
  CHECK(same + outside == addresses);
  CHECK(outside * 100 < addresses);
}

// What the index replaces: a walk of the unit for each address, into its
// namespaces and classes, and libdw's path from the unit to a declaration.
bool function_by_walk(Dwarf_Die* parent, Dwarf_Addr a, Dwarf_Die& out) {
  Dwarf_Die child;
  if (dwarf_child(parent, &child) != 0) return false;
  do {
    switch (dwarf_tag(&child)) {
      case DW_TAG_namespace:
      case DW_TAG_class_type:
      case DW_TAG_structure_type:
      case DW_TAG_union_type:
        if (function_by_walk(&child, a, out)) return true;
        break;
      case DW_TAG_subprogram:
        if (dwarf_haspc(&child, a) == 1) {
          out = child;
          return true;
        }
        break;
      default:
        break;
    }
  } while (dwarf_siblingof(&child, &child) == 0);
  return false;
}

// The qualifier libdw's path to `decl` gives; none where libdw finds no
// path (it found none to some member template declarations, whose scopes
// the index gives).
std::optional<std::string> qualifier_by_walk(Dwarf_Die* decl) {
  std::string qualifier;
  Dwarf_Die* scopes = nullptr;
  const int n = dwarf_getscopes_die(decl, &scopes);
  if (n <= 0) {
    std::free(scopes);
    return std::nullopt;
  }
  for (int i = 1; i < n; ++i) {
    const int tag = dwarf_tag(&scopes[i]);
    const char* name = dwarf_diename(&scopes[i]);
    if (tag == DW_TAG_namespace) qualifier.insert(0, std::string(name ? name : "(anonymous namespace)") + "::");
    else if ((tag == DW_TAG_class_type || tag == DW_TAG_structure_type || tag == DW_TAG_union_type) && name)
      qualifier.insert(0, std::string(name) + "::");
    else if (tag != DW_TAG_lexical_block) break;
  }
  std::free(scopes);
  return qualifier;
}

TEST_CASE("the function index finds each address's function, and qualifies names, as a walk of the unit does") {
  this_unit u;
  lg::function_index index;
  long addresses = 0, same = 0, qualified = 0, same_qualifier = 0, nested = 0, unanswered = 0;
  std::string first_difference;
  // About 400 addresses, evenly over the unit's code: the walk reads the unit each time.
  std::vector<std::pair<Dwarf_Addr, Dwarf_Addr>> ranges;
  Dwarf_Addr base, low, high, code = 0;
  for (std::ptrdiff_t off = 0; (off = dwarf_ranges(&u.cu, off, &base, &low, &high)) > 0;)
    if (low >= 0x1000) {  // below: code the linker dropped
      ranges.emplace_back(low, high);
      code += high - low;
    }
  const Dwarf_Addr step = code / 400 + 1;
  Dwarf_Addr skip = 0;
  for (auto [first, end] : ranges) {
    Dwarf_Addr a = first + skip;
    for (; a < end; a += step) {
      Dwarf_Die theirs, mine;
      const bool walked = function_by_walk(&u.cu, a, theirs);
      const bool indexed = index.function_at(&u.cu, a, mine);
      ++addresses;
      if (walked == indexed && (!walked || dwarf_dieoffset(&theirs) == dwarf_dieoffset(&mine))) ++same;
      else if (first_difference.empty()) first_difference = "function at " + std::to_string(a);
      // The declaration's qualifier, for a sample (libdw's path walks the unit).
      if (!walked || addresses % 4 != 0) continue;
      Dwarf_Attribute attr;
      Dwarf_Die decl = theirs, next;
      while (dwarf_formref_die(dwarf_attr(&decl, DW_AT_specification, &attr), &next)) decl = next;
      const std::optional<std::string> mine_qualifier = index.qualifier(&u.cu, &decl);
      const std::optional<std::string> expected = qualifier_by_walk(&decl);
      if (!expected) {
        ++unanswered;
        continue;
      }
      ++qualified;
      if (expected->find("::") != expected->rfind("::")) ++nested;
      if (mine_qualifier == expected) ++same_qualifier;
      else if (first_difference.empty()) first_difference = "qualifier " + *expected + " of " + dwarf_diename(&decl);
    }
    skip = a - end;  // the next range goes on where this one's step left off
  }
  INFO("first difference: ", first_difference);
  CHECK(addresses > 250);
  CHECK(same == addresses);
  CHECK(qualified > 20);
  CHECK(nested > 0);  // a class in a namespace, at least
  CHECK(same_qualifier == qualified);
  CHECK(unanswered * 10 < qualified);  // libdw answers for nearly all
}

// libdw's own answer and the sorted table's for sampled addresses of one
// module: about 8 000 over its loaded segments (not libdw's range of the
// module, which takes in libelf's own mapping of the file once something
// has read its debug info), at an odd step so that they fall
// at every offset within functions and in the gaps between them, and every
// address that several function symbols name (aliases: which one names it).
struct names_compared {
  long addresses = 0, named = 0, same = 0, aliased = 0;
  long outside_functions = 0, answered_alone = 0;  // of those, without asking libdw
  std::string first_difference;
};

names_compared compare_names(Dwfl_Module* module) {
  names_compared c;
  Dwarf_Addr low = ~Dwarf_Addr{0}, high = 0, bias = 0;
  Elf* elf = dwfl_module_getelf(module, &bias);
  std::size_t headers = 0;
  REQUIRE(elf != nullptr);
  REQUIRE(elf_getphdrnum(elf, &headers) == 0);
  for (std::size_t i = 0; i < headers; ++i) {
    GElf_Phdr ph;
    if (!gelf_getphdr(elf, static_cast<int>(i), &ph) || ph.p_type != PT_LOAD) continue;
    low = std::min(low, ph.p_vaddr + bias);
    high = std::max(high, ph.p_vaddr + ph.p_memsz + bias);
  }
  const lg::symbol_table table(module);
  std::vector<Dwarf_Addr> samples, starts;
  for (Dwarf_Addr a = low; a < high; a += (high - low) / 8000 | 1) samples.push_back(a);
  for (int i = 1, n = dwfl_module_getsymtab(module); i < n; ++i) {
    GElf_Sym sym;
    GElf_Addr at = 0;
    const char* name = dwfl_module_getsym_info(module, i, &sym, &at, nullptr, nullptr, nullptr);
    if (name && GELF_ST_TYPE(sym.st_info) == STT_FUNC && sym.st_size > 0) starts.push_back(at);
  }
  std::sort(starts.begin(), starts.end());
  for (std::size_t i = 1; i < starts.size(); ++i)
    if (starts[i] == starts[i - 1] && (i == 1 || starts[i - 2] != starts[i])) {
      samples.push_back(starts[i]);
      ++c.aliased;
    }
  for (Dwarf_Addr a : samples) {
    const char* theirs = dwfl_module_addrname(module, a);
    const char* mine = table.name_at(a);
    ++c.addresses;
    if (!table.function_at(a)) {
      ++c.outside_functions;
      c.answered_alone += !table.others_may_name(a);
    }
    if (!theirs && !mine) continue;
    ++c.named;
    if (theirs && mine && std::strcmp(theirs, mine) == 0) ++c.same;
    else if (c.first_difference.empty())
      c.first_difference =
          std::to_string(a - low) + ": " + (theirs ? theirs : "(none)") + " vs " + (mine ? mine : "(none)");
  }
  return c;
}

// The module whose file name starts with `prefix` (as "libc.so"), or null.
Dwfl_Module* module_named(Dwfl* dwfl, const char* prefix) {
  struct search {
    const char* prefix;
    Dwfl_Module* found = nullptr;
  } s{prefix};
  dwfl_getmodules(
      dwfl,
      [](Dwfl_Module* module, void**, const char* name, Dwarf_Addr, void* arg) -> int {
        auto* s = static_cast<search*>(arg);
        const char* slash = name ? std::strrchr(name, '/') : nullptr;
        const char* file = slash ? slash + 1 : name;
        if (!file || std::strncmp(file, s->prefix, std::strlen(s->prefix)) != 0) return DWARF_CB_OK;
        s->found = module;
        return DWARF_CB_ABORT;
      },
      &s, 0);
  return s.found;
}

TEST_CASE("the sorted symbol table names each address of a module as libdw's own search does") {
  static constexpr Dwfl_Callbacks callbacks{dwfl_linux_proc_find_elf, dwfl_standard_find_debuginfo, nullptr, nullptr};
  Dwfl* dwfl = dwfl_begin(&callbacks);
  REQUIRE(dwfl != nullptr);
  dwfl_report_begin(dwfl);
  REQUIRE(dwfl_linux_proc_report(dwfl, getpid()) == 0);
  dwfl_report_end(dwfl, nullptr, nullptr);

  SUBCASE("this program, with its full symbol table") {
    Dwfl_Module* module = dwfl_addrmodule(dwfl, reinterpret_cast<Dwarf_Addr>(&return_address));
    REQUIRE(module != nullptr);
    const names_compared c = compare_names(module);
    INFO("first difference: ", c.first_difference);
    CHECK(c.addresses > 6000);
    CHECK(c.named > 1000);
    CHECK(c.aliased > 10);  // g++ -O2 makes hundreds, clang -O0 tens
    CHECK(c.same == c.named);
  }
  SUBCASE("the C and C++ libraries, stripped to their dynamic symbols") {
    // Their local functions have no symbol: a return address into one is in
    // no sized function, and libdw has nothing else to name it by either.
    // Found by file name: under a sanitizer, `free` is the executable's.
    for (const char* library : {"libc.so", "libstdc++.so"}) {
      Dwfl_Module* module = module_named(dwfl, library);
      INFO(library);
      REQUIRE(module != nullptr);
      const names_compared c = compare_names(module);
      INFO("first difference: ", c.first_difference);
      CHECK(c.named > 500);
      CHECK(c.same == c.named);
      CHECK(c.outside_functions > 100);
      CHECK(c.answered_alone > c.outside_functions / 2);
    }
  }
  dwfl_end(dwfl);
}

// The resident pages of libelf's mapping of this executable (the debug info
// read so far) that no other process maps (a forked child shares its
// parent's), or -1 if there is none.
long long resident_debug_info_kib() {
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return -1;
  exe[n] = '\0';
  struct stat st {};
  if (stat(exe, &st) != 0) return -1;
  std::FILE* f = std::fopen("/proc/self/smaps", "r");
  if (!f) return -1;
  char line[4608];
  long long rss = -1;
  bool in_it = false;
  while (std::fgets(line, sizeof line, f)) {
    unsigned long begin, end;
    char path[4096] = "";
    if (std::sscanf(line, "%lx-%lx %*s %*s %*s %*s %4095s", &begin, &end, path) >= 2 && std::strchr(line, '-') < std::strchr(line, ' ')) {
      // libelf maps the whole file; the loader maps it in pieces.
      in_it = std::strcmp(path, exe) == 0 && static_cast<long long>(end - begin) >= st.st_size;
      continue;
    }
    long long kib;
    if (in_it && (std::sscanf(line, "Private_Clean: %lld kB", &kib) == 1 ||
                  std::sscanf(line, "Private_Dirty: %lld kB", &kib) == 1))
      rss = std::max(rss, 0LL) + kib;
  }
  std::fclose(f);
  return rss;
}

// The size of this executable's symbol tables and section headers.
long long symbol_tables_kib() {
  const int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  elf_version(EV_CURRENT);
  Elf* elf = elf_begin(fd, ELF_C_READ, nullptr);
  long long bytes = 0;
  if (elf)
    for (const lg::file_range& r : lg::symbol_tables(elf)) bytes += static_cast<long long>(r.end - r.begin);
  elf_end(elf);
  ::close(fd);
  return bytes / 1024 + 1;
}

// Whether this kernel has MADV_PAGEOUT (Linux 5.4), which the cases below need.
bool kernel_can_page_out() {
  char* probe = static_cast<char*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  REQUIRE(probe != MAP_FAILED);
  probe[0] = 1;
  const bool can = madvise(probe, 4096, MADV_PAGEOUT) == 0;
  munmap(probe, 4096);
  return can;
}

__attribute__((noinline)) const lg::stack_trace* fresh_stack() {
  const lg::stack_trace* st = lg::capture_stack(8);
  asm volatile("" ::: "memory");
  return st;
}

TEST_CASE("after symbolizing, the pages of debug info it read are given back") {
  if (!kernel_can_page_out()) {
    MESSAGE("skipped: this kernel has no MADV_PAGEOUT (Linux 5.4)");
    return;
  }
  // In a child: the symbolizer's cache and the pages it read stay as they
  // were for the other cases of this process (pages an earlier case read are
  // shared with the parent now: not counted, and not given back).
  const auto result = lgt::run_in_child([] {
    lg::internal_guard guard;
    const long long before = std::max(resident_debug_info_kib(), 0LL);
    const lg::symbolized_stack st = lg::symbolize(fresh_stack(), 8);
    LGT_CHILD_CHECK(11, !st.frames.empty() && st.frames.front().function.find("fresh_stack") != std::string::npos);
    const long long after = resident_debug_info_kib();
    std::fprintf(stderr, "resident KiB of the mapped executable: %lld before, %lld after\n", before, after);
    LGT_CHILD_CHECK(12, after >= 0);  // libdw mapped the file
    LGT_CHILD_CHECK(13, after < 512 + symbol_tables_kib());  // those stay: every lookup scans one
  });
  INFO(result.describe());
  CHECK(result.ok());
}

__attribute__((noinline)) const lg::stack_trace* fresh_stack_in_batch() {
  const lg::stack_trace* st = lg::capture_stack(8);
  asm volatile("" ::: "memory");
  return st;
}

TEST_CASE("inside a symbolizer_batch, the debug info read stays until the batch ends, then is given back") {
  if (!kernel_can_page_out()) {
    MESSAGE("skipped: this kernel has no MADV_PAGEOUT (Linux 5.4)");
    return;
  }
  const auto result = lgt::run_in_child([] {
    lg::internal_guard guard;
    long long during = 0;
    {
      const lg::symbolizer_batch batch;
      const lg::symbolized_stack st = lg::symbolize(fresh_stack_in_batch(), 8);
      LGT_CHILD_CHECK(11, !st.frames.empty() && st.frames.front().function.find("fresh_stack_in_batch") != std::string::npos);
      during = resident_debug_info_kib();
    }
    const long long after = resident_debug_info_kib();
    std::fprintf(stderr, "resident KiB of the mapped executable: %lld in the batch, %lld after\n", during, after);
    LGT_CHILD_CHECK(12, after >= 0);
    LGT_CHILD_CHECK(13, during > after + 64);  // the unit read is still resident in the batch
    LGT_CHILD_CHECK(14, after < 512 + symbol_tables_kib());
  });
  INFO(result.describe());
  CHECK(result.ok());
}

// Whether the page at `p` is mapped into this process (/proc/self/pagemap).
bool page_present(const void* p) {
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::uint64_t entry = 0;
  const long page = sysconf(_SC_PAGESIZE);
  const bool read = ::pread(fd, &entry, sizeof entry,
                            static_cast<off_t>(reinterpret_cast<std::uintptr_t>(p) / page * sizeof entry)) ==
                    static_cast<ssize_t>(sizeof entry);
  ::close(fd);
  return read && (entry >> 63 & 1);
}

TEST_CASE("pages given back leave the process but stay in the page cache, and a page the process wrote to stays") {
  if (!page_present(&inlined_line)) {
    MESSAGE("skipped: /proc/self/pagemap is not readable here");
    return;
  }
  const long page = sysconf(_SC_PAGESIZE);
  char path[] = "/tmp/leakguard_pages_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  ::unlink(path);
  const std::vector<char> bytes(3 * static_cast<std::size_t>(page), 'f');
  REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  // As libelf maps a file: private and writable.
  auto* mine = static_cast<char*>(mmap(nullptr, bytes.size(), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
  auto* cache = static_cast<char*>(mmap(nullptr, bytes.size(), PROT_READ, MAP_SHARED, fd, 0));
  REQUIRE((mine != MAP_FAILED && cache != MAP_FAILED));
  CHECK(lgt::keep(mine)[0] == 'f');  // read pages 0 and 2
  CHECK(mine[2 * page] == 'f');
  mine[page] = 'w';  // page 1 is the process's own copy now
  REQUIRE((page_present(mine) && page_present(mine + page) && page_present(mine + 2 * page)));
  const auto at = reinterpret_cast<std::uintptr_t>(mine);
  lg::give_back_pages(at, at + bytes.size(), static_cast<std::uintptr_t>(page));
  CHECK_FALSE(page_present(mine));
  CHECK_FALSE(page_present(mine + 2 * page));
  CHECK(page_present(mine + page));
  CHECK(mine[page] == 'w');  // not dropped back to the file's byte
  CHECK(mine[0] == 'f');     // read again
  unsigned char cached[3] = {};
  REQUIRE(mincore(cache, bytes.size(), cached) == 0);
  CHECK((cached[0] & 1) == 1);  // still in the page cache: no disk read to get it back
  CHECK((cached[2] & 1) == 1);
  munmap(mine, bytes.size());
  munmap(cache, bytes.size());
  ::close(fd);
}

TEST_CASE("the DWARF cursor stops at the end of its bytes instead of reading past it") {
  const unsigned char unterminated_leb[] = {0x80, 0x80};
  lg::dwarf_cursor leb(unterminated_leb, unterminated_leb + sizeof unterminated_leb);
  leb.uleb();
  CHECK_FALSE(leb.ok());
  const unsigned char no_nul[] = {'a', 'b'};
  lg::dwarf_cursor text(no_nul, no_nul + sizeof no_nul);
  CHECK(text.string().empty());
  CHECK_FALSE(text.ok());
  const unsigned char three[] = {1, 2, 3};
  lg::dwarf_cursor fixed(three, three + sizeof three);
  CHECK(fixed.fixed(2) == 0x0201);
  CHECK(fixed.ok());
  CHECK(fixed.fixed(2) == 0);
  CHECK_FALSE(fixed.ok());
  const unsigned char minus_two[] = {0x7e};
  lg::dwarf_cursor signed_leb(minus_two, minus_two + 1);
  CHECK(signed_leb.sleb() == -2);
  CHECK(signed_leb.ok());
}
#endif

TEST_CASE("an address seen before is looked up again without a system call") {
  // A return address in the C library, whose frames libdw cannot name (no
  // symbol table, and system debug files are not read): the names come from
  // reading the file's symbols, which takes system calls.
  void* stack[64];
  const int depth = ::backtrace(stack, 64);
  const void* pc = nullptr;
  for (int i = 0; i < depth && !pc; ++i) {
    Dl_info info;
    if (dladdr(stack[i], &info) && info.dli_fname && std::string(info.dli_fname).find("libc.so") != std::string::npos)
      pc = stack[i];
  }
  REQUIRE(pc != nullptr);
  const long long calibrate = read_calls();
  if (calibrate < 0) {
    MESSAGE("/proc/self/io is not readable here: nothing to count");
    return;
  }
  const long long reading_costs = read_calls() - calibrate;  // the count's own read
  {  // the count sees one read more
    const int fd = ::open("/dev/zero", O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    char byte;
    const long long before = read_calls();
    CHECK(::read(fd, &byte, 1) == 1);
    CHECK(read_calls() - before == reading_costs + 1);
    ::close(fd);
  }
  const long long before_first = read_calls();
  const std::vector<leakguard::frame> first = frames_of(pc);
  const long long after_first = read_calls();
  // In a process of its own (as CTest and Meson run each case), the first
  // lookup reads; in a longer run an earlier report may have looked it up.
  if (after_first - before_first == reading_costs) MESSAGE("the address was looked up before this case");
  const std::vector<leakguard::frame> again = frames_of(pc);
  CHECK(read_calls() - after_first == reading_costs);
  REQUIRE(again.size() == first.size());
  for (std::size_t i = 0; i < first.size(); ++i) {
    CHECK(again[i].function == first[i].function);
    CHECK(again[i].file == first[i].file);
    CHECK(again[i].line == first[i].line);
  }
}

TEST_CASE("an address in no module gets an empty frame, not a crash") {
  const void* nowhere = reinterpret_cast<const void*>(0x10);
  const std::vector<leakguard::frame> frames = frames_of(nowhere);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].pc == nowhere);
  CHECK(frames[0].function.empty());
  CHECK(frames[0].file.empty());
  CHECK(frames[0].module.empty());
}

TEST_CASE("a frame without a source line names its object and offset, for addr2line") {
  // Inside libc's qsort: Debian's libc has no line table unless its
  // debug symbols are installed.
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  REQUIRE(libc != nullptr);
  const void* qsort_in_libc = dlsym(libc, "qsort");
  REQUIRE(qsort_in_libc != nullptr);
  const void* in_libc = static_cast<const char*>(qsort_in_libc) + 8;
  const std::vector<leakguard::frame> frames = frames_of(in_libc);
  REQUIRE_FALSE(frames.empty());
  const leakguard::frame& f = frames.back();
  if (!f.file.empty()) {
    MESSAGE("libc has debug symbols here: ", f.file);
    CHECK(f.module.empty());
  } else {
    CAPTURE(f.module);
    const std::size_t plus = f.module.rfind("+0x");
    REQUIRE(plus != std::string::npos);
    Dl_info info{};
    REQUIRE(dladdr(in_libc, &info) != 0);
    CHECK(f.module.substr(0, plus) == info.dli_fname);
    const auto offset = std::strtoull(f.module.c_str() + plus + 3, nullptr, 16);
    CHECK(reinterpret_cast<std::uintptr_t>(info.dli_fbase) + offset == reinterpret_cast<std::uintptr_t>(in_libc));
    std::string text;
    lg::append_frame_text(text, 3, f);
    CHECK(text.find(" (" + f.module + ")\n") != std::string::npos);
    std::string json;
    lg::append_stack_json(json, {&f, 1}, 0);
    CHECK(json.find("\"module\":\"" + f.module + '"') != std::string::npos);
  }
  // A frame with its line needs no object.
  const std::vector<leakguard::frame> own = frames_of(__builtin_return_address(0));
  REQUIRE_FALSE(own.empty());
  if (!own.back().file.empty()) CHECK(own.back().module.empty());
}

}  // TEST_SUITE
