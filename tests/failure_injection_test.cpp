// Failure injection: scope_options::fail_allocation and check_exception_safety.
#include <doctest/doctest.h>
#include <leakguard.hpp>

#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "support.hpp"

using lgt::keep;

TEST_SUITE("failure_injection") {

TEST_CASE("fail_allocation = 3: the third allocation in the scope throws std::bad_alloc") {
  int made = 0;
  bool threw = false;
  std::vector<int*> blocks;
  blocks.reserve(8);
  {
    leakguard::scope s(leakguard::scope_options{.fail_allocation = 3});
    try {
      for (int i = 0; i < 5; ++i) {
        blocks.push_back(keep(new int(i)));
        ++made;
      }
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    for (int* p : blocks) delete p;
  }
  CHECK(threw);
  CHECK(made == 2);
}

TEST_CASE("fail_allocation: nothrow new returns null, and later allocations succeed again") {
  int* first = nullptr;
  int* failed = reinterpret_cast<int*>(1);
  int* after = nullptr;
  {
    leakguard::scope s(leakguard::scope_options{.fail_allocation = 2});
    first = keep(new (std::nothrow) int(1));
    failed = keep(new (std::nothrow) int(2));
    after = keep(new (std::nothrow) int(3));
    delete first;
    delete after;
  }
  CHECK(first != nullptr);
  CHECK(failed == nullptr);
  CHECK(after != nullptr);
}

TEST_CASE("fail_allocation in an inner scope does not disturb an outer one's countdown") {
  bool outer_threw = false;
  bool inner_threw = false;
  {
    leakguard::scope outer(leakguard::scope_options{.fail_allocation = 4});
    delete keep(new int(1));  // outer: 1
    {
      leakguard::scope inner(leakguard::scope_options{.fail_allocation = 1});
      try {
        delete keep(new int(2));
      } catch (const std::bad_alloc&) {
        inner_threw = true;
      }
    }
    try {
      delete keep(new int(3));  // outer: 2
      delete keep(new int(4));  // outer: 3
      delete keep(new int(5));  // outer: 4 -> fails
    } catch (const std::bad_alloc&) {
      outer_threw = true;
    }
  }
  CHECK(inner_threw);
  CHECK(outer_threw);
}

namespace {
// Exception-safe: every block is owned by a smart pointer or container.
void safe_work() {
  auto a = std::make_unique<std::string>(64, 'a');
  std::vector<std::unique_ptr<int>> v;
  for (int i = 0; i < 4; ++i) v.push_back(std::make_unique<int>(i));
  std::map<int, std::string> m{{1, std::string(40, 'x')}};
  keep(a->data());  // clang may elide allocations nothing reads
  keep(&m);
}

// Not exception-safe: a raw owning pointer leaks if the next allocation throws.
void unsafe_work() {
  int* raw = keep(new int(7));
  std::string s(64, 'y');  // throws here when this allocation fails: `raw` leaks
  keep(s.data());          // clang may elide an unused string's allocation
  delete raw;
}
}  // namespace

TEST_CASE("check_exception_safety: exception-safe code passes, with one run per allocation") {
  const auto r = leakguard::check_exception_safety(safe_work);
  CHECK(r.ok());
  CHECK(r.allocations >= 7);
  CHECK(r.runs == r.allocations + 1);
  CHECK(r.failures_escaped == r.allocations);
}

TEST_CASE("check_exception_safety: a leak on the failure path is found and named") {
  lgt::capture_reports global;  // nothing may reach the global handler
  const auto r = leakguard::check_exception_safety(unsafe_work);
  CHECK_FALSE(r.ok());
  CHECK(r.allocations == 2);
  REQUIRE(r.leaks.size() == 1);
  CHECK(r.leaks[0].label() == "fail allocation 2");
  CHECK(r.leaks[0].leaked_blocks() == 1);
  CHECK(r.leaks[0].blocks()[0].size == sizeof(int));
  CHECK(global.reports.empty());
}

// std::runtime_error would allocate its message (and that allocation would be
// the one failing); this one does not.
struct invariant_broken : std::exception {
  const char* what() const noexcept override { return "invariant broken"; }
};

TEST_CASE("check_exception_safety: other exceptions are collected, not swallowed silently") {
  int runs = 0;
  const auto r = leakguard::check_exception_safety([&] {
    if (++runs == 2) throw invariant_broken();
    delete keep(new int(1));
  });
  CHECK_FALSE(r.ok());
  REQUIRE(r.unexpected_exceptions.size() == 1);
  CHECK(r.unexpected_exceptions[0] == "fail allocation 1: invariant broken");
}

}  // TEST_SUITE
