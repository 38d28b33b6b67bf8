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

// Found by the stress test (LEAKGUARD_STRESS_KNOWN_BUGS=1): after an outer
// scope is dismissed out of order, a new scope recycles its scope_state and
// the chain walk of an allocation reached the lock it already held. Only the
// hang is fixed; the enclosing scopes still lose track of the nested scopes'
// blocks (see model.hpp), so this checks only what is right either way.
TEST_CASE("regression: an allocation after an out-of-order dismiss() does not deadlock") {
  auto result = lgt::run_in_child([] {
    lgt::capture_reports captured;
    int* q = nullptr;
    {
      leakguard::scope middle("middle");
      leakguard::scope inner("inner");
      middle.dismiss();
      leakguard::scope innermost("innermost");
      delete lgt::keep(new int(1));
      q = lgt::keep(new int(2));
    }
    LGT_CHILD_CHECK(3, !captured.reports.empty());
    LGT_CHILD_CHECK(4, captured.reports[0].label() == "innermost");
    LGT_CHILD_CHECK(5, lgt::find_block(captured.reports[0], q) != nullptr);
    delete q;
  });
  INFO(result.describe());
  CHECK(result.ok());
}

}  // TEST_SUITE
