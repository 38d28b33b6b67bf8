// tests/report_test.cpp — what a report says: sites, stacks, order, text, JSON.
#include <doctest/doctest.h>
#include <leakguard.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <source_location>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support.hpp"

using lgt::keep;

namespace {

struct with_destructor {
  ~with_destructor() { ++destroyed; }
  static inline int destroyed = 0;
  int value = 0;
};

// Named, never inlined: the stack of their allocation must show them.
constexpr int leaf_allocation_line = __LINE__ + 2;
[[gnu::noinline]] int* report_test_leaf_allocator() {
  return keep(new int(11));
}
[[gnu::noinline]] int* report_test_middle_caller() {
  int* p = report_test_leaf_allocator();
  asm volatile("" ::: "memory");  // no tail call
  return p;
}

// A framework that calls the user's handler from deep inside, as a server's
// dispatch code does, with names as long as a real one's: every block of the
// handler's scope shares these frames.
using report_test_routes = std::vector<std::pair<std::string, std::string>>;
using leak_out = void**;
template <int N, class Routes>
[[gnu::noinline]] void report_test_dispatch(void (*handler)(leak_out), leak_out out, const Routes* routes) {
  if constexpr (N == 0) handler(out);
  else report_test_dispatch<N - 1>(handler, out, routes);
  asm volatile("" ::: "memory");  // no tail call
}
template <int N>
void run_in_framework(void (*handler)(leak_out), leak_out out) {
  const report_test_routes routes;
  report_test_dispatch<N>(handler, out, &routes);
}

// A handler that opens its scope and leaks two blocks from two lines.
[[gnu::noinline]] void report_test_handler(leak_out out) {
  leakguard::scope s("handler");
  out[0] = keep(new int(1));
  out[1] = report_test_middle_caller();
  asm volatile("" ::: "memory");
}

// Five blocks, as a request handler that leaks its parsed request would.
[[gnu::noinline]] void report_test_five_block_handler(leak_out out) {
  leakguard::scope s("five");
  for (int i = 0; i < 5; ++i) out[i] = keep(new char[static_cast<std::size_t>(24 + i)]);
  asm volatile("" ::: "memory");
}

// A handler whose scope also takes a block another thread allocates.
[[gnu::noinline]] void report_test_threaded_handler(leak_out out) {
  leakguard::scope s(leakguard::scope_options{.label = "threads", .all_threads = true});
  out[0] = keep(new int(1));
  std::thread([out] { out[1] = report_test_middle_caller(); }).join();
  asm volatile("" ::: "memory");
}

[[gnu::noinline]] void report_test_call_function(const std::function<void(leak_out)>& handler, leak_out out) {
  handler(out);
  asm volatile("" ::: "memory");
}

// The report style for the rest of a test (its options_guard restores it).
void set_style(leakguard::stack_root_mode root, int report_frames) {
  leakguard::runtime_options o = leakguard::options();
  o.stack_root = root;
  o.report_frames = report_frames;
  leakguard::set_options(o);
}

// The one captured report's JSON, parsed.
lgt::json_value only_report_json(const lgt::capture_reports& captured) {
  REQUIRE(captured.reports.size() == 1);
  const std::string json = captured.reports[0].to_json();
  INFO("json:\n", json);
  lgt::json_parser parser(json);
  std::optional<lgt::json_value> doc = parser.parse_document();
  REQUIRE(doc.has_value());
  REQUIRE(doc->get("blocks") != nullptr);
  return std::move(*doc);
}

std::string functions_of(const lgt::json_value* stack) {
  std::string names;
  if (stack)
    for (const lgt::json_value& f : stack->items)
      if (const lgt::json_value* name = f.get("function")) names += name->string + "\n";
  return names;
}

}  // namespace

