// leakguard/detail/internal_memory.hpp — memory and locks for leakguard's own
// bookkeeping. Nothing here goes through operator new: the library must never
// allocate through what it instruments.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>

#include "../config.hpp"

namespace leakguard::detail {

// A std-conforming allocator over malloc/free for internal containers.
template <class T>
struct internal_allocator {
  using value_type = T;
  internal_allocator() noexcept = default;
  template <class U>
  internal_allocator(const internal_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    if (void* p = std::malloc(n * sizeof(T))) return static_cast<T*>(p);
    throw std::bad_alloc();
  }
  void deallocate(T* p, std::size_t) noexcept { std::free(p); }
  template <class U>
  bool operator==(const internal_allocator<U>&) const noexcept { return true; }
};

// Critical sections here are a handful of pointer writes, so a spin lock
// beats a mutex (Debian's absl::Mutex runs deadlock detection: ~36 ns).
// It yields after a short spin so that a preempted holder can finish.
class spin_lock {
 public:
  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      for (int spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause();
#endif
        } else {
          sched_yield();
        }
      }
    }
  }
  bool try_lock() noexcept {  // for fork's prepare handler (fork.hpp)
    return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
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
