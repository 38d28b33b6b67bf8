// leakguard/impl/scope_state.hpp — the books of one scope.
//
// Ownership: a tracked block is owned by one scope (record->owner), linked
// into that scope's `live` list; the scopes enclosing the owner count it in
// their statistics but do not list it. When a scope ends with survivors, its
// books stay open (inactive: nothing new is attributed, frees still settle)
// until its verdict, at once or after a grace period. Then the blocks it
// judged retained move to its parent's `live` list (judged again there),
// those it judged leaked to the parent's `judged` list (counted, settled by
// frees, never reported again); without a current parent, to no one. A
// block attributed to an all_threads scope opened on another thread is also
// linked into that scope's `foreign` list.
//
// Locking: each scope_state has a spin lock that guards its lists, its
// statistics and its `active` flag. Lock order is child before parent (see
// lock_parent_if_current for stale parent links); the
// registry lock (thread_state.hpp) comes before any scope lock.
//
// Lifetime: scope_states are never freed, only recycled (type-stable
// memory), and `generation` changes each time one ends. A free on another
// thread can therefore lock `record->owner` even if that scope just ended,
// and then check that the record still belongs to it; contexts and children
// hold (scope, generation) pairs and check that the scope is still current.
#pragma once

#include <atomic>
#include <cstdint>
#include <source_location>
#include <cstdlib>
#include <new>

#include "block.hpp"
#include "stack_stash.hpp"
#include "thread_state.hpp"

namespace leakguard::detail {

// The first budget violation of a scope, and how many there were.
struct budget_violation {
  std::uint64_t count = 0;
  bool bytes = false;  // byte budget, else allocation budget
  std::size_t size = 0;
  std::uint64_t serial = 0;
  const stack_trace* stack = nullptr;
};

// Cache-line aligned: two threads each in its own scope must not share one.
struct alignas(64) scope_state {
  spin_lock lock;
  bool active = false;
  bool all_threads = false;
  bool waiting = false;  // ended, its survivors waiting out a grace period
  // Waiting scopes whose parent link names this one (written under its lock):
  // when it ends they are handed to its parent (scope_books.hpp, bypass).
  std::atomic<std::uint32_t> waiting_children{0};
  bool retained_books = false;  // the owner of the retained books (retained.hpp), for the free path
  std::uint64_t generation = 1;
  scope_state* parent = nullptr;
  std::uint64_t parent_generation = 0;
  scope_state* next_all_threads = nullptr;  // registry.all_threads list
  scope_state* next_free = nullptr;         // the pool
  scope_state* next_made = nullptr;         // pool.all: every scope_state (fork, check)
  thread_state* opener = nullptr;           // the thread that opened it
  std::uintptr_t object = 0;                // the leakguard::scope's address (0: none), see close_abandoned()
  std::source_location where{};             // where it was opened, for the abandonment line
  // Where the user opened a scope that the standard library constructed
  // (optional::emplace, make_unique): `where` names the library's line.
  const stack_trace* opened_from = nullptr;
  block_record live;                        // list sentinels
  block_record judged;                      // leaked blocks a nested scope reported
  foreign_link foreign;
  std::size_t max_allocations = 0;
  std::size_t max_bytes = 0;
  // Statistics, for blocks attributed to this scope or one it encloses.
  std::uint64_t allocations = 0;
  std::uint64_t deallocations = 0;
  std::size_t bytes_allocated = 0;  // in total, for max_bytes
  std::size_t live_blocks = 0;
  std::size_t live_bytes = 0;
  std::size_t peak_bytes = 0;
  std::size_t escaped_blocks = 0;  // see scope_stats
  std::size_t escaped_bytes = 0;
  std::size_t escaped_freed_blocks = 0;
  std::size_t escaped_freed_bytes = 0;
  budget_violation violation;

  scope_state() noexcept { clear_lists(); }

  void clear_lists() noexcept {
    live.prev = live.next = &live;
    judged.prev = judged.next = &judged;
    foreign.prev = foreign.next = &foreign;
  }

  // REQUIRES: lock held, and the scope current.
  void on_allocation(std::size_t size, const block_record& r) noexcept {
    ++allocations;
    bytes_allocated += size;
    ++live_blocks;
    live_bytes += size;
    if (live_bytes > peak_bytes) peak_bytes = live_bytes;
    const bool over_count = allocations > max_allocations;
    if (over_count || bytes_allocated > max_bytes) {
      if (violation.count++ == 0) violation = {1, !over_count, size, r.serial, stack_of(&r)};
    }
  }

