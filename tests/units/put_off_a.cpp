#include "put_off.hpp"

namespace lgt_put_off {
[[gnu::noinline]] int* first_static() {
  static int* const kept = new int(1);
  return kept;
}
[[gnu::noinline]] int* second_static() {
  static int* const kept = new int(2);
  return kept;
}
}  // namespace lgt_put_off
