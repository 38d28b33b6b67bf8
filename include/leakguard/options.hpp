// leakguard/options.hpp — runtime settings: LEAKGUARD_OPTIONS and from code.
//
//   LEAKGUARD_OPTIONS=stack_depth=8:on_leak=log:report=json:report_path=/tmp/leaks.log
//   LEAKGUARD_OPTIONS=sample_bytes=1048576:log_interval=300   (production)
//
// The variable is read once, at start-up. An unknown key or a bad value is
// reported on stderr once and otherwise ignored; the other keys still apply.
#pragma once

#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config.hpp"
#include "detail/internal_memory.hpp"

namespace leakguard {

// What the default leak handler does: `abort_on_leak` or `log_leak`.
enum class leak_action { abort, log };
// How reports are written by `abort_on_leak` and `log_leak`.
enum class report_format { text, json };

struct runtime_options {
  // Frames captured per tracked allocation, 0..64; 0 turns capture off
  // (reports then name only the scope, not the allocating line).
  int stack_depth = 16;
  leak_action on_leak = leak_action::abort;
  report_format report = report_format::text;
  // Empty: stderr. Otherwise reports are appended to this file.
  std::string report_path;
  // Sampling for production: 0 captures a stack for every tracked
  // allocation; N > 0 captures one on average every N bytes allocated inside
  // scopes (like tcmalloc's heap sampling). Counts and leak detection stay
  // exact; an unsampled leaked block's site reads "(not sampled) in scope
  // "label" at file:line", naming the scope instead of the line.
  std::size_t sample_bytes = 0;
  // log_leak prints a site's first leak in full, then sums that site's later
  // leaks into one line per site every this many seconds. 0: print every report.
  int log_interval = 60;
};

inline constexpr int max_stack_depth = 64;

// Parses LEAKGUARD_OPTIONS syntax, starting from `base`. Each unknown key or
// bad value appends one line naming it to `*errors` (when given) and is
// skipped; the other keys still apply.
//
//   std::string errors;
//   auto o = leakguard::parse_options("stack_depth=4:on_leak=log", {}, &errors);
inline runtime_options parse_options(std::string_view text, runtime_options base = {},
                                     std::string* errors = nullptr) {
  auto complain = [&](std::string_view what, std::string_view item) {
    if (!errors) return;
    errors->append("leakguard: LEAKGUARD_OPTIONS: ");
    errors->append(what);
    errors->append(" '");
    errors->append(item);
    errors->append("' ignored\n");
  };
  while (!text.empty()) {
    const std::size_t colon = text.find(':');
    const std::string_view item = text.substr(0, colon);
    text = colon == std::string_view::npos ? std::string_view{} : text.substr(colon + 1);
    if (item.empty()) continue;  // "a=1::b=2" and a trailing ':' are harmless
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      complain("missing '=' in", item);
      continue;
    }
    const std::string_view key = item.substr(0, eq);
    const std::string_view value = item.substr(eq + 1);
    if (key == "stack_depth") {
      int depth = -1;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), depth);
      if (ec != std::errc{} || end != value.data() + value.size() || depth < 0 ||
          depth > max_stack_depth) {
        complain("stack_depth must be 0..64, got", item);
      } else {
        base.stack_depth = depth;
      }
    } else if (key == "on_leak") {
      if (value == "abort") base.on_leak = leak_action::abort;
      else if (value == "log") base.on_leak = leak_action::log;
      else complain("on_leak must be abort or log, got", item);
    } else if (key == "report") {
      if (value == "text") base.report = report_format::text;
      else if (value == "json") base.report = report_format::json;
      else complain("report must be text or json, got", item);
    } else if (key == "report_path") {
      base.report_path = std::string(value);
    } else if (key == "sample_bytes" || key == "log_interval") {
      unsigned long long n = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc{} || end != value.data() + value.size() || value.empty() ||
          (key == "log_interval" && n > 86400)) {
        complain(key == "sample_bytes" ? "sample_bytes must be a number of bytes, got"
                                       : "log_interval must be 0..86400 seconds, got",
                 item);
      } else if (key == "sample_bytes") {
        base.sample_bytes = static_cast<std::size_t>(n);
      } else {
        base.log_interval = static_cast<int>(n);
      }
    } else {
      complain("unknown key in", item);
    }
  }
  return base;
}

namespace detail {

// Read on every tracked allocation, so kept apart from the lock; a plain
// constant-initialised global, so that reading it never triggers (or
// recurses into) the lazy initialisation below.
inline constinit std::atomic<int> stack_depth_setting{16};
inline constinit std::atomic<std::size_t> sample_bytes_setting{0};

struct options_state {
  detail::spin_lock lock;
  runtime_options current;
};

// Parsed from the environment on first use (at the latest during static
// initialisation, see leakguard.hpp); the variable is never read again.
inline options_state& options_storage() {
  static no_destroy<options_state> state;
  static const bool loaded = [] {
    if (const char* env = std::getenv("LEAKGUARD_OPTIONS")) {
      std::string errors;
      state.get().current = parse_options(env, {}, &errors);
      stack_depth_setting.store(state.get().current.stack_depth, std::memory_order_relaxed);
      sample_bytes_setting.store(state.get().current.sample_bytes, std::memory_order_relaxed);
      if (!errors.empty()) std::fputs(errors.c_str(), stderr);
    }
    return true;
  }();
  (void)loaded;
  return state.get();
}

inline int stack_depth() noexcept { return stack_depth_setting.load(std::memory_order_relaxed); }
inline std::size_t sample_bytes() noexcept { return sample_bytes_setting.load(std::memory_order_relaxed); }

}  // namespace detail

// The settings in force.
inline runtime_options options() {
  auto& s = detail::options_storage();
  detail::lock_guard g(s.lock);
  return s.current;
}

// Replaces the settings; a stack_depth outside 0..64 and a negative
// log_interval are clamped.
inline void set_options(const runtime_options& o) {
  auto& s = detail::options_storage();
  runtime_options copy = o;
  copy.stack_depth = copy.stack_depth < 0 ? 0
                     : copy.stack_depth > max_stack_depth ? max_stack_depth
                                                          : copy.stack_depth;
  if (copy.log_interval < 0) copy.log_interval = 0;
  {
    detail::lock_guard g(s.lock);
    std::swap(s.current, copy);
    detail::stack_depth_setting.store(s.current.stack_depth, std::memory_order_relaxed);
    detail::sample_bytes_setting.store(s.current.sample_bytes, std::memory_order_relaxed);
  }
}

}  // namespace leakguard
