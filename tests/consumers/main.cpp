// A user's program: proves a consumer build finds the headers, Abseil and
// (when this machine has it) libdw, and that a leak inside a scope is
// reported, with this file's line when libdw was found.
// Exit status 0 means "leak reported", 1 means "missed".
#include <cstdio>
#include <string>

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
#if LEAKGUARD_HAVE_LIBDW
    leak_reported = leak_reported && r.blocks()[0].site.find("main.cpp:") != std::string::npos;
#endif
    std::fputs(r.to_text().c_str(), stdout);
  });
  leaky_function();
  std::puts(leak_reported ? "consumer: leak reported" : "consumer: leak MISSED");
  return leak_reported ? 0 : 1;
}
