// tests/scope_test.cpp — leakguard::scope: what it reports, when, and to whom.
#include <doctest/doctest.h>
#include <leakguard.hpp>

#include <memory>
#include <optional>
#include <source_location>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "support.hpp"

using lgt::keep;

TEST_SUITE("scope") {

TEST_CASE("scope and report have the value semantics the contract promises") {
  static_assert(!std::is_copy_constructible_v<leakguard::scope>);
  static_assert(!std::is_move_constructible_v<leakguard::scope>);
  static_assert(!std::is_copy_assignable_v<leakguard::scope>);
  static_assert(!std::is_move_assignable_v<leakguard::scope>);
  static_assert(std::is_copy_constructible_v<leakguard::report>);
  static_assert(std::is_move_constructible_v<leakguard::report>);
  static_assert(std::is_copy_assignable_v<leakguard::report>);
  static_assert(std::is_move_assignable_v<leakguard::report>);
  static_assert(leakguard::unlimited == static_cast<std::size_t>(-1));
  const leakguard::scope_options defaults{};
  CHECK(defaults.max_allocations == leakguard::unlimited);
  CHECK(defaults.max_bytes == leakguard::unlimited);
  CHECK_FALSE(defaults.all_threads);
  CHECK_FALSE(static_cast<bool>(defaults.handler));
  CHECK(defaults.label.empty());
}

TEST_CASE("a scope without allocations calls no handler") {
  lgt::capture_reports captured;
  { leakguard::scope s; }
  CHECK(captured.reports.empty());
}

TEST_CASE("a block freed inside the scope is not a leak") {
  lgt::capture_reports captured;
  {
    leakguard::scope s;
    int* p = keep(new int(1));
    delete p;
    char* a = keep(new char[100]);
    delete[] a;
  }
  CHECK(captured.reports.empty());
}

TEST_CASE("a leaked new int is reported once with its address, size and line") {
  lgt::capture_reports captured;
  int* p = nullptr;
  int line = 0;
  {
    leakguard::scope s;
    line = __LINE__ + 1;
    p = keep(new int(7));
  }
  REQUIRE(captured.reports.size() == 1);
  const leakguard::report& r = captured.reports[0];
  CHECK_FALSE(r.empty());
  CHECK(r.leaked_blocks() == 1);
  CHECK(r.leaked_bytes() == sizeof(int));
  REQUIRE(r.blocks().size() == 1);
  CHECK(r.blocks()[0].address == p);
  CHECK(r.blocks()[0].size == sizeof(int));
  CHECK(r.violations().empty());
  INFO("site: ", r.blocks()[0].site);
  CHECK(lgt::site_is(r.blocks()[0].site, __FILE__, line));
  delete p;
}

// The default argument names the line that calls the constructor: inside
// the standard library when it constructs the scope.
TEST_CASE("a scope the standard library constructs is named at the user's line, in where() and the text") {
  lgt::capture_reports captured;
  int* p = nullptr;
  int emplace_line = 0, make_unique_line = 0;
  {
    std::optional<leakguard::scope> s;
    emplace_line = __LINE__ + 1;
    s.emplace("emplaced");
    p = keep(new int(1));
  }
  {
    make_unique_line = __LINE__ + 1;
    auto s = std::make_unique<leakguard::scope>("made unique");
    p = keep(new int(2));
    s.reset();
  }
  REQUIRE(captured.reports.size() == 2);
  for (int i = 0; i < 2; ++i) {
    const leakguard::report& r = captured.reports[i];
    const int line = i == 0 ? emplace_line : make_unique_line;
    INFO("where: ", std::string(r.where().file_name()), ":", r.where().line());
    CHECK(std::string_view(r.where().file_name()).ends_with("scope_test.cpp"));
    CHECK(static_cast<int>(r.where().line()) == line);
    CHECK(std::string_view(r.where().function_name()).find("DOCTEST_ANON_FUNC") != std::string_view::npos);
    CHECK(r.to_text().find("scope_test.cpp:" + std::to_string(line)) != std::string::npos);
    CHECK(r.to_text().find("stl_construct") == std::string::npos);
  }
  delete p;
}

// A scope written in the user's code keeps its own location, even when a
// scope at that line was made by the library before.
TEST_CASE("a scope written in the user's code keeps its source_location") {
  lgt::capture_reports captured;
  int* p = nullptr;
  const std::source_location here = std::source_location::current();
  {
    leakguard::scope s("direct", here);
    p = keep(new int(3));
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].where().line() == here.line());
  CHECK(captured.reports[0].where().column() == here.column());
  delete p;
}

