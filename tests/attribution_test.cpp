// tests/attribution_test.cpp — which thread's allocations belong to which scope:
// other threads, cross-thread frees, all_threads, current_context() + adopt.
#include <doctest/doctest.h>
#include <leakguard.hpp>
#include <leakguard/impl/scope_state.hpp>  // which threads take the all_threads path, checked directly

#include <atomic>
#include <semaphore>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "support.hpp"

using lgt::keep;

namespace {

// A thread started before the scope under test (so that std::thread's own
// bookkeeping is not attributed to it) that runs one step each time it is told.
class stepper {
 public:
  template <class F>
  explicit stepper(F body)
      : thread_([this, body]() mutable {
          go_.acquire();
          body();
          done_.release();
        }) {}
  ~stepper() {
    if (thread_.joinable()) thread_.join();
  }
  // Lets the thread run its body and waits for it to finish.
  void run() {
    go_.release();
    done_.acquire();
  }

 private:
  std::binary_semaphore go_{0};
  std::binary_semaphore done_{0};
  std::thread thread_;
};

}  // namespace

TEST_SUITE("attribution") {

TEST_CASE("an allocation on another thread is not attributed to this thread's scope") {
  lgt::capture_reports captured;
  int* q = nullptr;
  stepper worker([&] { q = keep(new int(1)); });
  {
    leakguard::scope s("main only");
    worker.run();
  }
  CHECK(captured.reports.empty());
  delete q;
}

TEST_CASE("a worker's own scope does not see the main thread's allocations") {
  lgt::capture_reports captured;
  std::binary_semaphore scope_open{0}, main_done{0};
  int* main_block = nullptr;
  std::thread worker([&] {
    leakguard::scope s("worker");
    scope_open.release();
    main_done.acquire();
  });
  scope_open.acquire();
  main_block = keep(new int(1));
  main_done.release();
  worker.join();
  CHECK(captured.reports.empty());
  delete main_block;
}

TEST_CASE("a block freed on another thread is settled in the scope") {
  lgt::capture_reports captured;
  int* p = nullptr;
  stepper worker([&] { delete p; });
  leakguard::scope_stats st{};
  {
    leakguard::scope s("cross-thread free");
    p = keep(new int(1));
    worker.run();
    st = s.stats();
  }
  CHECK(captured.reports.empty());
  CHECK(st.allocations == 1);
  CHECK(st.deallocations == 1);
  CHECK(st.live_blocks == 0);
  CHECK(st.live_bytes == 0);
}

TEST_CASE("a std::thread created inside a scope: its state, freed by the new thread, is settled") {
  lgt::capture_reports captured;
  {
    leakguard::scope s("thread inside");
    std::thread t([] {});
    t.join();
  }
  CHECK(captured.reports.empty());
}

TEST_CASE("a leaked block freed on another thread after its scope ended causes no report and no misuse") {
  lgt::capture_reports captured;
  lgt::capture_misuse misuses;
  int* p = nullptr;
  { leakguard::scope s("leaky"); p = keep(new int(1)); }
  std::thread t([p] { delete p; });
  t.join();
  CHECK(captured.reports.size() == 1);
  CHECK(misuses.events.empty());
}

namespace {

// The worker's own scope reported block `q`, then the all_threads scope did.
void check_reported_by_both(const lgt::capture_reports& captured, const int* q) {
  REQUIRE(captured.reports.size() == 2);
  CHECK(captured.reports[0].label() == "worker scope");
  CHECK(captured.reports[1].label() == "everyone");
  CHECK(lgt::find_block(captured.reports[0], q) != nullptr);
  CHECK(lgt::find_block(captured.reports[1], q) != nullptr);
}

// The options of an all_threads scope labelled "everyone".
leakguard::scope_options everyone() {
  leakguard::scope_options o;
  o.label = "everyone";
  o.all_threads = true;
  return o;
}

// Whether the calling thread's allocations are also offered to all_threads
// scopes (a lock and a larger record each).
bool offers_to_all_threads() {
  namespace d = leakguard::detail;
  return (d::tls.slow.load(std::memory_order_relaxed) & d::slow_all_threads) != 0;
}

}  // namespace

TEST_CASE("all_threads attributes other threads' allocations while the scope is active") {
  lgt::capture_reports captured;
  int* q = nullptr;
  int line = 0;
  stepper worker([&] {
    line = __LINE__ + 1;
    q = keep(new int(1));
  });
  {
    leakguard::scope s(everyone());
    worker.run();
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].label() == "everyone");
  const auto* b = lgt::find_block(captured.reports[0], q);
  REQUIRE(b != nullptr);
  INFO("site: ", b->site);
  CHECK(lgt::site_is(b->site, __FILE__, line));
  delete q;
}