TEST_SUITE("report") {

// ---- where ----------------------------------------------------------------------

// A plugin's literals are unmapped by dlclose(): the report keeps its own
// copy of where the scope was opened (tests/layouts checks the dlclose()).
TEST_CASE("a report's where() is a copy of the scope's location, equal in every field") {
  lgt::capture_reports captured;
  const std::source_location here = std::source_location::current();
  int* p = nullptr;
  {
    leakguard::scope s("where", here);
    p = keep(new int(1));
  }
  REQUIRE(captured.reports.size() == 1);
  const std::source_location where = captured.reports[0].where();
  CHECK(std::string_view(where.file_name()) == here.file_name());
  CHECK(std::string_view(where.function_name()) == here.function_name());
  CHECK(where.line() == here.line());
  CHECK(where.column() == here.column());
  CHECK(static_cast<const void*>(where.file_name()) != static_cast<const void*>(here.file_name()));
  // One copy per location, not one per report.
  const leakguard::report again("again", here, {}, {}, {});
  CHECK(again.where().file_name() == where.file_name());
  CHECK(leakguard::report().where().line() == 0);
  delete p;
}

// ---- sites ----------------------------------------------------------------------

TEST_CASE("site of a plain new int is the allocating line") {
  lgt::capture_reports captured;
  int* p = nullptr;
  int line = 0;
  {
    leakguard::scope s;
    line = __LINE__ + 1;
    p = keep(new int(1));
  }
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].blocks().size() == 1);
  const auto& b = captured.reports[0].blocks()[0];
  INFO("site: ", b.site);
  CHECK(lgt::site_is(b.site, __FILE__, line));
  CHECK(b.address == p);
  CHECK(b.size == sizeof(int));
  delete p;
}

TEST_CASE("site and size of new int[n] (no cookie: address is the user's pointer)") {
  lgt::capture_reports captured;
  int* p = nullptr;
  int line = 0;
  {
    leakguard::scope s;
    line = __LINE__ + 1;
    p = keep(new int[5]);
  }
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].blocks().size() == 1);
  const auto& b = captured.reports[0].blocks()[0];
  INFO("site: ", b.site);
  CHECK(lgt::site_is(b.site, __FILE__, line));
  CHECK(b.address == p);
  CHECK(b.size == 5 * sizeof(int));
  CHECK(captured.reports[0].leaked_bytes() == 5 * sizeof(int));
  delete[] p;
}

TEST_CASE("new T[n] with a destructor: the block covers the user's pointer and the cookie") {
  lgt::capture_reports captured;
  with_destructor* p = nullptr;
  int line = 0;
  {
    leakguard::scope s;
    line = __LINE__ + 1;
    p = keep(new with_destructor[3]);
  }
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].blocks().size() == 1);
  const auto& b = captured.reports[0].blocks()[0];
  INFO("site: ", b.site);
  CHECK(lgt::site_is(b.site, __FILE__, line));
  CHECK(b.size >= 3 * sizeof(with_destructor));
  CHECK(b.size <= 3 * sizeof(with_destructor) + 2 * sizeof(std::size_t));
  CHECK(lgt::find_block_containing(captured.reports[0], p) == &b);
  CHECK(b.address <= static_cast<const void*>(p));
  with_destructor::destroyed = 0;
  delete[] p;
  CHECK(with_destructor::destroyed == 3);
}

TEST_CASE("site of std::make_unique is the user's line, not <memory>") {
  lgt::capture_reports captured;
  std::unique_ptr<int> up;
  int line = 0;
  {
    leakguard::scope s;
    line = __LINE__ + 1;
    up = std::make_unique<int>(3);
    (void)keep(up.get());
  }
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].blocks().size() == 1);
  const auto& b = captured.reports[0].blocks()[0];
  INFO("site: ", b.site);
  CHECK(lgt::site_is(b.site, __FILE__, line));
  CHECK(b.address == up.get());
  CHECK(b.size == sizeof(int));
}

