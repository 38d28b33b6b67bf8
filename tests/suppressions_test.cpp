// suppress(): which leaked blocks a pattern drops from reports, and what
// suppression_uses() counts for each pattern. (suppressions.hpp)
#include <doctest/doctest.h>
#include <leakguard.hpp>
#include <leakguard/impl/reachability.hpp>
#include <leakguard/impl/scope_books.hpp>
#include <leakguard/impl/symbolize.hpp>

#include <pthread.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "support.hpp"
#include "units/put_off.hpp"

namespace lgt_cache {
// Kept on purpose by "a library": suppressed by its namespace.
[[gnu::noinline]] int* fill(int v) { return lgt::keep(new int(v)); }
constexpr int fill_line = __LINE__ - 1;
}  // namespace lgt_cache

namespace lgt_lazy {
// The return address in a caller of a suppressed allocation, and the same
// for one that is not suppressed (called only by the lookup test below).
const void* kept_return = nullptr;
const void* leaked_return = nullptr;
[[gnu::noinline]] int* keep_one() {
  kept_return = __builtin_return_address(0);
  return lgt::keep(new int(1));
}
}  // namespace lgt_lazy

namespace lgt_quiet {
// Blocks a global keeps (retained), each from a call site of its own: a
// return address looked up once stays known to the symbolizer.
const void* returns[3] = {};
short* volatile kept[3] = {};
template <int I>
[[gnu::noinline]] short* keep() {
  returns[I] = __builtin_return_address(0);
  return lgt::keep(new short(I));
}
}  // namespace lgt_quiet

namespace lgt_named {
[[gnu::noinline]] int* make() { return lgt::keep(new int(6)); }
}  // namespace lgt_named

namespace lgt_through_libstdcxx {
// The message is copied inside libstdc++.so, whose frames are symbol names only.
[[gnu::noinline]] std::runtime_error* make() { return lgt::keep(new std::runtime_error(std::string(100, 'x'))); }
}  // namespace lgt_through_libstdcxx

namespace lgt_framework {
// A test framework's function, named by a pattern its integration adds.
[[gnu::noinline]] int run() { return 1; }
}  // namespace lgt_framework

namespace lgt_late {
[[gnu::noinline]] int* make() { return lgt::keep(new int(3)); }
}  // namespace lgt_late

namespace {

[[gnu::noinline]] int* user_leak_through_helper() {
  lgt_lazy::leaked_return = __builtin_return_address(0);
  return lgt::keep(new int(2));
}
[[gnu::noinline]] int* call_keep_one() { return lgt::keep(lgt_lazy::keep_one()); }
[[gnu::noinline]] int* call_user_leak() { return lgt::keep(user_leak_through_helper()); }

bool looked_up(const void* pc) {
  leakguard::detail::symbolizer& sym = leakguard::detail::the_symbolizer();
  leakguard::detail::lock_guard g(sym.lock);
  return sym.knows(pc);
}

std::uint64_t lookups() {
  leakguard::detail::symbolizer& sym = leakguard::detail::the_symbolizer();
  leakguard::detail::lock_guard g(sym.lock);
  return sym.lookups();
}

// Not the same code as lgt_cache::fill: identical functions may be folded into one.
[[gnu::noinline]] long* user_leak(long v) { return lgt::keep(new long(v)); }

// Roots: what a library and the user keep on purpose.
int* volatile library_kept = nullptr;
short* volatile user_kept = nullptr;
[[gnu::noinline]] short* user_keeps(short v) { return lgt::keep(new short(v)); }
constexpr int user_keeps_line = __LINE__ - 1;

bool retained_at(int line) {
  for (const leakguard::retained_site& r : leakguard::retained_sites())
    if (lgt::site_is(r.site, __FILE__, line)) return true;
  return false;
}

leakguard::suppression_use use_of(const std::string& pattern) {
  for (const leakguard::suppression_use& u : leakguard::suppression_uses())
    if (u.pattern == pattern) return u;
  return {};
}

// Removes the test's patterns again, whatever happens.
struct pattern_guard {
  std::vector<std::string> added;
  void add(const std::string& p) {
    leakguard::suppress(p);
    added.push_back(p);
  }
  ~pattern_guard() {
    for (const std::string& p : added) leakguard::unsuppress(p);
  }
};

}  // namespace

