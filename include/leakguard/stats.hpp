// leakguard/stats.hpp — whole-process figures.
#pragma once

#include <cstddef>
#include <cstdint>

#include "config.hpp"

#if LEAKGUARD_ENABLED
#include "detail/thread_state.hpp"
#endif

namespace leakguard {

// Blocks that went through leakguard: every `new` with
// <leakguard/global_new.hpp> in the program, and leakguard's allocators.
struct heap_stats {
  std::size_t live_blocks = 0;
  std::size_t live_bytes = 0;
  // The highest live_bytes figure the process has had, as leakguard saw it:
  // exact at each global_stats() call (the figure it returns is folded in)
  // and whenever a thread's live bytes have moved by 64 KiB since it last
  // published them; a short-lived peak between those moments may be missed
  // by up to 64 KiB per thread. It never decreases, and is never below
  // live_bytes.
  std::size_t peak_bytes = 0;
  std::uint64_t allocations = 0;
  std::uint64_t deallocations = 0;
};

// Sums per-thread counters: nothing shared is written on the allocation
// fast path. Takes the thread registry's lock; cheap, but not for a hot loop.
inline heap_stats global_stats() noexcept {
#if LEAKGUARD_ENABLED
  const detail::process_counts c = detail::sum_counts();
  heap_stats s;
  s.allocations = c.allocations;
  s.deallocations = c.deallocations;
  // Threads' counters are read one after another: a block allocated on one
  // thread after its counters were read and freed on another before its
  // were can make the sum dip below zero for a moment. Never wrap.
  const auto blocks = static_cast<std::int64_t>(c.allocations - c.deallocations);
  const auto bytes = static_cast<std::int64_t>(c.bytes_allocated - c.bytes_freed);
  s.live_blocks = static_cast<std::size_t>(blocks > 0 ? blocks : 0);
  s.live_bytes = static_cast<std::size_t>(bytes > 0 ? bytes : 0);
  s.peak_bytes = static_cast<std::size_t>(detail::raise_peak(static_cast<std::int64_t>(s.live_bytes)));
  return s;
#else
  return {};
#endif
}

}  // namespace leakguard
