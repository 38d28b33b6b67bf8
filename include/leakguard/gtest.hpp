// leakguard/gtest.hpp — every GoogleTest test is a leak scope.
//
//   // one .cpp of the test program
//   #include <gtest/gtest.h>
//   #include <leakguard/gtest.hpp>
//   #include <leakguard/global_new.hpp>   // exactly one .cpp: track every new
//
// That is all, with gtest_main or with your own main: including the header
// registers leakguard's event listener during static initialisation. With a
// main of your own that appends listeners of its own, call
//
//   leakguard::gtest::install();   // after your Append(...), before RUN_ALL_TESTS()
//
// so that leakguard's listener is the last one (it must see a test end
// before any printer does). Define LEAKGUARD_GTEST_NO_AUTO_INSTALL before
// the include to register only through install().
//
// Each test (TEST, TEST_F, TEST_P, TYPED_TEST: fixture construction, SetUp,
// the body, TearDown and destruction) runs inside a leakguard::scope
// labelled "Suite.Name". A block it allocated and did not free fails the
// test from the listener's OnTestEnd (GoogleTest allows failures there,
// see "Generating Failures in Listeners"): the failure is printed under the
// test, the test is listed FAILED, the program exits non-zero, and
// --gtest_output=xml/json carry it.
//
//   TEST(Cache, KeepsEntries) { LEAKGUARD_ALLOW_LEAKS(); ... }           // not checked
//   TEST(Registry, Lookup) { LEAKGUARD_FIRST_USE(registry::instance()); ... }
//   static void SetUpTestSuite() { registry::instance(); }  // outside every test's scope
//
// - Threads: the scope has all_threads = true by default (see
//   leakguard::test::settings); leakguard::test::configure({.all_threads =
//   false}) before RUN_ALL_TESTS() attributes only the test's own thread.
// - A test that already has a fatal failure (ASSERT_*, FAIL()) or was
//   skipped left early: what it left behind is not reported.
// - GoogleTest's own bookkeeping inside a test (failure records,
//   SCOPED_TRACE, RecordProperty, per-thread state) is suppressed by
//   function-name patterns (see <leakguard/suppressions.hpp>).
// - gMock: the first NiceMock/NaggyMock/StrictMock of the program builds
//   gMock's table of reactions, inside libgmock (no frame pointers, so no
//   readable stack): create one in SetUpTestSuite() or a global
//   Environment, or that first test is charged with ~100 bytes.
// - Listeners appended after leakguard's run inside each test's scope in
//   OnTestStart; what they keep is charged to the test. install() again
//   moves leakguard's listener last.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "scope.hpp"
#include "test.hpp"

// Outside namespace leakguard, whose `test` namespace would otherwise be
// found before ::testing by unqualified names in GoogleTest's macros.
namespace leakguard_gtest_detail {
inline void fail(const char* file, int line, const char* headline, const char* details) {
  ADD_FAILURE_AT(file, line) << headline << (*details ? "\n" : "") << details;
}
}  // namespace leakguard_gtest_detail

