// tests/signal_test.cpp — signal handlers and jumps:
//  - a signal handler that allocates and frees while the thread it
//    interrupts is inside leakguard (holding a scope's lock) must not wait
//    for that lock: its allocations go unrecorded and are counted, its frees
//    of tracked blocks are settled once the thread leaves leakguard;
//  - a scope that a siglongjmp jumped out of is closed as abandoned when the
//    thread opens its next scope.
#include <doctest/doctest.h>
#include <leakguard.hpp>

#include <setjmp.h>
#include <signal.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

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

sigjmp_buf recovery_point;
int abandoned_line = 0;

// Like a handler a framework recovers from with siglongjmp (after SIGSEGV):
// the scope's destructor never runs.
[[gnu::noinline]] void jump_out_of_a_scope(int* volatile* leaked) {
  abandoned_line = __LINE__ + 2;
  if (!leaked) return;  // the parent's call: it learns the line
  LEAKGUARD_SCOPE("jumped over");
  *leaked = keep(new int(5));
  siglongjmp(recovery_point, 1);
}

// Calls jump_out_of_a_scope two padded frames down, so that the scope it
// abandons lies well below the frame of the next scope's constructor even
// where that constructor's delegating overload is not inlined (-O0).
[[gnu::noinline]] void jump_from_deeper_frames(int* volatile* leaked, int frames = 2) {
  volatile char pad[256];
  pad[0] = 0;
  if (frames > 0) jump_from_deeper_frames(leaked, frames - 1);
  else jump_out_of_a_scope(leaked);
  pad[1] = pad[0];  // not a tail call: this frame stays
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_SUITE("signals") {

// Not under the sanitizers: TSan reports an allocation in a signal handler,
// and ASan's allocator (under leakguard's) deadlocks on its own lock when the
// handler interrupts it, as glibc's would in a large allocation.
TEST_CASE("a handler allocating and freeing every 20 us never deadlocks, and the books balance" *
          doctest::skip(lgt::under_tsan || lgt::under_asan)) {
  const auto result = lgt::run_in_child([] {
    lgt::capture_reports captured;
    std::uint64_t scopes = 0;
    leakguard::heap_stats before{};
    {
      periodic_signal timer(std::chrono::microseconds(20));
      before = leakguard::global_stats();
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
    delete keep(new int(0));                    // settles a free the last handler deferred
    const leakguard::heap_stats h = leakguard::global_stats();
    // Exact: a handler's count that fell between the thread's load and store
    // of a counter would be lost.
    LGT_CHILD_CHECK(6, h.allocations - before.allocations == h.deallocations - before.deallocations);
    std::fprintf(stderr, "handler runs %llu, scopes %llu\n", static_cast<unsigned long long>(handler_runs.load()),
                 static_cast<unsigned long long>(scopes));
  });
  INFO(result.describe());
  CHECK(result.ok());  // a deadlock ends in the child's 60 s alarm (SIGALRM)
}

TEST_CASE("a scope a siglongjmp jumped out of is closed as abandoned when the thread opens its next scope") {
  const auto result = lgt::run_in_child([] {
    lgt::capture_reports captured;
    int* volatile leaked[3] = {};
    {
      leakguard::scope outer("outer");
      for (volatile int round = 0; round < 3;) {
        if (sigsetjmp(recovery_point, 1) == 0) jump_from_deeper_frames(&leaked[round]);  // the same frames each time
        round = round + 1;
      }
      { LEAKGUARD_SCOPE("after the jumps"); }  // in a frame well above
      LGT_CHILD_CHECK(2, !leakguard::current_context().empty());  // outer, and only outer, is open
      LGT_CHILD_CHECK(3, outer.stats().live_blocks == 3);          // the abandoned scopes' blocks
    }
    LGT_CHILD_CHECK(4, leakguard::current_context().empty());
    LGT_CHILD_CHECK(5, captured.size() == 1);
    LGT_CHILD_CHECK(6, captured.reports.at(0).label() == "outer");
    LGT_CHILD_CHECK(7, captured.reports.at(0).blocks().size() == 3);
    for (int* p : leaked) delete p;
  });
  INFO(result.describe());
  CHECK(result.ok());
  jump_out_of_a_scope(nullptr);
  const std::string line = "leakguard: the scope opened at " + std::string(__FILE__) + ":" +
                           std::to_string(abandoned_line) + " was abandoned (a longjmp jumped over its end)";
  CHECK(count(result.err, line) == 3);
}

TEST_CASE("without an enclosing scope, the thread is unwatched again once the abandoned scope is closed") {
  const auto result = lgt::run_in_child([] {
    int* volatile leaked = nullptr;
    if (sigsetjmp(recovery_point, 1) == 0) jump_from_deeper_frames(&leaked);
    LGT_CHILD_CHECK(2, !leakguard::current_context().empty());  // nothing can tell until the next scope
    { LEAKGUARD_SCOPE("next request"); }
    LGT_CHILD_CHECK(3, leakguard::current_context().empty());
    delete leaked;
  });
  INFO(result.describe());
  CHECK(result.ok());
  CHECK(count(result.err, "was abandoned") == 1);
}

}  // TEST_SUITE
