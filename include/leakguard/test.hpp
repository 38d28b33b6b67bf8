// leakguard/test.hpp — what the doctest and GoogleTest integrations share.
//
// Included by <leakguard/doctest.hpp> and <leakguard/gtest.hpp>; include one
// of those, not this. What a test body can use:
//
//   LEAKGUARD_ALLOW_LEAKS();                   // this test may leak: not checked
//   LEAKGUARD_FIRST_USE(registry::instance()); // first-use init: never a leak
//   leakguard::test::configure({.all_threads = false});  // in main, before the tests
//
// Every test runs inside a leakguard::scope labelled with the test's name.
// When the test ends, what it allocated and did not free fails it, through
// the framework's own failure mechanism, with a short report.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdio>
#include <iostream>
#include <locale>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config.hpp"
#include "handler.hpp"
#include "report.hpp"
#include "scope.hpp"
#include "suppressions.hpp"

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
};

namespace detail {

struct test_state {
  settings config;
  std::optional<leakguard::scope> scope;  // the running test's
  std::optional<report> captured;         // its scope's report, if any
  std::atomic<bool> allowed{false};        // LEAKGUARD_ALLOW_LEAKS() in this test (run)
  std::string name;                       // the running test's display name
  std::string file;                       // and where it is defined
  int line = 0;
  bool running = false;
};

inline test_state& state() {
  static leakguard::detail::no_destroy<test_state> s;
  return s.get();
}

}  // namespace detail

// Settings for the tests that start after the call (call it in main, or in
// a test to change the next ones).
inline void configure(const settings& s) { detail::state().config = s; }
inline settings current_settings() { return detail::state().config; }

// The running test may leak: its leak check is skipped (the rest of the
// framework's checks still apply). In doctest, it applies to the run of the
// test case that calls it (call it at the top, before any SUBCASE).
inline void allow_leaks() noexcept { detail::state().allowed.store(true, std::memory_order_relaxed); }

}  // namespace leakguard::test

// Opt a test out of leak checking (see allow_leaks).
#define LEAKGUARD_ALLOW_LEAKS() ::leakguard::test::allow_leaks()

// Runs the statement(s) in an ignore zone: what they allocate is never
// reported, even if it is never freed (a lazily built singleton, a cache
// filled on first use). Only the statement is excused; everything else the
// test allocates is still checked.
//
//   LEAKGUARD_FIRST_USE(auto& r = registry::instance(); r.warm());
#if LEAKGUARD_ENABLED
#define LEAKGUARD_FIRST_USE(...)                               \
  do {                                                         \
    ::leakguard::ignore_scope leakguard_first_use_zone_{};     \
    __VA_ARGS__;                                               \
  } while (false)
#else
#define LEAKGUARD_FIRST_USE(...) \
  do {                           \
    __VA_ARGS__;                 \
  } while (false)
#endif

namespace leakguard::test::detail {

// ---- what the integrations share ---------------------------------------------

// How a framework fails its current test; set by the integration.
struct framework_hooks {
  bool (*in_test)() = nullptr;
  void (*fail)(const char* file, int line, const std::string& message) = nullptr;
  // Qualified-name prefixes of the framework's own frames: a failure's
  // stack stops at the first of them.
  std::vector<std::string_view> frame_boundaries;
  // Whether a frame's qualified function name is a test body (doctest's
  // "_DOCTEST_ANON_FUNC_12", GoogleTest's "Suite_Name_Test::TestBody"):
  // shown as the test's name, and the last frame shown.
  bool (*is_test_body)(std::string_view qualified_name) = nullptr;
};

inline framework_hooks& hooks() {
  static leakguard::detail::no_destroy<framework_hooks> h;
  return h.get();
}

// Splits "path/file.cpp:42" into its parts; false if `site` is not file:line.
inline bool split_site(std::string_view site, std::string& file, int& line) {
  const std::size_t colon = site.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == site.size()) return false;
  int n = 0;
  for (std::size_t i = colon + 1; i < site.size(); ++i) {
    if (site[i] < '0' || site[i] > '9') return false;
    n = n * 10 + (site[i] - '0');
  }
  file.assign(site.substr(0, colon));
  line = n;
  return true;
}

