// tests/zones_test.cpp — ignore_scope, ignore(p), no_alloc_scope and budgets.
#include <doctest/doctest.h>
#include <leakguard.hpp>

#include <semaphore>
#include <thread>

#include "support.hpp"

using lgt::keep;

TEST_SUITE("zones") {

// ---- ignore_scope / LEAKGUARD_IGNORE_SCOPE -------------------------------------------

TEST_CASE("blocks allocated inside an ignore_scope are never reported") {
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::scope s("with ignore");
    {
      leakguard::ignore_scope ig;
      p = keep(new int(1));
    }
  }
  CHECK(captured.reports.empty());
  delete p;
}

TEST_CASE("LEAKGUARD_IGNORE_SCOPE ignores to the end of the enclosing block, then reporting resumes") {
  lgt::capture_reports captured;
  int* ignored = nullptr;
  int* reported = nullptr;
  {
    leakguard::scope s("macro");
    {
      LEAKGUARD_IGNORE_SCOPE();
      ignored = keep(new int(1));
    }
    reported = keep(new int(2));
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].leaked_blocks() == 1);
  CHECK(lgt::find_block(captured.reports[0], reported) != nullptr);
  CHECK(lgt::find_block(captured.reports[0], ignored) == nullptr);
  delete ignored;
  delete reported;
}

TEST_CASE("an ignore_scope's blocks are ignored by every enclosing scope") {
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::scope outer("outer");
    {
      leakguard::scope inner("inner");
      leakguard::ignore_scope ig;
      p = keep(new int(1));
    }
  }
  CHECK(captured.reports.empty());
  delete p;
}

TEST_CASE("an ignore_scope opened inside a scope keeps ignoring after a nested scope ends") {
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::scope s("outer");
    leakguard::ignore_scope ig;
    { leakguard::scope inner("inner"); }
    p = keep(new int(1));
  }
  CHECK(captured.reports.empty());
  delete p;
}

TEST_CASE("an ignore_scope active before a scope opens still ignores inside it") {
  // "one-time initialisation belongs in an ignore_scope": the ignore_scope may
  // wrap a whole block that opens scopes itself.
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::ignore_scope ig;
    leakguard::scope s("inside ignore");
    p = keep(new int(1));
  }
  CHECK(captured.reports.empty());
  delete p;
}

// ---- ignore(p) ----------------------------------------------------------------

TEST_CASE("ignore(p) removes exactly that live block from the report") {
  lgt::capture_reports captured;
  int* ignored = nullptr;
  int* reported = nullptr;
  {
    leakguard::scope s("ignore one");
    ignored = keep(new int(1));
    reported = keep(new int(2));
    leakguard::ignore(ignored);
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].leaked_blocks() == 1);
  CHECK(captured.reports[0].leaked_bytes() == sizeof(int));
  CHECK(lgt::find_block(captured.reports[0], reported) != nullptr);
  CHECK(lgt::find_block(captured.reports[0], ignored) == nullptr);
  delete ignored;
  delete reported;
}

TEST_CASE("ignore(p) on an inner block also hides it from the outer scope") {
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::scope outer("outer");
    {
      leakguard::scope inner("inner");
      p = keep(new int(1));
      leakguard::ignore(p);
    }
  }
  CHECK(captured.reports.empty());
  delete p;
}

TEST_CASE("ignore(p) then delete p: freed normally, no misuse, scope clean") {
  lgt::capture_reports captured;
  lgt::capture_misuse misuses;
  {
    leakguard::scope s;
    int* p = keep(new int(1));
    leakguard::ignore(p);
    delete p;
  }
  CHECK(captured.reports.empty());
  CHECK(misuses.events.empty());
}

TEST_CASE("ignore(nullptr) and ignore of an untracked block are harmless") {
  lgt::capture_reports captured;
  lgt::capture_misuse misuses;
  int* untracked = keep(new int(1));
  leakguard::ignore(nullptr);
  leakguard::ignore(untracked);
  {
    leakguard::scope s;
    leakguard::ignore(nullptr);
    leakguard::ignore(untracked);
  }
  delete untracked;
  CHECK(captured.reports.empty());
  CHECK(misuses.events.empty());
}

