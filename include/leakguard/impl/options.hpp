// leakguard/impl/options.hpp — LEAKGUARD_OPTIONS: parsing, and the settings
// in force.
#pragma once

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <sys/auxv.h>

#include "../options.hpp"
#include "internal_memory.hpp"
#include "suppressions.hpp"

namespace leakguard::detail {

inline constexpr int max_grace_ms = 86'400'000;

// One `key=value` item of LEAKGUARD_OPTIONS, as written (`text`, for errors).
struct option_item {
  std::string_view key, value, text;
  bool has_value = false;
  bool unterminated = false;  // a quoted value without its closing quote
};

inline constexpr bool option_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
inline constexpr bool option_separator(char c) { return c == ':' || c == ',' || option_space(c); }

// Splits the next item off `text`, as ASAN_OPTIONS does: items are separated
// by ':', ',' or whitespace, spaces around '=' are allowed, and a value in
// single or double quotes may contain separators. False at the end.
inline bool next_option_item(std::string_view& text, option_item& item) {
  std::size_t i = 0;
  while (i < text.size() && option_separator(text[i])) ++i;
  if (i == text.size()) return false;
  const std::size_t begin = i;
  while (i < text.size() && text[i] != '=' && !option_separator(text[i])) ++i;
  item = option_item{text.substr(begin, i - begin), {}, {}};
  std::size_t j = i;
  while (j < text.size() && option_space(text[j])) ++j;
  if (j == text.size() || text[j] != '=') {
    item.text = item.key;
    text.remove_prefix(i);
    return true;
  }
  item.has_value = true;
  for (++j; j < text.size() && option_space(text[j]);) ++j;
  if (j < text.size() && (text[j] == '\'' || text[j] == '"')) {
    const std::size_t close = text.find(text[j], j + 1);
    item.unterminated = close == std::string_view::npos;
    const std::size_t value_end = item.unterminated ? text.size() : close;
    item.value = text.substr(j + 1, value_end - j - 1);
    j = item.unterminated ? text.size() : close + 1;
  } else {
    const std::size_t value_begin = j;
    while (j < text.size() && !option_separator(text[j])) ++j;
    item.value = text.substr(value_begin, j - value_begin);
  }
  item.text = text.substr(begin, j - begin);
  text.remove_prefix(j);
  return true;
}

// At most this many bad items are named; the rest are counted in one line.
inline constexpr int max_named_option_errors = 16;
inline constexpr std::size_t max_option_error_chars = 200;

// See leakguard::parse_options.
inline runtime_options parse_option_text(std::string_view text, runtime_options base, std::string* errors) {
  int bad_items = 0;
  auto complain = [&](std::string_view what, std::string_view item) {
    if (!errors || ++bad_items > max_named_option_errors) return;
    errors->append("leakguard: LEAKGUARD_OPTIONS: ");
    errors->append(what);
    errors->append(" '");
    errors->append(item.substr(0, max_option_error_chars));
    if (item.size() > max_option_error_chars) errors->append("...");
    errors->append("' ignored\n");
  };
  option_item next;
  while (next_option_item(text, next)) {
    const std::string_view item = next.text;
    if (!next.has_value) {
      complain("missing '=' in", item);
      continue;
    }
    if (next.unterminated) {
      complain("missing closing quote in", item);
      continue;
    }
    const std::string_view key = next.key;
    const std::string_view value = next.value;
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
    } else if (key == "stack_root") {
      if (value == "scope") base.stack_root = stack_root_mode::scope;
      else if (value == "full") base.stack_root = stack_root_mode::full;
      else complain("stack_root must be scope or full, got", item);
    } else if (key == "report_frames") {
      int n = -1;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc{} || end != value.data() + value.size() || n < 0 || n > max_report_frames)
        complain("report_frames must be 0..1024, got", item);
      else
        base.report_frames = n;
    } else if (key == "suppressions") {
      base.suppressions = value;
    } else if (key == "report_path") {
      base.report_path = std::string(value);
    } else if (key == "sample_bytes" || key == "log_interval" || key == "grace_ms") {
      unsigned long long n = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc{} || end != value.data() + value.size() || value.empty() ||
          (key == "log_interval" && n > 86400) || (key == "grace_ms" && n > max_grace_ms)) {
        complain(key == "sample_bytes"   ? "sample_bytes must be a number of bytes, got"
                 : key == "log_interval" ? "log_interval must be 0..86400 seconds, got"
                                         : "grace_ms must be 0..86400000 milliseconds, got",
                 item);
      } else if (key == "sample_bytes") {
        base.sample_bytes = static_cast<std::size_t>(n);
      } else if (key == "log_interval") {
        base.log_interval = static_cast<int>(n);
      } else {
        base.grace_ms = static_cast<int>(n);
      }
    } else {
      complain("unknown key in", item);
    }
  }
  if (errors && bad_items > max_named_option_errors) {
    errors->append("leakguard: LEAKGUARD_OPTIONS: ");
    errors->append(std::to_string(bad_items - max_named_option_errors));
    errors->append(" more bad items ignored\n");
  }
  return base;
}

