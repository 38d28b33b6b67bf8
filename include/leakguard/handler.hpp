// leakguard/handler.hpp — what happens when a scope finds a leak, and when
// the heap is misused.
//
//   auto previous = leakguard::set_leak_handler([](const leakguard::report& r) {
//     metrics.leaks += r.leaked_blocks();
//     leakguard::log_leak(r);
//   });
//
// Handlers run with tracking off for their thread: their own allocations are
// never attributed to any scope, so a handler's own leaks are not reported
// and a scope it opens sees nothing (leakguard does not check itself). A handler that throws from a scope's end
// propagates out of the scope's destructor, unless that scope is being
// unwound by another exception (then it is reported on stderr and dropped).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "config.hpp"
#include "detail/std_parts.hpp"  // std::function, std::chrono's clocks
#include "report.hpp"

namespace leakguard {

using leak_handler = std::function<void(const report&)>;

// Writes the report (text or JSON, to stderr or report_path), then aborts.
// The default handler unless LEAKGUARD_OPTIONS says on_leak=log.
LEAKGUARD_API void abort_on_leak(const report& r);

// Writes the report (text or JSON, to stderr or report_path) and continues.
// A long-running server must not flood its log: with log_interval > 0 (the
// default, 60 s), the first report log_leak receives for a site is printed
// in full; a later report whose sites log_leak has all printed before (and
// that has no unrecorded() counts to tell) is not: its leaks are summed per
// site into a summary line written at most once per interval (when it ends,
// by a leakguard thread if no later leak comes), and at exit.
// leak_sites() gives the totals to code.
LEAKGUARD_API void log_leak(const report& r);

// What leaked at one site since the program started (or reset_leak_sites()).
struct site_totals {
  std::string site;            // as in leaked_block::site, or "violation: " + site
  std::uint64_t reports = 0;   // scope ends that reported this site
  std::uint64_t blocks = 0;    // leaked blocks (violations: offending allocations reported)
  std::uint64_t bytes = 0;
  std::chrono::system_clock::time_point first_seen{};
  std::chrono::system_clock::time_point last_seen{};
};

// Per-site totals of every leak reported to a handler since start-up, most
// bytes first: a server's metrics endpoint can export them.
LEAKGUARD_API std::vector<site_totals> leak_sites();

// Forgets the totals (tests; a server rotating its metrics).
LEAKGUARD_API void reset_leak_sites();

// Memory that outermost scopes judged retained (reachable from a global, a
// static or a thread_local: not a leak of the scope) and that is still
// live, per allocation site.
struct retained_site {
  std::string site;
  std::size_t live_blocks = 0;
  std::size_t live_bytes = 0;
  std::uint64_t scopes = 0;  // scope verdicts that added blocks to it (at its busiest stack)
  // Its live bytes kept reaching new highs over a long run of scope ends
  // (impl/retained.hpp has the rule): a registry or cache that is never
  // pruned. In on_leak=log mode a line names such a site when it starts
  // growing and each time its live bytes double.
  bool growing = false;
  std::chrono::system_clock::time_point first_seen{};
  std::chrono::system_clock::time_point last_seen{};
};

// The retained sites, most live bytes first.
LEAKGUARD_API std::vector<retained_site> retained_sites();

// Installs `h` for every scope that has no handler of its own and returns
// the previous one. An empty `h` restores the default, which follows
// LEAKGUARD_OPTIONS' on_leak (abort_on_leak unless on_leak=log).
LEAKGUARD_API leak_handler set_leak_handler(leak_handler h);

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
LEAKGUARD_API void abort_on_misuse(const misuse& m);

// Installs `h` and returns the previous misuse handler; empty restores the
// default (abort_on_misuse). When the handler returns, the offending free is
// skipped (foreign pointer, double free) or completed as the block was
// allocated (mismatches), so leakguard's books stay consistent.
LEAKGUARD_API misuse_handler set_misuse_handler(misuse_handler h);

}  // namespace leakguard
