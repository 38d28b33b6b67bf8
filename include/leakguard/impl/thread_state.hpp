// leakguard/impl/thread_state.hpp — per-thread state, the thread registry
// and the whole-process counters.
//
// The allocation fast path reads one thread-local word (`slow`) and takes
// the cold path when it is non-zero: nothing is watching an unscoped thread,
// so it pays only for the header and its own counters. The state starts as a
// constant-initialised object with `slow = slow_unregistered`, so the fast
// path never asks "initialised yet?" — the first allocation of a thread takes
// the cold path once and registers it.
#pragma once

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "../detail/runtime_api.hpp"
#include "internal_memory.hpp"
#include "serial.hpp"

namespace leakguard::detail {

// Reasons for the cold path, bits of thread_state::slow.
enum slow_reason : std::uint32_t {
  slow_unregistered = 1,  // first allocation of the thread: register it
  slow_scoped = 2,        // a scope (own or adopted) watches this thread
  slow_no_alloc = 4,      // a no_alloc_scope is active
  slow_all_threads = 8,   // an all_threads scope may be outside this thread's chain (refresh_all_threads)
  slow_exited = 16,       // past thread exit: count into the registry directly
  slow_internal = 32,     // leakguard itself is running: its blocks are not counted
  slow_hooked = 64,       // a test hook (failing_books) is set: take the general path
};

// The calling thread's thread pointer: where its static TLS is anchored, at
// the same offset for every thread (x86-64: below it; AArch64: above).
inline std::uintptr_t thread_pointer() noexcept {
#if defined(__x86_64__)
  std::uintptr_t tp;
  asm("mov %%fs:0, %0" : "=r"(tp));
  return tp;
#elif defined(__aarch64__)
  std::uintptr_t tp;
  asm("mrs %0, tpidr_el0" : "=r"(tp));
  return tp;
#else
  return reinterpret_cast<std::uintptr_t>(__builtin_thread_pointer());
#endif
}

// Frees of tracked blocks a thread can defer while it is inside leakguard
// (see deferred_frees); a free past these takes the normal path.
inline constexpr std::uint32_t max_deferred_frees = 32;

struct stack_stash;

struct thread_state {
  // Written by the owner, and by a thread opening or closing an all_threads
  // scope (under the registry lock); read relaxed on every allocation.
  std::atomic<std::uint32_t> slow{slow_unregistered};
  std::uint32_t internal_depth = 0;  // > 0: leakguard itself is running
  std::uint32_t ignore_depth = 0;    // > 0: inside an ignore_scope
  scope_state* innermost = nullptr;  // the scope chain allocations go to
  std::uint64_t innermost_generation = 0;
  no_alloc_state* no_alloc = nullptr;
  scope_state* spare_scope = nullptr;  // one cached scope_state, see scope_state.hpp
  // Counters, written only by this thread, summed by global_stats().
  std::atomic<std::uint64_t> allocations{0};
  std::atomic<std::uint64_t> deallocations{0};
  std::atomic<std::uint64_t> bytes_allocated{0};
  std::atomic<std::uint64_t> bytes_freed{0};
  std::atomic<std::uint64_t> scope_ends{0};  // the clock of retained growth (retained.hpp)
  std::int64_t unflushed_bytes = 0;  // live-byte change not yet in the registry's peak
  std::int64_t bytes_until_sample = 0;  // sampling countdown, see tracking.hpp
  std::uint64_t fail_countdown = 0;     // > 0: that many watched allocations, then one fails
  std::uint64_t random_state = 0;
  serial_state serials;
  std::uintptr_t thread_pointer = 0;  // for reachability.hpp: its static TLS is a root
  pid_t tid = 0;                      // kernel thread id, for thread_stacks.hpp
  // Adopts active on the thread (written by it; see adopt::adopt), and
  // all_threads scopes it opened that are still open (under registry.lock):
  // see offers_to_all_threads.
  std::atomic<std::uint32_t> adopting{0};
  std::uint32_t opened_all_threads = 0;
  // Tracked blocks freed by a signal handler that interrupted leakguard on
  // this thread: settled once the thread holds no lock (tracking.hpp). Pushed
  // by handlers only, popped by the thread only; atomic for the handlers.
  std::atomic<std::uint32_t> deferred_frees{0};
  void* deferred[max_deferred_frees] = {};
  std::uintptr_t stack_lo = 0, stack_hi = 0;  // the thread's stack; hi 1: unknown (scope_books.hpp)
  stack_stash* stash = nullptr;  // frames of its blocks not yet interned (stack_stash.hpp)
  thread_state* prev = nullptr;      // registry list, under registry.lock
  thread_state* next = nullptr;

