// Allocation outside main's lifetime: before main (static initialisation),
// in atexit handlers, in static destructors and at thread exit (thread_local
// destructors, which run around leakguard's own thread-exit hook). Every form
// of new must work there, scopes must work there, and the books must balance.
//
// A standalone program (no doctest: its runner lives inside main). Exit code:
// the number of failed checks; the last ones run from a static destructor and
// exit through _exit.
#include <leakguard.hpp>
#if !LEAKGUARD_TEST_SHARED_RUNTIME  // the sanitizer presets link it compiled once
#include <leakguard/global_new.hpp>
#endif

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {

int failures = 0;

#define CHECK_LIFETIME(cond)                                                   \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "lifetime_program:%d: check failed: %s\n", __LINE__, #cond); \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

template <class T>
T* keep(T* p) {
  asm volatile("" : : "r"(p) : "memory");
  return p;
}

struct alignas(64) wide {
  char bytes[64];
};

// Every replaceable form, allocated and freed by its matching delete.
void every_form() {
  delete keep(new int(1));
  delete[] keep(new int[3]);
  delete keep(new (std::nothrow) int(2));
  delete[] keep(new (std::nothrow) int[2]);
  delete keep(new wide);
  delete[] keep(new wide[2]);
  delete keep(new (std::nothrow) wide);
  ::operator delete(keep(::operator new(24)), 24);
  ::operator delete[](keep(::operator new[](40)), 40);
  ::operator delete(keep(::operator new(32, std::align_val_t{128})), 32, std::align_val_t{128});
}

int leaks_seen = 0;
std::size_t leaked_bytes_seen = 0;

void count_leaks(const leakguard::report& r) {
  ++leaks_seen;
  leaked_bytes_seen += r.leaked_bytes();
}

// One scope that leaks exactly one 48-byte block, freed afterwards.
void leaky_scope() {
  void* p = nullptr;
  {
    leakguard::scope s(leakguard::scope_options{.label = "lifetime", .handler = count_leaks});
    p = keep(::operator new(48));
  }
  ::operator delete(p);
}

// ---- before main ------------------------------------------------------------
struct before_main {
  std::string* kept;
  before_main() {
    every_form();
    leaky_scope();
    kept = new std::string(100, 'b');  // lives until the static destructor
  }
  ~before_main() {
    // Static destruction: allocation, scopes and frees still work.
    every_form();
    const int seen = leaks_seen;
    leaky_scope();
    CHECK_LIFETIME(leaks_seen == seen + 1);
    delete kept;
    std::fflush(stderr);
    _exit(failures);  // static destructors are the last word of this program
  }
};
const int static_init_leaks_before = leaks_seen;
before_main early;  // after the counters above: same TU, in order

// ---- thread exit ------------------------------------------------------------
int thread_local_destructors = 0;
struct per_thread {
  std::vector<int>* data = new std::vector<int>(10, 1);
  ~per_thread() {
    // Runs at thread exit, before leakguard's own exit hook (a pthread key);
    // allocations here and after it must be counted and freed correctly.
    every_form();
    delete data;
    ++thread_local_destructors;
  }
};
thread_local per_thread this_thread_data;

void at_exit_handler() {
  every_form();
  const int seen = leaks_seen;
  leaky_scope();
  CHECK_LIFETIME(leaks_seen == seen + 1);
}

}  // namespace

int main() {
  CHECK_LIFETIME(static_init_leaks_before == 0);
  CHECK_LIFETIME(leaks_seen == 1);  // the scope opened before main
  CHECK_LIFETIME(leaked_bytes_seen == 48);

  const leakguard::heap_stats before = leakguard::global_stats();
  for (int i = 0; i < 4; ++i) {
    std::thread([] {
      this_thread_data.data->push_back(2);  // construct the thread_local
      every_form();
    }).join();
  }
  CHECK_LIFETIME(thread_local_destructors == 4);
  const leakguard::heap_stats after = leakguard::global_stats();
  // The threads freed all they made, thread_local destructors included.
  CHECK_LIFETIME(after.live_blocks == before.live_blocks);
  CHECK_LIFETIME(after.live_bytes == before.live_bytes);
  CHECK_LIFETIME(after.allocations > before.allocations);

  std::atexit(at_exit_handler);
  std::fprintf(stderr, "lifetime_program: main done, %d failures so far\n", failures);
  return 0;  // exit: atexit handler, then static destructors (which _exit)
}