TEST_CASE("several leaks in one scope give exactly one handler call") {
  lgt::capture_reports captured;
  int* a = nullptr;
  char* b = nullptr;
  double* c = nullptr;
  {
    leakguard::scope s;
    a = keep(new int(1));
    b = keep(new char[10]);
    c = keep(new double(2));
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].leaked_blocks() == 3);
  CHECK(captured.reports[0].leaked_bytes() == sizeof(int) + 10 + sizeof(double));
  delete a;
  delete[] b;
  delete c;
}

TEST_CASE("check() mid-scope lists the blocks live so far and does not end the scope") {
  lgt::capture_reports captured;
  int* kept = nullptr;
  std::size_t first_blocks = 99, first_bytes = 99, second_blocks = 99;
  bool first_address_ok = false, first_site_ok = false;
  int line = 0;
  {
    leakguard::scope s;
    line = __LINE__ + 1;
    int* a = keep(new int(1));
    {
      // the report is built by leakguard and freed before the scope ends
      const leakguard::report r = s.check();
      first_blocks = r.leaked_blocks();
      first_bytes = r.leaked_bytes();
      first_address_ok = r.blocks().size() == 1 && r.blocks()[0].address == a;
      first_site_ok = r.blocks().size() == 1 && lgt::site_is(r.blocks()[0].site, __FILE__, line);
    }
    delete a;
    second_blocks = s.check().leaked_blocks();
    kept = keep(new int(2));  // leaked after check(): the end of the scope must still see it
  }
  CHECK(first_blocks == 1);
  CHECK(first_bytes == sizeof(int));
  CHECK(first_address_ok);
  CHECK(first_site_ok);
  CHECK(second_blocks == 0);
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].leaked_blocks() == 1);
  CHECK(captured.reports[0].blocks()[0].address == kept);
  delete kept;
}

TEST_CASE("check() does not call the leak handler") {
  lgt::capture_reports captured;
  int* p = nullptr;
  std::size_t reports_during_scope = 99;
  {
    leakguard::scope s;
    p = keep(new int(1));
    (void)s.check();
    reports_during_scope = captured.reports.size();
    delete p;
  }
  CHECK(reports_during_scope == 0);
  CHECK(captured.reports.empty());
}

TEST_CASE("nested scopes: an inner leak is reported by the inner scope only, once") {
  lgt::capture_reports captured;
  int* p = nullptr;
  int inner_line = 0;
  leakguard::scope_stats outer_stats;
  {
    leakguard::scope outer("outer");
    {
      inner_line = __LINE__ + 1;
      leakguard::scope inner("inner");
      p = keep(new int(3));
    }
    outer_stats = outer.stats();
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].label() == "inner");
  CHECK(captured.reports[0].where().line() == static_cast<unsigned>(inner_line));
  CHECK(captured.reports[0].leaked_blocks() == 1);
  CHECK(lgt::find_block(captured.reports[0], p) != nullptr);
  CHECK(outer_stats.live_blocks == 1);  // still counted by the outer scope, not reported again
  delete p;
}