TEST_CASE("all_threads: another thread's allocation also belongs to that thread's own scope") {
  lgt::capture_reports captured;
  int* q = nullptr;
  stepper worker([&] {
    leakguard::scope s("worker scope");
    q = keep(new int(1));
  });
  {
    leakguard::scope s(everyone());
    worker.run();
  }
  check_reported_by_both(captured, q);
  delete q;
}

TEST_CASE("all_threads stops attributing once the scope has ended") {
  lgt::capture_reports captured;
  int* q = nullptr;
  stepper worker([&] { q = keep(new int(1)); });
  {
    leakguard::scope_options o;
    o.all_threads = true;
    leakguard::scope s(o);
  }
  {
    leakguard::scope s("ordinary");
    worker.run();
  }
  CHECK(captured.reports.empty());
  delete q;
}

TEST_CASE("the thread that opened an all_threads scope books its own blocks through its chain alone") {
  lgt::capture_reports captured;
  bool worker_offers = false;
  stepper worker([&] {
    delete keep(new int(0));  // registers the thread
    worker_offers = offers_to_all_threads();
  });
  delete keep(new int(0));  // registered before the check
  int* mine = nullptr;
  {
    leakguard::scope s(everyone());
    CHECK_FALSE(offers_to_all_threads());
    mine = keep(new int(1));
    worker.run();
    CHECK(worker_offers);  // its blocks reach the scope only that way
    {
      leakguard::adopt a{leakguard::context{}};  // another chain: this scope is not in it
      CHECK(offers_to_all_threads());
    }
    CHECK_FALSE(offers_to_all_threads());
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(lgt::find_block(captured.reports[0], mine) != nullptr);
  delete mine;
}

TEST_CASE("all_threads: the opener's allocations under adopt of another thread's context belong to both scopes") {
  lgt::capture_reports captured;
  std::binary_semaphore shared_ready{0}, adopted{0};
  const leakguard::context* shared = nullptr;
  std::thread worker([&] {
    leakguard::scope s("worker scope");
    leakguard::context ctx = leakguard::current_context();
    shared = &ctx;
    shared_ready.release();
    adopted.acquire();
  });
  shared_ready.acquire();
  int* q = nullptr;
  {
    leakguard::scope s(everyone());
    {
      leakguard::adopt a{*shared};
      q = keep(new int(1));
    }
    adopted.release();
    worker.join();
  }
  check_reported_by_both(captured, q);
  delete q;
}

TEST_CASE("all_threads: once a scope of the opener's chain ends on another thread, its allocations still belong") {
  namespace d = leakguard::detail;
  lgt::capture_reports captured;
  int* q = nullptr;
  {
    leakguard::scope s(everyone());
    auto* inner = new leakguard::scope("inner, ended elsewhere");
    std::thread([&] { delete inner; }).join();
    q = keep(new int(1));  // this thread's innermost scope is gone: no chain books it
  }
  // The inner scope's verdict, on the other thread, has that thread's state.
  REQUIRE(captured.reports.size() == 2);
  CHECK(captured.reports[1].label() == "everyone");
  CHECK(lgt::find_block(captured.reports[1], q) != nullptr);
  delete q;
  // The verdict is conservative from then on; later tests check the fast path.
  d::lock_guard g(d::registry.lock);
  d::registry.chain_left_behind = false;
}

TEST_CASE("all_threads: a thread that exits with its all_threads scope open leaves every thread offering") {
  // A thread born later at the exited one's address is not the scope's
  // opener, though the scope names that address.
  namespace d = leakguard::detail;
  lgt::capture_reports captured;
  delete keep(new int(0));  // registered before the check
  leakguard::scope* left = nullptr;
  std::thread([&] {
    leakguard::scope_options o;
    o.all_threads = true;
    left = new leakguard::scope(o);
  }).join();
  CHECK(offers_to_all_threads());
  {
    d::lock_guard g(d::registry.lock);
    CHECK(d::registry.chain_left_behind);
    d::registry.chain_left_behind = false;  // as if it had not happened: checked below
    d::refresh_all_threads();
  }
  CHECK(offers_to_all_threads());  // still: the scope is open, and this thread did not open it
  delete left;
  CHECK_FALSE(offers_to_all_threads());
  d::lock_guard g(d::registry.lock);
  d::registry.chain_left_behind = false;
}

TEST_CASE("current_context() + adopt attributes a worker's allocations to the scope") {
  lgt::capture_reports captured;
  const leakguard::context* shared = nullptr;
  int* q = nullptr;
  int line = 0;
  stepper worker([&] {
    leakguard::adopt a{*shared};
    line = __LINE__ + 1;
    q = keep(new int(1));
  });
  {
    leakguard::scope s("handler");
    {
      leakguard::context ctx = leakguard::current_context();
      shared = &ctx;
      worker.run();
    }
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].label() == "handler");
  CHECK(captured.reports[0].leaked_blocks() == 1);
  const auto* b = lgt::find_block(captured.reports[0], q);
  REQUIRE(b != nullptr);
  INFO("site: ", b->site);
  CHECK(lgt::site_is(b->site, __FILE__, line));
  delete q;
}

