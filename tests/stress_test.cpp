// tests/stress_test.cpp — regressions found by the randomized stress test.
#include <doctest/doctest.h>
#include <leakguard.hpp>

#include "support.hpp"

TEST_SUITE("stress") {

// Found by the stress test: the ended scope's scope_state, recycled for the
// new scope, became its own parent, and the first allocation spun forever on
// a lock it held. In a child: before the fix it hung (the child's alarm).
TEST_CASE("regression: a scope opened under an adopted context that has ended reports its own leak, no deadlock") {
  auto result = lgt::run_in_child([] {
    lgt::capture_reports captured;
    leakguard::context ctx;
    { leakguard::scope request("request"); ctx = leakguard::current_context(); }
    int* q = nullptr;
    {
      leakguard::adopt a{ctx};  // a late pool task
      leakguard::scope task("task");
      delete lgt::keep(new int(1));
      q = lgt::keep(new int(2));
    }
    LGT_CHILD_CHECK(3, captured.reports.size() == 1);
    LGT_CHILD_CHECK(4, captured.reports[0].label() == "task");
    LGT_CHILD_CHECK(5, lgt::find_block(captured.reports[0], q) != nullptr);
    delete q;
  });
  INFO(result.describe());
  CHECK(result.ok());
}

}  // TEST_SUITE