  void set(std::uint32_t reason) noexcept { slow.fetch_or(reason, std::memory_order_relaxed); }
  void clear(std::uint32_t reason) noexcept { slow.fetch_and(~reason, std::memory_order_relaxed); }
};

inline constinit thread_local thread_state tls{};

// Test hook (tests/bookkeeping_oom_test.cpp): the kinds of bookkeeping that
// fail on this thread. Its slow bit sends allocations to allocate_cold(),
// so the scoped path never reads the hook. Returns the previous kinds.
inline unsigned set_failing_books(unsigned kinds) noexcept {
  const unsigned previous = failing_books;
  failing_books = kinds;
  if (kinds) tls.set(slow_hooked);
  else tls.clear(slow_hooked);
  return previous;
}

// Marks leakguard's own work on this thread: allocations made meanwhile
// (report strings, a handler's copies, a resource's upstream) are never
// tracked, attributed or counted in global_stats. It sends them down the
// cold path, so it is for rare work only, never around an allocation.
class internal_guard {
 public:
  internal_guard() noexcept : state_(tls) {
    if (state_.internal_depth++ == 0) state_.set(slow_internal);
  }
  ~internal_guard() {
    if (--state_.internal_depth == 0) state_.clear(slow_internal);
  }
  internal_guard(const internal_guard&) = delete;
  internal_guard& operator=(const internal_guard&) = delete;

 private:
  thread_state& state_;
};

struct thread_registry {
  spin_lock lock;
  thread_state* head = nullptr;
  // Counts of threads that have exited, and of allocations made after
  // a thread's exit handler ran.
  std::atomic<std::uint64_t> retired_allocations{0};
  std::atomic<std::uint64_t> retired_deallocations{0};
  std::atomic<std::uint64_t> retired_bytes_allocated{0};
  std::atomic<std::uint64_t> retired_bytes_freed{0};
  std::atomic<std::uint64_t> retired_scope_ends{0};
  // Live bytes as flushed by threads in steps of flush_bytes, and its peak.
  std::atomic<std::int64_t> flushed_live_bytes{0};
  std::atomic<std::int64_t> peak_bytes{0};
  // Active all_threads scopes, newest first (under lock).
  scope_state* all_threads = nullptr;
  std::atomic<std::uint32_t> all_threads_count{0};  // also read without the lock: adopt
  // A scope ended on a thread other than the one that opened it (that
  // thread's innermost scope may be gone, and its chain with it), or a
  // thread exited with an all_threads scope open (a thread born at its
  // address is not its opener). Never cleared.
  bool chain_left_behind = false;
  bool exit_key_made = false;
  pthread_key_t exit_key{};
};

inline constinit thread_registry registry{};

// peak_bytes is exact to within this many bytes per thread: threads publish
// their live-byte change in steps, not on every allocation.
inline constexpr std::int64_t flush_bytes = 64 * 1024;

// Raises the process's peak to `live` if that is higher; returns the peak.
// The peak only ever grows: every figure observed is folded into it.
inline std::int64_t raise_peak(std::int64_t live) noexcept {
  std::int64_t peak = registry.peak_bytes.load(std::memory_order_relaxed);
  while (live > peak && !registry.peak_bytes.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
  }
  return live > peak ? live : peak;
}

// The thread's counters have one writer, the thread, but a signal handler
// that allocates runs on it too, between any two instructions: each update
// is one instruction, so that the handler's count cannot fall between a
// load and a store and be lost.
template <class T>
LEAKGUARD_ALWAYS_INLINE void add_in_one_instruction(T& counter, T by) noexcept {
  static_assert(sizeof(T) == 8);
#if defined(__x86_64__)
  asm volatile("addq %1, %0" : "+m"(counter) : "er"(by));
#else
  __atomic_fetch_add(&counter, by, __ATOMIC_RELAXED);
#endif
}

LEAKGUARD_COLD void flush_live_bytes(thread_state& t) noexcept {
  const std::int64_t change = __atomic_exchange_n(&t.unflushed_bytes, 0, __ATOMIC_RELAXED);
  raise_peak(registry.flushed_live_bytes.fetch_add(change, std::memory_order_relaxed) + change);
}

// Single writer (see add_in_one_instruction): no locked read-modify-write.
inline void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by) noexcept {
  static_assert(sizeof(std::atomic<std::uint64_t>) == sizeof(std::uint64_t));
  add_in_one_instruction(*reinterpret_cast<std::uint64_t*>(&counter), by);
}

LEAKGUARD_ALWAYS_INLINE void count_allocation(thread_state& t, std::size_t size) noexcept {
  bump(t.allocations, 1);
  bump(t.bytes_allocated, size);
  add_in_one_instruction(t.unflushed_bytes, static_cast<std::int64_t>(size));
  if (LEAKGUARD_UNLIKELY(t.unflushed_bytes > flush_bytes)) flush_live_bytes(t);
}

LEAKGUARD_ALWAYS_INLINE void count_deallocation(thread_state& t, std::size_t size) noexcept {
  bump(t.deallocations, 1);
  bump(t.bytes_freed, size);
  add_in_one_instruction(t.unflushed_bytes, -static_cast<std::int64_t>(size));
  if (LEAKGUARD_UNLIKELY(t.unflushed_bytes < -flush_bytes)) flush_live_bytes(t);
}

