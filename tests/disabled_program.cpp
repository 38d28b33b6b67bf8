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

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <memory_resource>
#include <source_location>
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

  // Every other public type and member, used as in an enabled build.
  {
    leakguard::memory_resource tracked;  // over the default resource
    leakguard::memory_resource labelled("pool", std::pmr::new_delete_resource());
    std::pmr::vector<std::pmr::string> names{&tracked};
    for (int i = 0; i < 50; ++i) names.emplace_back(64, 'x');
    CHECK_DISABLED(names.size() == 50 && names[49].size() == 64);
    void* raw = labelled.allocate(100, 64);
    CHECK_DISABLED(raw != nullptr && reinterpret_cast<std::uintptr_t>(raw) % 64 == 0);
    labelled.deallocate(raw, 100, 64);
    CHECK_DISABLED(labelled.upstream() == std::pmr::new_delete_resource());
    CHECK_DISABLED(tracked.is_equal(tracked) && !tracked.is_equal(labelled));
    tracked.check_on_destruction();
    CHECK_DISABLED(tracked.outstanding().empty());
  }
  {
    using upstream = std::allocator<int>;
    leakguard::allocator<int, upstream> a{upstream{}, "label"};
    std::vector<int, leakguard::allocator<int, upstream>> v{a};
    for (int i = 0; i < 100; ++i) v.push_back(i);
    CHECK_DISABLED(v.size() == 100 && v.get_allocator().label() == "label");
    leakguard::allocator<long, std::allocator<long>> rebound{a};
    CHECK_DISABLED(rebound == a && rebound.where().line() == a.where().line());
    leakguard::allocator<std::string> named{"strings"};
    std::vector<std::string, leakguard::allocator<std::string>> strings{named};
    strings.emplace_back(100, 'y');
    CHECK_DISABLED(strings.get_allocator().label() == "strings");
  }
  {
    int calls = 0;
    const leakguard::exception_safety_result r = leakguard::check_exception_safety([&] {
      ++calls;
      std::string s(100, 'z');
    });
    CHECK_DISABLED(r.ok() && calls == 1 && r.runs == 1);
  }
  {
    leakguard::suppress("mylib::");
    (void)leakguard::unsuppress("mylib::");
    (void)leakguard::suppressions();
    (void)leakguard::suppression_uses();
    std::string errors;
    const leakguard::runtime_options o = leakguard::parse_options("stack_depth=4", {}, &errors);
    CHECK_DISABLED(o.stack_depth == 4 && errors.empty());
    (void)leakguard::leak_sites();
    leakguard::reset_leak_sites();
    leakguard::leaked_block b;
    b.size = 8;
    b.site = "x.cpp:1";
    leakguard::report r("hand-made", std::source_location::current(), {b});
    CHECK_DISABLED(r.leaked_blocks() == 1 && r.leaked_bytes() == 8 && !r.unrecorded().any());
    CHECK_DISABLED(!r.to_text().empty() && !r.to_json().empty());
    leakguard::log_leak(r);  // prints, as in an enabled build
    void (*abort_handler)(const leakguard::report&) = &leakguard::abort_on_leak;
    void (*abort_misuse)(const leakguard::misuse&) = &leakguard::abort_on_misuse;
    CHECK_DISABLED(abort_handler != nullptr && abort_misuse != nullptr);
    CHECK_DISABLED(leakguard::current_context().empty());
  }

  leakguard::set_leak_handler(std::move(previous));
  for (int* x : leaked) delete x;
  if (failures == 0) std::fputs("disabled_program: all checks passed\n", stderr);
  return failures;
}