TEST_CASE("ignore() of a pointer leakguard did not allocate does not crash") {
  auto result = lgt::run_in_child([] {
    alignas(64) static unsigned char storage[256] = {};
    int local = 0;
    lgt::capture_reports captured;
    {
      leakguard::scope s;
      leakguard::ignore(storage + 64);
      leakguard::ignore(&local);
    }
    LGT_CHILD_CHECK(3, captured.reports.empty());
  });
  INFO(result.describe());
  CHECK(result.ok());
}

// ---- no_alloc_scope / LEAKGUARD_NO_ALLOC ------------------------------------------

TEST_CASE("a no_alloc_scope without allocations calls no handler") {
  lgt::capture_reports captured;
  int* before = keep(new int(1));
  {
    leakguard::no_alloc_scope na;
    delete before;  // freeing is not allocating
  }
  CHECK(captured.reports.empty());
}

TEST_CASE("an allocation inside a no_alloc_scope is a violation reported when it ends") {
  lgt::capture_reports captured;
  int scope_line = 0, alloc_line = 0;
  std::size_t reports_while_active = 99;
  {
    scope_line = __LINE__ + 1;
    leakguard::no_alloc_scope na;
    alloc_line = __LINE__ + 1;
    int* p = keep(new int(1));
    delete p;
    reports_while_active = captured.reports.size();
  }
  CHECK(reports_while_active == 0);
  REQUIRE(captured.reports.size() == 1);
  const leakguard::report& r = captured.reports[0];
  CHECK_FALSE(r.empty());
  CHECK(r.leaked_blocks() == 0);
  CHECK(r.label() == "no_alloc_scope");
  CHECK(r.where().line() == static_cast<unsigned>(scope_line));
  REQUIRE(r.violations().size() == 1);
  const leakguard::violation& v = r.violations()[0];
  CHECK(v.kind == leakguard::violation_kind::no_alloc);
  CHECK(v.size == sizeof(int));
  INFO("site: ", v.site);
  CHECK(lgt::site_is(v.site, __FILE__, alloc_line));
  CHECK_FALSE(v.message.empty());
  CHECK_FALSE(v.stack.empty());
  CHECK(lgt::find_file_line(r.to_text(), __FILE__, alloc_line) != std::string::npos);
}

TEST_CASE("LEAKGUARD_NO_ALLOC: several allocations give one handler call naming the first") {
  lgt::capture_reports captured;
  int first_line = 0;
  {
    LEAKGUARD_NO_ALLOC();
    first_line = __LINE__ + 1;
    char* a = keep(new char[16]);
    char* b = keep(new char[32]);
    delete[] a;
    delete[] b;
  }
  REQUIRE(captured.reports.size() == 1);
  REQUIRE_FALSE(captured.reports[0].violations().empty());
  const auto& v = captured.reports[0].violations()[0];
  CHECK(v.kind == leakguard::violation_kind::no_alloc);
  CHECK(v.size == 16);
  CHECK(lgt::site_is(v.site, __FILE__, first_line));
}

TEST_CASE("a no_alloc_scope nested in a scope: the violation goes to the no_alloc_scope's report only") {
  lgt::capture_reports captured;
  {
    leakguard::scope outer("outer");
    {
      leakguard::no_alloc_scope na;
      delete keep(new int(1));
    }
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].label() == "no_alloc_scope");
  CHECK(captured.reports[0].violations().size() == 1);
}

TEST_CASE("a block allocated inside a no_alloc_scope nested in a scope and kept is the scope's leak") {
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::scope outer("outer");
    {
      leakguard::no_alloc_scope na;
      p = keep(new int(1));
    }
  }
  REQUIRE(captured.reports.size() == 2);
  CHECK(captured.reports[0].label() == "no_alloc_scope");
  CHECK(captured.reports[0].violations().size() == 1);
  CHECK(captured.reports[1].label() == "outer");
  CHECK(captured.reports[1].violations().empty());
  CHECK(lgt::find_block(captured.reports[1], p) != nullptr);
  delete p;
}

