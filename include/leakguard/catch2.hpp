// leakguard/catch2.hpp — every Catch2 test case is a leak scope.
//
//   // the .cpp that defines Catch2's main (v2: the single header)
//   #define CATCH_CONFIG_MAIN
//   #include <catch2/catch.hpp>
//   #include <leakguard/catch2.hpp>
//   #include <leakguard/global_new.hpp>   // exactly one .cpp: track every new
//
// Catch2 v3 (detected by CATCH_VERSION_MAJOR) works the same way, after
// <catch2/catch_test_macros.hpp> (or the amalgamated "catch_amalgamated.hpp"),
// with Catch2::Catch2WithMain or a main of your own. In v2, reporters and
// listeners are visible only in the .cpp that defines CATCH_CONFIG_MAIN or
// CATCH_CONFIG_RUNNER, or after #define CATCH_CONFIG_EXTERNAL_INTERFACES:
// include this header there.
//
// Each run of a test case (one path through its SECTIONs; Catch2 runs the
// body once per leaf section) happens inside a leakguard::scope labelled
// with the test's name. A block the run allocated and did not free fails
// the test case through Catch2 itself: a failed assertion at the leaking
// line with the report as its message, counted in the totals and the exit
// code, and seen by every reporter (console, compact, xml, junit, ...).
//
//   TEST_CASE("keeps a cache on purpose", "[mayleak]") { ... }   // not checked
//   TEST_CASE("x") { LEAKGUARD_ALLOW_LEAKS(); ... }              // the same, from the body
//   TEST_CASE("y") { LEAKGUARD_FIRST_USE(registry::instance()); ... }
//
// - The opt-out tag is [mayleak], not [!mayleak]: Catch2 rejects tags that
//   start with '!' unless they are its own.
// - Threads: by default the scope has all_threads = true (see
//   leakguard::test::settings); leakguard::test::configure({.all_threads =
//   false}) in main restricts it to the test's own thread.
// - A run that left early (a failed REQUIRE, an unexpected exception, a
//   fatal signal, SKIP) has already failed or was skipped: what it left
//   behind on the way out is not reported.
// - Catch2's own bookkeeping inside a test (section tracking, captured
//   expressions, INFO/CAPTURE, redirected output) is suppressed by the
//   "Catch::" pattern (see <leakguard/suppressions.hpp>). That needs
//   Catch2's frames in the stack: build Catch2 v3's library with
//   -fno-omit-frame-pointer, as your own code.
//
// How it works: Catch2 reports the start and end of each run as the
// test-case-level section, to listeners before reporters, and the run's
// result is totalled after that section ends; so the listener opens the
// scope when that section starts and, when it ends, checks the scope and
// records any leak as an assertion of the test case.
#pragma once

// v2's single header defines the version; v3's <catch2/catch_test_macros.hpp>
// does not: its own header does.
#ifndef CATCH_VERSION_MAJOR
#if __has_include(<catch2/catch_version_macros.hpp>)
#include <catch2/catch_test_macros.hpp>
#include <catch2/catch_version_macros.hpp>
#elif __has_include(<catch2/catch.hpp>)
#include <catch2/catch.hpp>
#else
#error "leakguard/catch2.hpp: include Catch2 (<catch2/catch.hpp> or <catch2/catch_test_macros.hpp>) before it"
#endif
#endif

#if CATCH_VERSION_MAJOR >= 3
#ifndef CATCH_AMALGAMATED_HPP_INCLUDED  // the single-file build has them all
#include <catch2/catch_test_case_info.hpp>
#include <catch2/reporters/catch_reporter_event_listener.hpp>
#include <catch2/reporters/catch_reporter_registrars.hpp>
#endif
#elif !defined(CATCH_CONFIG_EXTERNAL_INTERFACES) && !defined(CATCH_IMPL)
#error "leakguard/catch2.hpp: Catch2 v2 shows listeners only where CATCH_CONFIG_MAIN or CATCH_CONFIG_RUNNER is defined, or after #define CATCH_CONFIG_EXTERNAL_INTERFACES; include this header in that .cpp"
#endif

#include <string>
#include <string_view>

#include "test.hpp"

#ifndef CATCH_CONFIG_DISABLE

