// leakguard/impl/code_map.hpp — whose code called an allocation function:
// the dynamic loader's, a system library's, or code built with frame
// pointers.
//
// Debian builds its libraries (the C library, libstdc++, zlib) without frame
// pointers. When one of them allocates for its caller (strdup, deflateInit,
// a std::string built inside libstdc++.so), the frame-pointer walk from the
// allocation function skips the caller's frame, the user's line: such stacks
// are captured with the unwind tables instead (stacks.hpp). The loader's own
// allocations (a new thread's TLS, dlopen's link maps) belong to no scope.
//
// The map is made once, before the program's second thread can exist (at the
// heap's first use with global_malloc.hpp, else during static
// initialisation), from the objects loaded then, without allocating.
// Libraries dlopen()ed later count as built with frame pointers.
#pragma once

#include <link.h>
#include <sys/auxv.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "../config.hpp"

namespace leakguard::detail {

struct code_range {
  std::uintptr_t lo = 0, hi = 0;
  bool contains(const void* pc) const noexcept { return reinterpret_cast<std::uintptr_t>(pc) - lo < hi - lo; }
};

struct code_map {
  static constexpr int max_libraries = 64;
  code_range loader;
  code_range system[max_libraries];  // system libraries' executable segments
  code_range span;                   // from the lowest of them (and the loader) to the highest
  int count = 0;
  bool made = false;
};
inline constinit code_map code{};

inline bool is_system_library(const char* path) noexcept {
  for (const char* dir : {"/lib/", "/usr/lib/", "/lib64/", "/usr/lib64/"})
    if (std::strncmp(path, dir, std::strlen(dir)) == 0) return true;
  return false;
}

inline void make_code_map() noexcept {
  if (code.made) return;
  code.made = true;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void*) -> int {
        const char* name = info->dlpi_name ? info->dlpi_name : "";
        const bool loader = info->dlpi_addr != 0 && info->dlpi_addr == getauxval(AT_BASE);
        if (!loader && !is_system_library(name)) return 0;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
          const std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
          const code_range r{lo, lo + ph.p_memsz};
          if (loader) code.loader = r;
          else if (code.count < code_map::max_libraries) code.system[code.count++] = r;
          else continue;
          if (code.span.hi == 0 || r.lo < code.span.lo) code.span.lo = r.lo;
          if (r.hi > code.span.hi) code.span.hi = r.hi;
        }
        return 0;
      },
      nullptr);
}

inline bool in_loader(const void* pc) noexcept { return code.loader.contains(pc); }

// True for code built without frame pointers, as far as the map knows.
inline bool lacks_frame_pointers(const void* pc) noexcept {
  if (LEAKGUARD_LIKELY(!code.span.contains(pc))) return false;  // the executable, usually
  if (code.loader.contains(pc)) return true;
  for (int i = 0; i < code.count; ++i)
    if (code.system[i].contains(pc)) return true;
  return false;
}

}  // namespace leakguard::detail