TEST_CASE("nested scopes: a leak the inner scope reported and that is freed later settles the outer's count") {
  lgt::capture_reports captured;
  leakguard::scope_stats before, after;
  {
    leakguard::scope outer("outer");
    int* p = nullptr;
    {
      leakguard::scope inner("inner");
      p = keep(new int(3));
    }
    before = outer.stats();
    delete p;
    after = outer.stats();
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(before.live_blocks == 1);
  CHECK(after.live_blocks == 0);
  CHECK(after.deallocations == 1);
}

TEST_CASE("nested scopes: an inner leak freed before the outer ends is reported only by the inner") {
  lgt::capture_reports captured;
  {
    leakguard::scope outer("outer");
    int* p = nullptr;
    {
      leakguard::scope inner("inner");
      p = keep(new int(3));
    }
    delete p;
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].label() == "inner");
}

TEST_CASE("nested scopes: an outer allocation is not reported by the inner scope") {
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::scope outer("outer");
    p = keep(new int(1));
    { leakguard::scope inner("inner"); }
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].label() == "outer");
  delete p;
}

TEST_CASE("nested scopes: freeing an outer block inside the inner scope settles it") {
  lgt::capture_reports captured;
  {
    leakguard::scope outer("outer");
    int* p = keep(new int(1));
    {
      leakguard::scope inner("inner");
      delete p;
    }
  }
  CHECK(captured.reports.empty());
}

TEST_CASE("dismiss() on an inner scope hands its live blocks to the enclosing scope") {
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::scope outer("outer");
    {
      leakguard::scope inner("inner");
      p = keep(new int(4));
      inner.dismiss();
    }
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].label() == "outer");
  CHECK(lgt::find_block(captured.reports[0], p) != nullptr);
  delete p;
}

TEST_CASE("dismiss() on an outermost scope reports nothing, now or later") {
  lgt::capture_reports captured;
  int* p = nullptr;
  int* q = nullptr;
  {
    leakguard::scope s("dismissed");
    p = keep(new int(1));
    s.dismiss();
    q = keep(new int(2));  // after dismiss: not attributed to the dismissed scope
  }
  CHECK(captured.reports.empty());
  delete p;
  delete q;
}

TEST_CASE("after an inner dismiss() new allocations go to the enclosing scope only") {
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::scope outer("outer");
    {
      leakguard::scope inner("inner");
      inner.dismiss();
      p = keep(new int(1));
    }
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].label() == "outer");
  CHECK(lgt::find_block(captured.reports[0], p) != nullptr);
  delete p;
}

TEST_CASE("check() includes the blocks of scopes nested in it that are still open") {
  lgt::capture_reports captured;
  leakguard::scope outer("outer");
  int* mine = keep(new int(1));
  int* p = nullptr;
  int* q = nullptr;
  {
    leakguard::scope middle("middle");
    p = keep(new int(2));
    {
      leakguard::scope inner("inner");
      q = keep(new int(3));
      const leakguard::report r = outer.check();
      CHECK(r.leaked_blocks() == 3);
      CHECK(lgt::find_block(r, mine) != nullptr);
      CHECK(lgt::find_block(r, p) != nullptr);
      CHECK(lgt::find_block(r, q) != nullptr);
      CHECK(outer.stats().live_blocks == 3);
      const leakguard::report m = middle.check();  // not what the enclosing scope owns
      CHECK(m.leaked_blocks() == 2);
      CHECK(lgt::find_block(m, mine) == nullptr);
      delete q;
    }
    delete p;
  }
  CHECK(outer.check().leaked_blocks() == 1);
  delete mine;
  CHECK(outer.check().empty());
  CHECK(captured.reports.empty());
}

TEST_CASE("dismiss() of an enclosing scope while a nested one is open keeps the scopes above whole") {
  lgt::capture_reports captured;
  int* p = nullptr;
  int* q = nullptr;
  {
    leakguard::scope outer("outer");
    {
      leakguard::scope middle("middle");
      {
        leakguard::scope inner("inner");
        p = keep(new int(1));
        middle.dismiss();
        q = keep(new int(2));  // inner and outer; middle has ended
        CHECK(outer.stats().allocations == 2);
        CHECK(outer.stats().live_blocks == 2);
        CHECK(outer.check().leaked_blocks() == 2);
      }
      REQUIRE(captured.reports.size() == 1);  // inner's end
      CHECK(captured.reports[0].label() == "inner");
      CHECK(captured.reports[0].leaked_blocks() == 2);
    }
    CHECK(outer.stats().live_blocks == 2);  // the outer still counts them...
    CHECK(outer.check().empty());            // ...but they were reported once, by inner
  }
  CHECK(captured.reports.size() == 1);
  delete p;
  delete q;
}