TEST_CASE("adopted work that frees what it allocates leaves the scope clean") {
  lgt::capture_reports captured;
  const leakguard::context* shared = nullptr;
  stepper worker([&] {
    leakguard::adopt a{*shared};
    std::vector<int> v(100, 1);
    (void)keep(v.data());
  });
  leakguard::scope_stats st{};
  {
    leakguard::scope s("handler");
    {
      leakguard::context ctx = leakguard::current_context();
      shared = &ctx;
      worker.run();
    }
    st = s.stats();
  }
  CHECK(captured.reports.empty());
  CHECK(st.allocations == 1);
  CHECK(st.deallocations == 1);
}

// The task scope is still open when check() runs: its block is owned by the
// task scope, and only counted in the handler's, until the task scope ends.
TEST_CASE("check() lists the blocks of a scope opened under adopt of its context, on another thread") {
  lgt::capture_reports captured;
  const leakguard::context* shared = nullptr;
  int* q = nullptr;
  std::binary_semaphore ctx_ready{0}, allocated{0}, checked{0}, task_ended{0};
  std::thread worker([&] {
    ctx_ready.acquire();
    {
      leakguard::adopt a{*shared};
      leakguard::scope task("task");
      q = keep(new int(1));
      allocated.release();
      checked.acquire();
      delete q;
    }
    task_ended.release();
  });
  {
    leakguard::scope handler("handler");
    int* mine = keep(new int(2));
    leakguard::context ctx = leakguard::current_context();
    shared = &ctx;
    ctx_ready.release();
    allocated.acquire();
    const leakguard::report r = handler.check();
    CHECK(r.leaked_blocks() == 2);
    CHECK(lgt::find_block(r, q) != nullptr);
    CHECK(lgt::find_block(r, mine) != nullptr);
    CHECK(handler.stats().live_blocks == 2);
    checked.release();
    task_ended.acquire();
    CHECK(handler.check().leaked_blocks() == 1);
    delete mine;
    CHECK(handler.check().empty());
  }
  worker.join();
  CHECK(captured.reports.empty());
}

