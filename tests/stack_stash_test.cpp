// tests/stack_stash_test.cpp — a tracked block's stack is interned only when
// it is needed: a verdict, the thread's stash coming round to its entry, a
// thread's stash inherited; never for a block freed before (impl/stack_stash.hpp).
#include <doctest/doctest.h>
#include <leakguard.hpp>
#include <leakguard/impl/stack_stash.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "support.hpp"

namespace lg = leakguard::detail;
using lgt::keep;

namespace {

// One call site per test, so that its stack is new to the depot.
[[gnu::noinline]] char* made_and_freed() {
  char* p = keep(new char[8]);
  lgt::no_tail_call();
  return p;
}

constexpr int leak_line = __LINE__ + 2;  // the line of the `new` below
[[gnu::noinline]] char* leak_here() {
  char* p = keep(new char[24]);
  lgt::no_tail_call();
  return p;
}

constexpr int thread_leak_line = __LINE__ + 2;
[[gnu::noinline]] char* leak_in_thread() {
  char* p = keep(new char[40]);
  lgt::no_tail_call();
  return p;
}

[[gnu::noinline]] char* freed_elsewhere() {
  char* p = keep(new char[16]);
  lgt::no_tail_call();
  return p;
}

[[gnu::noinline]] char* filler() {
  char* p = keep(new char[8]);
  lgt::no_tail_call();
  return p;
}

// Allocates and frees `n` blocks at filler's one site.
void churn(std::uint32_t n) {
  for (std::uint32_t i = 0; i < n; ++i) delete[] filler();
}

std::uintptr_t stack_word(const void* p) {
  return lg::record_of(lg::header_of(const_cast<void*>(p)))->stack.load(std::memory_order_relaxed);
}

// Checks that one of the reports names the block at `p` at this file's `line`.
void check_reported_at(const lgt::report_sink& sink, const void* p, int line) {
  const leakguard::leaked_block* b = nullptr;
  for (const leakguard::report& r : sink.reports)
    if (!b) b = lgt::find_block(r, p);
  REQUIRE(b != nullptr);
  CHECK_MESSAGE(lgt::site_is(b->site, __FILE__, line), b->site);
}

}  // namespace

TEST_CASE("a block freed inside its scope never has its stack interned") {
  leakguard::scope s;
  const std::size_t before = lg::depot.stacks();
  for (int i = 0; i < 100; ++i) delete[] made_and_freed();
  const std::size_t after = lg::depot.stacks();
  CHECK(after == before);
}

TEST_CASE("a block still live when its thread's stash comes round has its stack interned then, and reported at its line") {
  lgt::report_sink sink;
  char* leaked = nullptr;
  std::size_t before = 0, one_short = 0, round = 0;
  std::uintptr_t stashed = 0;
  {
    leakguard::scope s(leakguard::scope_options{.handler = sink.handler()});
    leaked = leak_here();
    stashed = stack_word(leaked) & lg::stashed;
    churn(1);
    before = lg::depot.stacks();
    churn(lg::stash_entries - 2);
    one_short = lg::depot.stacks();
    churn(1);  // the stash's next entry is the leaked block's
    round = lg::depot.stacks();
  }
  CHECK(stashed != 0);
  CHECK(one_short == before);
  CHECK(round == before + 1);
  CHECK((stack_word(leaked) & lg::stashed) == 0);
  check_reported_at(sink, leaked, leak_line);
  delete[] leaked;
}

TEST_CASE("a verdict interns the stack of a block it reports") {
  lgt::report_sink sink;
  char* leaked = nullptr;
  std::uintptr_t before = 0;
  {
    leakguard::scope s(leakguard::scope_options{.handler = sink.handler()});
    leaked = leak_here();
    before = stack_word(leaked);
  }
  CHECK((before & lg::stashed) != 0);
  CHECK((stack_word(leaked) & lg::stashed) == 0);
  check_reported_at(sink, leaked, leak_line);
  delete[] leaked;
}

TEST_CASE("a block another thread frees leaves its owner's stash: the stash coming round does not intern it") {
  leakguard::scope s;
  churn(1);
  char* p = freed_elsewhere();
  REQUIRE((stack_word(p) & lg::stashed) != 0);
  std::thread([p] { delete[] p; }).join();
  const std::size_t before = lg::depot.stacks();
  churn(lg::stash_entries);
  CHECK(lg::depot.stacks() == before);
}

