// With link_malloc_b.cpp, must not link: the C heap replaced twice.
#include <leakguard/global_malloc.hpp>

int main() { return 0; }
