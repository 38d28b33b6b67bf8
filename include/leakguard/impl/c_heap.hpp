// leakguard/impl/c_heap.hpp — the malloc family as leakguard blocks, for
// <leakguard/global_malloc.hpp>.
//
// A C block is laid out like a `new` block (block.hpp) and takes the same
// paths: untracked outside scopes, tracked and attributed inside them. What
// is particular to C:
//
// - The heap below (heap.hpp) is found on first use with dlsym(RTLD_NEXT),
//   so a preloaded or linked-in allocator serves it, not glibc behind its
//   back. The loader may allocate while dlsym runs: a static arena serves
//   that, and its blocks are never given to the heap below.
// - realloc keeps a block's identity: one block, its latest size, its first
//   serial and allocation stack, and its scope. The stack names where the
//   object was made (its owner should free it); the line that grew it is
//   usually a generic append helper. A block made before a scope opened
//   stays outside it when the scope grows it.
// - Allocations the dynamic loader makes for itself (a new thread's TLS,
//   dlopen's link maps) are never attributed to a scope: they live as long
//   as the thread or library, not the scope (code_map.hpp).
#pragma once

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "code_map.hpp"
#include "retained.hpp"
#include "tracking.hpp"

// glibc's own entry points: the heap below when no other can be found.
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void __libc_free(void*);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace leakguard::detail {

// ---- the heap below, found on first use ------------------------------------------

// Serves the allocations made while dlsym runs: [size][pad][bytes], never freed.
class bootstrap_arena {
 public:
  void* allocate(std::size_t n, std::size_t alignment) noexcept {
    if (alignment < 16) alignment = 16;
    std::size_t at = used_.load(std::memory_order_relaxed);
    for (;;) {
      const std::size_t start = round_up(at + sizeof(std::size_t), alignment);
      if (n > sizeof bytes_ || start > sizeof bytes_ - n) return nullptr;
      if (used_.compare_exchange_weak(at, start + n, std::memory_order_relaxed)) {
        std::memcpy(bytes_ + start - sizeof(std::size_t), &n, sizeof n);
        return bytes_ + start;
      }
    }
  }
  bool contains(const void* p) const noexcept {
    return reinterpret_cast<std::uintptr_t>(p) - reinterpret_cast<std::uintptr_t>(bytes_) < sizeof bytes_;
  }
  std::size_t size_of(const void* p) const noexcept {
    std::size_t n;
    std::memcpy(&n, static_cast<const char*>(p) - sizeof n, sizeof n);
    return n;
  }

 private:
  alignas(4096) char bytes_[64 * 1024] = {};
  std::atomic<std::size_t> used_{0};
};
inline constinit bootstrap_arena bootstrap{};

struct next_heap {
  void* (*malloc)(std::size_t) = nullptr;
  void* (*calloc)(std::size_t, std::size_t) = nullptr;
  void* (*realloc)(void*, std::size_t) = nullptr;
  void (*free)(void*) = nullptr;
  void* (*memalign)(std::size_t, std::size_t) = nullptr;
  std::size_t (*usable_size)(void*) = nullptr;
};
inline constinit next_heap next{};

// glibc 2.38 and later: aligned_alloc rejects an alignment that is not a power of two.
inline constinit bool aligned_alloc_checks = false;

enum heap_state : int { heap_unresolved, heap_resolving, heap_ready };
inline constinit std::atomic<int> heap_status{heap_unresolved};
inline constinit thread_local bool resolving_heap = false;

inline bool glibc_at_least(unsigned major, unsigned minor) noexcept {
  const char* v = gnu_get_libc_version();
  unsigned parts[2] = {0, 0};
  for (unsigned& part : parts) {
    while (*v >= '0' && *v <= '9') part = part * 10 + static_cast<unsigned>(*v++ - '0');
    if (*v == '.') ++v;
  }
  return parts[0] != major ? parts[0] > major : parts[1] >= minor;
}

template <class F>
inline F next_symbol(const char* name) noexcept {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

// The heap that comes after this program's malloc: all five entry points
// from the object that defines `malloc`, or else glibc's own.
inline next_heap find_next_heap() noexcept {
  next_heap h;
  h.malloc = next_symbol<decltype(h.malloc)>("malloc");
  h.calloc = next_symbol<decltype(h.calloc)>("calloc");
  h.realloc = next_symbol<decltype(h.realloc)>("realloc");
  h.free = next_symbol<decltype(h.free)>("free");
  h.memalign = next_symbol<decltype(h.memalign)>("memalign");
  h.usable_size = next_symbol<decltype(h.usable_size)>("malloc_usable_size");
  Dl_info home{}, info{};
  bool one_heap = h.malloc && dladdr(reinterpret_cast<void*>(h.malloc), &home) && home.dli_fbase;
  for (void* f : {reinterpret_cast<void*>(h.calloc), reinterpret_cast<void*>(h.realloc),
                  reinterpret_cast<void*>(h.free), reinterpret_cast<void*>(h.memalign)})
    one_heap = one_heap && f && dladdr(f, &info) && info.dli_fbase == home.dli_fbase;
  if (!one_heap) {
    h = {&__libc_malloc, &__libc_calloc, &__libc_realloc, &__libc_free, &__libc_memalign, nullptr};
  } else if (h.usable_size && !(dladdr(reinterpret_cast<void*>(h.usable_size), &info) &&
                                info.dli_fbase == home.dli_fbase)) {
    h.usable_size = nullptr;
  }
  return h;
}

// True once the heap below is known; false on the thread that is looking
// it up (its allocations come from the arena meanwhile).
LEAKGUARD_COLD bool resolve_heap() noexcept {
  int state = heap_status.load(std::memory_order_acquire);
  if (state == heap_ready) return true;
  if (resolving_heap) return false;
  if (state == heap_unresolved && heap_status.compare_exchange_strong(state, heap_resolving)) {
    const int saved_errno = errno;
    resolving_heap = true;
    next = find_next_heap();
    make_code_map();
    aligned_alloc_checks = glibc_at_least(2, 38);
    heap_below.malloc.store(next.malloc, std::memory_order_relaxed);
    heap_below.calloc.store(next.calloc, std::memory_order_relaxed);
    heap_below.memalign.store(next.memalign, std::memory_order_relaxed);
    resolving_heap = false;
    heap_status.store(heap_ready, std::memory_order_release);
    errno = saved_errno;
    return true;
  }
  while (heap_status.load(std::memory_order_acquire) != heap_ready) sched_yield();
  return true;
}

inline void* first_malloc(std::size_t n) noexcept {
  return resolve_heap() ? next.malloc(n) : bootstrap.allocate(n, 16);
}
inline void* first_calloc(std::size_t n, std::size_t size) noexcept {
  if (resolve_heap()) return next.calloc(n, size);
  return bootstrap.allocate(n * size, 16);  // static memory: zero; one caller, raw_allocate, with n = 1
}
inline void* first_memalign(std::size_t alignment, std::size_t n) noexcept {
  return resolve_heap() ? next.memalign(alignment, n) : bootstrap.allocate(n, alignment);
}
inline void free_below(void* raw) noexcept {
  if (LEAKGUARD_UNLIKELY(bootstrap.contains(raw))) return;
  next.free(raw);
}
inline void* realloc_below(void* raw, std::size_t n) noexcept {
  if (LEAKGUARD_LIKELY(!bootstrap.contains(raw))) return next.realloc(raw, n);
  void* fresh = heap_malloc(n);
  if (fresh) std::memcpy(fresh, raw, std::min(n, bootstrap.size_of(raw)));
  return fresh;
}
inline std::size_t usable_below(void* raw) noexcept {
  if (bootstrap.contains(raw)) return bootstrap.size_of(raw);
  return next.usable_size ? next.usable_size(raw) : 0;
}

// ---- allocation ---------------------------------------------------------------------

// Off the fast path: whose allocation this is decides how it is booked.
LEAKGUARD_NOINLINE void* c_allocate_watched(std::size_t size, std::size_t alignment, alloc_kind kind,
                                            const void* caller) noexcept {
  const int saved_errno = errno;  // the books may make system calls; a success leaves errno alone
  thread_state& t = tls;
  void* p;
  if (in_loader(caller)) {
    ++t.ignore_depth;  // counted, never attributed
    p = allocate_cold(size, alignment, kind);
    --t.ignore_depth;
  } else {
    p = allocate_watched(size, alignment, kind, nullptr, caller);
  }
  errno = p ? saved_errno : ENOMEM;
  return p;
}

template <alloc_kind Kind>
LEAKGUARD_ALWAYS_INLINE void* c_allocate(std::size_t size, std::size_t alignment, const void* caller) noexcept {
  thread_state& t = tls;
  if (LEAKGUARD_UNLIKELY(t.slow.load(std::memory_order_relaxed) != 0 || alignment > default_alignment))
    return c_allocate_watched(size, alignment, Kind, caller);
  void* p = raw_allocate(size, default_alignment, Kind, 0);
  if (LEAKGUARD_LIKELY(p != nullptr)) count_allocation(t, size);
  else errno = ENOMEM;
  return p;
}

// glibc's memalign: at most its own alignment is malloc; a request that is
// not a power of two is rounded up to one; one above half the address
// space is EINVAL.
template <alloc_kind Kind>
inline void* c_memalign(std::size_t alignment, std::size_t size, const void* caller) noexcept {
  if (alignment <= default_alignment) return c_allocate<Kind>(size, default_alignment, caller);
  if (alignment > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return nullptr;
  }
  return c_allocate<Kind>(size, std::bit_ceil(alignment), caller);
}

// ---- free ------------------------------------------------------------------------

inline constexpr std::uint64_t kind_bits = std::uint64_t{0xff} << 16;

// An untracked C block at the default alignment, whatever C function made it.
inline bool plain_c_block(std::uint64_t tag) noexcept {
  return (tag & ~kind_bits) == make_tag(alloc_kind{}, default_alignment_log2, 0) &&
         is_c_kind(static_cast<alloc_kind>(tag >> 16 & 0xff));
}

LEAKGUARD_NOINLINE void c_free_slow(void* p) noexcept {
  const int saved_errno = errno;
  block_header* h = header_of(p);
  const alloc_kind own = is_c_kind(h->kind()) ? h->kind() : alloc_kind::c_malloc;
  deallocate_slow(p, alloc_kind::c_malloc, unknown_size, 0, make_tag(own, default_alignment_log2, 0));
  errno = saved_errno;
}

LEAKGUARD_ALWAYS_INLINE void c_free(void* p) noexcept {
  if (LEAKGUARD_UNLIKELY(p == nullptr)) return;
  block_header* h = header_of(p);
  thread_state& t = tls;
  if (LEAKGUARD_UNLIKELY(!plain_c_block(h->tag) ||
                         (t.slow.load(std::memory_order_relaxed) & (slow_unregistered | slow_exited))))
    return c_free_slow(p);
  count_deallocation(t, h->size);
  mark_freed(p);
  free_below(h);  // not through heap_below: one indirect call fewer
}

// ---- realloc ---------------------------------------------------------------------

// REQUIRES: the lock of the list `from` is on. `to` takes its place.
template <class Node>
inline void replace_node(Node* from, Node* to) noexcept {
  if (from->next == from) {
    to->prev = to->next = to;
    return;
  }
  to->prev = from->prev;
  to->next = from->next;
  from->prev->next = to;
  from->next->prev = to;
  from->prev = from->next = from;
}

// Moves a tracked block's place in its scopes' books from `from` to `to`
// (the block realloc moved), with its new size (update_books(), as settle()).
inline void rebook(block_header* from_h, block_header* to_h, std::size_t old_size, std::size_t new_size) noexcept {
  block_record* from = record_of(from_h);
  block_record* to = record_of(to_h);
  to->prev = to->next = to;
  to->owner.store(nullptr, std::memory_order_relaxed);
  to->stack.store(reinterpret_cast<std::uintptr_t>(stack_of(from)), std::memory_order_relaxed);
  to->serial = from->serial;
  to->origin = from->origin;
  if (from_h->flags() & flag_foreign) {
    foreign_link* g = foreign_of(to);
    g->prev = g->next = g;
    g->scope.store(nullptr, std::memory_order_relaxed);
    g->reserved = 0;
  }
  update_books(
      from_h,
      [&](scope_state* s) LEAKGUARD_LAMBDA_INLINE {
        replace_node(from, to);
        from->owner.store(nullptr, std::memory_order_relaxed);
        to->owner.store(s, std::memory_order_release);
        s->on_resize(old_size, new_size, *to);
        if (LEAKGUARD_UNLIKELY(s->retained_books)) resize_retained(retained(), to, old_size, new_size);
      },
      [&](scope_state* parent) LEAKGUARD_LAMBDA_INLINE { parent->on_resize(old_size, new_size, *to); },
      [&](scope_state* a, foreign_link* f) LEAKGUARD_LAMBDA_INLINE {
        foreign_link* g = foreign_of(to);
        replace_node(f, g);
        f->scope.store(nullptr, std::memory_order_relaxed);
        g->scope.store(a, std::memory_order_release);
        a->on_resize(old_size, new_size, *to);
      });
}

// The block was not one realloc can resize: not live, or not leakguard's.
LEAKGUARD_COLD void* realloc_misuse(void* p) noexcept {
  deallocate_cold(p, alloc_kind::c_realloc, unknown_size, 0);  // reports, frees nothing that is not a block
  errno = ENOMEM;
  return nullptr;
}

// A new C block with the bytes of `p`; `p` is left to the caller.
inline void* realloc_by_copy(void* p, std::size_t size, const void* caller) noexcept {
  void* q = c_allocate<alloc_kind::c_realloc>(size, default_alignment, caller);
  if (q) std::memcpy(q, p, std::min(size, header_of(p)->size));
  return q;
}

LEAKGUARD_NOINLINE void* c_realloc_slow(void* p, std::size_t size, const void* caller) noexcept {
  thread_state& t = tls;
  ensure_registered(t);
  if (!header_readable(p)) return realloc_misuse(p);
  block_header* h = header_of(p);
  if (h->magic() != header_magic || (h->flags() & flag_freed)) return realloc_misuse(p);
  const std::uint8_t flags = h->flags();
  if (!is_c_kind(h->kind())) {
    std::string msg;
    {
      internal_guard guard;
      msg = "realloc of " + describe(p) + ", a block of " + std::to_string(h->size) + " bytes allocated by " +
            kind_name(h->kind());
    }
    report_misuse(misuse_kind::wrong_allocator, p, h, std::move(msg));
    // Then done all the same: a C block with the bytes, the old block freed
    // as it was made (or left to the heap it came from).
    void* q = realloc_by_copy(p, size, caller);
    if (q && !(flags & flag_upstream)) release_block(t, p, h, flags);
    return q;
  }
  if (flags & flag_upstream) return realloc_by_copy(p, size, caller);
  if (reentered(t)) {
    // A signal handler inside leakguard: no lock may be waited for.
    void* q = allocate_reentrant(t, size, default_alignment, alloc_kind::c_realloc);
    if (!q) return nullptr;
    std::memcpy(q, p, std::min(size, h->size));
    if (!(flags & flag_tracked) || !defer_free(t, p)) c_free(p);
    return q;
  }
  const int saved_errno = errno;
  settle_deferred_if_any(t);
  const std::size_t old_size = h->size;
  void* q = raw_allocate(size, h->alignment(), h->kind(), flags);
  if (!q) {
    errno = ENOMEM;
    return nullptr;
  }
  if (flags & flag_tracked) rebook(h, header_of(q), old_size, size);
  std::memcpy(q, p, std::min(size, old_size));
  if (!(flags & flag_internal)) {
    count_deallocation_cold(t, old_size);
    count_allocation_cold(t, size);
  }
  h->set_flags(flags | flag_freed);
  mark_freed(p);
  heap_free(raw_of(h));
  errno = saved_errno;
  return q;
}

// glibc's realloc: null is malloc; size 0 frees and returns null.
LEAKGUARD_ALWAYS_INLINE void* c_realloc(void* p, std::size_t size, const void* caller) noexcept {
  if (!p) return c_allocate<alloc_kind::c_realloc>(size, default_alignment, caller);
  if (size == 0) {
    c_free(p);
    return nullptr;
  }
  if (size >= max_request) {
    errno = ENOMEM;
    return nullptr;
  }
  block_header* h = header_of(p);
  thread_state& t = tls;
  if (LEAKGUARD_UNLIKELY(!plain_c_block(h->tag) ||
                         (t.slow.load(std::memory_order_relaxed) & (slow_unregistered | slow_exited))))
    return c_realloc_slow(p, size, caller);
  // An untracked block: the heap below moves header and bytes together.
  const std::size_t old_size = h->size;
  auto* moved = static_cast<block_header*>(heap_realloc(h, block_bytes(size, 0, default_alignment)));
  if (!moved) {
    errno = ENOMEM;
    return nullptr;
  }
  moved->size = size;
  count_deallocation(t, old_size);
  count_allocation(t, size);
  return moved + 1;
}

inline std::size_t c_usable_size(void* p) noexcept {
  if (!p || !header_readable(p)) return 0;
  block_header* h = header_of(p);
  if (h->magic() != header_magic || (h->flags() & flag_freed)) return 0;
  if (h->flags() & flag_upstream) return h->size;
  void* raw = raw_of(h);
  const std::size_t total = heap_below.usable_size.load(std::memory_order_relaxed)(raw);
  const std::size_t used = static_cast<std::size_t>(static_cast<char*>(p) - static_cast<char*>(raw)) +
                           (h->flags() & flag_tracked ? sizeof(std::uint64_t) : 0);
  return total > used + h->size ? total - used : h->size;
}

}  // namespace leakguard::detail
