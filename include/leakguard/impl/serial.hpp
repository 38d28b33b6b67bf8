// leakguard/impl/serial.hpp — allocation serial numbers.
//
// A serial is unique in the process and increases on every thread, and an
// allocation that happens after another (on any thread, through any
// synchronisation) gets the larger serial. One shared counter bumped on
// every allocation gives that, but a locked instruction per allocation, and
// with two threads allocating it moves the counter's cache line between
// cores every time: that alone made two threads slower than one (about 80 ns
// per allocation on a 2-vCPU VM).
//
// So a thread takes serials in batches of serial_batch, and hands one out
// only while no thread has taken a batch since its own (a read of the shared
// counter, which stays in cache while nobody takes a batch). If another
// thread has, the batch may be older than that thread's serials: take a new
// one. Order holds: if x happens before y, y's thread sees the counter at
// least at the end of x's batch, so y's serial is above x's.
//
// Threads that allocate at the same moment would take a batch per
// allocation. After serial_racing such refills in a row, each within
// racing_ns of the last, a thread stops checking for serial_batch_run
// batches. Serials stay unique and increasing per thread; only between
// threads that race, allocations less than a batch apart may be numbered out
// of real-time order. Threads that take turns (a mutex, a semaphore) must
// never look like that: a semaphore whose waiter spins hands over in about
// 100 ns on a busy machine, so a round of two turns, each with a tracked
// allocation and its stack, takes well over a microsecond, and a turn
// without a stack still several hundred nanoseconds.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

#include "../config.hpp"

namespace leakguard::detail {

inline constexpr std::uint64_t serial_batch = 1024;
inline constexpr std::uint32_t serial_racing = 64;     // quick forced refills in a row that mean racing
inline constexpr std::int64_t racing_ns = 250;
inline constexpr std::uint32_t serial_batch_run = 64;  // batches taken racing before checking again

inline constinit std::atomic<std::uint64_t> next_serial{1};

// Per thread (thread_state::serials).
struct serial_state {
  std::uint64_t next = 0;  // the batch being handed out: [next, end)
  std::uint64_t end = 0;
  std::int64_t forced_at = 0;      // when the last forced refill happened (ns)
  std::uint32_t forced = 0;        // quick refills in a row because another thread took a batch
  std::uint32_t racing_left = 0;   // > 0: racing, batches left before checking again
};

inline std::int64_t monotonic_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

LEAKGUARD_NOINLINE std::uint64_t take_serial_slow(serial_state& s) noexcept {
  if (s.racing_left != 0) {
    --s.racing_left;
  } else if (s.next != s.end) {  // not used up: another thread took a batch since ours
    const std::int64_t now = monotonic_ns();
    s.forced = now - s.forced_at < racing_ns ? s.forced + 1 : 1;
    s.forced_at = now;
    if (s.forced == serial_racing) {
      s.forced = 0;
      s.racing_left = serial_batch_run;
    }
  } else {
    s.forced = 0;
  }
  s.next = next_serial.fetch_add(serial_batch, std::memory_order_relaxed);
  s.end = s.next + serial_batch;
  return s.next++;
}

inline std::uint64_t take_serial(serial_state& s) noexcept {
  if (LEAKGUARD_LIKELY(s.next != s.end) &&
      (s.racing_left != 0 || next_serial.load(std::memory_order_relaxed) == s.end))
    return s.next++;
  return take_serial_slow(s);
}

}  // namespace leakguard::detail