TEST_CASE("a leaked vector: the object at the new line, its buffer at the push_back line") {
  lgt::capture_reports captured;
  std::vector<int>* v = nullptr;
  int new_line = 0, push_line = 0;
  {
    leakguard::scope s;
    new_line = __LINE__ + 1;
    v = keep(new std::vector<int>);
    push_line = __LINE__ + 1;
    v->push_back(1);
  }
  REQUIRE(captured.reports.size() == 1);
  const auto& r = captured.reports[0];
  CHECK(r.leaked_blocks() == 2);
  const auto* object = lgt::find_block(r, v);
  const auto* buffer = lgt::find_block(r, v->data());
  REQUIRE(object != nullptr);
  REQUIRE(buffer != nullptr);
  INFO("object site: ", object->site, "  buffer site: ", buffer->site);
  CHECK(object->size == sizeof(std::vector<int>));
  CHECK(lgt::site_is(object->site, __FILE__, new_line));
  CHECK(buffer->size == v->capacity() * sizeof(int));
  CHECK(lgt::site_is(buffer->site, __FILE__, push_line));
  CHECK(r.leaked_bytes() == object->size + buffer->size);
  delete v;
}

TEST_CASE("site of a std::string built from a long literal") {
  lgt::capture_reports captured;
  std::optional<std::string> text;
  int line = 0;
  {
    leakguard::scope s;
    line = __LINE__ + 1;
    text.emplace("a string literal long enough that no small-string buffer can hold it");
  }
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].blocks().size() == 1);
  const auto& b = captured.reports[0].blocks()[0];
  INFO("site: ", b.site);
  CHECK(lgt::site_is(b.site, __FILE__, line));
  CHECK(b.address == text->data());
  CHECK(b.size >= text->size() + 1);
}

TEST_CASE("site of std::make_shared: the block holds the object") {
  lgt::capture_reports captured;
  std::shared_ptr<long> sp;
  int line = 0;
  {
    leakguard::scope s;
    line = __LINE__ + 1;
    sp = std::make_shared<long>(5);
  }
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].blocks().size() == 1);
  const auto& b = captured.reports[0].blocks()[0];
  INFO("site: ", b.site);
  CHECK(lgt::site_is(b.site, __FILE__, line));
  CHECK(lgt::find_block_containing(captured.reports[0], sp.get()) == &b);
  CHECK(b.size >= sizeof(long) + 2 * sizeof(int));
}

TEST_CASE("site of an allocation inside a user function is that function's line") {
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::scope s;
    p = report_test_middle_caller();
  }
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].blocks().size() == 1);
  const auto& b = captured.reports[0].blocks()[0];
  INFO("site: ", b.site);
  // report_test_leaf_allocator's `return keep(new int(11));`
  CHECK(lgt::site_is(b.site, __FILE__, leaf_allocation_line));
  delete p;
}

// ---- stacks ---------------------------------------------------------------------

TEST_CASE("the stack names the user's functions, innermost first") {
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::scope s;
    p = report_test_middle_caller();
  }
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].blocks().size() == 1);
  const auto& stack = captured.reports[0].blocks()[0].stack;
  REQUIRE_FALSE(stack.empty());
  std::string frames;
  for (const auto& f : stack) frames += f.function + " @ " + f.file + ":" + std::to_string(f.line) + "\n";
  INFO("stack:\n", frames);
  const int leaf = lgt::frame_index(stack, "report_test_leaf_allocator");
  const int middle = lgt::frame_index(stack, "report_test_middle_caller");
  CHECK(leaf >= 0);
  CHECK(middle >= 0);
  CHECK(leaf < middle);
  CHECK(lgt::frame_index(stack, "report_test.cpp") >= 0);
  bool pcs_set = true;
  for (const auto& f : stack) pcs_set = pcs_set && f.pc != nullptr;
  CHECK(pcs_set);
  delete p;
}

TEST_CASE("the user frame of the leaf carries the allocating line") {
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::scope s;
    p = report_test_middle_caller();
  }
  REQUIRE(captured.reports.size() == 1);
  const auto& stack = captured.reports[0].blocks()[0].stack;
  const int leaf = lgt::frame_index(stack, "report_test_leaf_allocator");
  REQUIRE(leaf >= 0);
  CHECK(lgt::base_name(stack[static_cast<std::size_t>(leaf)].file) == "report_test.cpp");
  CHECK(stack[static_cast<std::size_t>(leaf)].line == leaf_allocation_line);
  delete p;
}

// ---- order, serials, totals ---------------------------------------------------------

