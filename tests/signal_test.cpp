// tests/signal_test.cpp — a signal handler that allocates and frees while the
// thread it interrupts is inside leakguard (holding a scope's lock) must not
// wait for that lock: its allocations go unrecorded and are counted, its
// frees of tracked blocks are settled once the thread leaves leakguard.
#include <doctest/doctest.h>
#include <leakguard.hpp>

#include <signal.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>

#include "support.hpp"

using lgt::keep;

namespace {

std::atomic<void*> handed_to_handler{nullptr};
std::atomic<std::uint64_t> handler_runs{0};

// Allocates like a handler that formats a message, and frees a block the
// interrupted code allocated in its scope (a tracked block).
void on_timer(int) {
  const int saved_errno = errno;
  delete[] keep(new char[24]);
  delete static_cast<int*>(handed_to_handler.exchange(nullptr));
  handler_runs.fetch_add(1, std::memory_order_relaxed);
  errno = saved_errno;
}

// A timer that sends SIGUSR1 to this process every `interval`.
class periodic_signal {
 public:
  explicit periodic_signal(std::chrono::microseconds interval) {
    struct sigaction sa {};
    sa.sa_handler = on_timer;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    LGT_CHILD_CHECK(10, sigaction(SIGUSR1, &sa, nullptr) == 0);
    sigevent ev{};
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR1;
    LGT_CHILD_CHECK(11, timer_create(CLOCK_MONOTONIC, &ev, &timer_) == 0);
    const long ns = static_cast<long>(interval.count()) * 1000;
    itimerspec spec{{0, ns}, {0, ns}};
    LGT_CHILD_CHECK(12, timer_settime(timer_, 0, &spec, nullptr) == 0);
  }
  ~periodic_signal() {
    timer_delete(timer_);
    signal(SIGUSR1, SIG_IGN);
  }
  periodic_signal(const periodic_signal&) = delete;
  periodic_signal& operator=(const periodic_signal&) = delete;

 private:
  timer_t timer_{};
};

}  // namespace

TEST_SUITE("signals") {

// Under TSan, allocating in a signal handler is itself reported.
TEST_CASE("a handler allocating and freeing every 20 us never deadlocks, and the books balance" *
          doctest::skip(lgt::under_tsan)) {
  const auto result = lgt::run_in_child([] {
    lgt::capture_reports captured;
    std::uint64_t scopes = 0;
    {
      periodic_signal timer(std::chrono::microseconds(20));
      const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
      while (std::chrono::steady_clock::now() < end) {
        leakguard::scope s(leakguard::scope_options{.label = "request", .allow_retained = false});
        for (int i = 0; i < 16; ++i) delete keep(new int(i));
        delete static_cast<int*>(handed_to_handler.exchange(keep(new int(7))));
        delete static_cast<int*>(handed_to_handler.exchange(nullptr));  // whatever the handler left
        ++scopes;
      }
    }
    LGT_CHILD_CHECK(2, handler_runs.load() > 1000);
    LGT_CHILD_CHECK(3, scopes > 100);
    LGT_CHILD_CHECK(4, captured.size() == 0);  // nothing leaked: every block was freed, by one side or the other
    const leakguard::heap_stats h = leakguard::global_stats();
    LGT_CHILD_CHECK(6, h.allocations >= h.deallocations);
    std::fprintf(stderr, "handler runs %llu, scopes %llu\n", static_cast<unsigned long long>(handler_runs.load()),
                 static_cast<unsigned long long>(scopes));
  });
  INFO(result.describe());
  CHECK(result.ok());  // a deadlock ends in the child's 60 s alarm (SIGALRM)
}

}  // TEST_SUITE