TEST_CASE("check() lists an adopted scope nested in it on the same thread, but not one under another context") {
  lgt::capture_reports captured;
  leakguard::scope unrelated("unrelated");
  const leakguard::context other_ctx = leakguard::current_context();  // not inside outer
  leakguard::scope outer("outer");
  const leakguard::context outer_ctx = leakguard::current_context();
  {
    leakguard::adopt a{other_ctx};
    leakguard::scope task("task under another context");
    int* in_other = keep(new int(1));
    {
      leakguard::adopt back{outer_ctx};
      leakguard::scope inner("inner, under outer's context");
      int* in_outer = keep(new int(2));
      const leakguard::report r = outer.check();
      CHECK(r.leaked_blocks() == 1);
      CHECK(lgt::find_block(r, in_outer) != nullptr);
      CHECK(lgt::find_block(r, in_other) == nullptr);
      CHECK(unrelated.check().leaked_blocks() == 2);  // both: outer is nested in it
      delete in_outer;
    }
    delete in_other;
  }
  CHECK(outer.check().empty());
  CHECK(captured.reports.empty());
}

// dismiss() of `middle` while `inner` (this thread) and `task` (another
// thread, under adopt of middle's context) are open: both are handed to
// `outer`, which keeps counting their allocations and receives their blocks.
TEST_CASE("an out-of-order dismiss() hands scopes opened under adopt on another thread to the parent") {
  lgt::capture_reports captured;
  const leakguard::context* shared = nullptr;
  int* q = nullptr;
  std::binary_semaphore ctx_ready{0}, task_open{0}, dismissed{0}, allocated{0}, task_may_end{0}, task_ended{0};
  std::thread worker([&] {
    ctx_ready.acquire();
    {
      leakguard::adopt a{*shared};
      leakguard::scope task("task");
      task_open.release();
      dismissed.acquire();
      q = keep(new int(1));
      allocated.release();
      task_may_end.acquire();
    }
    task_ended.release();
  });
  {
    leakguard::scope outer("outer");
    {
      leakguard::scope middle("middle");
      leakguard::context ctx = leakguard::current_context();
      shared = &ctx;
      ctx_ready.release();
      task_open.acquire();
      leakguard::scope inner("inner");
      middle.dismiss();
      dismissed.release();
      allocated.acquire();
      CHECK(outer.stats().allocations == 1);
      CHECK(outer.stats().live_blocks == 1);
      CHECK(lgt::find_block(outer.check(), q) != nullptr);
      task_may_end.release();
      task_ended.acquire();  // task reports q; outer counts it but does not report it again
    }
    REQUIRE(captured.reports.size() == 1);
    CHECK(captured.reports[0].label() == "task");
    CHECK(lgt::find_block(outer.check(), q) == nullptr);
    CHECK(outer.stats().live_blocks == 1);
    delete q;
    CHECK(outer.stats().live_blocks == 0);
  }
  worker.join();
  CHECK(captured.reports.size() == 1);
}

TEST_CASE("after adopt ends, the worker's allocations are no longer attributed") {
  lgt::capture_reports captured;
  const leakguard::context* shared = nullptr;
  int* q = nullptr;
  stepper worker([&] {
    { leakguard::adopt a{*shared}; }
    q = keep(new int(1));
  });
  {
    leakguard::scope s("handler");
    leakguard::context ctx = leakguard::current_context();
    shared = &ctx;
    worker.run();
  }
  CHECK(captured.reports.empty());
  delete q;
}

