#include "put_off.hpp"

namespace lgt_put_off {
// Only the debug info names it: inlined, it has no symbol of its own.
[[gnu::always_inline]] inline int* make_inline() {
  int* p = new int(4);
  asm volatile("" : : "r"(p) : "memory");
  return p;
}
[[gnu::noinline]] int* suppressed_leak() { return make_inline(); }
}  // namespace lgt_put_off
