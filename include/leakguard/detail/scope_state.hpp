// leakguard/detail/scope_state.hpp — the books of one scope.
//
// Ownership: a tracked block is owned by one scope (record->owner), linked
// into that scope's `live` list; the scopes enclosing the owner count it in
// their statistics but do not list it. When a scope ends, its surviving
// blocks move to its parent (which then reports them too) or, without a
// parent, are owned by no one. A block attributed to an all_threads scope
// opened on another thread is also linked into that scope's `foreign` list.
//
// Locking: each scope_state has a spin lock that guards its lists, its
// statistics and its `active` flag. Lock order is child before parent; the
// registry lock (thread_state.hpp) comes before any scope lock.
//
// Lifetime: scope_states are never freed, only recycled (type-stable
// memory), and `generation` changes each time one ends. A free on another
// thread can therefore lock `record->owner` even if that scope just ended,
// and then check that the record still belongs to it; contexts and children
// hold (scope, generation) pairs and check that the scope is still current.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <new>

#include "block.hpp"
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
  std::uint64_t generation = 1;
  scope_state* parent = nullptr;
  std::uint64_t parent_generation = 0;
  scope_state* next_all_threads = nullptr;  // registry.all_threads list
  scope_state* next_free = nullptr;         // the pool
  block_record live;                        // list sentinels
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
  budget_violation violation;

  scope_state() noexcept { clear_lists(); }

  void clear_lists() noexcept {
    live.prev = live.next = &live;
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
      if (violation.count++ == 0) violation = {1, !over_count, size, r.serial, r.stack};
    }
  }

  // REQUIRES: lock held. `freed` is false when the block is only dropped
  // from the books (leakguard::ignore).
  void on_release(std::size_t size, bool freed) noexcept {
    deallocations += freed;
    --live_blocks;
    live_bytes -= size;
  }

  bool is_current(std::uint64_t gen) const noexcept { return active && generation == gen; }
};

// Locks `s` and returns true if it is still the scope of generation `gen`.
inline bool lock_if_current(scope_state* s, std::uint64_t gen) noexcept {
  if (!s) return false;
  s->lock.lock();
  if (s->is_current(gen)) return true;
  s->lock.unlock();
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
};
inline constinit scope_pool pool{};

// A fresh scope_state: the thread's spare, a pooled one, or a new one.
inline scope_state* acquire_scope_state() noexcept {
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
  void* raw = std::aligned_alloc(alignof(scope_state), sizeof(scope_state));
  return raw ? ::new (raw) scope_state() : nullptr;
}

inline void release_scope_state(scope_state* s) noexcept {
  thread_state& t = tls;
  if (!t.spare_scope && !(t.slow.load(std::memory_order_relaxed) & slow_exited)) {
    t.spare_scope = s;
    return;
  }
  lock_guard g(pool.lock);
  s->next_free = pool.free;
  pool.free = s;
}

inline void release_spare_scope(thread_state& t) noexcept {
  if (scope_state* s = t.spare_scope) {
    t.spare_scope = nullptr;
    lock_guard g(pool.lock);
    s->next_free = pool.free;
    pool.free = s;
  }
}

}  // namespace leakguard::detail
