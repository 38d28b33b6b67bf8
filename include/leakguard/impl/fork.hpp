// leakguard/impl/fork.hpp — fork() while other threads are inside leakguard.
//
// The child of fork() has a copy of the memory but only the forking thread:
// a lock another thread held at that moment would stay held in the child
// forever, over books it left half-updated. So pthread_atfork handlers take
// every leakguard lock before the fork, which leaves the books consistent,
// and release them after it. In the child they first retire what the
// vanished threads left behind: their registry entries (counters folded in,
// as at thread exit; glibc reuses their TLS for the child's new threads)
// and the scopes they had open (ended as by dismiss(): no report).
//
// Lock order: the library locks, each of which may be held while allocating
// (options, suppressions, handler slots, ledger, symbolizer); the registry,
// which may be held while taking a scope lock; the leaf locks (scope_state
// pool, origins, locations, memory_resource stripes); then every scope lock;
// last the stack depot's, which a verdict takes under a scope lock to intern
// its blocks' stacks (stack_stash.hpp). Scope locks go child before parent
// and that relation changes as scopes are recycled, so no fixed order exists
// among them: they are taken as std::lock does (block on one, try the rest,
// on failure release them and block on the one that was busy). A thread
// holding a scope lock waits only for other scope locks and the depot's,
// whose holder waits for nothing, so this always ends.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cstdint>
#include <utility>

#include "code_map.hpp"
#include "handler.hpp"
#include "interned.hpp"
#include "options.hpp"
#include "suppressions.hpp"
#include "leak_ledger.hpp"
#include "origins.hpp"
#include "reachability.hpp"
#include "scope_state.hpp"
#include "stack_stash.hpp"
#include "stacks.hpp"
#include "symbolize.hpp"
#include "thread_state.hpp"

namespace leakguard::detail {

// memory_resource lists its live blocks under one of these, chosen by its
// address: a fixed set of locks that fork can take without a list of the
// resources alive (which would have to live in user objects, some of them on
// the stacks of threads that vanish in a child).
struct alignas(64) padded_lock {
  spin_lock lock;
};
inline constexpr std::size_t resource_lock_count = 16;
inline constinit padded_lock resource_locks[resource_lock_count]{};

inline spin_lock& resource_lock(const void* resource) noexcept {
  return resource_locks[(reinterpret_cast<std::uintptr_t>(resource) >> 6) % resource_lock_count].lock;
}

// Every lock but the scopes' and the depot's, in the order fork takes them.
template <class F>
void each_global_lock(F&& f) {
  f(options_storage().lock);
  f(suppressions_storage().lock);
  f(leak_handler_slot().lock());
  f(misuse_handler_slot().lock());
  f(ledger().lock());
  f(the_symbolizer().lock);
  f(loader_lock());
  f(registry.lock);
  f(pool.lock);
  f(origins.lock());
  f(locations.lock());
  for (padded_lock& l : resource_locks) f(l.lock);
}

// REQUIRES: pool.lock (pool.all does not change).
inline void lock_all_scopes() noexcept {
  scope_state* first = pool.all;
  if (!first) return;
  for (;;) {
    first->lock.lock();
    scope_state* busy = nullptr;
    for (scope_state* s = pool.all; s && !busy; s = s->next_made)
      if (s != first && !s->lock.try_lock()) busy = s;
    if (!busy) return;
    for (scope_state* s = pool.all; s != busy; s = s->next_made)
      if (s != first) s->lock.unlock();
    first->lock.unlock();
    first = busy;
    sched_yield();
  }
}

inline void unlock_all() noexcept {
  depot.arena_lock().unlock();
  for (scope_state* s = pool.all; s; s = s->next_made) s->lock.unlock();
  each_global_lock([](auto& l) { l.unlock(); });
  thread_state& t = tls;
  if (--t.internal_depth == 0) t.clear(slow_internal);
}

inline void before_fork() noexcept {
  thread_state& t = tls;
  // Once the locks are held, this thread must not need them: registered, and
  // its allocations (other prepare handlers', first-use statics) leakguard's own.
  ensure_registered(t);
  if (t.internal_depth++ == 0) t.set(slow_internal);
  each_global_lock([](auto&) {});  // first-use statics built before any lock is held
  each_global_lock([](auto& l) { l.lock(); });
  lock_all_scopes();
  depot.arena_lock().lock();
}

inline void after_fork_in_parent() noexcept { unlock_all(); }

// How many current ancestors a scope has (a current parent is older than its
// child: no cycles).
inline int scope_depth(const scope_state* s) noexcept {
  int depth = 0;
  for (; s->parent && s->parent->is_current(s->parent_generation); s = s->parent) ++depth;
  return depth;
}

// In the child, with every lock held: only this thread survived the fork.
inline void retire_vanished_threads() noexcept {
  thread_state* self = &tls;
  if (self->tid) self->tid = gettid();  // the child's own
  for (thread_state* t = registry.head; t;) {
    thread_state* next = t->next;
    if (t != self) {
      if (t->spare_scope) pool_push(std::exchange(t->spare_scope, nullptr));
      retire_thread(*t);
    }
    t = next;
  }
  unclaim_stashes();
  // Their open scopes end as by dismiss(), deepest first, so that blocks
  // move up through vanished scopes to one that survives, if any.
  auto vanished = [self](const scope_state* s) { return s->active && s->opener != self; };
  int deepest = -1;
  for (scope_state* s = pool.all; s; s = s->next_made)
    if (vanished(s) && scope_depth(s) > deepest) deepest = scope_depth(s);
  for (int depth = deepest; depth >= 0; --depth) {
    for (scope_state* s = pool.all; s; s = s->next_made) {
      if (!vanished(s) || scope_depth(s) != depth) continue;
      s->active = false;
      if (s->all_threads) unlist_all_threads(s);
      close_books(s, s->parent && s->parent->is_current(s->parent_generation) ? s->parent : nullptr);
      pool_push(s);
    }
  }
}

inline void after_fork_in_child() noexcept {
  retire_vanished_threads();
  unlock_all();
  code.busy.store(false, std::memory_order_relaxed);  // a thread mapping code did not survive
}

// Registered during static initialisation, before the program's threads
// exist and before most libraries' handlers: prepare handlers run in reverse
// order of registration, so ours runs after the others have done their work
// (and allocated), and in the child ours runs first.
inline const bool fork_handlers_installed =
    pthread_atfork(&before_fork, &after_fork_in_parent, &after_fork_in_child) == 0;

}  // namespace leakguard::detail