TEST_CASE("blocks() are ordered by serial and serials increase in allocation order") {
  lgt::capture_reports captured;
  char* big = nullptr;
  char* small = nullptr;
  char* mid = nullptr;
  {
    leakguard::scope s;
    big = keep(new char[300]);
    small = keep(new char[3]);
    mid = keep(new char[30]);
  }
  REQUIRE(captured.reports.size() == 1);
  const auto blocks = captured.reports[0].blocks();
  REQUIRE(blocks.size() == 3);
  CHECK(blocks[0].address == big);
  CHECK(blocks[1].address == small);
  CHECK(blocks[2].address == mid);
  CHECK(blocks[0].serial < blocks[1].serial);
  CHECK(blocks[1].serial < blocks[2].serial);
  CHECK(captured.reports[0].leaked_bytes() == 333);
  delete[] big;
  delete[] small;
  delete[] mid;
}

TEST_CASE("serials keep increasing across scopes") {
  lgt::capture_reports captured;
  int* a = nullptr;
  int* b = nullptr;
  // Retained counts too: this test is about serials, and a stale copy of an
  // address in a root can make a leak look retained (the conservative scan's
  // limit, reachability.hpp).
  const leakguard::scope_options every_survivor{.allow_retained = false};
  { leakguard::scope s(every_survivor); a = keep(new int(1)); }
  { leakguard::scope s(every_survivor); b = keep(new int(2)); }
  REQUIRE(captured.reports.size() == 2);
  REQUIRE(captured.reports[0].blocks().size() == 1);
  REQUIRE(captured.reports[1].blocks().size() == 1);
  CHECK(captured.reports[0].blocks()[0].serial < captured.reports[1].blocks()[0].serial);
  delete a;
  delete b;
}

TEST_CASE("a block's alignment is at least the guaranteed one and its address honours it") {
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::scope s;
    p = keep(new int(1));
  }
  REQUIRE(captured.reports.size() == 1);
  const auto& b = captured.reports[0].blocks()[0];
  CHECK(b.alignment >= alignof(int));
  CHECK(b.alignment <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
  CHECK(reinterpret_cast<std::uintptr_t>(b.address) % b.alignment == 0);
  delete p;
}

TEST_CASE("an empty report is empty") {
  const leakguard::report r;
  CHECK(r.empty());
  CHECK(r.leaked_blocks() == 0);
  CHECK(r.leaked_bytes() == 0);
  CHECK(r.blocks().empty());
  CHECK(r.violations().empty());
}

// ---- to_text ------------------------------------------------------------------

TEST_CASE("to_text names the scope, its file:line, each site and the byte counts, largest total first") {
  lgt::capture_reports captured;
  char* a = nullptr;
  char* b[3] = {};
  char* c = nullptr;
  int scope_line = 0, a_line = 0, b_line = 0, c_line = 0;
  {
    scope_line = __LINE__ + 1;
    leakguard::scope s(leakguard::scope_options{.label = "text report", .allow_retained = false});  // about the text only
    a_line = __LINE__ + 1;
    a = keep(new char[8]);
    b_line = __LINE__ + 1;
    for (auto& x : b) x = keep(new char[100]);
    c_line = __LINE__ + 1;
    c = keep(new char[1000]);
  }
  REQUIRE(captured.reports.size() == 1);
  const std::string text = captured.reports[0].to_text();
  INFO("text:\n", text);
  CHECK(lgt::contains(text, "text report"));
  CHECK(lgt::find_file_line(text, __FILE__, scope_line) != std::string::npos);
  const std::size_t pa = lgt::find_file_line(text, __FILE__, a_line);
  const std::size_t pb = lgt::find_file_line(text, __FILE__, b_line);
  const std::size_t pc = lgt::find_file_line(text, __FILE__, c_line);
  CHECK(pa != std::string::npos);
  CHECK(pb != std::string::npos);
  CHECK(pc != std::string::npos);
  // groups by site, largest total first: 1000 (c), then 300 (3 x 100, b), then 8 (a)
  CHECK(pc < pb);
  CHECK(pb < pa);
  CHECK(lgt::contains(text, "1000"));
  CHECK(lgt::contains(text, "300"));
  delete[] a;
  for (auto* x : b) delete[] x;
  delete[] c;
}

