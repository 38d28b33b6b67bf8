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
// The map is made from the objects loaded at the heap's first use (with
// global_malloc.hpp) or during static initialisation, and grows when a
// caller's code is in none of its ranges and the loader has loaded more since
// (dlopen). It never allocates, and readers take no lock: ranges are only
// appended, each written before the count that publishes it.
#pragma once

#include <dlfcn.h>
#include <link.h>
#include <sys/auxv.h>

#include <atomic>
#include <cstddef>
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
  static constexpr int max_ranges = 256;
  struct entry {
    code_range range;
    bool system;  // a system library's: no frame pointers
  };
  code_range loader;
  code_range executable;  // the program's first code segment: most callers
  entry ranges[max_ranges];
  std::atomic<int> count{0};
  std::atomic<unsigned long long> loads{0};  // the loader's count of loads when last read
  std::atomic<bool> busy{false};             // a thread is adding ranges
};
inline constinit code_map code{};

inline bool is_system_library(const char* path) noexcept {
  for (const char* dir : {"/lib/", "/usr/lib/", "/lib64/", "/usr/lib64/"})
    if (std::strncmp(path, dir, std::strlen(dir)) == 0) return true;
  return false;
}

inline const code_map::entry* find_code(const void* pc) noexcept {
  const int n = code.count.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i)
    if (code.ranges[i].range.contains(pc)) return &code.ranges[i];
  return nullptr;
}

// Adds the code segments of every loaded object not in the map yet.
// REQUIRES: code.busy, taken by this thread.
inline void add_loaded_code() noexcept {
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t size, void*) -> int {
        if (size >= offsetof(dl_phdr_info, dlpi_adds) + sizeof info->dlpi_adds)
          code.loads.store(info->dlpi_adds, std::memory_order_relaxed);
        const char* name = info->dlpi_name ? info->dlpi_name : "";
        const bool loader = info->dlpi_addr != 0 && info->dlpi_addr == getauxval(AT_BASE);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
          const std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
          const code_range r{lo, lo + ph.p_memsz};
          // The loader and the program are there from the start: set once,
          // before any reader can run on another thread.
          if (loader) {
            if (code.loader.hi == 0) code.loader = r;
          } else if (name[0] == '\0' && (code.executable.hi == 0 || code.executable.lo == lo)) {
            if (code.executable.hi == 0) code.executable = r;
          } else if (!find_code(reinterpret_cast<const void*>(lo))) {
            const int n = code.count.load(std::memory_order_relaxed);
            if (n == code_map::max_ranges) return 1;
            code.ranges[n] = {r, is_system_library(name)};
            code.count.store(n + 1, std::memory_order_release);
          }
        }
        return 0;
      },
      nullptr);
}

// The objects loaded now; at the heap's first use or in static
// initialisation, before a second thread can exist.
inline void make_code_map() noexcept {
  if (code.busy.exchange(true, std::memory_order_acquire)) return;
  if (code.loads.load(std::memory_order_relaxed) == 0) add_loaded_code();
  code.busy.store(false, std::memory_order_release);
}

// Maps what the loader has loaded since the map was last made. False if
// another thread is at it: this one does not wait (that one may be waiting
// for the loader's lock, which this one may hold).
LEAKGUARD_COLD bool map_code_loaded_since() noexcept {
  if (code.busy.exchange(true, std::memory_order_acquire)) return false;
  unsigned long long loads = 0;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t size, void* out) -> int {
        if (size >= offsetof(dl_phdr_info, dlpi_adds) + sizeof info->dlpi_adds)
          *static_cast<unsigned long long*>(out) = info->dlpi_adds;
        return 1;  // the count is the same in every object's entry
      },
      &loads);
  if (loads != code.loads.load(std::memory_order_relaxed)) add_loaded_code();
  code.busy.store(false, std::memory_order_release);
  return true;
}

inline bool in_loader(const void* pc) noexcept { return code.loader.contains(pc); }

// False for code in no loaded object (generated code), which nothing
// mapped later will hold: asked without a lock where glibc has
// _dl_find_object (2.35 and later), so that such a caller never takes the
// loader's lock on its allocations.
inline bool in_some_object(const void* pc) noexcept {
#if defined(DLFO_STRUCT_HAS_EH_DBASE)
  dl_find_object found;
  return _dl_find_object(const_cast<void*>(pc), &found) == 0;
#else
  return true;
#endif
}

// True for code built without frame pointers: the loader's and system
// libraries'. Code in no mapped range was loaded since the map was made: it
// is mapped now. While another thread maps, such code is taken to lack frame
// pointers: the unwinder walks any code, the frame-pointer walk does not.
// Code in no object at all (generated code) is taken to have them.
inline bool lacks_frame_pointers(const void* pc) noexcept {
  if (LEAKGUARD_LIKELY(code.executable.contains(pc))) return false;
  if (code.loader.contains(pc)) return true;
  const code_map::entry* e = find_code(pc);
  if (!e) {
    if (!in_some_object(pc)) return false;
    if (!map_code_loaded_since()) return true;
    e = find_code(pc);
  }
  return e && e->system;
}

}  // namespace leakguard::detail