namespace leakguard::catch2_detail {

struct run_state {
  const Catch::TestCaseInfo* test = nullptr;
  int depth = 0;          // sections open; 1 = the test case's own
  bool may_leak = false;  // [mayleak]
  bool left_early = false;
  std::string sections;   // the run's path: "outer / inner"
};

inline run_state& state() {
  static run_state s;
  return s;
}

inline bool in_test() { return state().depth > 0; }

// A failed assertion at the leaking line, as FAIL_CHECK records one: the
// test case fails, the run goes on.
inline void fail(const char* file, int line, const char* headline, const char* details) {
  // Reporters such as junit keep assertions until the run ends, with
  // their file name as a pointer: keep one copy of each for good (of the
  // first 64 files; later ones are named "leakguard").
  static std::string* files[64] = {};
  const char* kept = "leakguard";
  {
    leakguard::ignore_scope not_the_tests{};
    for (std::string*& f : files) {
      if (!f) f = new std::string(file);
      if (*f == file) {
        kept = f->c_str();
        break;
      }
    }
  }
  // The run's sections have ended when its leak is reported: say which.
  std::string message = headline;
  if (!state().sections.empty()) message += ", in section \"" + state().sections + '"';
  if (*details) (message += '\n') += details;
  Catch::AssertionHandler handler("LEAKGUARD", Catch::SourceLineInfo(kept, static_cast<std::size_t>(line)),
                                  Catch::StringRef("no leaks"), Catch::ResultDisposition::ContinueOnFailure);
  handler.handleMessage(Catch::ResultWas::ExplicitFailure, std::string(message));
  handler.complete();
}

// Catch2's test functions: "C_A_T_C_H_T_E_S_T_12" (TEST_CASE, v2),
// "CATCH2_INTERNAL_TEST_12" (v3), "____C_A_T_C_H____T_E_S_T____12::test"
// (TEST_CASE_METHOD, v2) and the templated
// "C_A_T_C_H_T_E_M_P_L_A_T_E_T_E_S_T_F_U_N_C_12<int>".
inline bool is_test_body(const char* name) {
  std::string_view n(name);
  for (std::string_view prefix : {"C_A_T_C_H_T_E_S_T_", "C_A_T_C_H_T_E_M_P_L_A_T_E_T_E_S_T_",
                                  "____C_A_T_C_H____T_E_S_T____", "CATCH2_INTERNAL_TEST_",
                                  "CATCH2_INTERNAL_TEMPLATE_TEST_"}) {
    if (!n.starts_with(prefix)) continue;
    n.remove_prefix(prefix.size());
    // No "(": a lambda or a local class inside the body is not the body.
    return n.find('(') == std::string_view::npos;
  }
  return false;
}

// Catch2 formats through a pool of string streams that keep their largest
// buffers; they grow inside the standard library, where the stack walk
// cannot see Catch2's frames. Grow a few now, outside any test.
inline void warm_up_catch() {
  Catch::ReusableStringStream streams[4];
  for (auto& s : streams) test::detail::grow_stream(s.get(), 64 * 1024);
}

inline void start_run() {
  static constexpr const char* boundaries[] = {"Catch::", "leakguard::catch2_detail::", "/catch2/catch", nullptr};
  static constexpr const char* suppressions[] = {"Catch::", "/catch2/catch", nullptr};
  test::detail::framework_hooks h;
  h.in_test = &in_test;
  h.fail = &fail;
  h.frame_boundaries = boundaries;
  h.is_test_body = &is_test_body;
  h.suppressions = suppressions;
  test::detail::start_run(h);
  warm_up_catch();
}

template <class Tags>
bool has_may_leak_tag(const Tags& tags) {
  for (const auto& tag : tags) {
#if CATCH_VERSION_MAJOR >= 3
    std::string_view t(tag.original.data(), tag.original.size());
#else
    std::string_view t(tag);
#endif
    if (t == "mayleak") return true;
  }
  return false;
}

#if CATCH_VERSION_MAJOR >= 3
using listener_base = Catch::EventListenerBase;
using assertion_result = void;
#else
using listener_base = Catch::TestEventListenerBase;
using assertion_result = bool;
#endif

class listener : public listener_base {
 public:
  using listener_base::listener_base;

  void testRunStarting(const Catch::TestRunInfo& info) override {
    listener_base::testRunStarting(info);
    start_run();
  }

  void testRunEnded(const Catch::TestRunStats& stats) override {
    test::detail::end_run();
    listener_base::testRunEnded(stats);
  }

  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    listener_base::testCaseStarting(info);
    run_state& s = state();
    s = run_state{};
    s.test = &info;
    s.may_leak = has_may_leak_tag(info.tags);
  }

  void sectionStarting(const Catch::SectionInfo& info) override {
    listener_base::sectionStarting(info);
    run_state& s = state();
    if (s.depth++ != 0) {
      leakguard::ignore_scope bookkeeping{};
      if (!s.sections.empty()) s.sections += " / ";
      s.sections += info.name;
      return;
    }
    if (!s.test) return;
    s.left_early = false;
    s.sections.clear();
    const Catch::TestCaseInfo& tc = *s.test;
    test::detail::begin_test(tc.name.c_str(), tc.lineInfo.file, static_cast<int>(tc.lineInfo.line));
    if (s.may_leak) test::allow_leaks();
  }

  assertion_result assertionEnded(const Catch::AssertionStats& stats) override {
    const Catch::AssertionResult& r = stats.assertionResult;
    const Catch::ResultWas::OfType type = r.getResultType();
    const bool throws_on_failure = (r.m_info.resultDisposition & Catch::ResultDisposition::ContinueOnFailure) == 0;
    bool left = (!r.isOk() && throws_on_failure) || type == Catch::ResultWas::ThrewException ||
                type == Catch::ResultWas::FatalErrorCondition;
#if CATCH_VERSION_MAJOR >= 3 && (CATCH_VERSION_MAJOR > 3 || CATCH_VERSION_MINOR >= 3)
    left = left || type == Catch::ResultWas::ExplicitSkip;
#endif
    if (left) state().left_early = true;
#if CATCH_VERSION_MAJOR >= 3
    listener_base::assertionEnded(stats);
#else
    return listener_base::assertionEnded(stats);
#endif
  }

  void sectionEnded(const Catch::SectionStats& stats) override {
    run_state& s = state();
    if (s.depth > 0 && --s.depth == 0 && s.test) test::detail::end_test(!s.left_early);
    listener_base::sectionEnded(stats);
  }
};

}  // namespace leakguard::catch2_detail

// Listeners see every event before the reporters do. The macro pastes the
// name into one of its own, hence the unqualified alias.
using leakguard_catch2_listener = leakguard::catch2_detail::listener;
CATCH_REGISTER_LISTENER(leakguard_catch2_listener)

#endif  // CATCH_CONFIG_DISABLE
