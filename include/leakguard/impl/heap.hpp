// leakguard/impl/heap.hpp — the heap below leakguard: where the memory of
// its blocks and of its own books comes from.
//
// Without <leakguard/global_malloc.hpp> it is the C library's malloc family.
// With it, `malloc` is leakguard's own, so the heap below is the definition
// that comes next in the lookup order: glibc's, or an allocator linked in or
// preloaded (tcmalloc, jemalloc). The translation unit with the runtime
// defines the table (implementation.hpp, or global_malloc.hpp, which fills it
// on first use); every call here goes through it, so that leakguard never
// allocates through itself.
#pragma once

#include <atomic>
#include <cstddef>

#include "../config.hpp"

namespace leakguard::detail {

struct heap_functions {
  std::atomic<void* (*)(std::size_t)> malloc;
  std::atomic<void* (*)(std::size_t, std::size_t)> calloc;
  std::atomic<void* (*)(void*, std::size_t)> realloc;
  std::atomic<void (*)(void*)> free;
  std::atomic<void* (*)(std::size_t, std::size_t)> memalign;
  std::atomic<std::size_t (*)(void*)> usable_size;  // returns 0 where the heap cannot tell
};

extern LEAKGUARD_API heap_functions heap_below;

// Relaxed: each entry is written at most once, from one valid function to
// another, before the program's second thread can exist.
inline void* heap_malloc(std::size_t n) noexcept { return heap_below.malloc.load(std::memory_order_relaxed)(n); }
inline void* heap_calloc(std::size_t n) noexcept { return heap_below.calloc.load(std::memory_order_relaxed)(1, n); }
inline void* heap_realloc(void* p, std::size_t n) noexcept {
  return heap_below.realloc.load(std::memory_order_relaxed)(p, n);
}
inline void heap_free(void* p) noexcept { heap_below.free.load(std::memory_order_relaxed)(p); }
inline void* heap_memalign(std::size_t alignment, std::size_t n) noexcept {
  return heap_below.memalign.load(std::memory_order_relaxed)(alignment, n);
}

}  // namespace leakguard::detail
