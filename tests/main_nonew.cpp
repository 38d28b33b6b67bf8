// The second test program's single TU with doctest's runner and leakguard's
// implementation, WITHOUT <leakguard/global_new.hpp>: `new` is not tracked
// here, only leakguard::allocator and leakguard::memory_resource blocks are.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <leakguard.hpp>
#include <leakguard/implementation.hpp>
