// leakguard/global_new.hpp — replaces every global operator new and delete.
//
// Include in exactly ONE .cpp file of a program (like doctest's
// DOCTEST_CONFIG_IMPLEMENT): replacement allocation functions must be
// defined once, so a second TU including it is a link error ("multiple
// definition of operator new"), never silent misbehaviour.
//
//   // main.cpp
//   #include <leakguard/global_new.hpp>
//
// Every form is replaced: plain and array, nothrow, sized, std::align_val_t,
// and their combinations. Failure follows the standard: the new_handler
// loop, then std::bad_alloc (or nullptr from the nothrow forms).
#pragma once

#include <cstddef>
#include <new>

#include "config.hpp"
#include "implementation.hpp"  // the runtime: this TU is the program's one implementation TU

#if LEAKGUARD_ENABLED

namespace leakguard::detail {

// The new_handler loop of [new.delete.single], entered after a first
// attempt failed; null only from the nothrow forms.
template <alloc_kind Kind, bool Throws>
LEAKGUARD_COLD void* allocate_retry(std::size_t size, std::size_t alignment, const void* caller) {
  for (;;) {
    std::new_handler handler = std::get_new_handler();
    if (!handler) {
      if constexpr (Throws) throw std::bad_alloc();
      else return nullptr;
    }
    if constexpr (Throws) {
      handler();
    } else {
      try {
        handler();
      } catch (const std::bad_alloc&) {
        return nullptr;
      }
    }
    if (void* p = allocate_aligned<Kind>(size, alignment, caller)) return p;
  }
}

// `caller`: the return address of the operator (code_map.hpp).
template <alloc_kind Kind, bool Throws>
LEAKGUARD_ALWAYS_INLINE void* operator_new(const void* caller, std::size_t size,
                                           std::size_t alignment = default_alignment) {
  if (void* p = allocate_aligned<Kind>(size, alignment, caller); LEAKGUARD_LIKELY(p != nullptr)) return p;
  return allocate_retry<Kind, Throws>(size, alignment, caller);
}

}  // namespace leakguard::detail

// The single definition of this program's replacement functions. A second
// definition (this header in another TU) fails at link time.
extern "C" const char leakguard_global_new_is_included_in_exactly_one_translation_unit = 1;

#define LEAKGUARD_NEW(kind, throws, ...) \
  ::leakguard::detail::operator_new<::leakguard::detail::alloc_kind::kind, throws>(__builtin_return_address(0), __VA_ARGS__)
#define LEAKGUARD_DELETE(kind, ...) ::leakguard::detail::deallocate<::leakguard::detail::alloc_kind::kind>(__VA_ARGS__)
#define LEAKGUARD_ALIGN(a) static_cast<std::size_t>(a)

void* operator new(std::size_t n) { return LEAKGUARD_NEW(new_single, true, n); }
void* operator new[](std::size_t n) { return LEAKGUARD_NEW(new_array, true, n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return LEAKGUARD_NEW(new_single, false, n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return LEAKGUARD_NEW(new_array, false, n); }
void* operator new(std::size_t n, std::align_val_t a) { return LEAKGUARD_NEW(new_single, true, n, LEAKGUARD_ALIGN(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return LEAKGUARD_NEW(new_array, true, n, LEAKGUARD_ALIGN(a)); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return LEAKGUARD_NEW(new_single, false, n, LEAKGUARD_ALIGN(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return LEAKGUARD_NEW(new_array, false, n, LEAKGUARD_ALIGN(a));
}

void operator delete(void* p) noexcept { LEAKGUARD_DELETE(new_single, p); }
void operator delete[](void* p) noexcept { LEAKGUARD_DELETE(new_array, p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { LEAKGUARD_DELETE(new_single, p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { LEAKGUARD_DELETE(new_array, p); }
void operator delete(void* p, std::size_t n) noexcept { LEAKGUARD_DELETE(new_single, p, n); }
void operator delete[](void* p, std::size_t n) noexcept { LEAKGUARD_DELETE(new_array, p, n); }
void operator delete(void* p, std::align_val_t a) noexcept {
  LEAKGUARD_DELETE(new_single, p, ::leakguard::detail::unknown_size, LEAKGUARD_ALIGN(a));
}
void operator delete[](void* p, std::align_val_t a) noexcept {
  LEAKGUARD_DELETE(new_array, p, ::leakguard::detail::unknown_size, LEAKGUARD_ALIGN(a));
}
void operator delete(void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
  LEAKGUARD_DELETE(new_single, p, ::leakguard::detail::unknown_size, LEAKGUARD_ALIGN(a));
}
void operator delete[](void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
  LEAKGUARD_DELETE(new_array, p, ::leakguard::detail::unknown_size, LEAKGUARD_ALIGN(a));
}
void operator delete(void* p, std::size_t n, std::align_val_t a) noexcept {
  LEAKGUARD_DELETE(new_single, p, n, LEAKGUARD_ALIGN(a));
}
void operator delete[](void* p, std::size_t n, std::align_val_t a) noexcept {
  LEAKGUARD_DELETE(new_array, p, n, LEAKGUARD_ALIGN(a));
}

#undef LEAKGUARD_NEW
#undef LEAKGUARD_DELETE
#undef LEAKGUARD_ALIGN

#endif  // LEAKGUARD_ENABLED
