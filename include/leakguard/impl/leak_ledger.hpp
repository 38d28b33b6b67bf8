// leakguard/impl/leak_ledger.hpp — per-site totals of every leak reported.
//
// Every report that reaches a leak handler is first added here, so a server
// can export leaks as metrics (leakguard::leak_sites(), write_metrics(),
// which also splits them by scope label). log_leak keeps its own marks here
// too: which sites it has printed in full, and the sums of the later
// reports it has not printed yet.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "../handler.hpp"
#include "../report.hpp"
#include "internal_memory.hpp"

namespace leakguard::detail {

class leak_ledger {
 public:
  struct entry {
    site_totals totals;
    bool logged = false;  // log_leak has printed a report of this site in full
    // log_leak's reports of this site since its last summary line.
    std::uint64_t pending_reports = 0, pending_blocks = 0, pending_bytes = 0;
  };

  // Adds a report to the per-site totals (leak_sites()) and to the totals
  // per scope label and site.
  void record(const report& r) {
    const auto now = std::chrono::system_clock::now();
    lock_guard g(lock_);
    auto add = [&](entry& e, bool first_of_report, std::size_t bytes) {
      if (e.totals.reports == 0 && first_of_report) e.totals.first_seen = now;
      e.totals.last_seen = now;
      ++e.totals.blocks;
      e.totals.bytes += bytes;
      if (first_of_report) ++e.totals.reports;
    };
    each_site(r, sites_, {}, add);
    each_site(r, scoped_, r.label(), add);
  }

  // For log_leak: true if one of the report's sites has not been printed by
  // log_leak yet (they all count as printed from now on); else, with
  // `pend`, its blocks join the sites' pending sums for the next summary.
  // Whatever other handlers saw of a site does not count here.
  bool log(const report& r, bool pend) {
    lock_guard g(lock_);
    bool fresh = false;
    each_site(r, sites_, {}, [&](entry& e, bool, std::size_t) { fresh |= !e.logged; });
    each_site(r, sites_, {}, [&](entry& e, bool first_of_report, std::size_t bytes) {
      e.logged = true;
      if (fresh || !pend) return;
      ++e.pending_blocks;
      e.pending_bytes += bytes;
      if (first_of_report) ++e.pending_reports;
    });
    return fresh;
  }

  std::vector<site_totals> totals() {
    lock_guard g(lock_);
    std::vector<site_totals> out;
    out.reserve(sites_.size());
    for (const auto& [key, e] : sites_)
      if (e.totals.reports) out.push_back(e.totals);
    return out;
  }

  // The totals per scope label and site, by label then site: `site` holds
  // the label, scope_separator, then the site.
  static constexpr char scope_separator = '\x1f';
  std::vector<site_totals> scoped_totals() {
    lock_guard g(lock_);
    std::vector<site_totals> out;
    out.reserve(scoped_.size());
    for (const auto& [key, e] : scoped_) out.push_back(e.totals);
    return out;
  }

  struct summary {
    double seconds = 0;  // since the previous summary
    std::vector<entry> sites;
  };

  // When the next summary is due, if any sums are pending.
  std::optional<std::chrono::steady_clock::time_point> next_summary(std::chrono::seconds interval) {
    lock_guard g(lock_);
    for (const auto& [key, e] : sites_)
      if (e.pending_reports) return last_summary_ + interval;
    return std::nullopt;
  }

  // The pending sums, cleared, if `interval` has passed since the previous
  // summary (zero: at once, as at exit); else nothing.
  summary take_pending(std::chrono::seconds interval) {
    const auto now = std::chrono::steady_clock::now();
    lock_guard g(lock_);
    summary out;
    if (interval.count() > 0 && now - last_summary_ < interval) return out;
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
    scoped_.clear();
    last_summary_ = std::chrono::steady_clock::now();
  }

  spin_lock& lock() noexcept { return lock_; }  // fork.hpp

 private:
  using site_map = std::map<std::string, entry, std::less<>>;

  // Calls f(entry, first time this report names the site, block bytes) for
  // each leaked block and violation of `r`, keyed by site, or by `label`,
  // scope_separator and site when `label` is not null. REQUIRES: lock_.
  template <class F>
  void each_site(const report& r, site_map& sites, std::optional<std::string_view> label, F f) {
    std::map<std::string_view, bool, std::less<>> seen;  // a report counts once per site
    auto visit = [&](std::string site, std::size_t bytes) {
      if (label) site = std::string(*label) + scope_separator + site;
      auto [it, fresh] = sites.try_emplace(site);
      if (fresh) it->second.totals.site = site;
      f(it->second, seen.try_emplace(it->first, true).second, bytes);
    };
    for (const leaked_block& b : r.blocks()) visit(b.site, b.size);
    for (const violation& v : r.violations()) visit("violation: " + v.site, v.size);
  }

  spin_lock lock_;
  site_map sites_;
  site_map scoped_;
  std::chrono::steady_clock::time_point last_summary_ = std::chrono::steady_clock::now();
};

inline leak_ledger& ledger() {
  static no_destroy<leak_ledger> instance;
  return instance.get();
}

// The report being dispatched to a handler on this thread (already in the
// ledger): log_leak records only reports handed to it some other way.
inline constinit thread_local const report* dispatching = nullptr;

}  // namespace leakguard::detail
