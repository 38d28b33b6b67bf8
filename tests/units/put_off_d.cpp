#include "put_off.hpp"

namespace lgt_put_off {
[[gnu::noinline]] int* third_static() {
  static int* const kept = new int(5);
  return kept;
}
}  // namespace lgt_put_off
