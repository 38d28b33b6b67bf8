// Opens a scope, but no TU of the program includes <leakguard/global_new.hpp>
// or <leakguard/implementation.hpp>: must not link.
#include <leakguard.hpp>

int main() {
  LEAKGUARD_SCOPE("no runtime");
  return 0;
}