namespace leakguard {

namespace gtest_detail {

inline bool in_test() { return ::testing::UnitTest::GetInstance()->current_test_info() != nullptr; }

// "Suite_Name_Test::TestBody", "gtest_suite_Suite_::Name<int>::TestBody".
inline bool is_test_body(const char* name) { return std::string_view(name).ends_with("::TestBody"); }

// A test's TestResult keeps a record of every assertion that reported
// (SUCCEED(), failures) and every RecordProperty() for the rest of the
// program. GoogleTest is usually built without frame pointers, so the
// stacks of these blocks stop inside it and no suppression can name them:
// they are settled by address before the test's check instead.
inline void ignore_string(const char* s, const void* owner, std::size_t owner_size) {
  const char* o = static_cast<const char*>(owner);
  if (s && !(s >= o && s < o + owner_size)) leakguard::ignore(s);  // heap buffer, not the SSO one
}

inline void ignore_bookkeeping(const ::testing::TestResult& result) {
  const int parts = result.total_part_count();
  if (parts > 0) leakguard::ignore(&result.GetTestPartResult(0));  // the vector's buffer
  for (int i = 0; i < parts; ++i) {
    const ::testing::TestPartResult& r = result.GetTestPartResult(i);
    ignore_string(r.file_name(), &r, sizeof r);
    ignore_string(r.summary(), &r, sizeof r);
    ignore_string(r.message(), &r, sizeof r);
  }
  const int properties = result.test_property_count();
  if (properties > 0) leakguard::ignore(&result.GetTestProperty(0));
  for (int i = 0; i < properties; ++i) {
    const ::testing::TestProperty& p = result.GetTestProperty(i);
    ignore_string(p.key(), &p, sizeof p);
    ignore_string(p.value(), &p, sizeof p);
  }
}

// SCOPED_TRACE pushes onto a per-thread stack whose buffer is kept: build
// the main thread's, deep enough, before the first test. The message fits
// in the string itself: a popped trace's bytes stay in the buffer, which
// thread-specific data keeps, and a pointer to a freed message there would
// retain whatever block is made at its address next.
inline void warm_up_gtest() {
  std::optional<::testing::ScopedTrace> traces[32];
  for (auto& t : traces) t.emplace(__FILE__, __LINE__, "leakguard");
  for (int i = 31; i >= 0; --i) traces[i].reset();
}

class listener : public ::testing::EmptyTestEventListener {
 public:
  void OnTestProgramStart(const ::testing::UnitTest&) override { start(); }
  void OnTestProgramEnd(const ::testing::UnitTest&) override {
    if (!started_) return;
    test::detail::end_run();
    started_ = false;
  }

  void OnTestStart(const ::testing::TestInfo& info) override {
    start();  // in case the listener was installed after the program started
    std::string name = info.test_suite_name();
    name += '.';
    name += info.name();
    test::detail::begin_test(name.c_str(), info.file() ? info.file() : "", info.line());
  }

  void OnTestEnd(const ::testing::TestInfo& info) override {
    const ::testing::TestResult* result = info.result();
    const bool left_early = result && (result->HasFatalFailure() || result->Skipped());
    if (result) ignore_bookkeeping(*result);
    test::detail::end_test(!left_early);
  }

 private:
  void start() {
    if (started_) return;
    started_ = true;
    static constexpr const char* boundaries[] = {"testing::internal::", "testing::Test::", "testing::TestInfo::",
                                                 "testing::TestSuite::", "testing::UnitTest::", "leakguard::",
                                                 nullptr};
    // GoogleTest's and gMock's bookkeeping inside a test.
    static constexpr const char* suppressions[] = {
        "testing::internal::", "testing::TestResult::", "testing::ScopedTrace::", "testing::UnitTest::",
        "testing::TestInfo::", "testing::Test::", "testing::TestSuite::", "testing::Mock::", "/include/gtest/",
        "/include/gmock/",
        // gMock's map of NiceMock/StrictMock reactions keeps its buckets
        "testing::(anonymous namespace)::UninterestingCallReactionMap", nullptr};
    test::detail::framework_hooks h;
    h.in_test = &in_test;
    h.fail = &::leakguard_gtest_detail::fail;
    h.is_test_body = &is_test_body;
    h.frame_boundaries = boundaries;
    h.suppressions = suppressions;
    test::detail::start_run(h);
    warm_up_gtest();
  }

  bool started_ = false;
};

inline listener*& installed() {
  static listener* l = nullptr;
  return l;
}

}  // namespace gtest_detail

namespace gtest {

// Registers leakguard's listener, or moves it to the end of the list if it
// is registered already (it must be last: see the file comment).
inline void install() {
  ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
  gtest_detail::listener*& l = gtest_detail::installed();
  if (l) listeners.Release(l);
  else l = new gtest_detail::listener;
  listeners.Append(l);
}

}  // namespace gtest

}  // namespace leakguard

#ifndef LEAKGUARD_GTEST_NO_AUTO_INSTALL
namespace leakguard::gtest_detail {
// Static initialisation: before any main() runs RUN_ALL_TESTS().
inline const bool auto_installed = (::leakguard::gtest::install(), true);
}  // namespace leakguard::gtest_detail
#endif