// Counting from the cold path, which may run after the thread's exit handler.
inline void count_allocation_cold(thread_state& t, std::size_t size) noexcept {
  if (!(t.slow.load(std::memory_order_relaxed) & slow_exited)) return count_allocation(t, size);
  registry.retired_allocations.fetch_add(1, std::memory_order_relaxed);
  registry.retired_bytes_allocated.fetch_add(size, std::memory_order_relaxed);
  registry.flushed_live_bytes.fetch_add(static_cast<std::int64_t>(size), std::memory_order_relaxed);
}

inline void count_deallocation_cold(thread_state& t, std::size_t size) noexcept {
  if (!(t.slow.load(std::memory_order_relaxed) & slow_exited)) return count_deallocation(t, size);
  registry.retired_deallocations.fetch_add(1, std::memory_order_relaxed);
  registry.retired_bytes_freed.fetch_add(size, std::memory_order_relaxed);
  registry.flushed_live_bytes.fetch_sub(static_cast<std::int64_t>(size), std::memory_order_relaxed);
}

void release_spare_scope(thread_state& t) noexcept;  // scope_state.hpp
void release_stash(thread_state& t) noexcept;        // stack_stash.hpp

// REQUIRES: registry.lock. Folds the thread's counters into the registry and
// takes it off the list; its allocations from now on count there directly
// (slow_exited). At thread exit, and in a forked child for the threads that
// did not survive the fork (fork.hpp).
inline void retire_thread(thread_state& t) noexcept {
  registry.retired_allocations.fetch_add(t.allocations.load(std::memory_order_relaxed), std::memory_order_relaxed);
  registry.retired_deallocations.fetch_add(t.deallocations.load(std::memory_order_relaxed), std::memory_order_relaxed);
  registry.retired_bytes_allocated.fetch_add(t.bytes_allocated.load(std::memory_order_relaxed), std::memory_order_relaxed);
  registry.retired_bytes_freed.fetch_add(t.bytes_freed.load(std::memory_order_relaxed), std::memory_order_relaxed);
  registry.retired_scope_ends.fetch_add(t.scope_ends.load(std::memory_order_relaxed), std::memory_order_relaxed);
  flush_live_bytes(t);
  if (t.opened_all_threads) registry.chain_left_behind = true;
  release_stash(t);
  (t.prev ? t.prev->next : registry.head) = t.next;
  if (t.next) t.next->prev = t.prev;
  t.prev = t.next = nullptr;
  t.set(slow_exited);
}

// pthread key destructor: runs at thread exit, after the thread's C++
// thread_local destructors.
inline void on_thread_exit(void* state) noexcept {
  thread_state& t = *static_cast<thread_state*>(state);
  release_spare_scope(t);
  lock_guard g(registry.lock);
  retire_thread(t);
}

LEAKGUARD_COLD void register_thread(thread_state& t) noexcept {
  {
    lock_guard g(registry.lock);
    if (!registry.exit_key_made) {
      registry.exit_key_made = pthread_key_create(&registry.exit_key, on_thread_exit) == 0;
    }
    t.thread_pointer = thread_pointer();
    t.tid = gettid();
    t.next = registry.head;
    if (t.next) t.next->prev = &t;
    registry.head = &t;
    if (registry.all_threads_count) t.set(slow_all_threads);
    t.clear(slow_unregistered);
  }
  // glibc serves the first 32 keys from a static array; later ones calloc,
  // which is fine: it is malloc, not operator new. Without a key, or that
  // memory, the thread would stay listed after its exit: retire it now.
  if (!registry.exit_key_made || pthread_setspecific(registry.exit_key, &t) != 0) on_thread_exit(&t);
}

// Registers the thread of `t` if it is not yet.
inline void ensure_registered(thread_state& t) noexcept {
  if (t.slow.load(std::memory_order_relaxed) & slow_unregistered) register_thread(t);
}

struct process_counts {
  std::uint64_t allocations, deallocations, bytes_allocated, bytes_freed;
};

inline process_counts sum_counts() noexcept {
  // Under the lock, so that a thread exiting meanwhile is counted once.
  lock_guard g(registry.lock);
  process_counts c{registry.retired_allocations.load(std::memory_order_relaxed),
                   registry.retired_deallocations.load(std::memory_order_relaxed),
                   registry.retired_bytes_allocated.load(std::memory_order_relaxed),
                   registry.retired_bytes_freed.load(std::memory_order_relaxed)};
  for (thread_state* t = registry.head; t; t = t->next) {
    c.allocations += t->allocations.load(std::memory_order_relaxed);
    c.deallocations += t->deallocations.load(std::memory_order_relaxed);
    c.bytes_allocated += t->bytes_allocated.load(std::memory_order_relaxed);
    c.bytes_freed += t->bytes_freed.load(std::memory_order_relaxed);
  }
  return c;
}

// Scopes ended in the process so far. REQUIRES: no scope lock held.
inline std::uint64_t total_scope_ends() noexcept {
  lock_guard g(registry.lock);
  std::uint64_t n = registry.retired_scope_ends.load(std::memory_order_relaxed);
  for (thread_state* t = registry.head; t; t = t->next) n += t->scope_ends.load(std::memory_order_relaxed);
  return n;
}

}  // namespace leakguard::detail