// Read on every tracked allocation, so kept apart from the lock; a plain
// constant-initialised global, so that reading it never triggers (or
// recurses into) the lazy initialisation below.
inline constinit std::atomic<int> stack_depth_setting{16};
inline constinit std::atomic<std::size_t> sample_bytes_setting{0};
inline constinit std::atomic<int> grace_ms_setting{0};  // read by every scope that sets no grace
inline constinit std::atomic<bool> log_setting{false};  // on_leak=log: read by every scope end with survivors

inline void publish_settings(const runtime_options& o) noexcept {
  stack_depth_setting.store(o.stack_depth, std::memory_order_relaxed);
  sample_bytes_setting.store(o.sample_bytes, std::memory_order_relaxed);
  grace_ms_setting.store(o.grace_ms, std::memory_order_relaxed);
  log_setting.store(o.on_leak == leak_action::log, std::memory_order_relaxed);
}

struct options_state {
  spin_lock lock;
  runtime_options current;
};

// LEAKGUARD_OPTIONS, or null when unset or when the process is privileged
// (setuid, setgid, or with file capabilities): as glibc does for MALLOC_*, the
// environment of whoever ran it must not choose where a privileged process
// writes.
inline const char* options_variable() {
  const char* env = std::getenv("LEAKGUARD_OPTIONS");
  if (env && getauxval(AT_SECURE) != 0) {
    std::fputs("leakguard: LEAKGUARD_OPTIONS ignored: the process is privileged (setuid, setgid or capabilities)\n",
               stderr);
    return nullptr;
  }
  return env;
}

// Parsed from the environment on first use (at the latest during static
// initialisation, see implementation.hpp); the variable is never read again.
inline options_state& options_storage() {
  static no_destroy<options_state> state;
  static const bool loaded = [] {
    // A build with LEAKGUARD_DISABLE does not read it: nothing to configure.
    if (const char* env = LEAKGUARD_ENABLED ? options_variable() : nullptr) {
      std::string errors;
      state.get().current = parse_option_text(env, {}, &errors);
      publish_settings(state.get().current);
      if (!errors.empty()) std::fputs(errors.c_str(), stderr);
      if (!state.get().current.suppressions.empty()) load_suppression_file(state.get().current.suppressions);
    }
    return true;
  }();
  (void)loaded;
  return state.get();
}

inline int stack_depth() noexcept { return stack_depth_setting.load(std::memory_order_relaxed); }
inline std::size_t sample_bytes() noexcept { return sample_bytes_setting.load(std::memory_order_relaxed); }
inline int grace_ms() noexcept {
  options_storage();  // LEAKGUARD_OPTIONS is read before the first scope needs it
  return grace_ms_setting.load(std::memory_order_relaxed);
}

inline bool on_leak_log() noexcept {
  options_storage();
  return log_setting.load(std::memory_order_relaxed);
}

// leakguard::options().
inline runtime_options current_options() {
  auto& s = options_storage();
  lock_guard g(s.lock);
  return s.current;
}

// leakguard::set_options().
inline void replace_options(const runtime_options& o) {
  auto& s = options_storage();
  runtime_options copy = o;
  copy.stack_depth = copy.stack_depth < 0 ? 0
                     : copy.stack_depth > max_stack_depth ? max_stack_depth
                                                          : copy.stack_depth;
  if (copy.log_interval < 0) copy.log_interval = 0;
  copy.grace_ms = copy.grace_ms < 0 ? 0 : copy.grace_ms > max_grace_ms ? max_grace_ms : copy.grace_ms;
  copy.report_frames = std::clamp(copy.report_frames, 0, max_report_frames);
  {
    lock_guard g(s.lock);
    std::swap(s.current, copy);
    publish_settings(s.current);
  }
  // `copy` holds the previous settings now.
  if (!o.suppressions.empty() && o.suppressions != copy.suppressions) load_suppression_file(o.suppressions);
}

}  // namespace leakguard::detail
