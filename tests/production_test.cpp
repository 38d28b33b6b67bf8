// Production features: heap sampling, aggregated log_leak, per-site totals.
#include <doctest/doctest.h>
#include <leakguard.hpp>

#include <chrono>
#include <cstdlib>
#include <source_location>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using lgt::count_of;
using lgt::keep;

namespace {

// Sets options for the test, restoring them after.
struct with_options : lgt::options_guard {
  template <class F>
  explicit with_options(F change) {
    leakguard::runtime_options o = leakguard::options();
    change(o);
    leakguard::set_options(o);
  }
};

}  // namespace

TEST_SUITE("production") {

int deep_line = 0;
// Allocates N calls down, each a function of its own: a full stack has more
// frames than the few every block keeps.
template <int N>
__attribute__((noinline)) void* allocate_deep() {
  void* p;
  if constexpr (N == 0) {
    deep_line = __LINE__ + 1;
    p = ::operator new(64);
  } else {
    p = allocate_deep<N - 1>();
  }
  asm volatile("" ::: "memory");  // no tail call
  return p;
}

TEST_CASE("sampling: counts stay exact, every leak is reported with its line, only some blocks have full stacks") {
  with_options sampled([](auto& o) {
    o.sample_bytes = 4096;
    o.stack_depth = 32;  // a full stack reaches main, past the few frames every block keeps
  });
  lgt::capture_reports captured;
  std::vector<void*> blocks;
  blocks.reserve(1000);
  leakguard::scope_stats st;
  {
    // Strict: this is about sampling, not reachability (a stale pointer
    // left in a global by an earlier test must not make a block retained).
    leakguard::scope s(leakguard::scope_options{.allow_retained = false});
    for (int i = 0; i < 1000; ++i) blocks.push_back(keep(allocate_deep<10>()));
    st = s.stats();
  }
  CHECK(st.allocations == 1000);
  CHECK(st.live_blocks == 1000);
  REQUIRE(captured.reports.size() == 1);
  const leakguard::report& r = captured.reports[0];
  CHECK(r.leaked_blocks() == 1000);
  std::size_t full = 0, at_line = 0;
  for (const leakguard::leaked_block& b : r.blocks()) {
    if (lgt::return_addresses(b.stack) > 6) ++full;
    at_line += lgt::site_is(b.site, __FILE__, deep_line);
  }
  CHECK(at_line == 1000);  // sampled or not, every block names its line
  // 64,000 bytes at one sample per 4096 on average: about 16 samples.
  CHECK(full >= 4);
  CHECK(full <= 60);
  for (void* p : blocks) ::operator delete(p);
}

TEST_CASE("two leak lines of one scope keep their own sites with sampling and with stack capture off") {
  for (const int mode : {0, 1}) {
    with_options few([&](auto& o) {
      o.stack_depth = mode == 0 ? 0 : 16;
      o.sample_bytes = mode == 0 ? 0 : std::size_t{1} << 30;  // mode 1: (almost) nothing sampled
    });
    leakguard::reset_leak_sites();
    lgt::capture_reports captured;
    std::vector<void*> blocks;
    blocks.reserve(8);
    int first = 0, second = 0;
    for (int i = 0; i < 2; ++i) {
      leakguard::scope s(leakguard::scope_options{.label = "two lines", .allow_retained = false});
      first = __LINE__ + 1;
      blocks.push_back(keep(::operator new(24)));
      second = __LINE__ + 1;
      blocks.push_back(keep(::operator new(40)));
    }
    INFO("mode ", mode);
    const std::vector<leakguard::site_totals> sites = leakguard::leak_sites();
    REQUIRE(sites.size() == 2);
    for (const leakguard::site_totals& t : sites) {
      INFO(t.site);
      CHECK((lgt::site_is(t.site, __FILE__, first) || lgt::site_is(t.site, __FILE__, second)));
      CHECK(t.reports == 2);
      CHECK(t.bytes == (lgt::site_is(t.site, __FILE__, first) ? 48u : 80u));
    }
    for (void* p : blocks) ::operator delete(p);
    leakguard::reset_leak_sites();
  }
}

TEST_CASE("sampling off (sample_bytes = 0): every tracked block has a stack") {
  with_options every([](auto& o) { o.sample_bytes = 0; });
  lgt::capture_reports captured;
  std::vector<void*> blocks;
  blocks.reserve(50);
  {
    leakguard::scope s;
    for (int i = 0; i < 50; ++i) blocks.push_back(keep(::operator new(64)));
  }
  REQUIRE(captured.reports.size() == 1);
  std::size_t with_stack = 0;
  for (const leakguard::leaked_block& b : captured.reports[0].blocks()) with_stack += !b.stack.empty();
  CHECK(with_stack == 50);
  for (void* p : blocks) ::operator delete(p);
}

TEST_CASE("leak_sites: per-site totals of every reported leak") {
  leakguard::reset_leak_sites();
  lgt::capture_reports captured;
  std::vector<void*> blocks;
  blocks.reserve(8);  // no vector growth inside the scopes
  int line = 0;
  for (int i = 0; i < 3; ++i) {
    leakguard::scope s;
    line = __LINE__ + 1;
    blocks.push_back(keep(::operator new(100)));
  }
  const std::vector<leakguard::site_totals> sites = leakguard::leak_sites();
  REQUIRE(sites.size() == 1);
  CHECK(lgt::site_is(sites[0].site, __FILE__, line));
  CHECK(sites[0].reports == 3);
  CHECK(sites[0].blocks == 3);
  CHECK(sites[0].bytes == 300);
  CHECK(sites[0].first_seen <= sites[0].last_seen);
  leakguard::reset_leak_sites();
  CHECK(leakguard::leak_sites().empty());
  for (void* p : blocks) ::operator delete(p);
}

TEST_CASE("log_leak: a site's first leak in full, repeats summed into one line per interval") {
  lgt::temp_file log;
  leakguard::reset_leak_sites();
  std::vector<void*> blocks;
  blocks.reserve(32);  // no vector growth inside the scopes
  {
    with_options logging([&](auto& o) {
      o.report_path = log.path();
      o.log_interval = 3600;  // no summary during this test
    });
    lgt::leak_handler_guard handler(leakguard::log_leak);
    for (int i = 0; i < 20; ++i) {
      leakguard::scope s("request");
      blocks.push_back(keep(::operator new(32)));
    }
    leakguard::flush();  // on_leak=log: reports are written on leakguard's thread
  }
  const std::string text = log.read();
  CHECK(count_of(text, "leakguard: scope \"request\"") == 1);  // printed once, not 20 times
  CHECK(count_of(text, "32 bytes in 1 block allocated at") == 1);
  const std::vector<leakguard::site_totals> sites = leakguard::leak_sites();
  REQUIRE(sites.size() == 1);
  CHECK(sites[0].reports == 20);  // all counted
  for (void* p : blocks) ::operator delete(p);
  leakguard::reset_leak_sites();
}

TEST_CASE("log_leak: the repeats come out as one summary line per site when the interval ends, without a later leak") {
  lgt::temp_file log;
  std::vector<void*> blocks;
  blocks.reserve(32);  // no vector growth inside the scopes
  {
    // The first report loads the debug info, which can take longer than the
    // interval on a loaded machine: not inside the timed part.
    lgt::capture_reports warm_up;
    leakguard::scope s("warm-up");
    blocks.push_back(keep(::operator new(32)));
  }
  leakguard::reset_leak_sites();  // the interval starts here
  {
    with_options logging([&](auto& o) {
      o.report_path = log.path();
      o.log_interval = 1;
    });
    lgt::leak_handler_guard handler(leakguard::log_leak);
    auto leaky_request = [&] {  // one site for every leak
      leakguard::scope_options strict;  // a stale pointer to `blocks` must not make them retained
      strict.label = "request";
      strict.allow_retained = false;
      leakguard::scope s(strict);
      blocks.push_back(keep(::operator new(32)));
    };
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) leaky_request();  // the first in full, 4 pending
    // leakguard's thread writes the summary when the interval ends.
    auto wait_for_summaries = [&](std::size_t n) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (count_of(log.read(), "leaks at already reported sites") < n && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    };
    wait_for_summaries(1);
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(900));
    leaky_request();  // a repeat right after a summary waits for the next interval
    CHECK(count_of(log.read(), "leaks at already reported sites") == 1);
    wait_for_summaries(2);
  }
  const std::string text = log.read();
  CHECK(count_of(text, "leakguard: scope \"request\"") == 1);
  CHECK(count_of(text, "leaks at already reported sites") == 2);
  CHECK(count_of(text, "128 bytes in 4 blocks from 4 scopes") == 1);  // the 4 repeats
  CHECK(count_of(text, "32 bytes in 1 block from 1 scope (") == 1);    // the 5th
  for (void* p : blocks) ::operator delete(p);
  leakguard::reset_leak_sites();
}