TEST_CASE("to_text groups equal sites: a site appears once per group, not once per block") {
  lgt::capture_reports captured;
  std::vector<int*> leaked;
  leaked.reserve(5);
  int line = 0;
  {
    // Strict: about the text only (the vector's buffer predates the scope).
    leakguard::scope s(leakguard::scope_options{.label = "grouped", .allow_retained = false});
    line = __LINE__ + 1;
    for (int i = 0; i < 5; ++i) leaked.push_back(keep(new int(i)));
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].leaked_blocks() == 5);
  const std::string text = captured.reports[0].to_text();
  INFO("text:\n", text);
  const std::size_t first = lgt::find_file_line(text, __FILE__, line);
  REQUIRE(first != std::string::npos);
  // the group's bytes (5 x 4) are printed
  CHECK(lgt::contains(text, std::to_string(5 * sizeof(int))));
  // one group: the site is printed a few times (heading, maybe the stack), not once per block
  int occurrences = 0;
  for (std::size_t pos = first; pos != std::string::npos;
       pos = lgt::find_file_line(std::string_view(text).substr(pos + 1), __FILE__, line) ==
                     std::string::npos
                 ? std::string::npos
                 : pos + 1 + lgt::find_file_line(std::string_view(text).substr(pos + 1), __FILE__, line))
    ++occurrences;
  CHECK(occurrences < 5);
  for (int* p : leaked) delete p;
}

// ---- to_json ------------------------------------------------------------------

TEST_CASE("to_json is valid JSON and escapes a label with quotes, backslash, newline, tab and a control byte") {
  lgt::capture_reports captured;
  const std::string label = "quote\" backslash\\ newline\n tab\t bell\x01 slash/ end";
  char* p = nullptr;
  int line = 0;
  {
    leakguard::scope s(label);
    line = __LINE__ + 1;
    p = keep(new char[4321]);
  }
  REQUIRE(captured.reports.size() == 1);
  const std::string json = captured.reports[0].to_json();
  INFO("json:\n", json);
  lgt::json_parser parser(json);
  const auto doc = parser.parse_document();
  INFO("parse error: ", parser.error());
  REQUIRE(doc.has_value());
  CHECK(doc->type == lgt::json_value::kind::object);
  CHECK(lgt::json_has_string(*doc, label));  // round-trips exactly
  CHECK(lgt::json_has_number(*doc, 4321));
  CHECK(lgt::json_any_string(*doc, [&](const std::string& s) { return lgt::site_is(s, __FILE__, line); }));
  delete[] p;
}

TEST_CASE("to_json keeps a UTF-8 label intact") {
  lgt::capture_reports captured;
  const std::string label = "caf\xC3\xA9 \xE2\x82\xAC";  // "café €"
  int* p = nullptr;
  {
    leakguard::scope s(label);
    p = keep(new int(1));
  }
  REQUIRE(captured.reports.size() == 1);
  const std::string json = captured.reports[0].to_json();
  lgt::json_parser parser(json);
  const auto doc = parser.parse_document();
  INFO("json:\n", json, "\nparse error: ", parser.error());
  REQUIRE(doc.has_value());
  CHECK(lgt::json_has_string(*doc, label));
  delete p;
}

TEST_CASE("to_json of a report with many blocks and stacks is valid JSON") {
  lgt::capture_reports captured;
  std::vector<void*> leaked;
  leaked.reserve(20);
  {
    leakguard::scope s("many");
    for (int i = 0; i < 10; ++i) leaked.push_back(keep(new char[static_cast<std::size_t>(i) + 1]));
    for (int i = 0; i < 10; ++i) leaked.push_back(report_test_middle_caller());
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].leaked_blocks() == 20);
  const std::string json = captured.reports[0].to_json();
  lgt::json_parser parser(json);
  const auto doc = parser.parse_document();
  INFO("parse error: ", parser.error());
  CHECK(doc.has_value());
  if (doc) {
    CHECK(lgt::json_has_string(*doc, "many"));
    CHECK(lgt::json_any_string(*doc, [](const std::string& s) {
      return lgt::contains(s, "report_test_leaf_allocator");
    }));
  }
  for (int i = 0; i < 10; ++i) delete[] static_cast<char*>(leaked[static_cast<std::size_t>(i)]);
  for (int i = 10; i < 20; ++i) delete static_cast<int*>(leaked[static_cast<std::size_t>(i)]);
}