TEST_CASE("a no_alloc_scope on one thread does not flag another thread's allocations") {
  lgt::capture_reports captured;
  std::binary_semaphore go{0}, done{0};
  std::thread worker([&] {
    go.acquire();
    delete keep(new int(1));
    done.release();
  });
  {
    leakguard::no_alloc_scope na;
    go.release();
    done.acquire();
  }
  worker.join();
  CHECK(captured.reports.empty());
}

TEST_CASE("an allocation inside an ignore_scope inside a no_alloc_scope: contract says any allocation is a violation") {
  lgt::capture_reports captured;
  {
    leakguard::no_alloc_scope na;
    leakguard::ignore_scope ig;
    delete keep(new int(1));
  }
  CHECK(captured.reports.size() == 1);
}

// ---- budgets ----------------------------------------------------------------------

TEST_CASE("max_allocations = N allows exactly N allocations") {
  lgt::capture_reports captured;
  {
    leakguard::scope s(leakguard::scope_options{.max_allocations = 3});
    for (int i = 0; i < 3; ++i) delete keep(new int(i));
  }
  CHECK(captured.reports.empty());
}

TEST_CASE("max_allocations counts allocations, not live blocks: the N+1th is a violation") {
  lgt::capture_reports captured;
  int scope_line = 0, line = 0;
  {
    scope_line = __LINE__ + 1;
    leakguard::scope s(leakguard::scope_options{.label = "budget", .max_allocations = 2});
    delete keep(new int(1));
    delete keep(new int(2));
    line = __LINE__ + 1;
    delete[] keep(new char[24]);
  }
  REQUIRE(captured.reports.size() == 1);
  const leakguard::report& r = captured.reports[0];
  CHECK_FALSE(r.empty());
  CHECK(r.leaked_blocks() == 0);
  CHECK(r.label() == "budget");
  CHECK(r.where().line() == static_cast<unsigned>(scope_line));
  REQUIRE(r.violations().size() == 1);
  const leakguard::violation& v = r.violations()[0];
  CHECK(v.kind == leakguard::violation_kind::allocation_budget);
  CHECK(v.size == 24);
  INFO("site: ", v.site, "  message: ", v.message);
  CHECK(lgt::site_is(v.site, __FILE__, line));
  CHECK(lgt::contains(v.message, "max_allocations"));
  CHECK(lgt::contains(v.message, "2"));
  CHECK(lgt::find_file_line(r.to_text(), __FILE__, line) != std::string::npos);
}

TEST_CASE("max_allocations = 0 makes the first allocation a violation") {
  lgt::capture_reports captured;
  {
    leakguard::scope s(leakguard::scope_options{.max_allocations = 0});
    delete keep(new int(1));
  }
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].violations().size() == 1);
  CHECK(captured.reports[0].violations()[0].kind == leakguard::violation_kind::allocation_budget);
}

TEST_CASE("a budget exceeded many times is reported once, with the first offender") {
  lgt::capture_reports captured;
  int line = 0;
  {
    leakguard::scope s(leakguard::scope_options{.max_allocations = 1});
    delete keep(new int(0));
    line = __LINE__ + 1;
    delete[] keep(new char[11]);
    for (int i = 0; i < 5; ++i) delete[] keep(new char[12]);
  }
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].violations().size() == 1);
  const auto& v = captured.reports[0].violations()[0];
  CHECK(v.size == 11);
  CHECK(lgt::site_is(v.site, __FILE__, line));
}

TEST_CASE("max_bytes = B allows B bytes in total") {
  lgt::capture_reports captured;
  {
    leakguard::scope s(leakguard::scope_options{.max_bytes = 100});
    delete[] keep(new char[60]);
    delete[] keep(new char[40]);
  }
  CHECK(captured.reports.empty());
}