// The case an independent check found: the ledger counted what other
// handlers had seen as "already printed", so log_leak printed nothing.
TEST_CASE("log_leak: the first report it receives for a site is printed in full, whatever other handlers saw") {
  lgt::temp_file log;
  leakguard::reset_leak_sites();
  std::vector<void*> blocks;
  blocks.reserve(8);
  auto leak_here = [&] {  // one site for every leak
    // Strict: a stale pointer that a root may hold to the block (the open
    // problem of conservative scans) must not make it retained and unreported.
    leakguard::scope_options o;
    o.label = "request";
    o.allow_retained = false;
    leakguard::scope s(o);
    blocks.push_back(keep(::operator new(2929)));
  };
  {
    with_options logging([&](auto& o) {
      o.report_path = log.path();
      o.log_interval = 3600;
    });
    {
      lgt::capture_reports own;  // the user's own handler sees the first two
      leak_here();
      leak_here();
      CHECK(own.size() == 2);
    }
    lgt::leak_handler_guard handler(leakguard::log_leak);
    leak_here();
    leakguard::flush();  // on_leak=log: reports are written on leakguard's thread
  }
  const std::string text = log.read();
  CHECK(count_of(text, "leakguard: scope \"request\"") == 1);
  CHECK(count_of(text, "2929 bytes in 1 ") == 1);  // "block" or, for a stale pointer, "retained block"
  for (void* p : blocks) ::operator delete(p);
  leakguard::reset_leak_sites();
}

