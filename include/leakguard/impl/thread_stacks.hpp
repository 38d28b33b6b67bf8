// leakguard/impl/thread_stacks.hpp — other threads' live stack frames, a
// root of the reachability scan.
//
// A worker blocked in the kernel (waiting for a task, a lock, I/O) holds what
// it is working on in its frames: a thread pool's current task, a promise.
// Its live frames are those from its stack pointer up, and the kernel tells
// that pointer for a thread that is blocked (/proc/self/task/<tid>/syscall,
// readable within the process) without stopping it. A thread that is
// running (or waiting for a processor: on a loaded machine, for a few
// scheduler periods) has no such answer; it is asked again until the
// verdict's wait ends, then passed over: its whole stack would hold the
// stale frames under its stack pointer.
//
// Not read: the scanning thread (the one whose scope is judged: its frames
// hold stale copies of what the scope leaked), a thread inside leakguard
// (its own thread, a thread building a report), and registers.
#pragma once

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "internal_memory.hpp"
#include "memory_reads.hpp"
#include "thread_state.hpp"

// The main thread's stack end, as the program started (glibc's ld.so).
extern "C" __attribute__((weak)) void* __libc_stack_end;

namespace leakguard::detail {

// A thread's live frames, [sp, top), as far as the kernel and its thread
// pointer tell: `top` is a thread's thread pointer (the stack ends below its
// static TLS; on AArch64 below its descriptor, which the range then
// includes) and the main thread's stack end. The scan checks that both lie
// in one mapping before it reads.
struct live_frames {
  std::uintptr_t sp, top;
};

// How long a verdict waits, in all, for other threads to block: a few
// scheduler periods of a loaded machine. Paid only where the other roots
// left a block unreached and a thread keeps running.
inline constexpr std::int64_t blocked_wait_ns = 100'000'000;

// The stack pointer of thread `tid` while it is blocked in the kernel, or 0
// (still running at `deadline`, a monotonic_ns() time; gone; or a kernel
// without the file). Asked at least once.
inline std::uintptr_t blocked_stack_pointer(pid_t tid, std::int64_t deadline = 0) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/syscall", static_cast<int>(tid));
  for (long pause_ns = 100'000;; pause_ns = std::min(2 * pause_ns, 1'000'000L)) {
    char text[256];
    if (!read_proc_file(path, text, sizeof text)) return 0;
    if (std::strncmp(text, "running", 7) == 0) {
      if (monotonic_ns() >= deadline) return 0;
      const timespec pause{0, pause_ns};
      nanosleep(&pause, nullptr);
      continue;
    }
    // "nr arg1 .. arg6 sp pc", or "-1 sp pc" when blocked outside a system
    // call: the stack pointer is the next to last number.
    std::uintptr_t last[2] = {0, 0};
    int count = 0;
    for (char* p = text; *p;) {
      char* end;
      const std::uintptr_t v = std::strtoull(p, &end, 0);
      if (end == p) break;
      last[0] = last[1];
      last[1] = v;
      ++count;
      p = end;
    }
    return count >= 3 ? last[0] : 0;
  }
}

// The live frames of every registered thread that is blocked now, but the
// calling thread and threads inside leakguard.
inline internal_vector<live_frames> blocked_threads_frames() {
  struct candidate {
    pid_t tid;
    std::uintptr_t thread_pointer;
  };
  internal_vector<candidate> threads;
  {
    lock_guard g(registry.lock);
    for (thread_state* t = registry.head; t; t = t->next) {
      const bool inside = t->slow.load(std::memory_order_relaxed) & slow_internal;
      if (t->tid && !inside) threads.push_back({t->tid, t->thread_pointer});
    }
  }
  const pid_t self = gettid(), process = getpid();
  const std::int64_t deadline = monotonic_ns() + blocked_wait_ns;
  internal_vector<live_frames> out;
  for (const candidate& c : threads) {
    if (c.tid == self) continue;
    const std::uintptr_t sp = blocked_stack_pointer(c.tid, deadline);
    if (sp == 0) continue;
    const std::uintptr_t top =
        c.tid == process ? reinterpret_cast<std::uintptr_t>(&__libc_stack_end ? __libc_stack_end : nullptr)
                         : c.thread_pointer;
    if (top > sp) out.push_back({sp, top});
  }
  return out;
}

}  // namespace leakguard::detail
