// leakguard/handler.hpp — what happens when a scope finds a leak, and when
// the heap is misused.
//
//   auto previous = leakguard::set_leak_handler([](const leakguard::report& r) {
//     metrics.leaks += r.leaked_blocks();
//     leakguard::log_leak(r);
//   });
//
// Handlers run with tracking off for their thread: their own allocations are
// never attributed to any scope. A handler that throws from a scope's end
// propagates out of the scope's destructor, unless that scope is being
// unwound by another exception (then it is reported on stderr and dropped).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "config.hpp"
#include "detail/leak_ledger.hpp"
#include "detail/thread_state.hpp"
#include "options.hpp"
#include "report.hpp"

namespace leakguard {

using leak_handler = std::function<void(const report&)>;

namespace detail {

// Appends to report_path, else writes to stderr. Returns false if the file
// could not be opened (the text then goes to stderr).
inline bool write_output(const std::string& text) {
  const runtime_options o = options();
  if (!o.report_path.empty()) {
    if (std::FILE* f = std::fopen(o.report_path.c_str(), "a")) {
      std::fwrite(text.data(), 1, text.size(), f);
      std::fclose(f);
      return true;
    }
    std::fprintf(stderr, "leakguard: cannot open report_path '%s'; writing to stderr\n", o.report_path.c_str());
  }
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
  return o.report_path.empty();
}

inline void write_report(const report& r) {
  std::string text = options().report == report_format::json ? r.to_json() + '\n' : r.to_text();
  write_output(text);
}

}  // namespace detail

// Writes the report (text or JSON, to stderr or report_path), then aborts.
// The default handler unless LEAKGUARD_OPTIONS says on_leak=log.
inline void abort_on_leak(const report& r) {
  detail::write_report(r);
  std::fputs("leakguard: leak detected, aborting (set on_leak=log or a leak handler to continue)\n", stderr);
  std::abort();
}

namespace detail {

inline void write_summary(const leak_ledger::summary& s, report_format format) {
  std::string out;
  if (format == report_format::json) {
    out = "{\"leak_summary\":{\"seconds\":" + std::to_string(s.seconds) + ",\"sites\":[";
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
             " blocks from " + std::to_string(e.pending_reports) + " scopes (" + buf + "/s) at " + e.totals.site +
             "; " + std::to_string(e.totals.reports) + " scopes, " + std::to_string(e.totals.bytes) +
             " bytes in all\n";
    }
  }
  write_output(out);
}

}  // namespace detail

namespace detail {

// Pending summary lines are written at exit, not lost with the process.
inline void write_pending_summary() noexcept {
  internal_guard guard;
  try {
    const leak_ledger::summary s = ledger().take_pending(std::chrono::seconds(0));
    if (!s.sites.empty()) write_summary(s, options().report);
  } catch (...) {  // at exit, with no memory left: nothing more to do
  }
}

inline void write_pending_summary_at_exit() {
  static const bool registered = std::atexit([] { write_pending_summary(); }) == 0;
  (void)registered;
}

}  // namespace detail

// Writes the report (text or JSON, to stderr or report_path) and continues.
// A long-running server must not flood its log: with log_interval > 0 (the
// default, 60 s), the first report log_leak receives for a site is printed
// in full; a later report whose sites log_leak has all printed before (and
// that has no unrecorded() counts to tell) is not: its leaks are summed per
// site into a summary line written at most once per interval, and at exit.
// leak_sites() gives the totals to code.
inline void log_leak(const report& r) {
  detail::internal_guard guard;
  const runtime_options o = options();
  const bool summed = o.log_interval != 0 && !r.unrecorded().any();
  if (detail::dispatching != &r) detail::ledger().record(r);  // not from a scope's end: count it too
  if (detail::ledger().log(r, summed) || !summed) return detail::write_report(r);
  detail::write_pending_summary_at_exit();
  const detail::leak_ledger::summary s = detail::ledger().take_pending(std::chrono::seconds(o.log_interval));
  if (!s.sites.empty()) detail::write_summary(s, o.report);
}

// Per-site totals of every leak reported to a handler since start-up, most
// bytes first: a server's metrics endpoint can export them.
inline std::vector<site_totals> leak_sites() {
  std::vector<site_totals> out = detail::ledger().totals();
  std::stable_sort(out.begin(), out.end(), [](const site_totals& a, const site_totals& b) { return a.bytes > b.bytes; });
  return out;
}

// Forgets the totals (tests; a server rotating its metrics).
inline void reset_leak_sites() {
  detail::internal_guard guard;
  detail::ledger().reset();
}

namespace detail {

inline void default_leak_handler(const report& r) {
  if (options().on_leak == leak_action::log) log_leak(r);
  else abort_on_leak(r);
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

  spin_lock& lock() noexcept { return lock_; }  // fork.hpp

 private:
  spin_lock lock_;
  Handler handler_;  // empty: the default
};

inline handler_slot<leak_handler>& leak_handler_slot() {
  static no_destroy<handler_slot<leak_handler>> slot;
  return slot.get();
}

}  // namespace detail

// Installs `h` for every scope that has no handler of its own and returns
// the previous one. An empty `h` restores the default, which follows
// LEAKGUARD_OPTIONS' on_leak (abort_on_leak unless on_leak=log).
inline leak_handler set_leak_handler(leak_handler h) {
  leak_handler previous = detail::leak_handler_slot().exchange(std::move(h));
  if (!previous) previous = &detail::default_leak_handler;
  return previous;
}

// Heap misuse: a free that does not match what leakguard handed out.
enum class misuse_kind {
  foreign_pointer,     // not allocated by leakguard (or freed and reused)
  double_free,         // the block was already freed
  array_mismatch,      // delete of a new[] block, or delete[] of a new block
  size_mismatch,       // sized delete with a size other than the one allocated
  alignment_mismatch,  // aligned delete with another alignment than allocated
  wrong_allocator,     // freed through another allocation function family
};

struct misuse {
  misuse_kind kind = misuse_kind::foreign_pointer;
  const void* address = nullptr;
  std::size_t size = 0;        // the block's size where known, else 0
  std::string message;         // one line, names the kind, address and sizes
  std::vector<frame> stack;    // where the offending free was called
  std::string site;            // its user site
  std::string allocation_site; // where the block was allocated, when known
};

using misuse_handler = std::function<void(const misuse&)>;

// Writes the diagnostic to stderr, then aborts. The default misuse handler.
inline void abort_on_misuse(const misuse& m) {
  std::string text = "leakguard: heap misuse: " + m.message + "\n";
  for (std::size_t i = 0; i < m.stack.size(); ++i) detail::append_frame_text(text, i, m.stack[i]);
  if (!m.allocation_site.empty()) text += "  block allocated at " + m.allocation_site + "\n";
  detail::write_output(text);
  std::abort();
}

namespace detail {
inline handler_slot<misuse_handler>& misuse_handler_slot() {
  static no_destroy<handler_slot<misuse_handler>> slot;
  return slot.get();
}
}  // namespace detail

// Installs `h` and returns the previous misuse handler; empty restores the
// default (abort_on_misuse). When the handler returns, the offending free is
// skipped (foreign pointer, double free) or completed as the block was
// allocated (mismatches), so leakguard's books stay consistent.
inline misuse_handler set_misuse_handler(misuse_handler h) {
  misuse_handler previous = detail::misuse_handler_slot().exchange(std::move(h));
  if (!previous) previous = &abort_on_misuse;
  return previous;
}

}  // namespace leakguard
