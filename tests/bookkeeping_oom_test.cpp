// tests/bookkeeping_oom_test.cpp — leakguard's own bookkeeping cannot get
// memory: the user's allocation succeeds or fails as it would without
// leakguard, and the next report says what could not be recorded.
#include <doctest/doctest.h>
#include <leakguard.hpp>
#include <leakguard/impl/thread_state.hpp>  // the test hook detail::set_failing_books

#include <new>
#include <optional>
#include <string>
#include <utility>

#include "support.hpp"

using lgt::keep;

namespace {

// Makes this thread's bookkeeping of `kinds` fail while it lives (test hook).
class out_of_books {
 public:
  explicit out_of_books(unsigned kinds) noexcept : saved_(leakguard::detail::set_failing_books(kinds)) {}
  ~out_of_books() { leakguard::detail::set_failing_books(saved_); }
  out_of_books(const out_of_books&) = delete;
  out_of_books& operator=(const out_of_books&) = delete;

 private:
  unsigned saved_;
};

// What the next report says about losses, consumed.
leakguard::unrecorded_counts next_report_losses() {
  leakguard::scope s;
  return s.check().unrecorded();
}

LEAKGUARD_NOINLINE int* allocate_from_a_new_stack() {
  int* p = keep(new int(3));
  lgt::no_tail_call();
  return p;
}

}  // namespace

TEST_CASE("an allocation without memory for its record succeeds unrecorded, and the next report says so") {
  (void)next_report_losses();  // start from none
  lgt::report_sink sink;
  const leakguard::heap_stats before = leakguard::global_stats();
  int* unrecorded = nullptr;
  void* aligned = nullptr;
  int* recorded = nullptr;
  int line = 0;
  leakguard::scope_stats inside;
  {
    leakguard::scope s(leakguard::scope_options{.label = "oom", .handler = sink.handler()});
    {
      out_of_books oom(leakguard::detail::book_record);
      unrecorded = keep(new int(5));
      aligned = keep(::operator new(100, std::align_val_t(64)));
    }
    recorded = keep(new int(6)); line = __LINE__;
    inside = s.stats();
  }
  const leakguard::heap_stats after = leakguard::global_stats();

  REQUIRE(unrecorded != nullptr);
  CHECK(*unrecorded == 5);
  REQUIRE(aligned != nullptr);
  CHECK(lgt::aligned(aligned, 64));
  CHECK(lgt::usable(aligned, 100));
  CHECK(inside.allocations == 1);                           // the scope saw only the recorded one
  CHECK(after.allocations - before.allocations == 3);       // the process saw all three
  REQUIRE(sink.reports.size() == 1);
  const leakguard::report& r = sink.reports[0];
  REQUIRE(r.leaked_blocks() == 1);
  CHECK(r.blocks()[0].address == recorded);
  CHECK(lgt::site_is(r.blocks()[0].site, __FILE__, line));
  CHECK(r.unrecorded().allocations == 2);
  const std::string text = r.to_text();
  CHECK_MESSAGE(lgt::contains(text, "leakguard: 2 allocations could not be recorded (bookkeeping out of memory); "
                                    "their leaks may be missing\n"),
                text);
  const std::string json = r.to_json();
  const auto doc = lgt::json_parser(json).parse_document();
  REQUIRE_MESSAGE(doc, json);
  const lgt::json_value* u = doc->get("unrecorded");
  REQUIRE(u);
  REQUIRE(u->get("allocations"));
  CHECK(u->get("allocations")->number == 2);
  CHECK(u->get("stacks")->number == 0);
  CHECK_FALSE(next_report_losses().any());  // told once

  delete unrecorded;  // an unrecorded block frees like any other
  ::operator delete(aligned, std::align_val_t(64));
  delete recorded;
}

TEST_CASE("an allocation that fails anyway still fails without memory for its record, and is not counted") {
  (void)next_report_losses();
  void* p = nullptr;
  {
    leakguard::scope s;
    out_of_books oom(leakguard::detail::book_record);
    p = ::operator new(std::size_t{1} << 61, std::nothrow);
  }
  CHECK(p == nullptr);
  CHECK_FALSE(next_report_losses().any());
}

TEST_CASE("a stack without memory in the depot: the block is reported without its site, and counted") {
  (void)next_report_losses();
  lgt::report_sink sink;
  int* p = nullptr;
  {
    leakguard::scope s(leakguard::scope_options{.handler = sink.handler()});
    out_of_books oom(leakguard::detail::book_stack);
    p = allocate_from_a_new_stack();
  }
  REQUIRE(sink.reports.size() == 1);
  const leakguard::report& r = sink.reports[0];
  REQUIRE(r.leaked_blocks() == 1);
  CHECK(r.blocks()[0].address == p);
  CHECK(r.blocks()[0].site == "(stack not recorded: leakguard out of memory)");
  CHECK(r.unrecorded().stacks == 1);
  CHECK_MESSAGE(lgt::contains(r.to_text(), "leakguard: 1 allocation recorded without a stack (bookkeeping out of "
                                           "memory); their sites are unknown\n"),
                r.to_text());
  delete p;
}

TEST_CASE("an allocator's name without memory to intern it is left out of the report, and counted") {
  (void)next_report_losses();
  lgt::report_sink sink;
  leakguard::allocator<int> a("bookkeeping_oom_test allocator");
  int* p = nullptr;
  {
    leakguard::scope s(leakguard::scope_options{.handler = sink.handler()});
    out_of_books oom(leakguard::detail::book_origin);
    p = a.allocate(1);
  }
  REQUIRE(sink.reports.size() == 1);
  REQUIRE(sink.reports[0].leaked_blocks() == 1);
  CHECK(sink.reports[0].blocks()[0].origin.empty());
  CHECK(sink.reports[0].unrecorded().origins == 1);
  a.deallocate(p, 1);
}

TEST_CASE("a scope without memory for its books is inert, and the next report says so") {
  (void)next_report_losses();
  lgt::report_sink sink;
  std::optional<leakguard::scope> inert;
  {
    out_of_books oom(leakguard::detail::book_scope);
    inert.emplace(leakguard::scope_options{.label = "inert", .handler = sink.handler()});
  }
  int* p = keep(new int(1));
  inert.reset();
  CHECK(sink.size() == 0);
  const leakguard::unrecorded_counts lost = next_report_losses();
  CHECK(lost.scopes == 1);
  leakguard::report r("r", std::source_location::current(), {}, {}, lost);
  CHECK(lgt::contains(r.to_text(), "leakguard: 1 scope could not be opened (bookkeeping out of memory)"));
  delete p;
}

TEST_CASE("a scope's end without memory for its report does not throw, and the next report says so") {
  unsigned kind = 0;
  SUBCASE("no memory for the snapshot of its blocks") { kind = leakguard::detail::book_snapshot; }
  SUBCASE("no memory to build the report") { kind = leakguard::detail::book_report; }
  (void)next_report_losses();
  lgt::report_sink sink;
  std::optional<leakguard::scope> s;
  s.emplace(leakguard::scope_options{.handler = sink.handler()});
  int* p = keep(new int(1));
  {
    out_of_books oom(kind);
    s.reset();
  }
  CHECK(sink.size() == 0);
  CHECK(next_report_losses().reports == 1);
  delete p;
}