TEST_CASE("freeing a block allocated before the scope reports nothing and never goes negative") {
  lgt::capture_reports captured;
  int* before = keep(new int(1));
  char* before_array = keep(new char[64]);
  leakguard::scope_stats st{};
  {
    leakguard::scope s;
    delete before;
    delete[] before_array;
    st = s.stats();
  }
  CHECK(captured.reports.empty());
  CHECK(st.allocations == 0);
  CHECK(st.deallocations == 0);
  CHECK(st.live_blocks == 0);
  CHECK(st.live_bytes == 0);
  CHECK(st.peak_bytes == 0);
}

TEST_CASE("blocks leaked by an ended scope are not reported by a later scope") {
  lgt::capture_reports captured;
  int* p = nullptr;
  { leakguard::scope first("first"); p = keep(new int(1)); }
  {
    leakguard::scope second("second");
    delete p;  // untracked by now: no report, no misuse
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].label() == "first");
}

TEST_CASE("an exception unwinding through the outermost LEAKGUARD_SCOPE: its survivors wait, then are judged") {
  lgt::capture_reports captured;
  int* p = nullptr;
  bool caught = false;
  try {
    LEAKGUARD_SCOPE("unwound");
    p = keep(new int(5));
    throw 42;  // an int: the exception object itself allocates nothing through new
  } catch (int) {
    caught = true;
  }
  CHECK(caught);
  CHECK(captured.reports.empty());  // the exception may still own them: judged later
  leakguard::flush();
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].label() == "unwound");
  CHECK(lgt::find_block(captured.reports[0], p) != nullptr);
  CHECK(captured.reports[0].to_text().find("after a grace period of 1000 ms") != std::string::npos);
  delete p;
}

TEST_CASE("an exception unwinding through a nested scope hands its survivors to the enclosing scope") {
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::scope outer("outer");
    try {
      LEAKGUARD_SCOPE("unwound");
      p = keep(new int(5));
      throw 42;
    } catch (int) {
    }
    CHECK(captured.reports.empty());
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].label() == "outer");
  CHECK(lgt::find_block(captured.reports[0], p) != nullptr);
  delete p;
}

TEST_CASE("an exception's message, alive while its scope unwinds, is not a leak") {
  lgt::capture_reports captured;
  std::string what;
  what.reserve(128);  // before the scope: the copy below allocates nothing inside it
  {
    leakguard::scope outer("outer");
    try {
      LEAKGUARD_SCOPE("throws");
      throw std::runtime_error(std::string(100, 'x'));  // the message is a tracked block
    } catch (const std::exception& e) {
      what = e.what();
    }
  }
  try {
    LEAKGUARD_SCOPE("throws, outermost");
    throw std::runtime_error(std::string(100, 'y'));
  } catch (const std::exception&) {
  }
  leakguard::flush();
  CHECK(what.size() == 100);
  CHECK(captured.reports.empty());
}

TEST_CASE("an exception unwinding through a clean scope reports nothing") {
  lgt::capture_reports captured;
  bool caught = false;
  try {
    LEAKGUARD_SCOPE("clean");
    auto holder = std::make_unique<int>(1);
    (void)keep(holder.get());
    throw 7;
  } catch (int) {
    caught = true;
  }
  CHECK(caught);
  CHECK(captured.reports.empty());
}

