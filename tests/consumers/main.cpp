// A user's program: proves a consumer build finds the headers, Abseil and
// (when available) libbacktrace, and that a leak inside a scope is reported.
// Exit status 0 means "leak reported", 1 means "missed".
#include <cstdio>

#include <leakguard.hpp>
#include <leakguard/global_new.hpp>

namespace {

bool leak_reported = false;

void leaky_function() {
  LEAKGUARD_SCOPE("consumer");
  // volatile: the compiler may not drop the `new`. A local, not a global:
  // a block a global points to is retained, not leaked.
  int* volatile leaked = new int(1);  // never deleted: the scope must report it
  (void)leaked;
}

}  // namespace

int main() {
  leakguard::set_leak_handler([](const leakguard::report& r) {
    leak_reported = r.leaked_blocks() == 1;
    std::fputs(r.to_text().c_str(), stdout);
  });
  leaky_function();
  std::puts(leak_reported ? "consumer: leak reported" : "consumer: leak MISSED");
  return leak_reported ? 0 : 1;
}
