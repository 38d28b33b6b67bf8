// leakguard/impl/internal_memory.hpp — memory and locks for leakguard's own
// bookkeeping. Nothing here goes through operator new: the library must never
// allocate through what it instruments.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "heap.hpp"

namespace leakguard::detail {

// ---- when leakguard's own books cannot get memory ------------------------------
// A user's allocation never fails for lack of memory for leakguard's books:
// it goes on unrecorded (or recorded without its stack), and what was lost
// is counted here until the next report says so (report::unrecorded()).
struct lost_books {
  std::atomic<std::uint64_t> allocations{0};  // no record: their leaks cannot be reported
  std::atomic<std::uint64_t> stacks{0};       // recorded without their stack
  std::atomic<std::uint64_t> origins{0};      // recorded without their allocator's name
  std::atomic<std::uint64_t> scopes{0};       // scopes that could not be opened
  std::atomic<std::uint64_t> reports{0};      // reports that could not be built or tallied
};
inline constinit lost_books lost{};

inline void count_lost(std::atomic<std::uint64_t>& what) noexcept { what.fetch_add(1, std::memory_order_relaxed); }

// Test hook: on this thread, bookkeeping of these kinds fails as if malloc
// returned null.
enum book_kind : unsigned {
  book_record = 1,    // a block's record (and foreign link)
  book_stack = 2,     // a new stack in the depot
  book_origin = 4,    // an allocator's interned name
  book_scope = 8,     // a scope_state
  book_snapshot = 16, // a scope's snapshot (internal_allocator)
  book_report = 32,   // leakguard's own operator new: reports, the ledger, handlers
};
inline constinit thread_local unsigned failing_books = 0;
inline bool out_of_books(unsigned kinds) noexcept { return (failing_books & kinds) != 0; }

// A std-conforming allocator over the heap below (heap.hpp) for internal
// containers.
template <class T>
struct internal_allocator {
  using value_type = T;
  internal_allocator() noexcept = default;
  template <class U>
  internal_allocator(const internal_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    if (out_of_books(book_snapshot)) throw std::bad_alloc();
    if (void* p = heap_malloc(n * sizeof(T))) return static_cast<T*>(p);
    throw std::bad_alloc();
  }
  // `p` may be null although std::vector checks it: GCC turns the fill of an
  // empty vector into memset(nullptr, 0, 0), infers the storage is not null
  // and drops that check. heap_free() must stay free()'s contract.
  void deallocate(T* p, std::size_t) noexcept { heap_free(p); }
  template <class U>
  bool operator==(const internal_allocator<U>&) const noexcept { return true; }
};

template <class T>
using internal_vector = std::vector<T, internal_allocator<T>>;

// Scratch bytes from the heap below, not zeroed (a vector<char> would fill
// them on every use).
class internal_buffer {
 public:
  explicit internal_buffer(std::size_t n) : bytes_(internal_allocator<char>().allocate(n)) {}
  internal_buffer(const internal_buffer&) = delete;
  internal_buffer& operator=(const internal_buffer&) = delete;
  ~internal_buffer() { heap_free(bytes_); }
  char* data() const noexcept { return bytes_; }

 private:
  char* bytes_;
};

// How many of leakguard's locks the calling thread holds or is waiting for.
// An allocation or free that finds it non-zero has interrupted leakguard on
// this thread (a signal handler): it must not wait for a lock (tracking.hpp).
// Raised before a lock is taken and lowered after it is released, so that a
// handler never sees zero while the thread holds one.
inline constinit thread_local std::uint32_t locks_held = 0;

inline void hold_lock() noexcept {
  ++locks_held;
  std::atomic_signal_fence(std::memory_order_seq_cst);
}
inline void drop_lock() noexcept {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  --locks_held;
}

// One step of a spin-wait.
inline void cpu_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Critical sections here are a handful of pointer writes, so a spin lock
// beats a mutex (Debian's absl::Mutex runs deadlock detection: ~36 ns).
// It yields after a short spin so that a preempted holder can finish.
class spin_lock {
 public:
  LEAKGUARD_ALWAYS_INLINE void lock() noexcept {
    hold_lock();
    if (LEAKGUARD_LIKELY(!locked_.exchange(true, std::memory_order_acquire))) return;
    lock_contended();
  }
  bool try_lock() noexcept {  // for fork's prepare handler (fork.hpp)
    hold_lock();
    if (!locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire)) return true;
    drop_lock();
    return false;
  }
  // Locks, unless `give_up()` turns true while the lock is held elsewhere.
  template <class GiveUp>
  bool lock_unless(GiveUp give_up) noexcept {
    hold_lock();
    for (int spins = 0; locked_.exchange(true, std::memory_order_acquire); ++spins) {
      if (give_up()) {
        drop_lock();
        return false;
      }
      backoff(spins);
    }
    return true;
  }
  void unlock() noexcept {
    locked_.store(false, std::memory_order_release);
    drop_lock();
  }

 private:
  static void backoff(int spins) noexcept {
    if (spins < 64) {
      cpu_pause();
    } else {
      sched_yield();
    }
  }
  LEAKGUARD_NOINLINE void lock_contended() noexcept {
    do {
      for (int spins = 0; locked_.load(std::memory_order_relaxed); ++spins) backoff(spins);
    } while (locked_.exchange(true, std::memory_order_acquire));
  }

  std::atomic<bool> locked_{false};
};

class lock_guard {
 public:
  explicit lock_guard(spin_lock& l) noexcept : lock_(l) { lock_.lock(); }
  ~lock_guard() { lock_.unlock(); }
  lock_guard(const lock_guard&) = delete;
  lock_guard& operator=(const lock_guard&) = delete;

 private:
  spin_lock& lock_;
};

// Held around dl_iterate_phdr, which takes the loader's lock: fork's
// prepare handler takes this one, so that no thread is inside the loader's
// lock when the child is made (fork.hpp).
inline spin_lock& loader_lock() {
  static constinit spin_lock lock;
  return lock;
}

// Storage for a global that must outlive every static destructor: reports
// can be made from static destructors and at thread exit, so the objects
// they need are built on first use and never destroyed.
template <class T>
class no_destroy {
 public:
  template <class... Args>
  explicit no_destroy(Args&&... args) {
    ::new (static_cast<void*>(storage_)) T(std::forward<Args>(args)...);
  }
  T& get() noexcept { return *std::launder(reinterpret_cast<T*>(storage_)); }

 private:
  alignas(T) unsigned char storage_[sizeof(T)];
};

}  // namespace leakguard::detail
