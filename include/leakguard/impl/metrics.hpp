// leakguard/impl/metrics.hpp — write_metrics(): the Prometheus text format.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "../handler.hpp"
#include "../stats.hpp"
#include "leak_ledger.hpp"
#include "suppressions.hpp"

namespace leakguard::detail {

// A label value: backslash, double quote and line feed escaped.
inline std::string metric_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

inline void metric_family(std::ostream& out, const char* name, const char* type, const char* help) {
  out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

struct scoped_site {
  std::string scope, site;
  const site_totals* totals;
};

inline void write_metrics_text(std::ostream& out) {
  const std::vector<site_totals> scoped = ledger().scoped_totals();
  std::vector<scoped_site> leaks, violations;
  for (const site_totals& t : scoped) {
    const std::size_t cut = t.site.rfind(leak_ledger::scope_separator);
    scoped_site s{t.site.substr(0, cut), t.site.substr(cut + 1), &t};
    constexpr std::string_view violation = "violation: ";
    if (s.site.starts_with(violation)) {
      s.site.erase(0, violation.size());
      violations.push_back(std::move(s));
    } else {
      leaks.push_back(std::move(s));
    }
  }
  auto per_site = [&](const std::vector<scoped_site>& sites, const char* name, const char* type, const char* help,
                      std::uint64_t site_totals::*figure) {
    metric_family(out, name, type, help);
    for (const scoped_site& s : sites)
      out << name << "{scope=\"" << metric_label(s.scope) << "\",site=\"" << metric_label(s.site) << "\"} "
          << (*s.totals).*figure << '\n';
  };
  per_site(leaks, "leakguard_leak_reports_total", "counter",
           "Scope ends that reported leaked blocks allocated at the site.", &site_totals::reports);
  per_site(leaks, "leakguard_leaked_blocks_total", "counter", "Leaked blocks (direct and indirect) reported, by site.",
           &site_totals::blocks);
  per_site(leaks, "leakguard_leaked_bytes_total", "counter", "Bytes of the leaked blocks reported, by site.",
           &site_totals::bytes);
  per_site(violations, "leakguard_budget_violations_total", "counter",
           "Allocations over a scope's budget, by the offending allocation's site.", &site_totals::blocks);

  const std::vector<retained_site> retained = retained_sites();
  auto per_retained = [&](const char* name, const char* help, auto figure) {
    metric_family(out, name, "gauge", help);
    for (const retained_site& r : retained)
      out << name << "{site=\"" << metric_label(r.site) << "\"} " << figure(r) << '\n';
  };
  per_retained("leakguard_retained_blocks",
               "Live blocks that scopes judged retained (reachable from a global, a static or a thread_local).",
               [](const retained_site& r) { return r.live_blocks; });
  per_retained("leakguard_retained_bytes", "Live bytes that scopes judged retained.",
               [](const retained_site& r) { return r.live_bytes; });
  per_retained("leakguard_retained_growing", "1 while the site's retained bytes keep reaching new highs.",
               [](const retained_site& r) { return r.growing ? 1 : 0; });

  metric_family(out, "leakguard_suppressed_blocks_total", "counter",
                "Leaked blocks a suppression pattern dropped from reports, by pattern (0: it never matched).");
  for (const suppression_use& u : suppression_use_list())
    out << "leakguard_suppressed_blocks_total{pattern=\"" << metric_label(u.pattern) << "\"} " << u.blocks << '\n';

  const heap_stats h = global_stats();
  auto figure = [&](const char* name, const char* type, const char* help, std::uint64_t value) {
    metric_family(out, name, type, help);
    out << name << ' ' << value << '\n';
  };
  figure("leakguard_heap_live_blocks", "gauge", "Live blocks allocated through leakguard.", h.live_blocks);
  figure("leakguard_heap_live_bytes", "gauge", "Live bytes allocated through leakguard.", h.live_bytes);
  figure("leakguard_heap_peak_bytes", "gauge", "The highest live bytes seen.", h.peak_bytes);
  figure("leakguard_heap_allocations_total", "counter", "Allocations through leakguard.", h.allocations);
  figure("leakguard_heap_deallocations_total", "counter", "Deallocations through leakguard.", h.deallocations);
}

}  // namespace leakguard::detail