TEST_CASE("an exited thread's stash goes to the next thread, and its blocks' stacks are still reported at their line") {
  lgt::report_sink sink;
  char* leaked = nullptr;
  lg::stack_stash* first = nullptr;
  lg::stack_stash* second = nullptr;
  {
    leakguard::scope s(leakguard::scope_options{.handler = sink.handler()});
    const leakguard::context ctx = leakguard::current_context();
    std::thread([&] {
      leakguard::adopt a{ctx};
      leaked = leak_in_thread();
      first = lg::tls.stash;
    }).join();
    REQUIRE((stack_word(leaked) & lg::stashed) != 0);
    // The next thread takes that stash over and comes round to the entry.
    std::thread([&] {
      leakguard::adopt a{ctx};
      churn(lg::stash_entries);
      second = lg::tls.stash;
    }).join();
    CHECK((stack_word(leaked) & lg::stashed) == 0);
  }
  CHECK(first != nullptr);
  CHECK(second == first);
  check_reported_at(sink, leaked, thread_leak_line);
  delete[] leaked;
}

TEST_CASE("a stack deeper than a stash entry holds is interned at once") {
  lgt::options_guard restore;
  leakguard::scope s;
  char* shallow = keep(new char[8]);
  leakguard::runtime_options o = leakguard::options();
  o.stack_depth = lg::stash_frames - lg::internal_frames + 1;
  leakguard::set_options(o);
  char* deep = keep(new char[8]);
  CHECK((stack_word(shallow) & lg::stashed) != 0);
  CHECK((stack_word(deep) & lg::stashed) == 0);
  CHECK(reinterpret_cast<const lg::stack_trace*>(stack_word(deep))->user_depth ==
        static_cast<std::uint32_t>(o.stack_depth));
  delete[] shallow;
  delete[] deep;
}

TEST_CASE("in a forked child, an entry claimed by a thread that did not survive the fork can be claimed again") {
  if (lgt::under_asan) {
    MESSAGE("skipped under AddressSanitizer: see fork_test.cpp");
    return;
  }
  lgt::report_sink sink;
  leakguard::scope s(leakguard::scope_options{.handler = sink.handler()});
  char* leaked = leak_here();
  auto& e = *reinterpret_cast<lg::stash_entry*>(stack_word(leaked) & ~lg::stashed);
  const std::uint64_t key = e.key.load();
  REQUIRE(key == lg::record_of(lg::header_of(leaked))->serial);
  e.key.store(key | lg::stash_busy);  // as a thread in the middle of interning it left it
  const lgt::child_result r = lgt::run_in_child([&] {
    const leakguard::report got = s.check();  // interns the leaked block's stack
    LGT_CHILD_CHECK(2, got.blocks().size() == 1);
    LGT_CHILD_CHECK(3, lgt::site_is(got.blocks()[0].site, __FILE__, leak_line));
  });
  CHECK_MESSAGE(r.ok(), r.describe());
  e.key.store(key);
  delete[] leaked;
}

TEST_CASE("threads freeing each other's blocks while their stashes come round and verdicts read them") {
  // The main thread allocates blocks that another thread frees, while the
  // main thread's stash keeps coming round (its claims race the frees) and a
  // third thread's all_threads scopes end (their verdicts' claims race both).
  // The leaks left at the end are reported at their own site.
  constexpr int rounds = lgt::under_tsan ? 3000 : 30000;
  lgt::report_sink sink;
  std::vector<char*> leaked;
  leaked.reserve(rounds / 4096 + 1);  // not a block of the scope
  std::atomic<char*> hand{nullptr};
  std::atomic<bool> done{false};
  std::thread freer([&] {
    for (bool last = false; !last;) {
      last = done.load();
      if (char* p = hand.exchange(nullptr)) delete[] p;
    }
  });
  std::thread checker([&] {
    while (!done.load()) {
      leakguard::scope all(leakguard::scope_options{.all_threads = true, .handler = [](const leakguard::report&) {}});
      std::this_thread::yield();
    }
  });
  {
    leakguard::scope s(leakguard::scope_options{.handler = sink.handler()});
    for (int i = 0; i < rounds; ++i) {
      char* p = freed_elsewhere();
      char* expected = nullptr;
      if (!hand.compare_exchange_strong(expected, p)) delete[] p;
      if (i % 4096 == 0) leaked.push_back(leak_here());
      delete[] filler();
    }
    done = true;
    freer.join();
    checker.join();
  }
  REQUIRE(sink.reports.size() == 1);
  CHECK(sink.reports[0].blocks().size() == leaked.size());
  for (char* p : leaked) {
    check_reported_at(sink, p, leak_line);
    delete[] p;
  }
}
