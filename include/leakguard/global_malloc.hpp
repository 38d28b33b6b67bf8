// leakguard/global_malloc.hpp — replaces the C heap (the malloc family) and,
// through <leakguard/global_new.hpp>, every global operator new and delete.
//
// Include in exactly ONE .cpp file of a program, instead of global_new.hpp
// (or before it, in the same file): it is the program's one implementation
// translation unit, and a second one is a link error ("multiple definition").
//
//   // main.cpp
//   #include <leakguard/global_malloc.hpp>
//
// Replaced, for the whole process (glibc's rules for replacing malloc):
// malloc, free, calloc, realloc, reallocarray, posix_memalign, aligned_alloc,
// memalign, valloc, pvalloc and malloc_usable_size. What glibc allocates for
// the caller (strdup, getline, asprintf, open_memstream ...) goes through
// them, and so does every shared library's malloc. Each behaves as glibc's:
// errno, the zero sizes, the alignment rules. Blocks allocated in a scope are
// tracked like `new` blocks and named by their function in reports; freeing
// one through the other family (free of a `new` block, delete of a malloc
// block, realloc of a new[] block) is misuse. The memory itself comes from
// the allocator that would have served the program without leakguard:
// glibc's, or tcmalloc or jemalloc when linked in or preloaded.
//
// Under AddressSanitizer and ThreadSanitizer, which own the C heap, only
// operator new and delete are replaced.
#pragma once

#ifdef LEAKGUARD_IMPLEMENTATION_INCLUDED
#error "include <leakguard/global_malloc.hpp> before <leakguard/global_new.hpp> and <leakguard/implementation.hpp> in this file: it includes them"
#endif

#include "config.hpp"

#if LEAKGUARD_ENABLED && !LEAKGUARD_ASAN && !LEAKGUARD_TSAN
#define LEAKGUARD_REPLACES_MALLOC 1
#endif

#include "global_new.hpp"

#if defined(LEAKGUARD_REPLACES_MALLOC)

#include <malloc.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "impl/c_heap.hpp"

// The heap below (impl/heap.hpp): looked up by the first allocation.
namespace leakguard::detail {
constinit heap_functions heap_below{&first_malloc, &first_calloc, &realloc_below, &free_below, &first_memalign,
                                    &usable_below};
}  // namespace leakguard::detail

extern "C" const char leakguard_global_malloc_is_included_in_exactly_one_translation_unit = 1;

// Never inlined into a caller in this file: each must know its own caller.
#define LEAKGUARD_CALLER __builtin_return_address(0)
#define LEAKGUARD_C_API __attribute__((noinline))

extern "C" {

LEAKGUARD_C_API void* malloc(std::size_t n) noexcept {
  return ::leakguard::detail::c_allocate<::leakguard::detail::alloc_kind::c_malloc>(
      n, ::leakguard::detail::default_alignment, LEAKGUARD_CALLER);
}

LEAKGUARD_C_API void free(void* p) noexcept { ::leakguard::detail::c_free(p); }

LEAKGUARD_C_API void* calloc(std::size_t n, std::size_t size) noexcept {
  std::size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return ::leakguard::detail::c_allocate<::leakguard::detail::alloc_kind::c_calloc>(
      bytes, ::leakguard::detail::default_alignment, LEAKGUARD_CALLER);
}

LEAKGUARD_C_API void* realloc(void* p, std::size_t n) noexcept { return ::leakguard::detail::c_realloc(p, n, LEAKGUARD_CALLER); }

LEAKGUARD_C_API void* reallocarray(void* p, std::size_t n, std::size_t size) noexcept {
  std::size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return ::leakguard::detail::c_realloc(p, bytes, LEAKGUARD_CALLER);
}

LEAKGUARD_C_API int posix_memalign(void** out, std::size_t alignment, std::size_t n) noexcept {
  // A power of two, and a multiple of sizeof(void*); errno is left alone.
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0 || alignment == 0) return EINVAL;
  const int saved_errno = errno;
  void* p = ::leakguard::detail::c_memalign<::leakguard::detail::alloc_kind::c_posix_memalign>(alignment, n,
                                                                                             LEAKGUARD_CALLER);
  const int result = p ? 0 : errno;
  errno = saved_errno;
  if (!p) return result;
  *out = p;
  return 0;
}

LEAKGUARD_C_API void* aligned_alloc(std::size_t alignment, std::size_t n) noexcept {
  if (::leakguard::detail::aligned_alloc_checks && (alignment & (alignment - 1)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  return ::leakguard::detail::c_memalign<::leakguard::detail::alloc_kind::c_aligned_alloc>(alignment, n,
                                                                                          LEAKGUARD_CALLER);
}

LEAKGUARD_C_API void* memalign(std::size_t alignment, std::size_t n) noexcept {
  return ::leakguard::detail::c_memalign<::leakguard::detail::alloc_kind::c_memalign>(alignment, n, LEAKGUARD_CALLER);
}

LEAKGUARD_C_API void* valloc(std::size_t n) noexcept {
  return ::leakguard::detail::c_memalign<::leakguard::detail::alloc_kind::c_valloc>(
      static_cast<std::size_t>(sysconf(_SC_PAGESIZE)), n, LEAKGUARD_CALLER);
}

LEAKGUARD_C_API void* pvalloc(std::size_t n) noexcept {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  std::size_t rounded;
  if (__builtin_add_overflow(n, page - 1, &rounded)) {
    errno = ENOMEM;
    return nullptr;
  }
  return ::leakguard::detail::c_memalign<::leakguard::detail::alloc_kind::c_pvalloc>(page, rounded & ~(page - 1),
                                                                                    LEAKGUARD_CALLER);
}

LEAKGUARD_C_API std::size_t malloc_usable_size(void* p) noexcept { return ::leakguard::detail::c_usable_size(p); }

}  // extern "C"

#undef LEAKGUARD_CALLER
#undef LEAKGUARD_C_API

#endif  // LEAKGUARD_REPLACES_MALLOC