TEST_SUITE("suppressions") {

TEST_CASE("a matching pattern drops the block and counts it, a pattern that never matched shows 0") {
  lgt::capture_reports captured;
  pattern_guard patterns;
  patterns.add("lgt_cache::");
  patterns.add("lgt_never_called::");
  int* kept = nullptr;
  long* leaked = nullptr;
  {
    leakguard::scope_options strict;  // the pointers in locals, never retained
    strict.allow_retained = false;
    leakguard::scope s(strict);
    kept = lgt_cache::fill(1);
    leaked = user_leak(2);
  }
  REQUIRE(captured.size() == 1);
  REQUIRE(captured.reports[0].leaked_blocks() == 1);  // only the user's leak
  CHECK(captured.reports[0].blocks()[0].address == leaked);
  const leakguard::suppression_use used = use_of("lgt_cache::");
  CHECK(used.blocks == 1);
  CHECK(used.bytes == sizeof(int));
  const leakguard::suppression_use unused = use_of("lgt_never_called::");
  CHECK(unused.pattern == "lgt_never_called::");
  CHECK(unused.blocks == 0);
  CHECK(unused.bytes == 0);
  delete kept;
  delete leaked;
}

TEST_CASE("a suppressed block is not judged: never retained, never in retained_sites(), alone or not") {
  lgt::capture_reports captured;
  pattern_guard patterns;
  patterns.add("lgt_cache::");
  for (bool with_user_block : {false, true}) {  // all suppressed (no scan), or judged with another
    CAPTURE(with_user_block);
    {
      leakguard::scope s("kept");
      library_kept = lgt_cache::fill(4);
      if (with_user_block) user_kept = user_keeps(5);
    }
    CHECK(captured.size() == 0);
    CHECK_FALSE(retained_at(lgt_cache::fill_line));
    CHECK(retained_at(user_keeps_line) == with_user_block);
    delete library_kept;
    delete user_kept;
    library_kept = nullptr;
    user_kept = nullptr;
  }
  CHECK(use_of("lgt_cache::").blocks == 2);
}

TEST_CASE("on_leak=log: verdicts whose survivors are all suppressed scan nothing, a leak beside them does") {
  pattern_guard patterns;
  patterns.add("lgt_cache::");
  lgt::temp_file file;
  lgt::options_guard saved;
  leakguard::runtime_options o = leakguard::options();
  o.on_leak = leakguard::leak_action::log;  // verdicts on leakguard's thread, in batches
  o.report_path = file.path();
  o.log_interval = 0;
  leakguard::set_options(o);
  leakguard::flush();
  std::vector<int*> kept;
  kept.reserve(16);  // not grown in a scope: its buffer would survive it
  const std::uint64_t uses_before = use_of("lgt_cache::").blocks;
  const std::uint64_t scans_before = leakguard::detail::root_scans.load();
  for (int i = 0; i < 8; ++i) {
    leakguard::scope s("library only");
    kept.push_back(lgt_cache::fill(i));
  }
  leakguard::flush();
  CHECK(leakguard::detail::root_scans.load() == scans_before);
  long* leaked = nullptr;
  {
    leakguard::scope s("with a leak");
    kept.push_back(lgt_cache::fill(9));
    leaked = user_leak(1);
  }
  leakguard::flush();
  CHECK(leakguard::detail::root_scans.load() > scans_before);
  CHECK(use_of("lgt_cache::").blocks == uses_before + 9);  // each block counted once
  const std::string text = file.read();
  CHECK(text.find("library only") == std::string::npos);
  CHECK(lgt::count_of(text, "scope \"with a leak\"") == 1);
  for (int* p : kept) delete p;
  delete leaked;
}

TEST_CASE("a verdict's scan stops once every survivor that is not suppressed is reached") {
  lgt::capture_reports captured;
  pattern_guard patterns;
  patterns.add("lgt_named::");
  // Held through thread-specific data, the first root read, so that the
  // scan can stop before the others whatever the program's layout.
  pthread_key_t key;
  REQUIRE(pthread_key_create(&key, nullptr) == 0);
  short* held = nullptr;
  int* suppressed[2] = {};
  const std::uint64_t before = leakguard::detail::bytes_scanned.load();
  {
    leakguard::scope s("retained and suppressed");
    held = lgt::keep(new short(1));
    pthread_setspecific(key, held);
    suppressed[0] = lgt_named::make();  // reached by nothing: a full scan would look for it
  }
  const std::uint64_t stopped = leakguard::detail::bytes_scanned.load() - before;
  CHECK(captured.size() == 0);
  long* leaked = nullptr;
  {
    leakguard::scope s("leaked and suppressed");
    leaked = user_leak(3);
    suppressed[1] = lgt_named::make();
  }
  const std::uint64_t whole = leakguard::detail::bytes_scanned.load() - before - stopped;
  REQUIRE(captured.size() == 1);
  CHECK(captured.reports[0].leaked_blocks() == 1);
  CHECK(lgt::find_block(captured.reports[0], leaked) != nullptr);
  MESSAGE("bytes scanned: ", stopped, " stopping, ", whole, " reading every root");
  CHECK(stopped > 0);
  CHECK(stopped * 100 < whole);
  pthread_setspecific(key, nullptr);
  pthread_key_delete(key);
  delete held;
  delete leaked;
  for (int* p : suppressed) delete p;
}

namespace {

// The unit of the function at `code` if no lookup has read its debug info.
std::optional<leakguard::detail::unread_unit> unread_unit_of(const void* code) {
  leakguard::detail::symbolizer& sym = leakguard::detail::the_symbolizer();
  leakguard::detail::lock_guard g(sym.lock);
  sym.follow_loader();  // as a verdict does first
  return sym.unread_unit_at(static_cast<const char*>(code) + 1);  // as a return address into it
}

}  // namespace

TEST_CASE("a static built by the user's code is judged retained without reading its unit's debug info") {
  namespace d = leakguard::detail;
  lgt::capture_reports captured;
  const void* in_unit = reinterpret_cast<const void*>(&lgt_put_off::first_static);
  const std::optional<d::unread_unit> unit = unread_unit_of(in_unit);
  REQUIRE(unit.has_value());  // no test case but this one reads it
  const std::uint64_t before = lookups();
  {
    leakguard::scope s("a static");
    lgt::keep(lgt_put_off::first_static());
  }
  CHECK(captured.size() == 0);
  CHECK(lookups() == before);
  CHECK(unread_unit_of(in_unit).has_value());
  // That verdict's scan was for this unit's block alone, and read more than
  // the unit's debug info holds: the next decision reads the unit instead.
  std::uint64_t charged = 0;
  {
    d::symbolizer& sym = d::the_symbolizer();
    d::lock_guard g(sym.lock);
    charged = sym.scanned_instead_of(unit->id);
  }
  INFO("scanned instead: ", charged, " bytes; the unit's debug info: ", unit->bytes);
  REQUIRE(charged >= unit->bytes);
  {
    leakguard::scope s("another static");
    lgt::keep(lgt_put_off::second_static());
  }
  CHECK(captured.size() == 0);
  CHECK(lookups() > before);
  CHECK_FALSE(unread_unit_of(in_unit).has_value());
}

TEST_CASE("a block whose decision was put off and that nothing reaches is looked up and reported at its line") {
  lgt::capture_reports captured;
  const void* in_unit = reinterpret_cast<const void*>(&lgt_put_off::leak);
  REQUIRE(unread_unit_of(in_unit).has_value());
  int* leaked = nullptr;
  {
    leakguard::scope s("put off");
    leaked = lgt_put_off::leak();
  }
  REQUIRE(captured.size() == 1);
  const leakguard::leaked_block* b = lgt::find_block(captured.reports[0], leaked);
  REQUIRE(b != nullptr);
  INFO("site: ", b->site);
  CHECK(b->site.find("put_off_b.cpp") != std::string::npos);
  CHECK_FALSE(unread_unit_of(in_unit).has_value());
  delete leaked;
}

TEST_CASE("a block whose decision was put off is dropped once the scan finds nothing reaches it and a pattern names it") {
  lgt::capture_reports captured;
  pattern_guard patterns;
  patterns.add("lgt_put_off::make_inline");
  const void* in_unit = reinterpret_cast<const void*>(&lgt_put_off::suppressed_leak);
  const void* in_static_unit = reinterpret_cast<const void*>(&lgt_put_off::third_static);
  REQUIRE(unread_unit_of(in_unit).has_value());
  REQUIRE(unread_unit_of(in_static_unit).has_value());
  const std::uint64_t scans = leakguard::detail::root_scans.load();
  int* leaked = nullptr;
  {
    leakguard::scope s("put off, then suppressed");
    leaked = lgt_put_off::suppressed_leak();
    lgt::keep(lgt_put_off::third_static());
  }
  CHECK(leakguard::detail::root_scans.load() > scans);  // what put them off
  CHECK(captured.size() == 0);
  CHECK(use_of("lgt_put_off::make_inline").blocks == 1);
  CHECK_FALSE(unread_unit_of(in_unit).has_value());
  CHECK(unread_unit_of(in_static_unit).has_value());  // retained: its decision was not needed
  delete leaked;
}

TEST_CASE("a retained block whose decision was put off is in retained_sites() only if no pattern names it") {
  lgt::capture_reports captured;
  pattern_guard patterns;
  patterns.add("lgt_put_off::make_kept");
  const void* in_unit = reinterpret_cast<const void*>(&lgt_put_off::suppressed_static);
  REQUIRE(unread_unit_of(in_unit).has_value());
  {
    leakguard::scope s("a suppressed static");
    lgt::keep(lgt_put_off::suppressed_static());
  }
  CHECK(captured.size() == 0);
  CHECK(unread_unit_of(in_unit).has_value());  // retained: not decided then
  for (const leakguard::retained_site& r : leakguard::retained_sites()) {
    INFO("site: ", r.site);
    CHECK(r.site.find("put_off_e.cpp") == std::string::npos);
  }
  CHECK_FALSE(unread_unit_of(in_unit).has_value());  // decided when named
}

TEST_CASE("a suppressed stack is looked up only down to the frame a pattern names") {
  lgt::capture_reports captured;
  pattern_guard patterns;
  patterns.add("lgt_lazy::");
  int* kept = nullptr;
  int* leaked = nullptr;
  {
    leakguard::scope s("lazy");
    kept = call_keep_one();
    leaked = call_user_leak();
  }
  REQUIRE(captured.size() == 1);
  CHECK(captured.reports[0].leaked_blocks() == 1);
  CHECK(lgt::find_block(captured.reports[0], leaked) != nullptr);
  CHECK_FALSE(looked_up(lgt_lazy::kept_return));  // below lgt_lazy::keep_one: not needed
  CHECK(looked_up(lgt_lazy::leaked_return));       // a reported stack is looked up whole
  delete kept;
  delete leaked;
}

TEST_CASE("a pattern that names the function holding a return address decides without its debug info") {
  lgt::capture_reports captured;
  pattern_guard patterns;
  patterns.add("lgt_named::");
  int* kept = nullptr;
  const std::uint64_t before = lookups();
  {
    leakguard::scope s("named");
    kept = lgt_named::make();
  }
  CHECK(captured.size() == 0);
  CHECK(use_of("lgt_named::").blocks == 1);
  CHECK(lookups() == before);  // the symbol table named lgt_named::make: no frame was looked up
  delete kept;
}

TEST_CASE("a pattern naming the function that called a system library decides with no scan and no debug info") {
  lgt::capture_reports captured;
  pattern_guard patterns;
  patterns.add("lgt_through_libstdcxx::");
  std::runtime_error* kept = nullptr;
  const std::uint64_t before = lookups();
  const std::uint64_t scans = leakguard::detail::root_scans.load();
  {
    leakguard::scope s("through libstdc++");
    kept = lgt_through_libstdcxx::make();
  }
  CHECK(captured.size() == 0);
  CHECK(use_of("lgt_through_libstdcxx::").blocks == 2);  // the exception and its message
  CHECK(lookups() == before);
  CHECK(leakguard::detail::root_scans.load() == scans);
  delete kept;
}

TEST_CASE("a standard library function made with its own types alone is passed over without its debug info") {
  namespace lg = leakguard::detail;
  // Inside the code of a library function this program instantiates, then
  // inside the framework's: the stack of a framework's std::sort.
  auto inside = [](auto* function) {
    return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(function) + 1);
  };
  void* library = inside(&std::sort<long*>);
  void* frames[] = {library, inside(&lgt_framework::run)};
  const lg::stack_trace* stack = lg::depot.intern(frames, 2, 2);
  REQUIRE(stack != nullptr);
  lg::add_suppression("lgt_framework::", false);  // as a framework's integration adds it
  const lg::suppression_snapshot framework_only = lg::suppressions_now();
  CHECK_FALSE(framework_only.from_user);
  const int by = lg::suppression_for(stack, framework_only, 16);
  REQUIRE(by >= 0);
  CHECK(framework_only.patterns[static_cast<std::size_t>(by)] == "lgt_framework::");
  CHECK_FALSE(looked_up(library));
  // A pattern of the user's may name a library function's inlined code: it is looked up.
  pattern_guard patterns;
  patterns.add("lgt_unrelated::");
  const lg::suppression_snapshot with_user = lg::suppressions_now();
  CHECK(with_user.from_user);
  CHECK(with_user.patterns[static_cast<std::size_t>(lg::suppression_for(stack, with_user, 16))] == "lgt_framework::");
  CHECK(looked_up(library));
  lg::remove_suppression("lgt_framework::");
}

