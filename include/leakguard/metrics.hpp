// leakguard/metrics.hpp — leaks and heap figures for a metrics endpoint.
//
//   svr.Get("/metrics", [](auto&, auto& res) {
//     std::ostringstream os;
//     leakguard::write_metrics(os);
//     res.set_content(os.str(), "text/plain; version=0.0.4");
//   });
//
// Writes the Prometheus text exposition format (version 0.0.4), each family
// with its HELP and TYPE lines:
//
//   leakguard_leak_reports_total{scope,site}    counter  scope ends that reported a leak at the site
//   leakguard_leaked_blocks_total{scope,site}   counter  leaked blocks (direct and indirect)
//   leakguard_leaked_bytes_total{scope,site}    counter
//   leakguard_budget_violations_total{scope,site} counter  allocations over a scope's budget
//   leakguard_retained_blocks{site}             gauge    live blocks judged retained (retained_sites())
//   leakguard_retained_bytes{site}              gauge
//   leakguard_retained_growing{site}            gauge    1 while the site keeps growing
//   leakguard_heap_live_blocks, _live_bytes, _peak_bytes            gauges (global_stats())
//   leakguard_heap_allocations_total, _deallocations_total          counters
//
// `scope` is the scope's label, `site` the allocation's file:line (or its
// function when there are no line numbers), as in leak_sites(). The leak
// counters count reports handed to a handler since start-up, or since
// reset_leak_sites() (a counter reset, which Prometheus handles). Families
// with no sample yet still have their HELP and TYPE lines.
#pragma once

#include <iosfwd>

#include "config.hpp"

namespace leakguard {

LEAKGUARD_API void write_metrics(std::ostream& out);

}  // namespace leakguard
