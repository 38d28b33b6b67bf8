#include "put_off.hpp"

namespace lgt_put_off {
[[gnu::always_inline]] inline int* make_kept() {
  static int* const kept = new int(6);
  return kept;
}
[[gnu::noinline]] int* suppressed_static() { return make_kept(); }
}  // namespace lgt_put_off
