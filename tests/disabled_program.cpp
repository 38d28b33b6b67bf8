// tests/disabled_program.cpp — a standalone program (own main, no doctest) that
// checks "Compiled out": build it with -DLEAKGUARD_DISABLE=1 for the WHOLE
// program. It is not a *_test.cpp of leakguard_tests on purpose: defining
// LEAKGUARD_DISABLE in one TU of a program whose other TUs are built without it
// gives the inline functions and classes of <leakguard.hpp> two different
// definitions (an ODR violation), so it cannot share an executable with them.
//
// Exit code 0 when every check passes; otherwise the number of failed checks,
// each named on stderr.
#include <leakguard.hpp>
#include <leakguard/global_new.hpp>  // with LEAKGUARD_DISABLE: replaces nothing

#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#ifndef LEAKGUARD_DISABLE
#error "build tests/disabled_program.cpp with -DLEAKGUARD_DISABLE=1"
#endif

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "disabled_program: FAILED: %s\n", what);
  }
}
#define CHECK_DISABLED(cond) check((cond), #cond)

int side_effects = 0;
[[maybe_unused]] std::size_t touch() {
  ++side_effects;
  return 1;
}

int handler_calls = 0;

template <class T>
T* keep(T* p) {
  asm volatile("" : : "r"(p) : "memory");
  return p;
}

}  // namespace

int main() {
  leakguard::leak_handler previous =
      leakguard::set_leak_handler([](const leakguard::report&) { ++handler_calls; });

  // Every macro expands to nothing: arguments are not even evaluated, and a
  // leak, a budget overrun and an allocation in a no-alloc zone go unnoticed
  // (with the default handler they would abort).
  std::vector<int*> leaked;
  leaked.reserve(4);
  {
    LEAKGUARD_SCOPE();
    LEAKGUARD_SCOPE("label");
    LEAKGUARD_SCOPE(leakguard::scope_options{.label = "opts", .max_allocations = touch()});
    LEAKGUARD_IGNORE_SCOPE();
    LEAKGUARD_NO_ALLOC();
    leaked.push_back(keep(new int(1)));
  }
  CHECK_DISABLED(side_effects == 0);

  // The types stay usable and do nothing.
  {
    leakguard::scope s;
    leakguard::scope labelled("label");
    leakguard::scope_options o;
    o.label = "budget";
    o.max_allocations = 0;
    o.max_bytes = 0;
    o.all_threads = true;
    o.handler = [](const leakguard::report&) { ++handler_calls; };
    leakguard::scope budget(o);
    leaked.push_back(keep(new int(2)));
    leakguard::ignore(leaked.back());
    const leakguard::report r = s.check();
    CHECK_DISABLED(r.empty());
    CHECK_DISABLED(r.leaked_blocks() == 0);
    CHECK_DISABLED(r.leaked_bytes() == 0);
    CHECK_DISABLED(r.blocks().empty());
    CHECK_DISABLED(r.violations().empty());
    const leakguard::scope_stats st = s.stats();
    CHECK_DISABLED(st.allocations == 0 && st.deallocations == 0 && st.live_blocks == 0 &&
                   st.live_bytes == 0 && st.peak_bytes == 0);
    labelled.dismiss();
    (void)r.to_text();
    (void)r.to_json();
    (void)r.label();
    (void)r.where();
  }
  {
    leakguard::ignore_scope ig;
    leakguard::no_alloc_scope na;
    leaked.push_back(keep(new int(3)));
  }
  {
    leakguard::scope s;
    leakguard::context ctx = leakguard::current_context();
    leakguard::adopt a{ctx};
    leaked.push_back(keep(new int(4)));
  }
  CHECK_DISABLED(handler_calls == 0);

  // global_new.hpp replaced nothing: nothing is counted.
  const leakguard::heap_stats before = leakguard::global_stats();
  int* p = keep(new int(5));
  const leakguard::heap_stats after = leakguard::global_stats();
  delete p;
  CHECK_DISABLED(after.allocations == before.allocations);
  CHECK_DISABLED(after.live_blocks == before.live_blocks);
  CHECK_DISABLED(after.live_bytes == before.live_bytes);

  // Misuse handler and options are still callable.
  leakguard::misuse_handler previous_misuse = leakguard::set_misuse_handler([](const leakguard::misuse&) {});
  leakguard::set_misuse_handler(std::move(previous_misuse));
  leakguard::set_options(leakguard::options());

  // "cost nothing": the RAII types carry no state.
  CHECK_DISABLED(std::is_empty_v<leakguard::scope>);
  CHECK_DISABLED(std::is_empty_v<leakguard::ignore_scope>);
  CHECK_DISABLED(std::is_empty_v<leakguard::no_alloc_scope>);

  // Tracking allocators are still std-conforming containers' allocators.
  {
    std::vector<int, leakguard::allocator<int>> v;
    for (int i = 0; i < 100; ++i) v.push_back(i);
    CHECK_DISABLED(v.size() == 100 && v[99] == 99);
  }

  leakguard::set_leak_handler(std::move(previous));
  for (int* x : leaked) delete x;
  if (failures == 0) std::fputs("disabled_program: all checks passed\n", stderr);
  return failures;
}
