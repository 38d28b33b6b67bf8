// A plugin loaded with dlopen(): its scopes, its allocator's blocks and its
// new blocks all reach the program's runtime.
#include <leakguard.hpp>

#include <vector>

#define LAYOUT_EXPORT __attribute__((visibility("default")))

extern "C" LAYOUT_EXPORT void* layout_plugin_leak() {
  LEAKGUARD_SCOPE("plugin scope");
  leakguard::allocator<char> alloc{"plugin buffer"};
  char* buffer = alloc.allocate(100);  // reported, with its allocator's label
  (void)buffer;
  return new long(7);  // reported
}

// Allocates in whatever scope the caller opened.
extern "C" LAYOUT_EXPORT void* layout_plugin_allocate() {
  std::vector<int, leakguard::allocator<int>> v(10, 1);
  return new int[8];
}
