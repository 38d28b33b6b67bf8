// A plugin of the C heap tests: plain C-style code, no leakguard header, that
// the test program dlopen()s. Its malloc resolves to the program's.
#include <cstdlib>
#include <cstring>

extern "C" __attribute__((visibility("default"))) char* plugin_copy(const char* text) {
  const std::size_t n = std::strlen(text) + 1;
  auto* out = static_cast<char*>(std::malloc(n));
  if (out) std::memcpy(out, text, n);
  return out;
}
