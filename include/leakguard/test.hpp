// leakguard/test.hpp — what the doctest, GoogleTest and Catch2 integrations share.
//
// Included by <leakguard/doctest.hpp>, <leakguard/gtest.hpp> and
// <leakguard/catch2.hpp>; include one of those, not this. What a test body can use:
//
//   LEAKGUARD_ALLOW_LEAKS();                   // this test may leak: not checked
//   LEAKGUARD_FIRST_USE(registry::instance()); // first-use init: never a leak
//   leakguard::test::configure({.all_threads = false});  // in main, before the tests
//
// Every test runs inside a leakguard::scope labelled with the test's name.
// When the test ends, what it allocated and did not free fails it, through
// the framework's own failure mechanism, with a short report.
#pragma once

#include <cstddef>
#include <iosfwd>

#include "config.hpp"
#include "detail/std_parts.hpp"
#include "zones.hpp"

namespace leakguard::test {

struct settings {
  // true: the test's scope is opened with scope_options::all_threads, so
  // blocks allocated by any thread while the test runs (threads it starts,
  // pool workers) and still live at its end fail it. false: only the test's
  // own thread (and threads that adopt its context) are attributed.
  bool all_threads = true;
  // false: the integration does nothing (no scopes, no failures).
  bool enabled = true;
  // Frames shown per leaking site in a failure message.
  std::size_t max_frames = 8;
  // How long a test's end may wait for other threads to free what the test
  // still holds (a pool that frees a task's result just after the test body
  // returns): the verdict comes as soon as nothing the test allocated is
  // live, or when this runs out. 0: at once. A test that ends holding a
  // block nobody frees (a leak, a cache built on first use) waits it all.
  std::chrono::milliseconds grace{0};
};

// Settings for the tests that start after the call (call it in main, or in
// a test to change the next ones).
LEAKGUARD_API void configure(const settings& s);
LEAKGUARD_API settings current_settings();

// The running test may leak: its leak check is skipped (the rest of the
// framework's checks still apply). In doctest, it applies to the run of the
// test case that calls it (call it at the top, before any SUBCASE).
LEAKGUARD_API void allow_leaks() noexcept;

}  // namespace leakguard::test

// Opt a test out of leak checking (see allow_leaks).
#define LEAKGUARD_ALLOW_LEAKS() ::leakguard::test::allow_leaks()

// Runs the statement(s) in an ignore zone: what they allocate is never
// reported, even if it is never freed (a lazily built singleton, a cache
// filled on first use). Only the statement is excused; everything else the
// test allocates is still checked.
//
//   LEAKGUARD_FIRST_USE(auto& r = registry::instance(); r.warm());
#define LEAKGUARD_FIRST_USE(...)                           \
  do {                                                     \
    ::leakguard::ignore_scope leakguard_first_use_zone_{}; \
    __VA_ARGS__;                                           \
  } while (false)

// ---- what a framework integration calls (doctest.hpp, gtest.hpp, catch2.hpp) -----
namespace leakguard::test::detail {

struct framework_hooks {
  bool (*in_test)() = nullptr;
  // Fails the current test at file:line. `headline` is the message's first
  // line ("leakguard: test ... leaked ..."), `details` the rest (sites and
  // stacks; may be empty).
  void (*fail)(const char* file, int line, const char* headline, const char* details) = nullptr;
  // Qualified-name prefixes of the framework's own frames, or (with a '/')
  // parts of its files' paths, null-terminated: a failure's stack stops at
  // the first of them.
  const char* const* frame_boundaries = nullptr;
  // Whether a frame's qualified function name is a test body (doctest's
  // "_DOCTEST_ANON_FUNC_12", GoogleTest's "Suite_Name_Test::TestBody"):
  // shown as the test's name, and the last frame shown.
  bool (*is_test_body)(const char* qualified_name) = nullptr;
  // Function-name or file patterns of the framework's bookkeeping inside a
  // test (see <leakguard/suppressions.hpp>), null-terminated.
  const char* const* suppressions = nullptr;
};

// Before the first test: installs the hooks and suppressions, warms up the
// runtime (iostreams, locale, exceptions) and installs the handler that
// fails the running test for a user's own scope. Again: nothing more.
LEAKGUARD_API void start_run(const framework_hooks& hooks);
// After the last test: the handler that was installed before comes back.
LEAKGUARD_API void end_run();

// A test's start and end. `check`: false when the test already failed in a
// way that left it early (an exception, a fatal assertion): what it left
// behind on the way out is not reported. Fails the test if it leaked.
LEAKGUARD_API void begin_test(const char* name, const char* file, int line);
LEAKGUARD_API void end_test(bool check);

// Writes `text` to a framework's stream; grows a stream's buffer outside
// any test (`bytes` spaces).
LEAKGUARD_API void write_text(std::ostream& os, const char* text);
LEAKGUARD_API void grow_stream(std::ostream& os, std::size_t bytes);

// Per-test and per-suite settings a framework's decorators record (doctest's
// `* leakguard::may_leak()`), looked up when a test starts.
struct decorations {
  bool may_leak = false;
  void (*warm_up)() = nullptr;
};
LEAKGUARD_API void decorate_test(const char* file, unsigned line, const decorations& d);
LEAKGUARD_API void decorate_suite(const char* suite, const decorations& d);
LEAKGUARD_API decorations decorations_of(const char* file, unsigned line, const char* suite);

}  // namespace leakguard::test::detail
