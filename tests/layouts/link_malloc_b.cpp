// With link_malloc_a.cpp, must not link: the C heap replaced twice.
#include <leakguard/global_malloc.hpp>
