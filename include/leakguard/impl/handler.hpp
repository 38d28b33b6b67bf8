// leakguard/impl/handler.hpp — delivering reports: the handler slots, the
// default handlers' output, log_leak's aggregation, and calling a handler
// from a scope's end.
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include "../handler.hpp"
#include "leak_ledger.hpp"
#include "options.hpp"
#include "report_format.hpp"
#include "thread_state.hpp"

namespace leakguard::detail {

// Writes all of `text` to `fd`; false on any error (EINTR is retried).
inline bool write_all(int fd, std::string_view text) noexcept {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Appends `text` to the file at `path`, created with mode 0600 if missing. A
// symbolic link is never followed (a link planted at report_path cannot
// redirect reports into another file). Returns 0, or the errno of the failure.
inline int append_to_file(const std::string& path, std::string_view text) noexcept {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
  if (fd < 0) return errno;
  const bool written = write_all(fd, text);
  const int write_error = written ? 0 : errno == 0 ? EIO : errno;
  const bool closed = ::close(fd) == 0 || errno == EINTR;
  return write_error != 0 ? write_error : closed ? 0 : errno;
}

// The report_path whose last write failed; a failure is announced once, until
// a write to that file succeeds again.
struct failed_path_state {
  spin_lock lock;
  std::string path;
};
inline failed_path_state& failed_path() {
  static no_destroy<failed_path_state> state;
  return state.get();
}

// Appends to report_path, else writes to stderr. Returns false if the file
// could not be written (the text then goes to stderr).
inline bool write_output(const std::string& text) {
  internal_guard guard;  // the remembered path is leakguard's memory, not an enclosing scope's
  const runtime_options o = current_options();
  if (!o.report_path.empty()) {
    const int error = append_to_file(o.report_path, text);
    failed_path_state& failed = failed_path();
    lock_guard g(failed.lock);
    if (error == 0) {
      if (failed.path == o.report_path) failed.path.clear();
      return true;
    }
    if (failed.path != o.report_path) {
      failed.path = o.report_path;
      std::fprintf(stderr, "leakguard: cannot write report_path '%s' (%s); writing reports to stderr\n",
                   o.report_path.c_str(), std::strerror(error));
    }
  }
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
  return o.report_path.empty();
}

// What starts each JSON record written by log_leak, abort_on_leak and the
// summaries: `{"time":"2026-12-05T07:12:30.123456Z","pid":41,"seq":3,`, the
// time in RFC 3339 (UTC) and seq counting the process's records from 1, so
// that a log collector can order and deduplicate them.
inline std::string json_record_start() {
  static constinit std::atomic<std::uint64_t> records{0};
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  ::gmtime_r(&now.tv_sec, &utc);
  char buf[128];
  std::snprintf(buf, sizeof buf, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ\",\"pid\":%ld,\"seq\":%llu,",
                utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<long>(now.tv_nsec / 1000), static_cast<long>(::getpid()),
                static_cast<unsigned long long>(records.fetch_add(1, std::memory_order_relaxed) + 1));
  return buf;
}

// How reports show stacks, by the options in force.
inline report_style style_of(const runtime_options& o) {
  return {o.stack_root == stack_root_mode::scope, o.report_frames};
}
inline report_style style_in_force() { return style_of(current_options()); }

inline void write_report(const report& r) {
  const runtime_options o = current_options();
  const report_style style = style_of(o);
  if (o.report == report_format::json)
    write_output(json_record_start() + report_json(r, style).substr(1) + '\n');
  else
    write_output(report_text(r, style));
}

inline void write_summary(const leak_ledger::summary& s, report_format format) {
  std::string out;
  if (format == report_format::json) {
    out = json_record_start() + "\"leak_summary\":{\"seconds\":" + std::to_string(s.seconds) + ",\"sites\":[";
    for (std::size_t i = 0; i < s.sites.size(); ++i) {
      const leak_ledger::entry& e = s.sites[i];
      if (i) out += ',';
      out += "{\"site\":";
      append_json_string(out, e.totals.site);
      out += ",\"reports\":" + std::to_string(e.pending_reports) + ",\"blocks\":" + std::to_string(e.pending_blocks) +
             ",\"bytes\":" + std::to_string(e.pending_bytes) + ",\"total_reports\":" +
             std::to_string(e.totals.reports) + ",\"total_bytes\":" + std::to_string(e.totals.bytes) + '}';
    }
    out += "]}}\n";
  } else {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.0f", s.seconds);
    out = std::string("leakguard: leaks at already reported sites in the last ") + buf + " s:\n";
    for (const leak_ledger::entry& e : s.sites) {
      std::snprintf(buf, sizeof buf, "%.2f", static_cast<double>(e.pending_reports) / (s.seconds > 0 ? s.seconds : 1));
      out += "  " + std::to_string(e.pending_bytes) + " bytes in " + std::to_string(e.pending_blocks) +
             (e.pending_blocks == 1 ? " block from " : " blocks from ") + std::to_string(e.pending_reports) +
             (e.pending_reports == 1 ? " scope (" : " scopes (") + buf + "/s) at " + e.totals.site +
             "; " + std::to_string(e.totals.reports) + " scopes, " + std::to_string(e.totals.bytes) +
             " bytes in all\n";
    }
  }
  write_output(out);
}

// Pending summary lines are written at exit, not lost with the process.
inline void write_pending_summary() noexcept {
  internal_guard guard;
  try {
    const leak_ledger::summary s = ledger().take_pending(std::chrono::seconds(0));
    if (!s.sites.empty()) write_summary(s, current_options().report);
  } catch (...) {  // at exit, with no memory left: nothing more to do
  }
}

inline void write_pending_summary_at_exit() {
  static const bool registered = std::atexit([] { write_pending_summary(); }) == 0;
  (void)registered;
}

// Wakes leakguard's thread at `due` to write the summary (verdicts.hpp), so
// that sums are written when their interval ends, not when a later leak
// happens to come.
void schedule_summary(std::chrono::steady_clock::time_point due);

// On leakguard's thread, at a time schedule_summary() asked for: the summary
// if its interval has passed. Returns when the next one is due, if any sums
// are still pending.
inline std::optional<std::chrono::steady_clock::time_point> write_due_summary() noexcept {
  internal_guard guard;
  try {
    const runtime_options o = current_options();
    const std::chrono::seconds interval(o.log_interval);
    const leak_ledger::summary s = ledger().take_pending(interval);
    if (!s.sites.empty()) write_summary(s, o.report);
    return ledger().next_summary(interval);
  } catch (...) {  // no memory to write it: exit's summary has another try
    return std::nullopt;
  }
}

// leakguard::log_leak.
inline void log_report(const report& r) {
  internal_guard guard;
  const runtime_options o = current_options();
  const bool summed = o.log_interval != 0 && !r.unrecorded().any();
  if (dispatching != &r) ledger().record(r);  // not from a scope's end: count it too
  if (ledger().log(r, summed) || !summed) return write_report(r);
  write_pending_summary_at_exit();
  const std::chrono::seconds interval(o.log_interval);
  const leak_ledger::summary s = ledger().take_pending(interval);
  if (!s.sites.empty()) write_summary(s, o.report);
  else if (const auto due = ledger().next_summary(interval)) schedule_summary(*due);
}

[[noreturn]] inline void abort_with_report(const report& r) {
  write_report(r);
  std::fputs("leakguard: leak detected, aborting (set on_leak=log or a leak handler to continue)\n", stderr);
  std::abort();
}

inline void default_leak_handler(const report& r) {
  if (current_options().on_leak == leak_action::log) log_report(r);
  else abort_with_report(r);
}

[[noreturn]] inline void abort_with_misuse(const misuse& m) {
  std::string text = "leakguard: heap misuse: " + m.message + "\n";
  for (std::size_t i = 0; i < m.stack.size(); ++i) append_frame_text(text, i, m.stack[i]);
  if (!m.allocation_site.empty()) text += "  block allocated at " + m.allocation_site + "\n";
  write_output(text);
  std::abort();
}

// A handler setting shared by all threads; copied out under the lock so that
// a handler can run while another thread replaces it.
template <class Handler>
class handler_slot {
 public:
  Handler exchange(Handler h) {
    lock_guard g(lock_);
    std::swap(handler_, h);
    return h;
  }
  Handler get() {
    lock_guard g(lock_);
    return handler_;
  }
  // f(handler) under the lock, without copying it.
  template <class F>
  bool test(F f) {
    lock_guard g(lock_);
    return f(handler_);
  }

  spin_lock& lock() noexcept { return lock_; }  // fork.hpp

 private:
  spin_lock lock_;
  Handler handler_;  // empty: the default
};

inline handler_slot<leak_handler>& leak_handler_slot() {
  static no_destroy<handler_slot<leak_handler>> slot;
  return slot.get();
}

inline handler_slot<misuse_handler>& misuse_handler_slot() {
  static no_destroy<handler_slot<misuse_handler>> slot;
  return slot.get();
}

// Runs a handler with tracking off, after adding the report to the ledger.
// While unwinding, a throwing handler is reported and dropped instead of
// terminating the program.
inline void call_leak_handler(const leak_handler& own, const report& r, int uncaught_at_open) {
  internal_guard guard;
  try {
    ledger().record(r);
  } catch (const std::bad_alloc&) {
    count_lost(lost.reports);
  }
  struct restore {
    const report* saved;
    ~restore() { dispatching = saved; }
  } restore_note{std::exchange(dispatching, &r)};
  leak_handler handler = own ? own : leak_handler_slot().get();
  if (!handler) handler = &default_leak_handler;
  if (std::uncaught_exceptions() <= uncaught_at_open) return handler(r);
  try {
    handler(r);
  } catch (...) {
    std::fputs("leakguard: leak handler threw while the scope was unwound by another exception; dropped\n", stderr);
  }
}

}  // namespace leakguard::detail