TEST_CASE("LEAKGUARD_SCOPE accepts no arguments, a label and options, twice in one block") {
  lgt::capture_reports captured;
  int* p = nullptr;
  int line = 0;
  {
    LEAKGUARD_SCOPE();
    LEAKGUARD_SCOPE("labelled");
    // the comma inside the braces must survive the macro
    line = __LINE__ + 1;
    LEAKGUARD_SCOPE(leakguard::scope_options{.label = "with options", .max_allocations = 10});
    p = keep(new int(1));
  }
  REQUIRE(captured.reports.size() == 1);  // by the innermost; the others do not report it again
  CHECK(captured.reports[0].label() == "with options");
  CHECK(captured.reports[0].where().line() == static_cast<unsigned>(line));
  CHECK(lgt::find_block(captured.reports[0], p) != nullptr);
  delete p;
}

TEST_CASE("where() is the line and file that opened the scope") {
  lgt::capture_reports captured;
  int* p = nullptr;
  int line = 0;
  {
    line = __LINE__ + 1;
    leakguard::scope s("where");
    p = keep(new int(1));
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].where().line() == static_cast<unsigned>(line));
  CHECK(lgt::base_name(captured.reports[0].where().file_name()) == "scope_test.cpp");
  delete p;
}

TEST_CASE("a report outlives its scope, its label string and the handler") {
  std::vector<leakguard::report> kept;
  int* p = nullptr;
  {
    lgt::capture_reports captured;
    auto label = std::make_unique<std::string>("a label long enough to live on the heap, not in SSO");
    {
      leakguard::scope s(*label);
      p = keep(new int(9));
    }
    label->assign(label->size(), 'X');  // scribble over the old text, then free it
    label.reset();
    kept = captured.reports;  // copies; the handler is restored after this block
  }
  REQUIRE(kept.size() == 1);
  leakguard::report copy = kept[0];
  leakguard::report moved = std::move(kept[0]);
  kept.clear();
  CHECK(copy.label() == "a label long enough to live on the heap, not in SSO");
  CHECK(moved.label() == "a label long enough to live on the heap, not in SSO");
  REQUIRE(moved.blocks().size() == 1);
  CHECK(moved.blocks()[0].address == p);
  leakguard::report assigned;
  assigned = copy;
  CHECK(assigned.leaked_bytes() == sizeof(int));
  CHECK(lgt::contains(assigned.to_text(), "a label long enough"));
  delete p;
}

TEST_CASE("scope_options::handler overrides the global handler for that scope only") {
  lgt::capture_reports global;
  lgt::report_sink local;
  int* p = nullptr;
  int* q = nullptr;
  {
    leakguard::scope_options o;
    o.label = "local handler";
    o.handler = local.handler();
    leakguard::scope s(o);
    p = keep(new int(1));
  }
  { leakguard::scope s("global handler"); q = keep(new int(2)); }
  REQUIRE(local.reports.size() == 1);
  CHECK(local.reports[0].label() == "local handler");
  REQUIRE(global.reports.size() == 1);
  CHECK(global.reports[0].label() == "global handler");
  delete p;
  delete q;
}

TEST_CASE("a handler's own allocations are not attributed to the enclosing scope") {
  lgt::capture_reports captured;  // copies each report: allocations inside the handler
  int* p = nullptr;
  std::vector<int*> made_by_handler;
  made_by_handler.reserve(4);
  lgt::report_sink inner_sink;
  {
    leakguard::scope outer("outer");
    {
      leakguard::scope_options o;
      o.label = "inner";
      o.handler = [&](const leakguard::report& r) {
        inner_sink.handler()(r);                     // a copy of the report
        made_by_handler.push_back(new int(1));       // and a block the handler keeps
      };
      leakguard::scope inner(o);
      p = keep(new int(2));
    }
  }
  REQUIRE(inner_sink.reports.size() == 1);
  CHECK(lgt::find_block(inner_sink.reports[0], p) != nullptr);
  CHECK(captured.reports.empty());  // the outer has neither p (reported) nor the handler's blocks
  for (int* x : made_by_handler) delete x;
  delete p;
}

