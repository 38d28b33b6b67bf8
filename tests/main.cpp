// The test program's doctest runner. leakguard's runtime and its replacement
// operator new/delete come from examples/runtime/global_new.cpp (linked in):
// every `new` in leakguard_tests is tracked.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <leakguard.hpp>
