// leakguard/impl/test_support.hpp — what the doctest and GoogleTest
// integrations share (see <leakguard/test.hpp>): a scope per test, and a
// failure of that test, at the user's line, with a short report.
#pragma once

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
#include <thread>
#include <utility>
#include <vector>

#include "../report.hpp"
#include "../scope.hpp"
#include "../test.hpp"
#include "frame_kind.hpp"
#include "handler.hpp"
#include "internal_memory.hpp"
#include "report_format.hpp"
#include "scope_books.hpp"
#include "suppressions.hpp"

namespace leakguard::test::detail {

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

// The running framework's hooks (start_run), the boundaries as a list.
struct framework {
  framework_hooks hooks;
  std::vector<std::string_view> frame_boundaries;
  bool started = false;
};

inline framework& hooks() {
  static leakguard::detail::no_destroy<framework> h;
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

inline bool same_file(std::string_view a, std::string_view b) {
  if (a.size() < b.size()) std::swap(a, b);
  return !b.empty() && a.ends_with(b) && (a.size() == b.size() || a[a.size() - b.size() - 1] == '/');
}

// Where a test's failure points: the innermost frame in the test's own
// source file (the test body, or a helper next to it), else the block's
// site (file:line), else nothing (the caller uses the test's line).
inline bool locate(const std::vector<frame>& stack, std::string_view site, std::string& file, int& line) {
  for (const frame& f : stack) {
    if (f.line > 0 && same_file(f.file, state().file)) {
      file = f.file;
      line = f.line;
      return true;
    }
  }
  return split_site(site, file, line);
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

// Whether a frame is the framework's: its qualified name starts with a
// boundary, or its file contains a boundary that has a '/' (inlined frames
// carry unqualified names).
inline bool is_boundary(std::string_view name, std::string_view file, const std::vector<std::string_view>& boundaries) {
  for (std::string_view b : boundaries) {
    if (b.find('/') != std::string_view::npos ? file.find(b) != std::string_view::npos : name.starts_with(b))
      return true;
  }
  return false;
}

// One stack, for people: the standard library's frames on top summed up,
// then the user's frames down to the test body; never the framework's.
inline void append_short_stack(std::string& out, const std::vector<frame>& stack, std::string_view test_name,
                               std::size_t max_frames) {
  using leakguard::detail::is_library_frame;
  const framework& fw = hooks();
  const framework_hooks& h = fw.hooks;
  std::size_t first = 0;
  while (first < stack.size() && is_library_frame(stack[first].function, stack[first].file)) ++first;
  if (first == stack.size()) first = 0;
  // The last frame worth showing: the test body, else the last user frame
  // above the framework's (a thread's entry frames are the library's).
  std::size_t last = first;
  for (std::size_t i = first; i < stack.size(); ++i) {
    const std::string name = display_name(stack[i].function);
    if (i > first && (is_boundary(name, stack[i].file, fw.frame_boundaries) || name == "main")) break;
    if (h.is_test_body && h.is_test_body(name.c_str())) {
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
    if (h.is_test_body && h.is_test_body(name.c_str())) {
      out += "test \"";
      out += test_name;
      out += '"';
    } else {
      out += name.empty() ? std::string_view("??") : std::string_view(name);
    }
    if (!f.file.empty()) out += " at " + f.file + ':' + std::to_string(f.line);
    else if (!f.module.empty()) out += " (" + f.module + ')';
    out += '\n';
  }
}

// The failure message for a report; `*file`/`*line` get where the failure
// points (locate()) for the largest group, when known.
inline std::string failure_text(const report& r, std::string_view test_name, bool own_scope, std::string* file,
                                int* line) {
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
  using leakguard::detail::append_blocks;
  if (r.leaked_blocks() > 0) {
    out += "leaked ";
    append_blocks(out, r.leaked_blocks(), r.leaked_bytes());
    std::size_t indirect = 0;
    for (const leaked_block& b : r.blocks()) indirect += b.kind == leak_kind::indirect;
    if (indirect) out += " (" + std::to_string(r.leaked_blocks() - indirect) + " direct, " + std::to_string(indirect) + " indirect)";
  }
  if (!r.violations().empty()) {
    if (r.leaked_blocks() > 0) out += ", ";
    out += std::to_string(r.violations().size()) + (r.violations().size() == 1 ? " violation" : " violations");
  }
  out += '\n';
  // Grouped as report::to_text does: by site, largest first, an object
  // graph's indirect blocks under the direct block that leaked them.
  const std::size_t max_frames = state().config.max_frames;
  bool located = false;
  for (const leakguard::detail::site_group& g : leakguard::detail::group_by_site(r)) {
    out += "  ";
    append_blocks(out, g.own.count, g.own.bytes);
    out += " allocated at ";
    out += g.first->site.empty() ? std::string_view("(unknown site)") : std::string_view(g.first->site);
    if (!g.first->origin.empty()) out += " by " + g.first->origin;
    leakguard::detail::append_hanging(out, g);
    out += '\n';
    append_short_stack(out, g.first->stack, test_name, max_frames);
    leakguard::detail::append_hanging_sites(out, g);
    if (!located && file && line) located = locate(g.first->stack, g.first->site, *file, *line);
  }
  for (const violation& v : r.violations()) {
    out += "  violation: " + v.message + ": " + std::to_string(v.size) + " bytes at ";
    out += v.site.empty() ? std::string_view("(unknown site)") : std::string_view(v.site);
    out += '\n';
    append_short_stack(out, v.stack, test_name, max_frames);
    if (!located && file && line) located = locate(v.stack, v.site, *file, *line);
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
    leakguard::detail::internal_guard guard;
    text = failure_text(r, s.name, own_scope, &file, &line);
    if (file.empty()) {
      file = s.file;
      line = s.line;
    }
  }
  while (!text.empty() && text.back() == '\n') text.pop_back();
  const std::size_t eol = text.find('\n');
  const std::string headline = text.substr(0, eol);
  const char* details = eol == std::string::npos ? "" : text.c_str() + eol + 1;
  hooks().hooks.fail(file.c_str(), line, headline.c_str(), details);
}

// The global leak handler while tests run: a user's own LEAKGUARD_SCOPE (or
// no_alloc_scope) inside a test fails that test; outside tests, the
// handler that was installed before.
inline leak_handler& previous_handler() {
  static leakguard::detail::no_destroy<leak_handler> h;
  return h.get();
}

inline void global_handler(const report& r) {
  const framework_hooks& h = hooks().hooks;
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
inline void open_test(const char* name, const char* file, int line) {
  test_state& s = state();
  {
    leakguard::detail::internal_guard guard;
    s.name = name;
    s.file = file;
  }
  s.line = line;
  s.allowed.store(false, std::memory_order_relaxed);
  s.captured.reset();
  s.running = true;
  if (!s.config.enabled) return;
  scope_options o;
  o.label = s.name;
  o.all_threads = s.config.all_threads;
  o.grace = std::chrono::milliseconds(0);  // the verdict is the test's result: given at its end
  o.handler = [](const report& r) { state().captured = r; };
  s.scope.emplace(std::move(o));
}

// Until nothing the test's scope holds is live, or `grace` has passed.
inline void wait_for_frees(const scope& sc, std::chrono::milliseconds grace) {
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (sc.stats().live_blocks != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

// Ends the test's scope. `check`: false when the test already failed in a
// way that left it early (an exception, a fatal assertion): what it left
// behind on the way out is not reported. Fails the test if it leaked.
inline void close_test(bool check) {
  test_state& s = state();
  s.running = false;
  if (!s.scope) return;
  if (!check || s.allowed.load(std::memory_order_relaxed)) {
    s.scope->dismiss();
    s.scope.reset();
    return;
  }
  wait_for_frees(*s.scope, s.config.grace);
  {
    // Other threads still running (a pool the test started) hold their work
    // in their frames: those are roots of this verdict.
    const bool saved = std::exchange(leakguard::detail::ending_a_test, true);
    s.scope.reset();  // the check: the handler keeps the report
    leakguard::detail::ending_a_test = saved;
  }
  if (!s.captured) return;
  report r;
  {
    leakguard::detail::internal_guard guard;
    r = std::move(*s.captured);
    s.captured.reset();
  }
  fail_with(r, true);
}

// start_run(): once per run, whatever calls it again.
inline void start(const framework_hooks& h) {
  framework& fw = hooks();
  if (fw.started) return;
  fw.started = true;
  {
    leakguard::detail::internal_guard guard;
    fw.hooks = h;
    fw.frame_boundaries.clear();
    for (const char* const* b = h.frame_boundaries; b && *b; ++b) fw.frame_boundaries.emplace_back(*b);
  }
  for (const char* const* p = h.suppressions; p && *p; ++p) leakguard::detail::add_suppression(*p, false);
  warm_up_runtime();
  previous_handler() = leakguard::detail::leak_handler_slot().exchange(&global_handler);
}

inline void stop() {
  framework& fw = hooks();
  if (!fw.started) return;
  fw.started = false;
  leakguard::detail::leak_handler_slot().exchange(std::exchange(previous_handler(), {}));
}

// ---- decorations ----------------------------------------------------------------

// Kept by the test's file and line (or suite): a framework's test objects
// have no room for them.
struct decoration_registry {
  std::map<std::pair<std::string, unsigned>, decorations> tests;
  std::map<std::string, decorations, std::less<>> suites;
};

inline decoration_registry& registry() {
  static leakguard::detail::no_destroy<decoration_registry> r;
  return r.get();
}

inline void merge(decorations& into, const decorations& d) {
  into.may_leak = into.may_leak || d.may_leak;
  if (d.warm_up) into.warm_up = d.warm_up;
}

inline decorations find_decorations(const char* file, unsigned line, const char* suite) {
  decoration_registry& r = registry();
  decorations d;
  if (auto it = r.tests.find({file, line}); it != r.tests.end()) d = it->second;
  if (auto it = r.suites.find(std::string_view(suite ? suite : "")); it != r.suites.end()) {
    d.may_leak = d.may_leak || it->second.may_leak;
    if (!d.warm_up) d.warm_up = it->second.warm_up;
  }
  return d;
}

}  // namespace leakguard::test::detail
