// leakguard/options.hpp — runtime settings: LEAKGUARD_OPTIONS and from code.
//
//   LEAKGUARD_OPTIONS=stack_depth=8:on_leak=log:report=json:report_path=/tmp/leaks.log
//   LEAKGUARD_OPTIONS=sample_bytes=1048576:log_interval=300   (production)
//   LEAKGUARD_OPTIONS="on_leak=log, suppressions=/etc/myapp/leaks.supp"
//   LEAKGUARD_OPTIONS=report=json:stack_root=full:report_frames=8
//
// The variable is read once, at start-up. An unknown key or a bad value is
// reported on stderr once and otherwise ignored; the other keys still apply.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "config.hpp"

namespace leakguard {

// What the default leak handler does: `abort_on_leak` or `log_leak`.
enum class leak_action { abort, log };
// How reports are written by `abort_on_leak` and `log_leak`.
enum class report_format { text, json };
// Where a written report's stacks start. `scope`: the frames above the
// scope's own function are the same for every block of a report, so they are
// written once, as the scope's callers, and each block's stack stops at that
// function. `full`: every block's whole stack. report::blocks() keeps every
// frame either way.
enum class stack_root_mode { scope, full };

struct runtime_options {
  // Frames captured per tracked allocation, 0..64. 0 turns full stacks off:
  // like an allocation sampling skips, a block then keeps only the few
  // frames that name the line that allocated it.
  int stack_depth = 16;
  leak_action on_leak = leak_action::abort;
  report_format report = report_format::text;
  // Empty: stderr. Otherwise reports are appended to this file.
  std::string report_path;
  // Sampling for production: 0 captures a full stack for every tracked
  // allocation; N > 0 captures one on average every N bytes allocated inside
  // scopes (like tcmalloc's heap sampling). Counts and leak detection stay
  // exact, and every block keeps the few frames that name its line.
  std::size_t sample_bytes = 0;
  // log_leak prints a site's first leak in full, then sums that site's later
  // leaks into one line per site every this many seconds. 0: print every report.
  int log_interval = 60;
  // The grace period of scopes that do not set scope_options::grace, in
  // milliseconds, 0..86400000: blocks that outlive a scope and are freed
  // within it are not leaks. 0: the verdict is given when the scope ends.
  int grace_ms = 0;
  // A file of LeakSanitizer-style suppressions: `leak:pattern` lines (a
  // pattern as leakguard::suppress() takes, '*' allowed at either end) and
  // `#` comments. Loaded when the options take effect (start-up, or
  // set_options() with another path); its patterns join suppressions().
  // A file that cannot be read and each bad line are reported on stderr.
  std::string suppressions;
  stack_root_mode stack_root = stack_root_mode::scope;
  // At most this many frames of each stack in a written report (text and
  // JSON), below the standard library's frames on top of it; the scope's
  // callers alike (the nearest ones). 0: no cap. report::blocks() keeps
  // every frame.
  int report_frames = 8;
};

inline constexpr int max_stack_depth = 64;
inline constexpr int max_report_frames = 1024;

// Parses LEAKGUARD_OPTIONS syntax, starting from `base`. Each unknown key or
// bad value appends one line naming it to `*errors` (when given) and is
// skipped; the other keys still apply.
//
//   std::string errors;
//   auto o = leakguard::parse_options("stack_depth=4:on_leak=log", {}, &errors);
LEAKGUARD_API runtime_options parse_options(std::string_view text, runtime_options base = {},
                                            std::string* errors = nullptr);

// The settings in force.
LEAKGUARD_API runtime_options options();

// Replaces the settings; a stack_depth outside 0..64, a negative
// log_interval, a grace_ms outside 0..86400000 and a report_frames outside
// 0..max_report_frames are clamped.
LEAKGUARD_API void set_options(const runtime_options& o);

}  // namespace leakguard