TEST_CASE("max_bytes counts bytes allocated in total, not live: going over is a byte_budget violation") {
  lgt::capture_reports captured;
  int line = 0;
  {
    leakguard::scope s(leakguard::scope_options{.max_bytes = 100});
    delete[] keep(new char[60]);
    line = __LINE__ + 1;
    delete[] keep(new char[41]);
  }
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].violations().size() == 1);
  const auto& v = captured.reports[0].violations()[0];
  CHECK(v.kind == leakguard::violation_kind::byte_budget);
  CHECK(v.size == 41);
  INFO("message: ", v.message);
  CHECK(lgt::site_is(v.site, __FILE__, line));
  CHECK(lgt::contains(v.message, "max_bytes"));
  CHECK(captured.reports[0].leaked_blocks() == 0);
}

TEST_CASE("a leak and a budget violation in one scope: one handler call carrying both") {
  lgt::capture_reports captured;
  int* leaked = nullptr;
  {
    leakguard::scope s(leakguard::scope_options{.max_allocations = 1});
    leaked = keep(new int(1));
    delete keep(new int(2));
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].leaked_blocks() == 1);
  CHECK(captured.reports[0].violations().size() == 1);
  CHECK(lgt::find_block(captured.reports[0], leaked) != nullptr);
  delete leaked;
}

TEST_CASE("a violation in an inner budget is not the outer scope's violation") {
  lgt::capture_reports captured;
  {
    leakguard::scope outer("outer");
    {
      leakguard::scope inner(leakguard::scope_options{.label = "inner", .max_allocations = 0});
      delete keep(new int(1));
    }
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].label() == "inner");
}

TEST_CASE("an outer budget counts the inner scope's allocations") {
  lgt::capture_reports captured;
  {
    leakguard::scope outer(leakguard::scope_options{.label = "outer", .max_allocations = 1});
    {
      leakguard::scope inner("inner");
      delete keep(new int(1));
      delete keep(new int(2));
    }
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].label() == "outer");
  REQUIRE(captured.reports[0].violations().size() == 1);
  CHECK(captured.reports[0].violations()[0].kind == leakguard::violation_kind::allocation_budget);
}

TEST_CASE("with both budgets set, the first offending allocation is the one reported") {
  lgt::capture_reports captured;
  int line = 0;
  {
    leakguard::scope s(leakguard::scope_options{.max_allocations = 2, .max_bytes = 10});
    line = __LINE__ + 1;
    delete[] keep(new char[16]);  // over the byte budget first
    delete[] keep(new char[1]);
    delete[] keep(new char[1]);   // then over the allocation budget
  }
  REQUIRE(captured.reports.size() == 1);
  const auto violations = captured.reports[0].violations();
  REQUIRE_FALSE(violations.empty());
  CHECK(violations[0].kind == leakguard::violation_kind::byte_budget);
  CHECK(violations[0].size == 16);
  CHECK(lgt::site_is(violations[0].site, __FILE__, line));
}

TEST_CASE("a violation report's to_json is valid and names the offending site") {
  lgt::capture_reports captured;
  int line = 0;
  {
    leakguard::scope s(leakguard::scope_options{.label = "json budget", .max_allocations = 0});
    line = __LINE__ + 1;
    delete keep(new int(1));
  }
  REQUIRE(captured.reports.size() == 1);
  const std::string json = captured.reports[0].to_json();
  lgt::json_parser parser(json);
  const auto doc = parser.parse_document();
  INFO("json: ", json, "\nerror: ", parser.error());
  REQUIRE(doc.has_value());
  CHECK(lgt::json_has_string(*doc, "json budget"));
  CHECK(lgt::json_any_string(*doc, [&](const std::string& s) { return lgt::site_is(s, __FILE__, line); }));
}

TEST_CASE("a budget violation with the default handler aborts and names the site") {
  const int line = __LINE__ + 5;
  auto result = lgt::run_in_child([] {
    leakguard::set_leak_handler(leakguard::abort_on_leak);
    leakguard::set_options(leakguard::runtime_options{});
    leakguard::scope s(leakguard::scope_options{.label = "tight", .max_allocations = 0});
    delete keep(new int(1));
  });
  INFO(result.describe());
  CHECK(result.aborted());
  CHECK(lgt::find_file_line(result.err, __FILE__, line) != std::string::npos);
}

}  // TEST_SUITE
