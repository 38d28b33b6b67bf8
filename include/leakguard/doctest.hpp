// leakguard/doctest.hpp — every doctest test case is a leak scope.
//
//   // main.cpp (or any one .cpp of the test program)
//   #define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
//   #include <doctest/doctest.h>
//   #include <leakguard/doctest.hpp>
//   #include <leakguard/global_new.hpp>   // exactly one .cpp: track every new
//
// Each run of a test case (each SUBCASE re-entry is a run) happens inside a
// leakguard::scope labelled with the test's name. A block the run allocated
// and did not free fails the test case through doctest itself: an error at
// the leaking line, under the test's name, with a short stack, counted in
// the summary and the exit code, and seen by every reporter (console, xml,
// junit) as a failed check "leakguard: no leaks". Filters (-tc, -tce, -sf, ...) work as usual.
//
//   TEST_CASE("keeps a cache on purpose" * leakguard::may_leak()) { ... }
//   TEST_SUITE("legacy" * leakguard::may_leak()) { ... }
//   TEST_CASE("uses the registry" * leakguard::warm_up([] { registry::instance(); })) { ... }
//   TEST_CASE("x") { LEAKGUARD_ALLOW_LEAKS(); ... }             // the same, from the body
//   TEST_CASE("y") { LEAKGUARD_FIRST_USE(registry::instance()); ... }
//
// - may_leak(): the test case is not checked.
// - warm_up(f): f runs before the test case's first run, outside its scope:
//   first-use initialisation (a lazily built singleton) is not charged to
//   the test, and everything the test itself leaks still is.
// - Threads: by default the scope has all_threads = true (see
//   leakguard::test::settings): threads the test starts and joins are
//   checked with it. leakguard::test::configure({.all_threads = false})
//   in main (before context.run()) restricts it to the test's own thread.
// - A run that ends with an exception (REQUIRE failing, say) has already
//   failed; what it left behind on the way out is not reported.
// - doctest's own bookkeeping (subcase tracking, captured expressions,
//   INFO/CAPTURE, reporters) is suppressed by the "doctest::" pattern
//   (see <leakguard/suppressions.hpp>).
//
// Works in any one TU of the program (including it in more is harmless).
// How it works: doctest calls listeners at test_case_start but offers no
// hook between a test case's last run and the point where its result is
// counted, so the listener swaps the test case's function pointer for a
// wrapper (and restores it at test_case_end); the wrapper opens the scope,
// runs the test, ends the scope and, on a leak, fails a CHECK at the
// leaking line.
#pragma once

// Whichever doctest the program uses: the one included before this header
// (a vendored "doctest.h" too), else the installed <doctest/doctest.h>.
#ifndef DOCTEST_VERSION
#if __has_include(<doctest/doctest.h>)
#include <doctest/doctest.h>
#else
#error "leakguard/doctest.hpp: include doctest (e.g. \"doctest.h\") before it"
#endif
#endif

#include <cstring>

#include "test.hpp"

#ifndef DOCTEST_CONFIG_DISABLE
// Outside namespace leakguard: doctest's macros name `doctest::` unqualified.
namespace leakguard_doctest_detail {
// A failed CHECK at the leaking line: counted like any failed check (the
// test case fails, the run goes on) and seen by every reporter; junit in
// doctest 2.4 records failed assertions only, not FAIL_CHECK messages.
// The expression reads "leakguard: no leaks", its value is the headline,
// and the sites and stacks are the assertion's logged context.
inline void fail(const char* file, int line, const char* headline, const char* details) {
  if (std::strncmp(headline, "leakguard: ", 11) == 0) headline += 11;
  doctest::detail::ResultBuilder rb(doctest::assertType::DT_CHECK, file, line, "leakguard: no leaks");
  rb.setResult(doctest::detail::Result(false, headline));
  if (!*details) {
    if (rb.log()) DOCTEST_BREAK_INTO_DEBUGGER();
  } else {
    auto context = doctest::detail::MakeContextScope([details](std::ostream* os) {
      leakguard::test::detail::write_text(*os, "\n");
      leakguard::test::detail::write_text(*os, details);
    });
    if (rb.log()) DOCTEST_BREAK_INTO_DEBUGGER();
  }
  rb.react();
}
}  // namespace leakguard_doctest_detail
#endif

