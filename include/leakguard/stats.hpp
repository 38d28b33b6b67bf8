// leakguard/stats.hpp — whole-process figures.
#pragma once

#include <cstddef>
#include <cstdint>

#include "config.hpp"

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
// All zero with LEAKGUARD_DISABLE.
LEAKGUARD_API heap_stats global_stats() noexcept;

}  // namespace leakguard