TEST_CASE("retained blocks are named only in a report that lists them: with a leak, or from check()") {
  lgt::capture_reports captured;
  {
    leakguard::scope s("retained only");
    lgt_quiet::kept[0] = lgt_quiet::keep<0>();
  }
  CHECK(captured.size() == 0);
  // Deciding that no suppression drops it takes keep<0>'s frame, not its caller's.
  CHECK_FALSE(looked_up(lgt_quiet::returns[0]));
  int* leaked = nullptr;
  {
    leakguard::scope s("retained and a leak");
    lgt_quiet::kept[1] = lgt_quiet::keep<1>();
    leaked = call_user_leak();
  }
  REQUIRE(captured.size() == 1);
  CHECK(captured.reports[0].leaked_blocks() == 1);
  REQUIRE(captured.reports[0].retained().size() == 1);
  CHECK(captured.reports[0].retained()[0].address == lgt_quiet::kept[1]);
  CHECK(looked_up(lgt_quiet::returns[1]));
  {
    leakguard::scope s("checked");
    lgt_quiet::kept[2] = lgt_quiet::keep<2>();
    const leakguard::report r = s.check();
    CHECK(r.empty());
    REQUIRE(r.retained().size() == 1);
    CHECK_FALSE(r.retained()[0].stack.empty());
    CHECK(looked_up(lgt_quiet::returns[2]));
  }
  CHECK(captured.size() == 1);
  for (short* volatile& p : lgt_quiet::kept) delete std::exchange(p, nullptr);
  delete leaked;
}

