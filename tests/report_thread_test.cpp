// Reports off the request thread: in on_leak=log mode a scope's verdict is
// judged, symbolized and written on leakguard's thread; flush() and exit
// drain it; a forked child gets a thread of its own.
#include <doctest/doctest.h>
#include <leakguard.hpp>
#include <leakguard/impl/verdict_limits.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "support.hpp"

using lgt::count_of;
using lgt::keep;

namespace {

struct logging_to : lgt::options_guard {
  explicit logging_to(const std::string& path) {
    leakguard::runtime_options o = leakguard::options();
    o.on_leak = leakguard::leak_action::log;
    o.report_path = path;
    o.log_interval = 0;  // every report in full
    leakguard::set_options(o);
  }
};

}  // namespace

TEST_SUITE("report thread") {

TEST_CASE("on_leak=log: a scope's end does not wait for its report to be written") {
  // report_path is a FIFO: opening it for writing blocks until a reader
  // comes. The scope's end must return before anyone reads: only leakguard's
  // thread waits there. (On the scope's thread, this child would hang until
  // its alarm.) Also when the program has set the default handler again,
  // as set_leak_handler() returned it.
  for (const bool handler_set_again : {false, true}) {
    CAPTURE(handler_set_again);
    lgt::temp_file base;
    const std::string fifo = base.path() + ".fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    const lgt::child_result child = lgt::run_in_child([&] {
      logging_to log(fifo);
      if (handler_set_again) leakguard::set_leak_handler(leakguard::set_leak_handler(nullptr));
      const int line = __LINE__ + 3;
      {
        leakguard::scope s("behind a fifo");
        (void)keep(new char[1357]);
      }
      std::fputs("scope ended\n", stderr);
      std::fflush(stderr);
      // Now read what leakguard's thread writes.
      std::FILE* in = std::fopen(fifo.c_str(), "r");
      if (!in) std::_Exit(3);
      std::string text;
      char buf[4096];
      for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, in)) > 0;) text.append(buf, n);
      std::fclose(in);
      std::fprintf(stderr, "read from the fifo:\n%s", text.c_str());
      if (text.find("behind a fifo") == std::string::npos || text.find("1357 bytes") == std::string::npos ||
          text.find("report_thread_test.cpp:" + std::to_string(line)) == std::string::npos)
        std::_Exit(4);
    });
    ::unlink(fifo.c_str());
    INFO(child.describe());
    CHECK(child.ok());
    CHECK(child.err.find("scope ended") < child.err.find("read from the fifo"));
  }
}

TEST_CASE("on_leak=log: flush() writes every pending report, in the order the scopes ended") {
  lgt::temp_file file;
  std::vector<char*> blocks;
  blocks.reserve(64);
  {
    logging_to log(file.path());
    for (int i = 0; i < 40; ++i) {
      const std::string label = "request " + std::to_string(i);
      leakguard::scope_options o;
      o.label = label;
      o.allow_retained = false;  // a stale pointer from an earlier test must not retain one
      leakguard::scope s(o);
      blocks.push_back(keep(new char[100 + i]));
    }
    leakguard::flush();
  }
  const std::string text = file.read();
  std::size_t at = 0;
  for (int i = 0; i < 40; ++i) {
    const std::size_t found = text.find("scope \"request " + std::to_string(i) + "\"", at);
    INFO("request ", i);
    REQUIRE(found != std::string::npos);
    at = found + 1;
  }
  CHECK(count_of(text, "leakguard: scope \"request ") == 40);
  for (char* p : blocks) delete[] p;
}

TEST_CASE("on_leak=log: a flood of leaking scopes waits for leakguard's thread to take them, in batches") {
  // More leaking scopes than the queue holds, ended faster than one thread
  // judges them: past the queue's bound a scope's end waits for room (its
  // verdict then joins a batch with one scan) instead of judging its own.
  constexpr std::size_t scopes = 3 * leakguard::detail::max_queued;
  std::vector<char*> blocks;
  blocks.reserve(scopes);
  const std::uint64_t before = leakguard::detail::verdicts_given_in_place.load();
  {
    logging_to log("/dev/null");
    for (std::size_t i = 0; i < scopes; ++i) {
      leakguard::scope_options o;
      o.allow_retained = false;  // a stale pointer must not retain one
      leakguard::scope s(o);
      blocks.push_back(keep(new char[8]));
    }
    leakguard::flush();
  }
  CHECK(leakguard::detail::verdicts_given_in_place.load() == before);
  for (char* p : blocks) delete[] p;
}

TEST_CASE("on_leak=log: the handler is the one in force when the scope ended") {
  lgt::temp_file file;
  char* block = nullptr;
  {
    logging_to log(file.path());
    {
      lgt::leak_handler_guard handler(leakguard::log_leak);
      leakguard::scope s(leakguard::scope_options{.label = "logged later", .allow_retained = false});
      block = keep(new char[2021]);
    }
    lgt::capture_reports captured;  // set after the scope ended: must not get its report
    leakguard::flush();
    CHECK(captured.size() == 0);
  }
  CHECK(count_of(file.read(), "scope \"logged later\"") == 1);
  delete[] block;
}

TEST_CASE("on_leak=log: reports still queued at exit are written") {
  lgt::temp_file file;
  const std::string path = file.path();
  const lgt::child_result child = lgt::run_in_child([&] {
    logging_to log(path);
    for (int i = 0; i < 25; ++i) {
      leakguard::scope s("before exit");
      (void)keep(new char[64]);
    }
    std::exit(0);  // atexit: leakguard drains its queue
  });
  INFO(child.describe());
  CHECK(child.ok());
  CHECK(count_of(file.read(), "scope \"before exit\"") == 25);
}

// ThreadSanitizer does not allow a new thread after a multithreaded fork.
TEST_CASE("on_leak=log: a forked child reports through a thread of its own" * doctest::skip(lgt::under_tsan)) {
  lgt::temp_file file;
  char* block = nullptr;
  {
    logging_to log(file.path());
    {  // the parent's thread runs
      leakguard::scope s(leakguard::scope_options{.label = "in the parent", .allow_retained = false});
      block = keep(new char[11]);
    }
    leakguard::flush();
    const lgt::child_result child = lgt::run_in_child([] {
      {
        leakguard::scope s("in the child");
        (void)keep(new char[12]);
      }
      leakguard::flush();
      std::fputs("child flushed\n", stderr);
    });
    INFO(child.describe());
    CHECK(child.ok());
  }
  const std::string text = file.read();
  CHECK(count_of(text, "scope \"in the parent\"") == 1);
  CHECK(count_of(text, "scope \"in the child\"") == 1);
  delete[] block;
}

TEST_CASE("other handlers are still called at the scope's end, on its thread") {
  lgt::capture_reports captured;  // a user's handler (tests fail the test this way)
  lgt::options_guard restore;
  leakguard::runtime_options o = leakguard::options();
  o.on_leak = leakguard::leak_action::log;
  leakguard::set_options(o);
  char* block = nullptr;
  {
    leakguard::scope s(leakguard::scope_options{.allow_retained = false});
    block = keep(new char[31]);
  }
  CHECK(captured.size() == 1);  // no flush() needed
  delete[] block;
}

}  // TEST_SUITE
