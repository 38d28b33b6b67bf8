// Must not compile: global_malloc.hpp after the runtime (see tests/layouts/CMakeLists.txt).
#include <leakguard/global_new.hpp>
#include <leakguard/global_malloc.hpp>

int main() { return 0; }