TEST_CASE("a context of nested scopes attributes adopted allocations to each of them") {
  lgt::capture_reports captured;
  const leakguard::context* shared = nullptr;
  int* q = nullptr;
  stepper worker([&] {
    leakguard::adopt a{*shared};
    q = keep(new int(1));
  });
  {
    leakguard::scope outer("outer");
    {
      leakguard::scope inner("inner");
      leakguard::context ctx = leakguard::current_context();
      shared = &ctx;
      worker.run();
    }
  }
  REQUIRE(captured.reports.size() == 1);  // by the inner scope; the outer does not report it again
  CHECK(captured.reports[0].label() == "inner");
  CHECK(lgt::find_block(captured.reports[0], q) != nullptr);
  delete q;
}

TEST_CASE("a context captured with no scope active attributes nothing") {
  lgt::capture_reports captured;
  const leakguard::context* shared = nullptr;
  int* q = nullptr;
  stepper worker([&] {
    leakguard::adopt a{*shared};
    q = keep(new int(1));
  });
  leakguard::context empty_ctx = leakguard::current_context();
  shared = &empty_ctx;
  {
    leakguard::scope s("main");
    worker.run();
  }
  CHECK(captured.reports.empty());
  delete q;
}

TEST_CASE("adopting a context whose scope has already ended is harmless") {
  // Contract is silent; a pool task that runs after the request finished must
  // not crash the process or report into a dead scope. Run in a child: a
  // use-after-free would take the test runner down.
  auto result = lgt::run_in_child([] {
    lgt::capture_reports captured;
    std::optional<leakguard::context> ctx;
    { leakguard::scope s("gone"); ctx.emplace(leakguard::current_context()); }
    int* q = nullptr;
    std::thread t([&] {
      leakguard::adopt a{*ctx};
      q = keep(new int(1));
      delete keep(new int(2));
    });
    t.join();
    { leakguard::scope later("later"); }
    LGT_CHILD_CHECK(3, captured.reports.empty());
    delete q;
  });
  INFO(result.describe());
  CHECK(result.ok());
}

TEST_CASE("serials follow real-time order between threads that take turns") {
  // Serials come from per-thread batches (impl/serial.hpp); taking turns
  // must still number every block after the ones made before it.
  lgt::capture_reports captured;
  constexpr int turns = 200;  // several times detail::serial_racing
  std::vector<int*> made;    // in real-time order
  std::binary_semaphore worker_turn{0}, main_turn{0};
  std::thread worker([&] {
    for (int i = 0; i < turns; ++i) {
      worker_turn.acquire();
      made.push_back(keep(new int(i)));  // `made` has room: reserved below
      main_turn.release();
    }
  });
  made.reserve(2 * turns);
  {
    leakguard::scope_options o;
    o.all_threads = true;
    leakguard::scope s(o);
    for (int i = 0; i < turns; ++i) {
      made.push_back(keep(new int(i)));
      worker_turn.release();
      main_turn.acquire();
    }
  }
  worker.join();
  REQUIRE(captured.reports.size() == 1);
  const auto blocks = captured.reports[0].blocks();
  REQUIRE(blocks.size() == made.size());
  for (std::size_t i = 0; i < made.size(); ++i) {
    CAPTURE(i);
    CHECK(blocks[i].address == made[i]);
    if (i > 0) CHECK(blocks[i - 1].serial < blocks[i].serial);
  }
  for (int* p : made) delete p;
}

TEST_CASE("serials stay unique and increasing per thread while threads allocate at once") {
  lgt::capture_reports captured;
  constexpr int per_thread = 5000;  // several serial batches, racing
  std::vector<int*> made[2];
  std::atomic<int> ready{0};
  auto body = [&](int index) {
    made[index].reserve(per_thread);
    ready.fetch_add(1);
    while (ready.load() < 2) {
    }
    for (int i = 0; i < per_thread; ++i) {
      delete keep(new int(i));
      made[index].push_back(keep(new int(i)));
    }
  };
  {
    leakguard::scope_options o;
    o.all_threads = true;
    leakguard::scope s(o);
    std::thread a(body, 0), b(body, 1);
    a.join();
    b.join();
  }
  REQUIRE(captured.reports.size() == 1);
  const auto blocks = captured.reports[0].blocks();
  std::unordered_map<const void*, std::uint64_t> serial_of;
  for (const auto& b : blocks) serial_of.emplace(b.address, b.serial);
  std::unordered_set<std::uint64_t> seen;
  for (const auto& b : blocks) CHECK(seen.insert(b.serial).second);
  for (auto& list : made) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      REQUIRE(serial_of.count(list[i]) == 1);
      if (i > 0 && serial_of[list[i - 1]] >= serial_of[list[i]]) FAIL("serials decrease at ", i);
    }
    for (int* p : list) delete p;
  }
}

