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
  // The most live bytes seen. Threads publish their byte counts in steps of
  // 64 KiB, so this may miss a peak by up to that much per thread.
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
  s.live_blocks = static_cast<std::size_t>(c.allocations - c.deallocations);
  s.live_bytes = static_cast<std::size_t>(c.bytes_allocated - c.bytes_freed);
  const auto peak = detail::registry.peak_bytes.load(std::memory_order_relaxed);
  s.peak_bytes = peak > 0 && static_cast<std::size_t>(peak) > s.live_bytes ? static_cast<std::size_t>(peak) : s.live_bytes;
  return s;
#else
  return {};
#endif
}

}  // namespace leakguard
