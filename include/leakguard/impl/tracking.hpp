// leakguard/impl/tracking.hpp — the allocation and free paths.
//
// allocate(): one thread-local load and one branch decide between the fast
// path (nothing watches this thread: raw allocation, header, own counters)
// and allocate_watched(), which sends a thread that is only in scopes of its
// own to allocate_scoped() and everything else (registration, all_threads,
// no_alloc, ignore, failure injection) to allocate_cold().
// deallocate(): one compare of the header's tag against what this free
// expects decides between the fast path and deallocate_slow(): a tracked
// block freed as it was made is settled at once, anything else (aligned or
// foreign-linked blocks, misuse) goes to deallocate_cold().
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "handler.hpp"
#include "block.hpp"
#include "code_map.hpp"
#include "fork.hpp"
#include "frame_kind.hpp"
#include "origins.hpp"
#include "retained.hpp"
#include "scope_state.hpp"
#include "stack_stash.hpp"
#include "stacks.hpp"
#include "symbolize.hpp"
#include "thread_state.hpp"

namespace leakguard::detail {

inline std::size_t effective_alignment(std::size_t alignment) noexcept {
  return alignment > default_alignment ? alignment : default_alignment;
}

// ---- attribution -----------------------------------------------------------

// The chain of a thread holds at most this many scopes that an allocation
// is counted in; deeper nesting is counted in the innermost ones only.
inline constexpr int max_chain = 32;

// Links a fresh record into the thread's innermost scope and counts it in
// every enclosing scope. Returns how many chain scopes it visited.
inline int attribute_to_chain(thread_state& t, block_record* r, std::size_t size,
                              scope_state** visited) noexcept {
  scope_state* s = t.innermost;
  if (!lock_if_current(s, t.innermost_generation)) return 0;
  link(s->live, r);
  r->owner.store(s, std::memory_order_release);
  s->on_allocation(size, *r);
  int n = 0;
  visited[n++] = s;
  // Holding the child's lock keeps it current, and its parents with it.
  for (scope_state* child = s; n < max_chain;) {
    scope_state* parent = parent_of(child);
    if (!lock_parent_if_current(parent, parent_generation_of(child))) break;
    parent->on_allocation(size, *r);
    parent->lock.unlock();
    visited[n++] = parent;
    child = parent;
  }
  s->lock.unlock();
  return n;
}

// Also attributes the block to the newest all_threads scope that is not in
// the thread's own chain.
inline void attribute_to_all_threads(block_record* r, std::size_t size, scope_state* const* visited,
                                     int n) noexcept {
  foreign_link* f = foreign_of(r);
  lock_guard g(registry.lock);
  for (scope_state* a = registry.all_threads; a; a = a->next_all_threads) {
    bool in_chain = false;
    for (int i = 0; i < n; ++i) in_chain |= visited[i] == a;
    if (in_chain) continue;
    lock_guard ga(a->lock);
    link(a->foreign, f);
    f->scope.store(a, std::memory_order_release);
    a->on_allocation(size, *r);
    return;
  }
}

// REQUIRES: s->lock; `r` just left s's lists.
inline void released_from(scope_state* s, const block_record* r, std::size_t size, bool freed) noexcept {
  s->on_release(size, freed, s->waiting);
  if (LEAKGUARD_UNLIKELY(s->retained_books)) forget_retained(retained(), r, size);
}

// Removes a block from the books of every scope it belongs to; `freed` is
// false for leakguard::ignore, which forgets a block without freeing it.
// The owner protocol of a tracked block's books, shared by settle() and
// realloc's rebook(): locks the scope that owns record `r` (re-checking, as
// it may have moved to a parent meanwhile) and calls `own(s)` under its lock,
// then `ancestor(p)` for each enclosing scope under the child's lock and its
// own; then the same for the all_threads scope of the foreign link, `foreign(a)`.
template <class Own, class Ancestor, class Foreign>
LEAKGUARD_ALWAYS_INLINE void update_books(block_header* h, Own own, Ancestor ancestor, Foreign foreign) noexcept {
  block_record* r = record_of(h);
  for (scope_state* s; (s = r->owner.load(std::memory_order_acquire));) {
    s->lock.lock();
    if (r->owner.load(std::memory_order_relaxed) != s) {  // moved to a parent meanwhile
      s->lock.unlock();
      continue;
    }
    own(s);
    int n = 1;
    for (scope_state* child = s; n < max_chain; ++n) {
      scope_state* parent = parent_of(child);
      if (!lock_parent_if_current(parent, parent_generation_of(child))) break;
      ancestor(parent);
      parent->lock.unlock();
      child = parent;
    }
    s->lock.unlock();
    break;
  }
  if (!(h->flags() & flag_foreign)) return;
  foreign_link* f = foreign_of(r);
  for (scope_state* a; (a = f->scope.load(std::memory_order_acquire));) {
    lock_guard g(a->lock);
    if (f->scope.load(std::memory_order_relaxed) != a) continue;
    foreign(a, f);
    break;
  }
}

LEAKGUARD_ALWAYS_INLINE void settle(block_header* h, bool freed) noexcept {
  block_record* r = record_of(h);
  const std::size_t size = h->size;
  bool late = false;
  update_books(
      h,
      [&](scope_state* s) LEAKGUARD_LAMBDA_INLINE {
        unlink(r);
        r->owner.store(nullptr, std::memory_order_relaxed);
        late = s->waiting;
        released_from(s, r, size, freed);
      },
      [&](scope_state* parent) LEAKGUARD_LAMBDA_INLINE { parent->on_release(size, freed, late); },
      [&](scope_state* a, foreign_link* f) LEAKGUARD_LAMBDA_INLINE {
        unlink(f);
        f->scope.store(nullptr, std::memory_order_relaxed);
        a->on_release(size, freed, false);
      });
  if (freed) forget_stack(r);  // off the books: no verdict can ask for it now
}

// ---- re-entry: a signal handler that interrupted leakguard on this thread -------
// It must never wait for a lock the thread holds (internal_memory.hpp's
// locks_held): its allocations go unrecorded (counted in the next report's
// unrecorded()), and its frees of tracked blocks wait in the thread's
// deferred list until the thread next enters leakguard holding no lock.

// True if the calling thread is inside leakguard's books and this is not
// leakguard's own work (whose allocations never take a lock).
inline bool reentered(const thread_state& t) noexcept { return locks_held != 0 && t.internal_depth == 0; }

LEAKGUARD_COLD void* allocate_reentrant(thread_state& t, std::size_t size, std::size_t alignment,
                                        alloc_kind kind) noexcept {
  void* p = raw_allocate(size, effective_alignment(alignment), kind, 0);
  if (!p) return nullptr;
  count_allocation_cold(t, size);
  const std::uint32_t slow = t.slow.load(std::memory_order_relaxed);
  if (t.ignore_depth == 0 && (slow & (slow_scoped | slow_all_threads))) count_lost(lost.allocations);
  return p;
}

// Queues a tracked block's free; false when the list is full.
inline bool defer_free(thread_state& t, void* p) noexcept {
  std::uint32_t n = t.deferred_frees.load(std::memory_order_relaxed);
  do {
    if (n == max_deferred_frees) return false;
  } while (!t.deferred_frees.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
  t.deferred[n] = p;  // a nested handler takes the next slot; the thread pops after both return
  std::atomic_signal_fence(std::memory_order_seq_cst);
  return true;
}

// Takes a checked block off the books and frees it.
LEAKGUARD_ALWAYS_INLINE void release_block(thread_state& t, void* p, block_header* h, std::uint8_t flags) noexcept {
  if (flags & flag_tracked) settle(h, true);
  if (!(flags & flag_internal)) count_deallocation_cold(t, h->size);
  void* raw = raw_of(h);
  h->set_flags(flags | flag_freed);
  mark_freed(p);
  heap_free(raw);
}

// Settles the deferred frees. It counts as holding a lock, so a handler
// that interrupts it only pushes: what it pops cannot change under it.
LEAKGUARD_COLD void settle_deferred(thread_state& t) noexcept {
  hold_lock();
  for (std::uint32_t n; (n = t.deferred_frees.load(std::memory_order_relaxed)) != 0;) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    void* p = t.deferred[n - 1];
    if (!t.deferred_frees.compare_exchange_strong(n, n - 1, std::memory_order_relaxed)) continue;  // one more was pushed
    t.deferred[n - 1] = nullptr;  // thread_locals are roots of the verdicts' scan: leave no stale pointer
    release_block(t, p, header_of(p), flag_tracked);
  }
  drop_lock();
}

// Where the thread enters leakguard: re-entered, or free to settle.
LEAKGUARD_ALWAYS_INLINE void settle_deferred_if_any(thread_state& t) noexcept {
  if (LEAKGUARD_UNLIKELY(t.deferred_frees.load(std::memory_order_relaxed) != 0) && locks_held == 0)
    settle_deferred(t);
}

// ---- allocation --------------------------------------------------------------

inline void note_no_alloc_violation(thread_state& t, std::size_t size, std::uint64_t serial,
                                    const stack_trace* stack) noexcept {
  no_alloc_state* z = t.no_alloc;
  if (!z) return;
  if (z->count++ == 0) {
    z->size = size;
    z->serial = serial;
    z->stack = stack;
  }
}

// What the calling thread's state asks of one allocation.
struct watch {
  std::uint32_t slow;
  bool watched;    // attribute it to scopes
  bool forbidden;  // a no_alloc_scope is active
};

inline watch watch_of(thread_state& t) noexcept {
  std::uint32_t slow = t.slow.load(std::memory_order_relaxed);
  if (slow & slow_unregistered) {
    register_thread(t);
    slow = t.slow.load(std::memory_order_relaxed);
  }
  const bool own_work = t.internal_depth != 0;
  return {slow, !own_work && t.ignore_depth == 0 && (slow & (slow_scoped | slow_all_threads)) != 0,
          !own_work && (slow & slow_no_alloc) != 0};
}

// The layout a block needs for what watches it; a `resource` block always
// has a record: the memory_resource lists its blocks whether or not a scope
// watches.
inline std::uint8_t layout_for(const watch& w, bool resource) noexcept {
  std::uint8_t flags = tls.internal_depth ? flag_internal : 0;
  if (w.watched || resource) flags |= flag_tracked;
  if (w.watched && (w.slow & slow_all_threads)) flags |= flag_foreign;
  if (resource) flags |= flag_resource;
  return flags;
}

// Heap sampling (runtime_options::sample_bytes): a per-thread countdown of
// bytes; when it runs out the allocation gets a stack and the countdown is
// drawn again from an exponential distribution, so every byte has the same
// chance to be sampled and periodic patterns cannot hide from it.
inline bool take_sample(thread_state& t, std::size_t size) noexcept {
  const std::size_t mean = sample_bytes();
  if (mean == 0) return true;
  if ((t.bytes_until_sample -= static_cast<std::int64_t>(size)) > 0) return false;
  if (t.random_state == 0) t.random_state = reinterpret_cast<std::uintptr_t>(&t) | 1;
  t.random_state ^= t.random_state << 13;  // xorshift64
  t.random_state ^= t.random_state >> 7;
  t.random_state ^= t.random_state << 17;
  const double uniform = static_cast<double>((t.random_state >> 11) + 1) * 0x1.0p-53;  // (0, 1]
  t.bytes_until_sample = static_cast<std::int64_t>(-std::log(uniform) * static_cast<double>(mean)) + 1;
  return true;
}

// Books a fresh block: serial, stack, no_alloc violation, scopes.
LEAKGUARD_ALWAYS_INLINE void track_block(thread_state& t, void* p, std::size_t size, const watch& w, std::uint8_t flags,
                        const origin_ref* origin) noexcept {
  if (!(flags & flag_tracked) && !w.forbidden) return;
  const std::uint64_t serial = take_serial(t.serials);
  // The full stack for a sample (or every block), the few frames that name
  // the site for the others. Allocates nothing: the walk, the depot's arena.
  // A tracked block's frames wait in the thread's stash until its stack is
  // needed; a no_alloc violation needs it now.
  const int depth = stack_depth();
  const bool full = depth > 0 && (w.forbidden || take_sample(t, size));
  block_record* r = (flags & flag_tracked) ? record_of(header_of(p)) : nullptr;
  std::uintptr_t stack_word;
  if (r && !w.forbidden) {
    stack_word = stash_stack(t, r, serial, full ? depth : site_frames);
  } else {
    const stack_trace* stack = capture_stack(full ? depth : site_frames);
    if (stack == not_recorded()) count_lost(lost.stacks);
    if (w.forbidden) note_no_alloc_violation(t, size, serial, stack);
    stack_word = reinterpret_cast<std::uintptr_t>(stack);
  }
  if (!r) return;

  r->prev = r->next = r;
  r->owner.store(nullptr, std::memory_order_relaxed);
  r->stack.store(stack_word, std::memory_order_relaxed);
  r->serial = serial;
  r->origin = origin ? origins.intern(*origin) : nullptr;
  if (!w.watched) return;
  scope_state* visited[max_chain];
  const int n = (w.slow & slow_scoped) ? attribute_to_chain(t, r, size, visited) : 0;
  if (flags & flag_foreign) {
    foreign_link* f = foreign_of(r);
    f->prev = f->next = f;
    f->scope.store(nullptr, std::memory_order_relaxed);
    f->reserved = 0;
    attribute_to_all_threads(r, size, visited, n);
  }
}

// Failure injection (scope_options::fail_allocation): true when this watched
// allocation is the one to fail.
inline bool inject_failure(thread_state& t, const watch& w) noexcept {
  return w.watched && t.fail_countdown != 0 && --t.fail_countdown == 0;
}

// The block with room for its record; when that memory cannot be had, the
// block alone, unrecorded (and counted): leakguard's books never make a
// user's allocation fail.
inline void* allocate_block(std::size_t size, std::size_t alignment, alloc_kind kind, std::uint8_t& flags) noexcept {
  constexpr std::uint8_t books = flag_tracked | flag_foreign;
  if ((flags & flag_internal) && out_of_books(book_report)) return nullptr;  // test hook
  if (!(flags & books)) return raw_allocate(size, alignment, kind, flags);
  if (void* p = out_of_books(book_record) ? nullptr : raw_allocate(size, alignment, kind, flags)) return p;
  flags = static_cast<std::uint8_t>(flags & ~books);
  void* p = raw_allocate(size, alignment, kind, flags);
  if (p) count_lost(lost.allocations);
  return p;
}

LEAKGUARD_COLD void* allocate_cold(std::size_t size, std::size_t alignment, alloc_kind kind,
                                   const origin_ref* origin = nullptr) noexcept {
  thread_state& t = tls;
  if (LEAKGUARD_UNLIKELY(reentered(t))) return allocate_reentrant(t, size, alignment, kind);
  settle_deferred_if_any(t);
  const watch w = watch_of(t);
  if (inject_failure(t, w)) return nullptr;
  std::uint8_t flags = layout_for(w, false);
  void* p = allocate_block(size, effective_alignment(alignment), kind, flags);
  if (!p) return nullptr;
  if (!(flags & flag_internal)) count_allocation_cold(t, size);
  track_block(t, p, size, w, flags, origin);
  return p;
}

// The common watched case, a thread in its own scopes and nothing else
// (no all_threads scope, no ignore_scope, no failure to inject): the
// general path below with its questions answered at compile time.
LEAKGUARD_NOINLINE void* allocate_scoped(thread_state& t, std::size_t size, alloc_kind kind,
                                         const origin_ref* origin) noexcept {
  void* p = raw_allocate(size, default_alignment, kind, flag_tracked);
  if (!p) return allocate_cold(size, default_alignment, kind, origin);  // the unrecorded fallback, or null
  count_allocation(t, size);
  track_block(t, p, size, watch{slow_scoped, true, false}, flag_tracked, origin);
  return p;
}

// Off the fast path (`slow` is set): allocate_scoped() or allocate_cold().
// `caller`, the allocation function's return address where it is known:
// called from a library without frame pointers, the stack is captured with
// the unwinder (code_map.hpp).
LEAKGUARD_NOINLINE void* allocate_watched(std::size_t size, std::size_t alignment, alloc_kind kind,
                                          const origin_ref* origin = nullptr,
                                          const void* caller = nullptr) noexcept {
  thread_state& t = tls;
  const bool unwind = caller && lacks_frame_pointers(caller);
  if (LEAKGUARD_UNLIKELY(unwind)) capture_by_unwinding = true;
  void* p;
  if (t.slow.load(std::memory_order_relaxed) == slow_scoped && t.ignore_depth == 0 && t.fail_countdown == 0 &&
      alignment <= default_alignment && locks_held == 0 && t.deferred_frees.load(std::memory_order_relaxed) == 0)
    p = allocate_scoped(t, size, kind, origin);
  else
    p = allocate_cold(size, alignment, kind, origin);
  if (unwind) capture_by_unwinding = false;
  return p;
}

// Returns the block or null; the operator new forms add the new_handler loop.
template <alloc_kind Kind>
LEAKGUARD_ALWAYS_INLINE void* allocate(std::size_t size, const void* caller = nullptr) noexcept {
  thread_state& t = tls;
  if (LEAKGUARD_UNLIKELY(t.slow.load(std::memory_order_relaxed) != 0))
    return allocate_watched(size, default_alignment, Kind, nullptr, caller);
  void* p = raw_allocate(size, default_alignment, Kind, 0);
  if (LEAKGUARD_LIKELY(p != nullptr)) count_allocation(t, size);
  return p;
}

template <alloc_kind Kind>
inline void* allocate_aligned(std::size_t size, std::size_t alignment, const void* caller = nullptr) noexcept {
  if (alignment <= default_alignment) return allocate<Kind>(size, caller);
  return allocate_watched(size, alignment, Kind, nullptr, caller);
}

// The allocator path: like allocate(), and a tracked block remembers which
// allocator made it.
template <alloc_kind Kind>
LEAKGUARD_ALWAYS_INLINE void* allocate_from(std::size_t size, std::size_t alignment, const origin_ref& origin) noexcept {
  thread_state& t = tls;
  if (LEAKGUARD_UNLIKELY(t.slow.load(std::memory_order_relaxed) != 0 || alignment > default_alignment))
    return allocate_watched(size, alignment, Kind, &origin);
  void* p = raw_allocate(size, default_alignment, Kind, 0);
  if (LEAKGUARD_LIKELY(p != nullptr)) count_allocation(t, size);
  return p;
}

// ---- misuse ------------------------------------------------------------------

inline const char* kind_name(alloc_kind k) noexcept {
  switch (k) {
    case alloc_kind::new_single: return "new";
    case alloc_kind::new_array: return "new[]";
    case alloc_kind::allocator: return "leakguard::allocator";
    case alloc_kind::resource: return "leakguard::memory_resource";
    case alloc_kind::c_malloc: return "malloc";
    case alloc_kind::c_calloc: return "calloc";
    case alloc_kind::c_realloc: return "realloc";
    case alloc_kind::c_aligned_alloc: return "aligned_alloc";
    case alloc_kind::c_posix_memalign: return "posix_memalign";
    case alloc_kind::c_memalign: return "memalign";
    case alloc_kind::c_valloc: return "valloc";
    case alloc_kind::c_pvalloc: return "pvalloc";
  }
  return "?";
}

// What a report names as a block's allocation function: its kind, or for a
// C block the C library function on top of its stack that called malloc
// for the user ("__strdup" is shown as "strdup").
inline std::string allocated_by(alloc_kind k, const std::vector<frame>& stack) {
  // The C library's frames on top have no line; some have no name (static functions).
  for (std::size_t i = 0; is_c_kind(k) && i < stack.size() && stack[i].line == 0; ++i) {
    std::string_view name = stack[i].function;
    if (!is_c_library_allocator(name) || name.starts_with("_IO_")) continue;
    while (name.starts_with('_')) name.remove_prefix(1);
    if (name.starts_with("GI_")) name.remove_prefix(3);
    if (name.ends_with("_internal")) name.remove_suffix(9);
    return std::string(name);
  }
  return kind_name(k);
}

inline const char* free_name(alloc_kind k) noexcept {
  switch (k) {
    case alloc_kind::new_single: return "delete";
    case alloc_kind::new_array: return "delete[]";
    case alloc_kind::allocator: return "leakguard::allocator::deallocate";
    case alloc_kind::resource: return "leakguard::memory_resource::deallocate";
    case alloc_kind::c_realloc: return "realloc";  // the call, from realloc()
    default: return "free";
  }
}

LEAKGUARD_COLD void report_misuse(misuse_kind kind, const void* address, block_header* h, std::string message) noexcept {
  internal_guard guard;
  try {
    misuse m;
    m.kind = kind;
    m.address = address;
    m.size = h ? h->size : 0;
    m.message = std::move(message);
    symbolized_stack where = symbolize(capture_stack(stack_depth() ? stack_depth() : 16), max_stack_depth);
    m.stack = std::move(where.frames);
    m.site = std::move(where.site);
    if (h && (h->flags() & flag_tracked) && !(h->flags() & flag_freed))
      m.allocation_site = symbolize(stack_of(record_of(h)), 1).site;
    if (!m.site.empty()) m.message += " at " + m.site;
    misuse_handler handler = misuse_handler_slot().get();
    if (handler) handler(m);
    else abort_with_misuse(m);
  } catch (...) {
    // A misuse handler must not throw through a delete; say so and go on.
    std::fputs("leakguard: misuse handler threw; exception dropped\n", stderr);
  }
}

inline std::string describe(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", p);
  return buf;
}

// ---- free ----------------------------------------------------------------------

inline constexpr std::size_t unknown_size = static_cast<std::size_t>(-1);

LEAKGUARD_COLD void deallocate_cold(void* p, alloc_kind kind, std::size_t size, std::size_t alignment) noexcept {
  thread_state& t = tls;
  ensure_registered(t);
  if (!header_readable(p)) {  // a sanitizer's freed memory, redzone or malloc'd block
    const bool freed = user_poisoned(p);
    std::string msg;
    {
      internal_guard guard;
      msg = std::string(freed ? "double free: " : "") + free_name(kind) + " of " + describe(p) +
            (freed ? ", a block that was already freed" : ", which leakguard did not allocate");
    }
    return report_misuse(freed ? misuse_kind::double_free : misuse_kind::foreign_pointer, p, nullptr,
                         std::move(msg));
  }
  block_header* h = header_of(p);
  if (h->magic() != header_magic && looks_freed(p)) {
    std::string msg;
    {
      internal_guard guard;
      msg = "double free: " + std::string(free_name(kind)) + " of " + describe(p) + ", a block that was already freed";
    }
    return report_misuse(misuse_kind::double_free, p, nullptr, std::move(msg));
  }
  if (h->magic() != header_magic) {
    std::string msg;
    {
      internal_guard guard;
      msg = std::string(free_name(kind)) + " of " + describe(p) +
            ", which leakguard did not allocate (a pointer from malloc, the stack, the middle of a block, or one already freed)";
    }
    return report_misuse(misuse_kind::foreign_pointer, p, nullptr, std::move(msg));
  }
  const std::uint8_t flags = h->flags();
  if (flags & flag_freed) {
    std::string msg;
    {
      internal_guard guard;
      msg = "double free: " + std::string(free_name(kind)) + " of " + describe(p) + ", a block of " +
            std::to_string(h->size) + " bytes that was already freed";
    }
    return report_misuse(misuse_kind::double_free, p, nullptr, std::move(msg));
  }
  if (h->kind() != kind && !(is_c_kind(h->kind()) && is_c_kind(kind))) {
    const bool arrays = (h->kind() == alloc_kind::new_single || h->kind() == alloc_kind::new_array) &&
                        (kind == alloc_kind::new_single || kind == alloc_kind::new_array);
    std::string msg;
    {
      internal_guard guard;
      msg = std::string(free_name(kind)) + " of " + describe(p) + ", a block of " + std::to_string(h->size) +
            " bytes allocated by " + kind_name(h->kind());
    }
    report_misuse(arrays ? misuse_kind::array_mismatch : misuse_kind::wrong_allocator, p, h, std::move(msg));
  } else if (!is_c_kind(kind) && effective_alignment(alignment) != h->alignment()) {
    std::string msg;
    {
      internal_guard guard;
      msg = std::string(free_name(kind)) + " of " + describe(p) + " with alignment " + std::to_string(alignment) +
            ", but the block was allocated with alignment " + std::to_string(h->alignment());
    }
    report_misuse(misuse_kind::alignment_mismatch, p, h, std::move(msg));
  } else if (size != unknown_size && size != h->size) {
    std::string msg;
    {
      internal_guard guard;
      msg = "sized " + std::string(free_name(kind)) + " of " + describe(p) + " with size " + std::to_string(size) +
            ", but the block was allocated with size " + std::to_string(h->size);
    }
    report_misuse(misuse_kind::size_mismatch, p, h, std::move(msg));
  }
  // A block of a memory_resource or allocator adaptor: its memory belongs to
  // their upstream, so leave it alone rather than corrupt a heap.
  if (flags & flag_upstream) return;
  // A genuine block: free it as it was allocated, whatever the call said.
  if ((flags & flag_tracked) && reentered(t) && defer_free(t, p)) return;
  settle_deferred_if_any(t);
  release_block(t, p, h, flags);
}

// Off the fast free path: a tracked block freed as it was made (checked by
// its tag, `expected` with flag_tracked) goes straight to release_block();
// anything else to deallocate_cold().
LEAKGUARD_NOINLINE void deallocate_slow(void* p, alloc_kind kind, std::size_t size, std::size_t alignment,
                                        std::uint64_t expected) noexcept {
  block_header* h = header_of(p);
  thread_state& t = tls;
  if (h->tag == (expected | tag_flags(flag_tracked)) && (size == unknown_size || size == h->size) &&
      !(t.slow.load(std::memory_order_relaxed) & slow_unregistered)) {
    if (LEAKGUARD_UNLIKELY(reentered(t)) && defer_free(t, p)) return;
    settle_deferred_if_any(t);
    return release_block(t, p, h, flag_tracked);
  }
  deallocate_cold(p, kind, size, alignment);
}

// `size` is unknown_size for unsized frees, `alignment` 0 for the forms
// without std::align_val_t.
template <alloc_kind Kind>
LEAKGUARD_ALWAYS_INLINE void deallocate(void* p, std::size_t size = unknown_size, std::size_t alignment = 0) noexcept {
  if (LEAKGUARD_UNLIKELY(p == nullptr)) return;
  if ((LEAKGUARD_ASAN || LEAKGUARD_TSAN) && !header_readable(p)) return deallocate_cold(p, Kind, size, alignment);
  block_header* h = header_of(p);
  thread_state& t = tls;
  const std::uint64_t expected =
      make_tag(Kind, alignment > default_alignment ? static_cast<std::uint8_t>(std::countr_zero(alignment))
                                                   : default_alignment_log2, 0);
  if (LEAKGUARD_UNLIKELY(h->tag != expected || (size != unknown_size && size != h->size) ||
                         (t.slow.load(std::memory_order_relaxed) & (slow_unregistered | slow_exited)))) {
    return deallocate_slow(p, Kind, size, alignment, expected);
  }
  count_deallocation(t, h->size);
  mark_freed(p);
  heap_free(reinterpret_cast<char*>(p) - prefix_size(0, effective_alignment(alignment)));
}

}  // namespace leakguard::detail