// ---- stack_root and report_frames ------------------------------------------------

TEST_CASE("stack_root=scope (the default): the scope's callers are written once, each stack stops at its function") {
  lgt::options_guard restore;
  set_style(leakguard::stack_root_mode::scope, 0);  // no cap: every caller is written
  lgt::capture_reports captured;
  void* out[2] = {};
  run_in_framework<3>(&report_test_handler, out);
  REQUIRE(captured.reports.size() == 1);
  const leakguard::report& r = captured.reports[0];
  REQUIRE(r.blocks().size() == 2);
  for (const leakguard::leaked_block& b : r.blocks())  // the report itself keeps every frame
    CHECK(lgt::frame_index(b.stack, "report_test_dispatch<2") >= 0);

  const std::string text = r.to_text();
  INFO("text:\n", text);
  CHECK(lgt::count_of(text, "scope called from") == 1);
  CHECK(lgt::count_of(text, "report_test_dispatch<2") == 1);
  CHECK(lgt::count_of(text, "report_test_handler") == 2);  // each group's stack ends in the scope's function

  const lgt::json_value doc = only_report_json(captured);
  REQUIRE(doc.get("stack_root") != nullptr);
  CHECK(doc.get("stack_root")->string == "scope");
  const std::string callers = functions_of(doc.get("scope_callers"));
  CHECK(lgt::contains(callers, "report_test_dispatch<0"));
  CHECK(lgt::contains(callers, "report_test_dispatch<3"));
  CHECK_FALSE(lgt::contains(callers, "report_test_handler"));
  REQUIRE(doc.get("blocks")->items.size() == 2);
  for (const lgt::json_value& b : doc.get("blocks")->items) {
    const std::string own = functions_of(b.get("stack"));
    CHECK(lgt::contains(own, "report_test_handler"));
    CHECK_FALSE(lgt::contains(own, "report_test_dispatch"));
  }
  for (void* p : out) delete static_cast<int*>(p);
}

TEST_CASE("stack_root=scope: a handler inlined into std::function's invoker leaves the invoker's frames to the callers") {
  lgt::options_guard restore;
  set_style(leakguard::stack_root_mode::scope, 0);
  lgt::capture_reports captured;
  void* out[1] = {};
  const std::function<void(leak_out)> handler = [](leak_out to) {
    leakguard::scope s("lambda");
    to[0] = keep(new int(3));
  };
  report_test_call_function(handler, out);
  const lgt::json_value doc = only_report_json(captured);
  REQUIRE(doc.get("blocks")->items.size() == 1);
  const std::string own = functions_of(doc.get("blocks")->items[0].get("stack"));
  const std::string callers = functions_of(doc.get("scope_callers"));
  CHECK(lgt::contains(own, "operator()"));  // the lambda: the scope's function
  CHECK_FALSE(lgt::contains(own, "_M_invoke"));
  CHECK_FALSE(lgt::contains(own, "__invoke"));
  CHECK(lgt::contains(callers, "_M_invoke"));
  CHECK(lgt::contains(callers, "report_test_call_function"));
  delete static_cast<int*>(out[0]);
}

TEST_CASE("stack_root=full writes every block's whole stack and no callers") {
  lgt::options_guard restore;
  set_style(leakguard::stack_root_mode::full, 0);
  lgt::capture_reports captured;
  void* out[2] = {};
  run_in_framework<3>(&report_test_handler, out);
  REQUIRE(captured.reports.size() == 1);
  const std::string text = captured.reports[0].to_text();
  INFO("text:\n", text);
  CHECK(lgt::count_of(text, "scope called from") == 0);
  CHECK(lgt::count_of(text, "report_test_dispatch<2") == 2);  // in both groups' stacks
  const lgt::json_value doc = only_report_json(captured);
  CHECK(doc.get("stack_root")->string == "full");
  CHECK(doc.get("scope_callers") == nullptr);
  for (const lgt::json_value& b : doc.get("blocks")->items)
    CHECK(lgt::contains(functions_of(b.get("stack")), "report_test_dispatch<2"));
  for (void* p : out) delete static_cast<int*>(p);
}

