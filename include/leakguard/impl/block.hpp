// leakguard/impl/block.hpp — the layout of every block leakguard hands out.
//
//   untracked:  [block_header 16][user bytes]
//   tracked:    [block_record 48][block_header 16][user bytes]
//   + all_threads: [foreign_link 32][block_record 48][block_header 16][user bytes]
//   + memory_resource: [resource_link 32] in front of all that
//
// The header sits right before the user pointer so that a free learns in O(1),
// without a lock or lookup, how big the block is, which allocation function
// made it and whether a scope is watching it. Over-aligned blocks pad the
// prefix up to the alignment; the pad is derived from the header, not stored.
//
// glibc's tcache writes its links into the first 16 bytes of a freed chunk:
// an untracked block's header does not survive free(), a tracked block's does
// (it lies 48 or 80 bytes in), which lets a second delete of a tracked block
// be named a double free.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "../config.hpp"
#include "../detail/runtime_api.hpp"
#include "heap.hpp"

// Under AddressSanitizer, the bytes before a pointer leakguard did not make
// (a redzone) or of a freed block are poisoned: ask before reading a header.
#if LEAKGUARD_ASAN
#include <sanitizer/asan_interface.h>
#endif

// Under ThreadSanitizer, a malloc'd block may be the first of a size class's
// region, with unmapped memory right before it: ask the allocator whether a
// pointer starts one of its blocks (leakguard's user pointers never do) before
// reading a header there. GCC ships no <sanitizer/allocator_interface.h>.
#if LEAKGUARD_TSAN
extern "C" std::size_t __sanitizer_get_allocated_size(const volatile void* p);
#endif

namespace leakguard::detail {

struct scope_state;
struct stack_trace;
struct allocation_origin;

// Which allocation function made a block; frees must match its family. The
// C kinds (global_malloc.hpp) are one family, freed by free() or realloc().
enum class alloc_kind : std::uint8_t {
  new_single = 1,
  new_array = 2,
  allocator = 3,
  resource = 4,
  c_malloc = 5,
  c_calloc = 6,
  c_realloc = 7,  // realloc(nullptr, n)
  c_aligned_alloc = 8,
  c_posix_memalign = 9,
  c_memalign = 10,
  c_valloc = 11,
  c_pvalloc = 12,
};

inline constexpr bool is_c_kind(alloc_kind k) noexcept { return k >= alloc_kind::c_malloc; }

enum block_flags : std::uint8_t {
  flag_tracked = 1,   // a block_record precedes the header
  flag_foreign = 2,   // a foreign_link precedes the record
  flag_freed = 4,     // set just before free(); survives only in tracked blocks
  flag_resource = 8,  // a resource_link precedes everything; memory from an upstream
  flag_internal = 16, // leakguard's own block: not in global_stats
  flag_upstream = 32, // memory from an upstream resource or user allocator, not malloc
};

inline constexpr std::size_t default_alignment = __STDCPP_DEFAULT_NEW_ALIGNMENT__;
inline constexpr std::uint8_t default_alignment_log2 = std::countr_zero(default_alignment);
inline constexpr std::uint16_t header_magic = 0x1ea6;

inline constexpr std::uint64_t tag_flags(std::uint8_t flags) noexcept { return std::uint64_t{flags} << 32; }

// The header's second word, compared whole on the fast free paths.
inline constexpr std::uint64_t make_tag(alloc_kind kind, std::uint8_t align_log2,
                                        std::uint8_t flags) noexcept {
  return std::uint64_t{header_magic} | std::uint64_t{static_cast<std::uint8_t>(kind)} << 16 |
         std::uint64_t{align_log2} << 24 | tag_flags(flags);
}

struct block_header {
  std::size_t size;  // bytes the user asked for
  std::uint64_t tag;

