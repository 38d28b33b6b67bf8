// leakguard/detail/leak_ledger.hpp — per-site totals of every leak reported.
//
// Every report that reaches a leak handler is first added here, so a server
// can export leaks as metrics (leakguard::leak_sites()) and log_leak can
// print a site in full once and then only sum it up.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "../report.hpp"
#include "internal_memory.hpp"

namespace leakguard {

// What leaked at one site since the program started (or reset_leak_sites()).
struct site_totals {
  std::string site;            // as in leaked_block::site, or "violation: " + site
  std::uint64_t reports = 0;   // scope ends that reported this site
  std::uint64_t blocks = 0;    // leaked blocks (violations: offending allocations reported)
  std::uint64_t bytes = 0;
  std::chrono::system_clock::time_point first_seen{};
  std::chrono::system_clock::time_point last_seen{};
};

namespace detail {

class leak_ledger {
 public:
  struct entry {
    site_totals totals;
    // Since the last summary line (log_leak).
    std::uint64_t pending_reports = 0, pending_blocks = 0, pending_bytes = 0;
  };

  // Adds a report; returns true if one of its sites is new.
  bool record(const report& r) {
    const auto now = std::chrono::system_clock::now();
    bool new_site = false;
    lock_guard g(lock_);
    std::map<std::string, bool, std::less<>> counted;  // one report counts once per site
    auto add = [&](std::string key, std::size_t bytes) {
      auto [it, fresh] = sites_.try_emplace(key);
      entry& e = it->second;
      if (fresh) {
        e.totals.site = key;
        e.totals.first_seen = now;
        new_site = true;
      }
      e.totals.last_seen = now;
      ++e.totals.blocks;
      e.totals.bytes += bytes;
      const bool first_of_report = counted.try_emplace(std::move(key), true).second;
      if (first_of_report) ++e.totals.reports;
      if (e.totals.reports == 1) return;  // the site's first report is printed in full
      ++e.pending_blocks;
      e.pending_bytes += bytes;
      if (first_of_report) ++e.pending_reports;
    };
    for (const leaked_block& b : r.blocks()) add(b.site, b.size);
    for (const violation& v : r.violations()) add("violation: " + v.site, v.size);
    return new_site;
  }

  std::vector<site_totals> totals() {
    lock_guard g(lock_);
    std::vector<site_totals> out;
    out.reserve(sites_.size());
    for (const auto& [key, e] : sites_) out.push_back(e.totals);
    return out;
  }

  struct summary {
    double seconds = 0;  // since the previous summary
    std::vector<entry> sites;
  };

  // The pending sums, cleared, if `interval` has passed since the previous
  // summary; else nothing.
  summary take_pending(std::chrono::seconds interval) {
    const auto now = std::chrono::steady_clock::now();
    lock_guard g(lock_);
    summary out;
    if (now - last_summary_ < interval) return out;
    for (auto& [key, e] : sites_) {
      if (!e.pending_reports) continue;
      out.sites.push_back(e);
      e.pending_reports = e.pending_blocks = e.pending_bytes = 0;
    }
    if (out.sites.empty()) return out;
    out.seconds = std::chrono::duration<double>(now - last_summary_).count();
    last_summary_ = now;
    return out;
  }

  void reset() {
    lock_guard g(lock_);
    sites_.clear();
    last_summary_ = std::chrono::steady_clock::now();
  }

  spin_lock& lock() noexcept { return lock_; }  // fork.hpp

 private:
  spin_lock lock_;
  std::map<std::string, entry, std::less<>> sites_;
  std::chrono::steady_clock::time_point last_summary_ = std::chrono::steady_clock::now();
};

inline leak_ledger& ledger() {
  static no_destroy<leak_ledger> instance;
  return instance.get();
}

// The report being dispatched on this thread, and whether it had a new site:
// log_leak prints a report in full only then.
struct dispatch_note {
  const report* current = nullptr;
  bool new_site = false;
};
inline constinit thread_local dispatch_note dispatching{};

}  // namespace detail
}  // namespace leakguard