TEST_CASE("stack_root=scope: a block another thread allocated for an all_threads scope keeps its whole stack") {
  lgt::options_guard restore;
  set_style(leakguard::stack_root_mode::scope, 0);
  lgt::capture_reports captured;
  void* out[2] = {};
  run_in_framework<2>(&report_test_threaded_handler, out);
  const lgt::json_value doc = only_report_json(captured);
  REQUIRE(doc.get("blocks")->items.size() == 2);
  const std::string own = functions_of(doc.get("blocks")->items[0].get("stack"));
  const std::string other = functions_of(doc.get("blocks")->items[1].get("stack"));
  CHECK(lgt::contains(own, "report_test_threaded_handler"));
  CHECK_FALSE(lgt::contains(own, "report_test_dispatch"));
  CHECK(lgt::contains(other, "report_test_middle_caller"));
  CHECK(lgt::contains(other, "_M_run"));  // the thread's own frames, below its function: nothing was cut
  delete static_cast<int*>(out[0]);
  delete static_cast<int*>(out[1]);
}

TEST_CASE("report_frames caps every written stack and says how many frames it left out") {
  lgt::options_guard restore;
  set_style(leakguard::stack_root_mode::scope, 1);
  lgt::capture_reports captured;
  void* out[2] = {};
  run_in_framework<3>(&report_test_handler, out);
  const lgt::json_value doc = only_report_json(captured);
  const leakguard::report& r = captured.reports[0];
  REQUIRE(doc.get("scope_callers") != nullptr);
  CHECK(doc.get("scope_callers")->items.size() == 1);
  CHECK(doc.get("more_frames") != nullptr);  // the callers' count: they are longer than one frame
  bool some_left_out = false;
  for (const lgt::json_value& b : doc.get("blocks")->items) {
    REQUIRE(b.get("stack") != nullptr);
    CHECK(b.get("stack")->items.size() == 1);
    if (const lgt::json_value* more = b.get("more_frames")) some_left_out = more->number >= 2;  // leaf, middle, handler
  }
  CHECK(some_left_out);
  const std::string text = r.to_text();
  INFO("text:\n", text);
  CHECK(lgt::contains(text, "more frames: report_frames"));
  CHECK_FALSE(lgt::contains(text, "report_test_middle_caller"));
  for (void* p : out) delete static_cast<int*>(p);
}

// The names are the compiler's: g++'s inlined frames are named without
// their parameters, clang's by their whole signature (about 5.2 KB here).
TEST_CASE("a five-block report from a handler deep in a framework is a few KB of JSON, a fifth of whole stacks") {
  lgt::options_guard restore;
  leakguard::set_options(leakguard::runtime_options{});  // the defaults
  lgt::capture_reports captured;
  void* out[5] = {};
  run_in_framework<12>(&report_test_five_block_handler, out);
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].blocks().size() == 5);
  const std::string json = captured.reports[0].to_json();
  INFO("json:\n", json);
  // A written record adds its time, pid and sequence number: under 100 bytes.
  CHECK(json.size() + 100 < 6 * 1024);
  set_style(leakguard::stack_root_mode::full, 0);
  CHECK(captured.reports[0].to_json().size() > 4 * json.size());
  for (void* p : out) delete[] static_cast<char*>(p);
}

TEST_CASE("to_text and to_json of an empty report do not crash and to_json is valid") {
  const leakguard::report r;
  (void)r.to_text();
  const std::string json = r.to_json();
  lgt::json_parser parser(json);
  INFO("json: ", json);
  CHECK(parser.parse_document().has_value());
}

}  // TEST_SUITE