  std::uint16_t magic() const noexcept { return static_cast<std::uint16_t>(tag); }
  alloc_kind kind() const noexcept { return static_cast<alloc_kind>(tag >> 16 & 0xff); }
  std::uint8_t align_log2() const noexcept { return static_cast<std::uint8_t>(tag >> 24); }
  std::size_t alignment() const noexcept { return std::size_t{1} << align_log2(); }
  std::uint8_t flags() const noexcept { return static_cast<std::uint8_t>(tag >> 32); }
  void set_flags(std::uint8_t f) noexcept { tag = make_tag(kind(), align_log2(), f); }
};
static_assert(sizeof(block_header) == 16);

// Present only for blocks allocated while a scope watched the thread.
// `owner` changes only under the owning scope's lock (see scope_state.hpp);
// a free from another thread reads it, locks that scope and re-checks.
struct block_record {
  block_record* prev;
  block_record* next;
  std::atomic<scope_state*> owner;  // null: no scope reports this block
  // A const stack_trace* (interned; null when capture is off), or while
  // the stack waits in its thread's stash, its entry (stack_stash.hpp):
  // read it through stack_of().
  std::atomic<std::uintptr_t> stack;
  std::uint64_t serial;
  const allocation_origin* origin;  // the allocator or resource that made it, if any
};
static_assert(sizeof(block_record) == 48);

// For blocks also attributed to an all_threads scope active on another thread.
struct foreign_link {
  foreign_link* prev;
  foreign_link* next;
  std::atomic<scope_state*> scope;
  std::uint64_t reserved;
};
static_assert(sizeof(foreign_link) == 32);

// For blocks of a leakguard::memory_resource (detail/runtime_api.hpp).
static_assert(sizeof(resource_link) == 32);

inline constexpr std::size_t round_up(std::size_t n, std::size_t align) noexcept {
  return (n + align - 1) & ~(align - 1);
}

// Bytes between the raw allocation and the user pointer.
inline constexpr std::size_t prefix_size(std::uint8_t flags, std::size_t alignment) noexcept {
  std::size_t bytes = sizeof(block_header);
  if (flags & flag_tracked) bytes += sizeof(block_record);
  if (flags & flag_foreign) bytes += sizeof(foreign_link);
  if (flags & flag_resource) bytes += sizeof(resource_link);
  return alignment > default_alignment ? round_up(bytes, alignment) : bytes;
}

// Through an integer: the compiler knows what operator new returned as an
// object of the requested size and would call the header outside of it.
inline block_header* header_of(const void* user) noexcept {
  return reinterpret_cast<block_header*>(reinterpret_cast<std::uintptr_t>(user) - sizeof(block_header));
}
inline block_record* record_of(block_header* h) noexcept {
  return reinterpret_cast<block_record*>(h) - 1;
}
inline block_header* header_of(block_record* r) noexcept {
  return reinterpret_cast<block_header*>(r + 1);
}
inline void* user_of(block_record* r) noexcept { return header_of(r) + 1; }
inline foreign_link* foreign_of(block_record* r) noexcept {
  return reinterpret_cast<foreign_link*>(r) - 1;
}
inline block_record* record_of(foreign_link* f) noexcept {
  return reinterpret_cast<block_record*>(f + 1);
}
inline resource_link* resource_of(block_header* h) noexcept {
  char* below = reinterpret_cast<char*>(record_of(h));
  if (h->flags() & flag_foreign) below -= sizeof(foreign_link);
  return reinterpret_cast<resource_link*>(below) - 1;
}
inline block_header* header_of(resource_link* l, std::uint8_t flags) noexcept {
  char* above = reinterpret_cast<char*>(l + 1);
  if (flags & flag_foreign) above += sizeof(foreign_link);
  return header_of(reinterpret_cast<block_record*>(above));
}

inline constexpr std::uint8_t layout_flags = flag_tracked | flag_foreign | flag_resource;

inline void* raw_of(block_header* h) noexcept {
  return reinterpret_cast<char*>(h + 1) - prefix_size(h->flags() & layout_flags, h->alignment());
}

// False only under a sanitizer: AddressSanitizer, for a header in poisoned
// memory; ThreadSanitizer, for a pointer that starts a malloc'd block.
inline bool header_readable(const void* user) noexcept {
#if LEAKGUARD_ASAN
  return __asan_region_is_poisoned(const_cast<void*>(static_cast<const void*>(header_of(user))),
                                   sizeof(block_header)) == nullptr;
#elif LEAKGUARD_TSAN
  return __sanitizer_get_allocated_size(user) == 0;
#else
  (void)user;
  return true;
#endif
}

// Under AddressSanitizer: the user bytes themselves are poisoned (freed).
inline bool user_poisoned(const void* user) noexcept {
#if LEAKGUARD_ASAN
  return __asan_address_is_poisoned(user) != 0;
#else
  (void)user;
  return false;
#endif
}

// Written over the first user word of a block as it is freed. An untracked
// block's header does not survive free() (tcache), this word usually does
// (until the memory is reused), so a second delete can still be named a
// double free. raw_allocate() gives every block room for it.
inline std::uint64_t freed_marker(const void* user) noexcept {
  return 0xdeadf5eeb10c0000ull ^ reinterpret_cast<std::uintptr_t>(user);
}
// Under AddressSanitizer neither is needed (freed memory is poisoned, see
// header_readable) nor allowed: ASan poisons the cookie of `new T[n]`, which
// is where the marker would go.
inline void mark_freed(void* user) noexcept {
  if (LEAKGUARD_ASAN) return;
  const std::uint64_t marker = freed_marker(user);
  std::memcpy(user, &marker, sizeof marker);
}
inline bool looks_freed(const void* user) noexcept {
  if (LEAKGUARD_ASAN) return false;
  std::uint64_t word;
  std::memcpy(&word, user, sizeof word);
  return word == freed_marker(user);
}

// The largest request that cannot overflow once a prefix is added.
inline constexpr std::size_t max_request = (std::size_t{1} << (sizeof(std::size_t) * 8 - 2));

// Bytes to ask for: the prefix, and at least room for the freed marker. A
// tracked block gets a word more: glibc lets a block's last 8 usable bytes
// overlap the next chunk's header, which its arena points to; without the
// slack, such a pointer would seem to point into the block and keep a leak
// "reachable" (reachability.hpp).
inline constexpr std::size_t block_bytes(std::size_t size, std::uint8_t flags, std::size_t alignment) noexcept {
  return prefix_size(flags, alignment) + (size < sizeof(std::uint64_t) ? sizeof(std::uint64_t) : size) +
         (flags & flag_tracked ? sizeof(std::uint64_t) : 0);
}

// Writes the header into fresh raw memory and returns the user pointer.
inline void* init_block(void* raw, std::size_t size, std::size_t alignment, alloc_kind kind,
                        std::uint8_t flags) noexcept {
  auto* h = reinterpret_cast<block_header*>(static_cast<char*>(raw) + prefix_size(flags, alignment)) - 1;
  h->size = size;
  h->tag = make_tag(kind, static_cast<std::uint8_t>(std::countr_zero(alignment)), flags);
  return h + 1;
}

// From the heap below (heap.hpp): malloc for the default alignment (calloc
// for a calloc block, whose zeroed pages the heap may get for free),
// memalign above it. Returns the user pointer with the header written, or null.
LEAKGUARD_ALWAYS_INLINE void* raw_allocate(std::size_t size, std::size_t alignment, alloc_kind kind,
                          std::uint8_t flags) noexcept {
  if (size >= max_request) return nullptr;
  const std::size_t bytes = block_bytes(size, flags, alignment);
  void* raw;
  if (alignment > default_alignment) raw = heap_memalign(alignment, bytes);
  else if (kind == alloc_kind::c_calloc) raw = heap_calloc(bytes);
  else raw = heap_malloc(bytes);
  if (!raw) return nullptr;
  return init_block(raw, size, alignment, kind, flags);
}

}  // namespace leakguard::detail