TEST_CASE("log_leak: called by a user's handler, it prints each site once and counts the leaks in leak_sites") {
  lgt::temp_file log;
  leakguard::reset_leak_sites();
  with_options logging([&](auto& o) {
    o.report_path = log.path();
    o.log_interval = 3600;
  });
  leakguard::leaked_block b;
  b.size = 16;
  b.site = "handmade.cpp:7";
  const leakguard::report r("handmade", std::source_location::current(), {b});
  leakguard::log_leak(r);
  leakguard::log_leak(r);
  CHECK(count_of(log.read(), "leakguard: scope \"handmade\"") == 1);
  const std::vector<leakguard::site_totals> sites = leakguard::leak_sites();
  REQUIRE(sites.size() == 1);
  CHECK(sites[0].reports == 2);
  CHECK(sites[0].bytes == 32);
  leakguard::reset_leak_sites();
}

TEST_CASE("log_leak: summed leaks still pending at exit are written then, not lost") {
  lgt::temp_file log;
  const lgt::child_result child = lgt::run_in_child([&] {
    leakguard::runtime_options o = leakguard::options();
    o.report_path = log.path();
    o.log_interval = 3600;  // no summary would be due before exit
    leakguard::set_options(o);
    leakguard::set_leak_handler(leakguard::log_leak);
    for (int i = 0; i < 4; ++i) {
      leakguard::scope s("request");
      keep(::operator new(48));
    }
    std::exit(0);  // atexit handlers run
  });
  REQUIRE_MESSAGE(child.ok(), child.describe());
  const std::string text = log.read();
  CHECK(count_of(text, "leakguard: scope \"request\"") == 1);          // the first in full
  CHECK(count_of(text, "144 bytes in 3 blocks from 3 scopes") == 1);  // the 3 repeats, at exit
}

TEST_CASE("log_leak: flush() writes the pending sums now, whatever the interval") {
  lgt::temp_file log;
  leakguard::reset_leak_sites();
  std::vector<void*> blocks;
  blocks.reserve(8);
  {
    with_options logging([&](auto& o) {
      o.report_path = log.path();
      o.log_interval = 3600;
    });
    lgt::leak_handler_guard handler(leakguard::log_leak);
    for (int i = 0; i < 4; ++i) {
      leakguard::scope_options strict;
      strict.label = "request";
      strict.allow_retained = false;
      leakguard::scope s(strict);
      blocks.push_back(keep(::operator new(40)));
    }
    CHECK(count_of(log.read(), "leaks at already reported sites") == 0);
    leakguard::flush();
  }
  const std::string text = log.read();
  CHECK(count_of(text, "leakguard: scope \"request\"") == 1);
  CHECK(count_of(text, "120 bytes in 3 blocks from 3 scopes") == 1);
  for (void* p : blocks) ::operator delete(p);
  leakguard::reset_leak_sites();
}

TEST_CASE("log_leak: log_interval = 0 prints every report") {
  lgt::temp_file log;
  leakguard::reset_leak_sites();
  std::vector<void*> blocks;
  blocks.reserve(32);  // no vector growth inside the scopes
  {
    with_options logging([&](auto& o) {
      o.report_path = log.path();
      o.log_interval = 0;
    });
    lgt::leak_handler_guard handler(leakguard::log_leak);
    for (int i = 0; i < 4; ++i) {
      leakguard::scope s("request");
      blocks.push_back(keep(::operator new(32)));
    }
    leakguard::flush();  // on_leak=log: reports are written on leakguard's thread
  }
  CHECK(count_of(log.read(), "leakguard: scope \"request\"") == 4);
  for (void* p : blocks) ::operator delete(p);
  leakguard::reset_leak_sites();
}

}  // TEST_SUITE