namespace leakguard {

#ifndef DOCTEST_CONFIG_DISABLE

// TEST_CASE("name" * leakguard::may_leak()): not checked.
// TEST_SUITE("name" * leakguard::may_leak()): none of its tests are.
struct may_leak {
  void fill(::doctest::detail::TestCase& tc) const {
    test::detail::decorate_test(tc.m_file.c_str(), tc.m_line, {.may_leak = true});
  }
  void fill(::doctest::detail::TestSuite& ts) const { test::detail::decorate_suite(ts.m_test_suite, {.may_leak = true}); }
};

// TEST_CASE("name" * leakguard::warm_up(f)): f() runs once, before
// the test case's first run and outside its scope.
struct warm_up {
  void (*function)();
  explicit warm_up(void (*f)()) : function(f) {}
  void fill(::doctest::detail::TestCase& tc) const {
    test::detail::decorate_test(tc.m_file.c_str(), tc.m_line, {.warm_up = function});
  }
  void fill(::doctest::detail::TestSuite& ts) const { test::detail::decorate_suite(ts.m_test_suite, {.warm_up = function}); }
};

namespace doctest_detail {

struct current_case {
  ::doctest::detail::TestCase* test = nullptr;
  ::doctest::detail::funcType body = nullptr;  // the test's own function
  test::detail::decorations deco;
  bool warmed = false;
};

inline current_case& current() {
  static current_case c;
  return c;
}

inline bool in_test() { return ::doctest::is_running_in_test && current().test != nullptr; }


// Replaces the test case's function for the duration of the test case.
inline void run_checked() {
  current_case& c = current();
  if (c.deco.warm_up && !c.warmed) {
    c.warmed = true;
    c.deco.warm_up();  // outside the scope
  }
  const ::doctest::detail::TestCase& tc = *c.test;
  test::detail::begin_test(tc.m_name ? tc.m_name : "", tc.m_file.c_str(), static_cast<int>(tc.m_line));
  if (c.deco.may_leak) test::allow_leaks();
  try {
    c.body();
  } catch (...) {
    test::detail::end_test(false);
    throw;
  }
  test::detail::end_test(true);
}

// doctest's test functions: "_DOCTEST_ANON_FUNC_12" (TEST_CASE),
// "_DOCTEST_ANON_CLASS_12::test" (TEST_CASE_FIXTURE), and the templated
// "_DOCTEST_ANON_TMP_12<int>".
inline bool is_test_body(const char* name) {
  auto starts = [&](const char* prefix) { return std::strncmp(name, prefix, std::strlen(prefix)) == 0; };
  if (*name == '_') ++name;
  const std::size_t size = std::strlen(name);
  return starts("DOCTEST_ANON_FUNC_") || starts("DOCTEST_ANON_TMP_") ||
         (starts("DOCTEST_ANON_CLASS_") && size >= 6 && std::strcmp(name + size - 6, "::test") == 0);
}

inline void start_run() {
  static constexpr const char* boundaries[] = {"doctest::", "leakguard::doctest_detail::", nullptr};
  // doctest's bookkeeping inside a test: subcase tracking, INFO/CAPTURE
  // contexts, stringified expressions, reporters' state.
  static constexpr const char* suppressions[] = {"doctest::", "/doctest/doctest.h", nullptr};
  test::detail::framework_hooks h;
  h.in_test = &in_test;
  h.fail = &::leakguard_doctest_detail::fail;
  h.frame_boundaries = boundaries;
  h.is_test_body = &is_test_body;
  h.suppressions = suppressions;
  test::detail::start_run(h);
}

class listener : public ::doctest::IReporter {
 public:
  explicit listener(const ::doctest::ContextOptions&) {}

  void report_query(const ::doctest::QueryData&) override {}

  void test_run_start() override {
    start_run();
    // doctest stringifies through one thread-local stringstream that keeps
    // its largest buffer; it grows inside the standard library, where the
    // stack walk cannot see doctest's frames. Grow it now, outside any test.
    test::detail::grow_stream(*::doctest::detail::tlssPush(), 64 * 1024);
    (void)::doctest::detail::tlssPop();
  }

  void test_run_end(const ::doctest::TestRunStats&) override { test::detail::end_run(); }

  void test_case_start(const ::doctest::TestCaseData& in) override {
    // doctest passes its TestCase (a TestCaseData) here.
    auto& tc = const_cast<::doctest::detail::TestCase&>(static_cast<const ::doctest::detail::TestCase&>(in));
    current_case& c = current();
    c = {};
    if (!test::current_settings().enabled || !tc.m_test) return;
    c.deco = test::detail::decorations_of(tc.m_file.c_str(), tc.m_line, tc.m_test_suite);
    c.test = &tc;
    c.body = tc.m_test;
    tc.m_test = &run_checked;
  }

  void test_case_reenter(const ::doctest::TestCaseData&) override {}

  void test_case_end(const ::doctest::CurrentTestCaseStats&) override {
    current_case& c = current();
    if (c.test) c.test->m_test = c.body;
    c = {};
  }

  void test_case_exception(const ::doctest::TestCaseException&) override {}
  void subcase_start(const ::doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const ::doctest::AssertData&) override {}
  void log_message(const ::doctest::MessageData&) override {}
  void test_case_skipped(const ::doctest::TestCaseData&) override {}
};

}  // namespace doctest_detail

#endif  // DOCTEST_CONFIG_DISABLE

}  // namespace leakguard

#ifndef DOCTEST_CONFIG_DISABLE
// Listeners run before reporters; doctest keys them by (priority, name), so
// registering in several TUs registers once.
DOCTEST_REGISTER_LISTENER("leakguard", 1000, ::leakguard::doctest_detail::listener);
#endif