TEST_CASE("two threads, each in its own scope, each reports only its own leak") {
  lgt::capture_reports captured;
  constexpr int rounds = 20000;
  int* leaked[2] = {};
  std::atomic<int> ready{0};
  auto body = [&](int index) {
    leakguard::scope s(index == 0 ? "thread 0" : "thread 1");
    ready.fetch_add(1);
    while (ready.load() < 2) {
    }
    for (int i = 0; i < rounds; ++i) delete keep(new int(i));
    leaked[index] = keep(new int(index));
  };
  std::thread a(body, 0), b(body, 1);
  a.join();
  b.join();
  REQUIRE(captured.reports.size() == 2);
  for (const auto& r : captured.reports) {
    CHECK(r.leaked_blocks() == 1);
    const int index = r.label() == "thread 0" ? 0 : 1;
    CHECK(lgt::find_block(r, leaked[index]) != nullptr);
  }
  delete leaked[0];
  delete leaked[1];
}

TEST_CASE("many blocks freed concurrently by another thread while the scope allocates") {
  lgt::capture_reports captured;
  constexpr int count = 5000;
  std::vector<std::atomic<int*>> slots(count);
  for (auto& s : slots) s.store(nullptr);
  std::atomic<bool> stop{false};
  std::atomic<int> freed{0};
  std::thread freer([&] {
    int next = 0;
    while (next < count) {
      int* p = slots[static_cast<std::size_t>(next)].exchange(nullptr);
      if (p) {
        delete p;
        ++next;
        freed.fetch_add(1);
      } else if (stop.load()) {
        break;
      }
    }
  });
  leakguard::scope_stats st{};
  {
    leakguard::scope s("producer");
    for (int i = 0; i < count; ++i) slots[static_cast<std::size_t>(i)].store(keep(new int(i)));
    while (freed.load() < count) std::this_thread::yield();
    st = s.stats();
  }
  stop.store(true);
  freer.join();
  CHECK(captured.reports.empty());
  CHECK(st.allocations == static_cast<std::uint64_t>(count));
  CHECK(st.deallocations == static_cast<std::uint64_t>(count));
  CHECK(st.live_blocks == 0);
  CHECK(st.live_bytes == 0);
  CHECK(st.peak_bytes >= sizeof(int));
}

TEST_CASE("frees racing with the end of the scope never corrupt the books") {
  lgt::capture_reports captured;
  constexpr int iterations = 300;
  int reports_with_wrong_blocks = 0;
  for (int i = 0; i < iterations; ++i) {
    int* p = nullptr;
    std::atomic<bool> go{false};
    std::thread freer([&] {
      while (!go.load()) {
      }
      delete p;
    });
    const std::size_t before = captured.reports.size();
    {
      leakguard::scope s("race");
      p = keep(new int(i));
      go.store(true);
    }  // the free may land before, during or after the check
    freer.join();
    if (captured.reports.size() > before) {
      const auto& r = captured.reports.back();
      if (r.leaked_blocks() != 1 || r.blocks()[0].size != sizeof(int)) ++reports_with_wrong_blocks;
    }
  }
  CHECK(reports_with_wrong_blocks == 0);
  // the books are still sound: a later scope is clean
  const std::size_t before = captured.reports.size();
  { leakguard::scope s("after"); delete keep(new int(1)); }
  CHECK(captured.reports.size() == before);
}

}  // TEST_SUITE
