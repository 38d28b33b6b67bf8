// leakguard/failure_injection.hpp — exception-safety testing: fail each
// allocation of a piece of code in turn and check that nothing leaks.
//
//   TEST_CASE("cache::insert is exception-safe") {
//     auto result = leakguard::check_exception_safety([] {
//       cache c;
//       c.insert("key", std::string(100, 'x'));
//     });
//     CHECK(result.ok());            // every run, each with one failing allocation, freed everything
//     CHECK(result.runs == result.allocations + 1);
//   }
//
// One allocation at a time: scope_options::fail_allocation = N makes the
// Nth allocation inside a scope fail (std::bad_alloc from operator new).
#pragma once

#include <cstddef>
#include <exception>
#include <new>
#include <source_location>
#include <string>
#include <utility>
#include <vector>

#include "config.hpp"
#include "detail/runtime_api.hpp"
#include "report.hpp"
#include "scope.hpp"

namespace leakguard {

struct exception_safety_result {
  std::size_t allocations = 0;       // made by one clean run of the callable
  std::size_t runs = 0;              // the clean run, then one per allocation
  std::size_t failures_escaped = 0;  // runs that ended in std::bad_alloc (fine)
  std::vector<report> leaks;         // one per run that leaked, labelled "fail allocation N"
  // Runs whose callable threw something other than std::bad_alloc, e.g. a
  // broken invariant ("fail allocation 3: what()").
  std::vector<std::string> unexpected_exceptions;

  bool ok() const noexcept { return leaks.empty() && unexpected_exceptions.empty(); }
};

// Runs `f` once to count its allocations (on this thread, in a scope), then
// once more for each of them with exactly that one failing. `f` must do the
// same allocations each time it runs (deterministic). Leaks of every run are
// collected, not handed to the leak handler. Runs stop after `max_runs`.
template <class F>
exception_safety_result check_exception_safety(F&& f, std::size_t max_runs = 10000,
                                               std::source_location where = std::source_location::current()) {
  exception_safety_result result;
#if LEAKGUARD_ENABLED
  auto collect = [&result](const report& r) { result.leaks.push_back(r); };
  auto run = [&](std::size_t fail_at, std::string label) -> std::size_t {
    scope_options o{.label = label, .handler = collect, .fail_allocation = fail_at};
    scope s(std::move(o), where);
    try {
      f();
    } catch (const std::bad_alloc&) {
      ++result.failures_escaped;
    } catch (const std::exception& e) {
      detail::internal_section guard;
      result.unexpected_exceptions.push_back(label + ": " + e.what());
    } catch (...) {
      detail::internal_section guard;
      result.unexpected_exceptions.push_back(label + ": unknown exception");
    }
    ++result.runs;
    return static_cast<std::size_t>(s.stats().allocations);
  };
  result.allocations = run(0, "clean run");
  for (std::size_t n = 1; n <= result.allocations && result.runs < max_runs; ++n)
    run(n, "fail allocation " + std::to_string(n));
#else
  (void)max_runs;
  (void)where;
  f();
  result.runs = 1;
#endif
  return result;
}

}  // namespace leakguard
