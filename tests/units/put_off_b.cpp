#include "put_off.hpp"

namespace lgt_put_off {
[[gnu::noinline]] int* leak() {
  int* p = new int(3);
  asm volatile("" : : "r"(p) : "memory");
  return p;
}
}  // namespace lgt_put_off