TEST_CASE("a stack reported before is dropped once a pattern names it, and reported again once it is removed") {
  lgt::capture_reports captured;
  std::vector<int*> blocks;
  blocks.reserve(3);
  for (int round = 0; round < 3; ++round) {  // one call site: one stack, decided each time
    CAPTURE(round);
    if (round == 1) leakguard::suppress("lgt_late::");
    if (round == 2) leakguard::unsuppress("lgt_late::");
    leakguard::scope_options o;
    o.allow_retained = false;  // `blocks` holds them: retained otherwise
    {
      leakguard::scope s(o);
      blocks.push_back(lgt_late::make());
    }
    CHECK(captured.size() == (round == 2 ? 2u : 1u));
  }
  for (int* p : blocks) delete p;
}

TEST_CASE("suppression_uses() lists every pattern in force, defaults first, and forgets a removed one") {
  const std::vector<std::string> before = leakguard::suppressions();
  pattern_guard patterns;
  patterns.add("lgt_listed::");
  const std::vector<leakguard::suppression_use> uses = leakguard::suppression_uses();
  REQUIRE(uses.size() == before.size() + 1);
  for (std::size_t i = 0; i < before.size(); ++i) CHECK(uses[i].pattern == before[i]);
  CHECK(uses.back().pattern == "lgt_listed::");
  CHECK(leakguard::unsuppress("lgt_listed::"));
  CHECK(leakguard::suppression_uses().size() == before.size());
  CHECK(use_of("lgt_listed::").pattern.empty());
}

TEST_CASE("a removed pattern's count does not move to the pattern after it") {
  lgt::capture_reports captured;
  pattern_guard patterns;
  patterns.add("lgt_first::");
  patterns.add("lgt_cache::");
  int* kept = nullptr;
  {
    leakguard::scope_options strict;
    strict.allow_retained = false;
    leakguard::scope s(strict);
    kept = lgt_cache::fill(3);
  }
  CHECK(captured.size() == 0);
  CHECK(leakguard::unsuppress("lgt_first::"));
  CHECK(use_of("lgt_cache::").blocks == 1);
  delete kept;
}

}  // TEST_SUITE