TEST_CASE("the default handler aborts and prints the leak's size, file and line") {
  const int line = __LINE__ + 5;  // the `new char[1234]` line below
  auto result = lgt::run_in_child([] {
    leakguard::set_leak_handler(leakguard::abort_on_leak);
    leakguard::set_options(leakguard::runtime_options{});
    leakguard::scope s(leakguard::scope_options{.label = "abort me", .allow_retained = false});
    char* p = keep(new char[1234]);
    (void)p;
  });
  INFO(result.describe());
  CHECK(result.aborted());
  CHECK(lgt::contains(result.err, "1234"));
  CHECK(lgt::contains(result.err, "abort me"));
  CHECK(lgt::find_file_line(result.err, __FILE__, line) != std::string::npos);
}

TEST_CASE("abort_on_leak as the installed handler aborts even when nothing else is set") {
  auto result = lgt::run_in_child([] {
    lgt::leak_handler_guard g(leakguard::abort_on_leak);
    leakguard::scope s;
    (void)keep(new int(1));
  });
  INFO(result.describe());
  CHECK(result.aborted());
  CHECK_FALSE(result.err.empty());
}

TEST_CASE("log_leak prints the report and lets the program continue") {
  auto result = lgt::run_in_child([] {
    leakguard::set_options(leakguard::runtime_options{});
    lgt::leak_handler_guard g(leakguard::log_leak);
    { leakguard::scope s("logged"); (void)keep(new char[777]); }
    leakguard::flush();  // the report is written on leakguard's thread
    std::fputs("still running\n", stderr);
  });
  INFO(result.describe());
  CHECK(result.ok());
  CHECK(lgt::contains(result.err, "777"));
  CHECK(lgt::contains(result.err, "logged"));
  CHECK(lgt::contains(result.err, "still running"));
  // the report comes before the continuation
  CHECK(result.err.find("777") < result.err.find("still running"));
}

TEST_CASE("set_leak_handler returns the previous handler") {
  int first_calls = 0;
  int second_calls = 0;
  leakguard::leak_handler original =
      leakguard::set_leak_handler([&](const leakguard::report&) { ++first_calls; });
  leakguard::leak_handler first =
      leakguard::set_leak_handler([&](const leakguard::report&) { ++second_calls; });
  leakguard::leak_handler second = leakguard::set_leak_handler(std::move(original));
  REQUIRE(static_cast<bool>(first));
  REQUIRE(static_cast<bool>(second));
  const leakguard::report empty_report;
  first(empty_report);
  second(empty_report);
  CHECK(first_calls == 1);
  CHECK(second_calls == 1);
}

TEST_CASE("a scope on one thread does not see a sibling scope's blocks on the same thread after it ends") {
  lgt::capture_reports captured;
  int* a = nullptr;
  int* b = nullptr;
  {
    leakguard::scope one("one");
    a = keep(new int(1));
  }
  {
    leakguard::scope two("two");
    b = keep(new int(2));
  }
  REQUIRE(captured.reports.size() == 2);
  CHECK(captured.reports[0].leaked_blocks() == 1);
  CHECK(lgt::find_block(captured.reports[0], a) != nullptr);
  CHECK(captured.reports[1].leaked_blocks() == 1);
  CHECK(lgt::find_block(captured.reports[1], b) != nullptr);
  delete a;
  delete b;
}

TEST_CASE("many scopes in a loop: each reports only its own leak") {
  lgt::capture_reports captured;
  std::vector<int*> leaked;
  leaked.reserve(50);
  for (int i = 0; i < 50; ++i) {
    leakguard::scope s("loop");
    int* x = keep(new int(i));
    int* y = keep(new int(i));
    delete y;
    leaked.push_back(x);  // the vector's growth: reserved before, so no allocation here
  }
  REQUIRE(captured.reports.size() == 50);
  bool all_single = true;
  for (std::size_t i = 0; i < captured.reports.size(); ++i) {
    const auto& r = captured.reports[i];
    if (r.leaked_blocks() != 1 || r.blocks()[0].address != leaked[i]) all_single = false;
  }
  CHECK(all_single);
  for (int* x : leaked) delete x;
}

}  // TEST_SUITE
