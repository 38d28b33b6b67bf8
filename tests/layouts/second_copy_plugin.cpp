// A plugin that compiles leakguard's runtime itself, against the README's
// rule: a second copy in a process that has one. It must say so at load.
#include <leakguard/implementation.hpp>

extern "C" __attribute__((visibility("default"))) int layout_second_copy_plugin() { return 1; }
