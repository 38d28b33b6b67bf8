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

// What a report reads after the plugin is unloaded: the scope's location
// (a verdict given after a grace period) and the allocator's label and
// construction site (a block of the program's scope).
extern "C" LAYOUT_EXPORT void* layout_plugin_leak_later() {
  leakguard::scope s(leakguard::scope_options{.label = "plugin grace scope", .grace = std::chrono::milliseconds(60000)});
  return new short(3);
}
extern "C" LAYOUT_EXPORT void* layout_plugin_keep_buffer() {
  leakguard::allocator<char> alloc{"plugin kept buffer"};
  return alloc.allocate(48);
}
