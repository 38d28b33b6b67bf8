// A shared library that only opens scopes and allocates: it includes
// <leakguard.hpp> and uses the program's runtime.
#include <leakguard.hpp>

#define LAYOUT_EXPORT __attribute__((visibility("default")))

LAYOUT_EXPORT int* layout_lib_leak() {
  LEAKGUARD_SCOPE("library scope");
  return new int[4];  // still live when the scope ends: reported
}
