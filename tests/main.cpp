// The test program's single TU with doctest's runner and leakguard's
// replacement operator new/delete: every `new` in leakguard_tests is tracked.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <leakguard.hpp>
#include <leakguard/global_new.hpp>
