// The C heap test program's TU with doctest's runner and leakguard's runtime,
// with the malloc family replaced (<leakguard/global_malloc.hpp>): every
// malloc in the process, doctest's and the C library's included, is a
// leakguard block here.
#include <leakguard/global_malloc.hpp>

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
