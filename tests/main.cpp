// The test program's TU with doctest's runner. leakguard's runtime and its
// replacement operator new/delete come from leakguard_shared_runtime
// (examples/runtime/global_new.cpp), compiled once for the tests and the
// examples: every `new` in leakguard_tests is tracked.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <leakguard.hpp>
