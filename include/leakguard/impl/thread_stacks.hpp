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
// A thread that never allocated through leakguard is read too: a pool's
// worker that has only waited so far holds its own start state (the
// std::thread's callable) in its frames. Its thread pointer, where its
// frames end, is found above them, in glibc's thread descriptor (x86-64
// only).
//
// Not read: the scanning thread (the one whose scope is judged: its frames
// hold stale copies of what the scope leaked), a thread inside leakguard
// (its own thread, a thread building a report), and registers.
#pragma once

#include <fcntl.h>
#include <sys/syscall.h>
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
// includes) and the main thread's stack end; 0 for a thread leakguard never
// saw (unseen_thread_pointer). The scan checks that both lie in one mapping
// before it reads.
struct live_frames {
  std::uintptr_t sp, top;
};

// The thread pointer of a thread leakguard never saw, whose stack pointer
// `sp` lies in readable-writable memory up to `end`; 0 if it is not found.
// glibc puts a thread's descriptor above its stack and static TLS, and on
// x86-64 the thread pointer is the descriptor's address, which its first
// and third words hold (tcbhead_t's tcb and self): the first such words
// above `sp`. A stack of the program's own making (a fiber's, in the heap)
// has none within a stack's reach.
inline std::uintptr_t unseen_thread_pointer(std::uintptr_t sp, std::uintptr_t end) noexcept {
#if defined(__x86_64__)
  constexpr std::uintptr_t reach = std::uintptr_t{16} << 20;
  constexpr std::size_t chunk = 1024;  // words read at a time, and two more
  std::uintptr_t words[chunk + 2];
  end = std::min(end, sp + reach);
  for (std::uintptr_t from = sp & ~std::uintptr_t{7}; from + 3 * sizeof(std::uintptr_t) <= end;
       from += chunk * sizeof(std::uintptr_t)) {
    const std::size_t n = std::min<std::size_t>(chunk + 2, (end - from) / sizeof(std::uintptr_t));
    read_request r{from, n * sizeof(std::uintptr_t), words, false};
    read_all({&r, 1});
    if (!r.ok) return 0;
    for (std::size_t i = 0; i + 2 < n; ++i) {
      const std::uintptr_t at = from + i * sizeof(std::uintptr_t);
      if (words[i] == at && words[i + 2] == at) return at;
    }
  }
#else
  (void)sp;
  (void)end;
#endif
  return 0;
}

// The ids of the process's threads (/proc/self/task), read without the
// heap; empty if it cannot be read.
inline internal_vector<pid_t> process_thread_ids() {
  internal_vector<pid_t> tids;
  const int fd = ::open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return tids;
  alignas(8) char buffer[4096];
  for (long n; (n = ::syscall(SYS_getdents64, fd, buffer, sizeof buffer)) > 0;) {
    for (long at = 0; at < n;) {
      struct entry {
        std::uint64_t inode;
        std::int64_t offset;
        unsigned short length;
        unsigned char type;
        char name[1];
      };
      const auto* e = reinterpret_cast<const entry*>(buffer + at);
      if (const long tid = std::strtol(e->name, nullptr, 10); tid > 0) tids.push_back(static_cast<pid_t>(tid));
      at += e->length;
    }
  }
  ::close(fd);
  return tids;
}

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

// The live frames of every thread that is blocked now, but the calling
// thread and threads inside leakguard.
inline internal_vector<live_frames> blocked_threads_frames() {
  struct registered {
    pid_t tid;
    std::uintptr_t thread_pointer;  // 0: inside leakguard, not read
  };
  internal_vector<registered> seen;
  {
    lock_guard g(registry.lock);
    for (thread_state* t = registry.head; t; t = t->next) {
      const bool inside = t->slow.load(std::memory_order_relaxed) & slow_internal;
      if (t->tid) seen.push_back({t->tid, inside ? 0 : t->thread_pointer});
    }
  }
  const pid_t self = gettid(), process = getpid();
  const std::int64_t deadline = monotonic_ns() + blocked_wait_ns;
  internal_vector<live_frames> out;
  internal_vector<pid_t> tids = process_thread_ids();
  if (tids.empty())
    for (const registered& r : seen) tids.push_back(r.tid);
  for (const pid_t tid : tids) {
    if (tid == self) continue;
    const auto known = std::find_if(seen.begin(), seen.end(), [&](const registered& r) { return r.tid == tid; });
    if (known != seen.end() && known->thread_pointer == 0) continue;
    const std::uintptr_t sp = blocked_stack_pointer(tid, deadline);
    if (sp == 0) continue;
    std::uintptr_t top = known != seen.end() ? known->thread_pointer : 0;
    if (tid == process) top = reinterpret_cast<std::uintptr_t>(&__libc_stack_end ? __libc_stack_end : nullptr);
    if (top == 0 || top > sp) out.push_back({sp, top});
  }
  return out;
}

}  // namespace leakguard::detail