// The qualified name of a frame's function for display and matching:
// clang spells "(anonymous namespace)::" into linkage names, which
// qualified_name() would cut at its space.
inline std::string display_name(std::string_view function) {
  std::string f(function);
  static constexpr std::string_view anon = "(anonymous namespace)::";
  for (std::size_t at; (at = f.find(anon)) != std::string::npos;) f.erase(at, anon.size());
  return std::string(leakguard::detail::qualified_name(f));
}

inline bool starts_with_any(std::string_view name, const std::vector<std::string_view>& prefixes) {
  for (std::string_view p : prefixes)
    if (name.starts_with(p)) return true;
  return false;
}

// One stack, for people: the standard library's frames on top summed up,
// then the user's frames down to the test body; never the framework's.
inline void append_short_stack(std::string& out, const std::vector<frame>& stack, std::string_view test_name,
                               std::size_t max_frames) {
  using leakguard::detail::is_library_frame;
  const framework_hooks& h = hooks();
  std::size_t first = 0;
  while (first < stack.size() && is_library_frame(stack[first].function, stack[first].file)) ++first;
  if (first == stack.size()) first = 0;
  // The last frame worth showing: the test body, else the last user frame
  // above the framework's (a thread's entry frames are the library's).
  std::size_t last = first;
  for (std::size_t i = first; i < stack.size(); ++i) {
    const std::string name = display_name(stack[i].function);
    if (i > first && (starts_with_any(name, h.frame_boundaries) || name == "main")) break;
    if (h.is_test_body && h.is_test_body(name)) {
      last = i;
      break;
    }
    if (!name.empty() && !is_library_frame(stack[i].function, stack[i].file)) last = i;
  }
  if (first > 0)
    out += "      (" + std::to_string(first) + (first == 1 ? " standard library frame)\n" : " standard library frames)\n");
  for (std::size_t i = first; i <= last && i < stack.size(); ++i) {
    if (i - first == max_frames) {
      out += "      ...\n";
      break;
    }
    const frame& f = stack[i];
    const std::string name = display_name(f.function);
    out += "      #" + std::to_string(i) + ' ';
    if (h.is_test_body && h.is_test_body(name)) {
      out += "test \"";
      out += test_name;
      out += '"';
    } else {
      out += name.empty() ? std::string_view("??") : std::string_view(name);
    }
    if (!f.file.empty()) out += " at " + f.file + ':' + std::to_string(f.line);
    out += '\n';
  }
}

// The failure message for a report; `*file`/`*line` get the first leaking
// site (file:line), when known.
inline std::string failure_text(const report& r, std::string_view test_name, bool own_scope, std::string* file,
                                int* line) {
  LEAKGUARD_INTERNAL_WORK();
  std::string out = "leakguard: ";
  if (own_scope) {
    out += "test \"";
    out += test_name;
    out += "\" ";
  } else {
    out += r.label().empty() ? std::string("scope") : "scope \"" + std::string(r.label()) + '"';
    out += " at ";
    out += r.where().file_name();
    out += ':' + std::to_string(r.where().line());
    out += " (in test \"";
    out += test_name;
    out += "\") ";
  }
  if (r.leaked_blocks() > 0) {
    out += "leaked " + std::to_string(r.leaked_bytes()) + " bytes in " + std::to_string(r.leaked_blocks()) +
           (r.leaked_blocks() == 1 ? " block" : " blocks");
  }
  if (!r.violations().empty()) {
    if (r.leaked_blocks() > 0) out += ", ";
    out += std::to_string(r.violations().size()) + (r.violations().size() == 1 ? " violation" : " violations");
  }
  out += '\n';
  // Group by site, largest total first (as report::to_text does).
  struct group {
    std::size_t bytes = 0, count = 0;
    const leaked_block* first = nullptr;
  };
  std::vector<group> groups;
  std::map<std::string_view, std::size_t> index;
  for (const leaked_block& b : r.blocks()) {
    auto [it, fresh] = index.try_emplace(b.site, groups.size());
    if (fresh) groups.push_back({0, 0, &b});
    groups[it->second].bytes += b.size;
    ++groups[it->second].count;
  }
  std::stable_sort(groups.begin(), groups.end(), [](const group& a, const group& b) { return a.bytes > b.bytes; });
  const std::size_t max_frames = state().config.max_frames;
  bool located = false;
  for (const group& g : groups) {
    out += "  " + std::to_string(g.bytes) + " bytes in " + std::to_string(g.count) +
           (g.count == 1 ? " block" : " blocks") + " allocated at ";
    out += g.first->site.empty() ? std::string_view("(unknown site: stack capture off)") : std::string_view(g.first->site);
    if (!g.first->origin.empty()) out += " by " + g.first->origin;
    out += '\n';
    append_short_stack(out, g.first->stack, test_name, max_frames);
    if (!located && file && line) located = split_site(g.first->site, *file, *line);
  }
  for (const violation& v : r.violations()) {
    out += "  violation: " + v.message + ": " + std::to_string(v.size) + " bytes at ";
    out += v.site.empty() ? std::string_view("(unknown site)") : std::string_view(v.site);
    out += '\n';
    append_short_stack(out, v.stack, test_name, max_frames);
    if (!located && file && line) located = split_site(v.site, *file, *line);
  }
  leakguard::detail::append_unrecorded_text(out, r.unrecorded());
  return out;
}