  // REQUIRES: lock held. A block of these books changed size (realloc): it
  // stays one block; growth counts against the byte budget.
  void on_resize(std::size_t old_size, std::size_t new_size, const block_record& r) noexcept {
    live_bytes += new_size - old_size;
    if (new_size <= old_size) return;
    bytes_allocated += new_size - old_size;
    if (live_bytes > peak_bytes) peak_bytes = live_bytes;
    if (bytes_allocated > max_bytes && violation.count++ == 0) violation = {1, true, new_size, r.serial, stack_of(&r)};
  }

  // REQUIRES: lock held. `freed` is false when the block is only dropped
  // from the books (leakguard::ignore); `late` when it had outlived the end
  // of its scope and was waiting out a grace period.
  void on_release(std::size_t size, bool freed, bool late) noexcept {
    deallocations += freed;
    --live_blocks;
    live_bytes -= size;
    if (late && freed) {
      ++escaped_freed_blocks;
      escaped_freed_bytes += size;
    }
  }

  bool is_current(std::uint64_t gen) const noexcept { return active && generation == gen; }
};

// A scope's link to its parent changes after the scope opens only when an
// enclosing scope ends out of order (bypass(), scope_books.hpp). Threads
// under an adopt may walk the chain meanwhile, so the walks read the link
// atomically; a pair read half old, half new fails lock_if_current (the walk
// stops a step early) or names the scope that is ending.
inline scope_state* parent_of(scope_state* s) noexcept {
  return std::atomic_ref<scope_state*>(s->parent).load(std::memory_order_relaxed);
}
inline std::uint64_t parent_generation_of(scope_state* s) noexcept {
  return std::atomic_ref<std::uint64_t>(s->parent_generation).load(std::memory_order_relaxed);
}
inline void set_parent(scope_state* s, scope_state* parent, std::uint64_t generation) noexcept {
  std::atomic_ref<scope_state*>(s->parent).store(parent, std::memory_order_relaxed);
  std::atomic_ref<std::uint64_t>(s->parent_generation).store(generation, std::memory_order_relaxed);
}

// Locks `s` and returns true if it is still the scope of generation `gen`.
inline bool lock_if_current(scope_state* s, std::uint64_t gen) noexcept {
  if (!s) return false;
  s->lock.lock();
  if (s->is_current(gen)) return true;
  s->lock.unlock();
  return false;
}

inline std::uint64_t generation_of(scope_state* s) noexcept {
  return std::atomic_ref<std::uint64_t>(s->generation).load(std::memory_order_relaxed);
}

// Locks `parent`, whose child's lock the caller holds, if it is still the
// scope of generation `gen`. A stale link (a child under adopt that outlived
// its parent, or one a dismiss() re-linked meanwhile) may name a recycled
// scope_state that is now nested in the caller's own scope, and whose holder
// may be waiting for the caller's lock: so the caller waits only while the
// generation is `gen`, that is for a true ancestor. Those were opened before
// their descendants, so waits follow opening order and cannot form a cycle.
inline bool lock_parent_if_current(scope_state* parent, std::uint64_t gen) noexcept {
  if (!parent || !parent->lock.lock_unless([&] { return generation_of(parent) != gen; })) return false;
  if (parent->is_current(gen)) return true;
  parent->lock.unlock();
  return false;
}

// Intrusive circular lists with a sentinel head (records, links).
template <class Node>
inline void link(Node& head, Node* n) noexcept {
  n->prev = head.prev;
  n->next = &head;
  head.prev->next = n;
  head.prev = n;
}
template <class Node>
inline void unlink(Node* n) noexcept {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = n;
}

struct scope_pool {
  spin_lock lock;
  scope_state* free = nullptr;
  scope_state* all = nullptr;  // every scope_state ever made: fork.hpp locks them all
};
inline constinit scope_pool pool{};

// REQUIRES: pool.lock.
inline void pool_push(scope_state* s) noexcept {
  s->next_free = pool.free;
  pool.free = s;
}

// A fresh scope_state: the thread's spare, a pooled one, or a new one.
inline scope_state* acquire_scope_state() noexcept {
  if (out_of_books(book_scope)) return nullptr;  // test hook
  thread_state& t = tls;
  scope_state* s = t.spare_scope;
  if (s) {
    t.spare_scope = nullptr;
    return s;
  }
  {
    lock_guard g(pool.lock);
    if ((s = pool.free)) pool.free = s->next_free;
  }
  if (s) return s;
  void* raw = heap_memalign(alignof(scope_state), sizeof(scope_state));
  if (!raw) return nullptr;
  s = ::new (raw) scope_state();
  lock_guard g(pool.lock);
  s->next_made = pool.all;
  pool.all = s;
  return s;
}

inline void release_scope_state(scope_state* s) noexcept {
  thread_state& t = tls;
  if (!t.spare_scope && !(t.slow.load(std::memory_order_relaxed) & slow_exited)) {
    t.spare_scope = s;
    return;
  }
  lock_guard g(pool.lock);
  pool_push(s);
}

inline void release_spare_scope(thread_state& t) noexcept {
  if (scope_state* s = t.spare_scope) {
    t.spare_scope = nullptr;
    lock_guard g(pool.lock);
    pool_push(s);
  }
}

// ---- ending a scope's books (scope_books.hpp, and fork.hpp in a child) ----------

// REQUIRES: registry.lock. Whether `t`'s allocations must also be offered
// to the all_threads scopes (attribute_to_all_threads), which costs each of
// them a lock and a larger record. A thread's own all_threads scopes are in
// its chain, which books its blocks to them already, unless it adopts
// another context or its chain may be gone.
inline bool offers_to_all_threads(const thread_state& t) noexcept {
  if (!registry.all_threads) return false;
  if (t.adopting.load() || registry.chain_left_behind) return true;
  for (const scope_state* a = registry.all_threads; a; a = a->next_all_threads)
    if (a->opener != &t) return true;
  return false;
}

// REQUIRES: registry.lock. Sets `t`'s slow_all_threads bit, after what
// offers_to_all_threads reads changed; a bit already right is not written
// (the thread reads that word on every allocation).
inline void refresh_all_threads(thread_state& t) noexcept {
  const bool offers = offers_to_all_threads(t);
  if (offers == ((t.slow.load(std::memory_order_relaxed) & slow_all_threads) != 0)) return;
  if (offers) t.set(slow_all_threads);
  else t.clear(slow_all_threads);
}

// After `t.adopting` changed (adopt): with no lock while no all_threads
// scope is open, as a pool's tasks adopt often. An all_threads scope opened
// meanwhile counts itself before it reads `adopting` (both in one total
// order), so one of the two sets the bit.
inline void adopting_changed(thread_state& t) noexcept {
  if (registry.all_threads_count.load() == 0) return;
  lock_guard g(registry.lock);
  refresh_all_threads(t);
}

// REQUIRES: registry.lock. The same for every thread, after the
// all_threads list changed.
inline void refresh_all_threads() noexcept {
  for (thread_state* t = registry.head; t; t = t->next) refresh_all_threads(*t);
}

// REQUIRES: registry.lock. Takes `s` off the all_threads list, if it is on it.
inline void unlist_all_threads(scope_state* s) noexcept {
  for (scope_state** link = &registry.all_threads; *link; link = &(*link)->next_all_threads) {
    if (*link != s) continue;
    *link = s->next_all_threads;
    s->next_all_threads = nullptr;
    --registry.all_threads_count;
    refresh_all_threads();
    return;
  }
}

// REQUIRES: the locks of the scopes owning `from` and `to`. Moves every
// record of list `from` to the end of list `to` (owned by `owner`), or, with
// no `to`, to no one.
inline void hand_over(block_record& from, block_record* to, scope_state* owner) noexcept {
  if (to) {
    // A free racing with us reads owner == `owner` and waits on its lock,
    // which our caller holds until the splice is done.
    for (block_record* r = from.next; r != &from; r = r->next) r->owner.store(owner, std::memory_order_release);
    if (from.next != &from) {
      block_record* first = from.next;
      block_record* last = from.prev;
      first->prev = to->prev;
      to->prev->next = first;
      last->next = to;
      to->prev = last;
    }
  } else {
    // A free racing with us that reads owner == null frees the block at
    // once: clearing the owner must be the last write to each record.
    for (block_record* r = from.next; r != &from;) {
      block_record* next = r->next;
      r->prev = r->next = r;
      r->owner.store(nullptr, std::memory_order_release);
      r = next;
    }
  }
  from.prev = from.next = &from;
}

// REQUIRES: s->lock, and parent->lock when `parent` (the scope's parent, if
// still current). Hands the scope's blocks to `parent` (or to no one): its
// `live` ones to be judged again, its `judged` ones to stay judged. Drops
// its foreign blocks and retires this generation; `active` is already false.
inline void close_books(scope_state* s, scope_state* parent) noexcept {
  hand_over(s->live, parent ? &parent->live : nullptr, parent);
  hand_over(s->judged, parent ? &parent->judged : nullptr, parent);
  for (foreign_link* f = s->foreign.next; f != &s->foreign;) {
    foreign_link* next = f->next;
    f->prev = f->next = f;
    f->scope.store(nullptr, std::memory_order_release);  // the last write, as above
    f = next;
  }
  s->clear_lists();
  std::atomic_ref<std::uint64_t>(s->generation).store(s->generation + 1, std::memory_order_relaxed);
}

}  // namespace leakguard::detail
