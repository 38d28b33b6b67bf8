// Compiled only: every header, with the warnings strict projects turn on, as
// errors (tests/CMakeLists.txt). A user who includes leakguard with a bare
// -I, not as system headers, must see none of ours.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <leakguard/doctest.hpp>
#include <leakguard/global_malloc.hpp>  // the runtime: global_new.hpp and implementation.hpp

#include <leakguard.hpp>
#include <leakguard/allocator.hpp>
#include <leakguard/failure_injection.hpp>
#include <leakguard/memory_resource.hpp>
#include <leakguard/metrics.hpp>
#include <leakguard/suppressions.hpp>
#include <leakguard/zones.hpp>

TEST_CASE("a scope, in a user's code") {
  LEAKGUARD_SCOPE("strict");
  std::vector<int, leakguard::allocator<int>> v(3);
  CHECK(v.size() == 3);
}
