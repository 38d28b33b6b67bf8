// leakguard/impl/memory_reads.hpp — how the verdicts' scan reads memory that
// other threads may free, and unmap, while it reads.
//
// Through the kernel (process_vm_readv on our own process): a read of an
// unmapped page fails instead of faulting. That is safe in every process,
// and costs a system call per batch and the kernel's pinning of every page.
//
// In place, when nothing else can run: while the calling thread is the
// process's only thread and blocks every signal, nothing but its own code
// changes the memory map. Memory it knows to be mapped then stays mapped while
// it reads: modules' writable segments, its own static TLS, blocks whose
// header says they are live (and that the scan does not free). Other memory
// (a word's page that may hold a header) is still read through the kernel.
// Under AddressSanitizer and ThreadSanitizer every read goes through the
// kernel: a conservative scan reads the redzones around globals on purpose.
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "../config.hpp"

namespace leakguard::detail {

// ---- through the kernel ----------------------------------------------------------

struct read_request {
  std::uintptr_t address;
  std::size_t size;
  void* into;
  bool ok;
};

// 0: untried, 1: works, -1: not allowed here (scan nothing).
inline std::atomic<int> safe_reads_state{0};

// Reads every request, setting `ok`; up to IOV_MAX requests per system call.
inline void read_all(std::span<read_request> rs) noexcept {
  constexpr std::size_t batch = 1024;
  iovec local[batch], remote[batch];
  const pid_t self = getpid();
  for (std::size_t i = 0; i < rs.size();) {
    const std::size_t n = std::min(batch, rs.size() - i);
    for (std::size_t k = 0; k < n; ++k) {
      local[k] = {rs[i + k].into, rs[i + k].size};
      remote[k] = {reinterpret_cast<void*>(rs[i + k].address), rs[i + k].size};
    }
    const ssize_t got = process_vm_readv(self, local, n, remote, n, 0);
    if (got < 0 && errno != EFAULT) {  // ENOSYS, EPERM: no safe reads here
      safe_reads_state.store(-1, std::memory_order_relaxed);
      for (; i < rs.size(); ++i) rs[i].ok = false;
      return;
    }
    // Transfers stop at the first element that failed, never inside one.
    std::size_t left = got < 0 ? 0 : static_cast<std::size_t>(got);
    std::size_t k = 0;
    for (; k < n && left >= rs[i + k].size; ++k) {
      left -= rs[i + k].size;
      rs[i + k].ok = true;
    }
    if (k < n) rs[i + k++].ok = false;
    i += k;
  }
}

inline bool safe_reads_work() noexcept {
  int state = safe_reads_state.load(std::memory_order_relaxed);
  if (state == 0) {
    std::uint64_t probe = 1, copy = 0;
    read_request r{reinterpret_cast<std::uintptr_t>(&probe), sizeof probe, &copy, false};
    read_all({&r, 1});
    state = r.ok && copy == 1 ? 1 : -1;
    safe_reads_state.store(state, std::memory_order_relaxed);
  }
  return state == 1;
}

// ---- in place -------------------------------------------------------------------

// Set to false to read everything through the kernel (tests compare both).
inline constinit std::atomic<bool> in_place_reads_allowed{true};
// Scans that read in place: what tests see.
inline constinit std::atomic<std::uint64_t> in_place_scans{0};

// Reads a small /proc file (one read) into `text`, NUL-terminated; false
// if it cannot be read or is empty.
inline bool read_proc_file(const char* path, char* text, std::size_t size) noexcept {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n;
  do n = ::read(fd, text, size - 1);
  while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0) return false;
  text[n] = '\0';
  return true;
}

// The process's thread count from /proc/self/stat, or 0 if unknown.
inline long process_threads() noexcept {
  char text[1024];
  if (!read_proc_file("/proc/self/stat", text, sizeof text)) return 0;
  // "pid (comm) state ppid ...": the command may hold spaces and parentheses;
  // num_threads is the 18th field after its closing one.
  const char* p = std::strrchr(text, ')');
  for (int field = 0; p && field < 18; ++field) p = std::strchr(p + 1, ' ');
  return p ? std::strtol(p + 1, nullptr, 10) : 0;
}

// Blocks every signal of the calling thread for its lifetime, and says
// whether the thread is then alone in the process: whether memory known to
// be mapped can be read in place.
class sole_thread {
 public:
  sole_thread() noexcept {
    if (LEAKGUARD_ASAN || LEAKGUARD_TSAN || !in_place_reads_allowed.load(std::memory_order_relaxed)) return;
    sigset_t all;
    sigfillset(&all);
    if (pthread_sigmask(SIG_BLOCK, &all, &saved_) != 0) return;
    blocked_ = true;
    alone_ = process_threads() == 1;  // counted after blocking: no handler can start one now
    if (alone_) in_place_scans.fetch_add(1, std::memory_order_relaxed);
  }
  ~sole_thread() {
    if (blocked_) pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
  }
  sole_thread(const sole_thread&) = delete;
  sole_thread& operator=(const sole_thread&) = delete;

  bool alone() const noexcept { return alone_; }

 private:
  sigset_t saved_;
  bool blocked_ = false;
  bool alone_ = false;
};

}  // namespace leakguard::detail
