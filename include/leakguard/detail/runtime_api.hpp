// leakguard/detail/runtime_api.hpp — what the public headers need from the
// implementation translation unit (<leakguard/implementation.hpp>): the
// entry points their templates and inline functions call, and the small
// structs that live inside public objects. Declarations only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <source_location>

#include "../config.hpp"

// Defined by the one translation unit that includes <leakguard/global_new.hpp>
// or <leakguard/implementation.hpp>. Every file that includes leakguard refers
// to it, so that a program without that TU fails to link with this name in the
// error, and one with two such TUs fails with "multiple definition" of it.
extern "C" LEAKGUARD_API const char
    leakguard_implementation__include_leakguard_global_new_hpp_or_leakguard_implementation_hpp_in_exactly_one_cpp;

namespace leakguard::detail {

[[gnu::used]] inline const char* const implementation_link_check =
    &leakguard_implementation__include_leakguard_global_new_hpp_or_leakguard_implementation_hpp_in_exactly_one_cpp;

struct scope_state;
struct stack_trace;

// RAII: marks leakguard's own work on this thread; what it allocates
// meanwhile is never tracked, attributed or counted.
class LEAKGUARD_API internal_section {
 public:
  internal_section() noexcept;
  ~internal_section();
  internal_section(const internal_section&) = delete;
  internal_section& operator=(const internal_section&) = delete;
};

// The first allocation inside a no_alloc_scope, and how many there were.
struct no_alloc_state {
  no_alloc_state* outer = nullptr;
  std::uint64_t count = 0;
  std::size_t size = 0;
  std::uint64_t serial = 0;
  const stack_trace* stack = nullptr;
};

// In front of each block of a leakguard::memory_resource: the resource's
// own list of its live blocks (the list's sentinel lives in the resource).
struct resource_link {
  resource_link* prev;
  resource_link* next;
  const void* resource;  // the memory_resource that allocated the block
  std::uint64_t flags;   // the block's layout flags, to find its header
};

// An allocator's or resource's label and where the user constructed it.
// (The label as pointer and size: this header stays free of <string_view>,
// which test files include it for.)
struct origin_ref {
  const char* label;
  std::size_t label_size;
  std::source_location where;
  const char* what;  // "leakguard::allocator", "leakguard::memory_resource"
};

#if LEAKGUARD_ENABLED

// leakguard::allocator<T>: a block of leakguard's own heap, or null.
LEAKGUARD_API void* allocator_allocate(std::size_t bytes, std::size_t alignment, const origin_ref& origin) noexcept;
LEAKGUARD_API void allocator_deallocate(void* p, std::size_t bytes, std::size_t alignment) noexcept;

// leakguard::allocator<T, Upstream>: plan a block, get `bytes` aligned to
// `alignment` from the upstream (inside an internal_section), then place
// the block in that memory; on the way back, release() checks the block,
// settles it and says what to give back to the upstream (raw null: nothing,
// the misuse was reported).
struct upstream_plan {
  std::size_t bytes;      // what to ask the upstream for
  std::size_t alignment;  // aligned at least this much
  std::uint8_t flags;     // the block's layout
  std::uint32_t slow;     // the thread's state when planned
  bool watched;
  bool forbidden;
};
struct upstream_release {
  void* raw = nullptr;
  std::size_t bytes = 0;
  std::size_t alignment = 0;
};
LEAKGUARD_API upstream_plan adaptor_plan(std::size_t size, std::size_t alignment);  // may throw std::bad_alloc
LEAKGUARD_API void* adaptor_place(void* raw, std::size_t size, const upstream_plan& plan,
                                  const origin_ref& origin) noexcept;
LEAKGUARD_API upstream_release adaptor_release(void* p, std::size_t size, std::size_t alignment) noexcept;

#endif  // LEAKGUARD_ENABLED

}  // namespace leakguard::detail