// Fails the current test with the report, at the leaking line when known.
inline void fail_with(const report& r, bool own_scope) {
  test_state& s = state();
  std::string file;
  int line = 0;
  std::string text;
  {
    LEAKGUARD_INTERNAL_WORK();
    text = failure_text(r, s.name, own_scope, &file, &line);
    if (file.empty()) {
      file = s.file;
      line = s.line;
    }
  }
  while (!text.empty() && text.back() == '\n') text.pop_back();
  hooks().fail(file.c_str(), line, text);
}

// The global leak handler while tests run: a user's own LEAKGUARD_SCOPE (or
// no_alloc_scope) inside a test fails that test; outside tests, the
// handler that was installed before.
inline leak_handler& previous_handler() {
  static leakguard::detail::no_destroy<leak_handler> h;
  return h.get();
}

inline void global_handler(const report& r) {
  const framework_hooks& h = hooks();
  if (h.in_test && h.in_test() && h.fail) return fail_with(r, false);
  if (const leak_handler& previous = previous_handler()) previous(r);
  else leakguard::detail::default_leak_handler(r);
}

// First use of what every test program touches, done before the first test
// so that no test is charged with it: iostreams and the locale, the
// exception runtime's per-thread globals.
inline void warm_up_runtime() {
  std::ostringstream os;
  os.imbue(std::locale());
  os << 1 << 1.5 << true << std::string(64, 'x');
  (void)std::use_facet<std::ctype<char>>(std::locale()).widen('x');
  std::cout.flush();
  std::cerr.flush();
  try {
    throw std::string(32, 'x');
  } catch (const std::string&) {
  }
}

// Framework independent part of a test's start and end.
inline void begin_test(std::string name, std::string file, int line) {
  test_state& s = state();
  {
    LEAKGUARD_INTERNAL_WORK();
    s.name = std::move(name);
    s.file = std::move(file);
  }
  s.line = line;
  s.allowed.store(false, std::memory_order_relaxed);
  s.captured.reset();
  s.running = true;
  if (!s.config.enabled) return;
  scope_options o;
  o.label = s.name;
  o.all_threads = s.config.all_threads;
  o.handler = [](const report& r) { state().captured = r; };
  s.scope.emplace(std::move(o));
}

// Ends the test's scope. `check`: false when the test already failed in a
// way that left it early (an exception, a fatal assertion): what it left
// behind on the way out is not reported. Fails the test if it leaked.
inline void end_test(bool check) {
  test_state& s = state();
  s.running = false;
  if (!s.scope) return;
  if (!check || s.allowed.load(std::memory_order_relaxed)) {
    s.scope->dismiss();
    s.scope.reset();
    return;
  }
  s.scope.reset();  // the check: the handler keeps the report
  if (!s.captured) return;
  report r;
  {
    LEAKGUARD_INTERNAL_WORK();
    r = std::move(*s.captured);
    s.captured.reset();
  }
  fail_with(r, true);
}

}  // namespace leakguard::test::detail
