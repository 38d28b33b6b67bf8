// leakguard/impl/verdict_limits.hpp — how much leakguard's verdict thread
// takes at once (verdicts.hpp), apart so that tests can see it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace leakguard::detail {

// At most this many verdicts are given in one batch, and queued: past that,
// the scope's thread waits for room, or gives its verdict itself
// (queue_verdict), so that a flood of leaks slows the threads that leak
// instead of growing leakguard's queue.
inline constexpr std::size_t max_batch = 1024;
inline constexpr std::size_t max_queued = 64 * 1024;

// Verdicts a scope's thread gave itself, the queue being full.
inline constinit std::atomic<std::uint64_t> verdicts_given_in_place{0};

}  // namespace leakguard::detail
