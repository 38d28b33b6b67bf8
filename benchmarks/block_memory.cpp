// benchmarks/block_memory.cpp — bytes per block that leakguard adds, measured.
//
// For each size, allocates N blocks and reads glibc's bytes in use
// (mallinfo2().uordblks, which counts whole chunks, i.e. what the heap really
// gives out) before and after:
//
//   native     std::malloc(size)                       (libstdc++'s operator new is this)
//   untracked  ::operator new(size), no scope active   (leakguard's header)
//   tracked    ::operator new(size) inside a scope, 16-frame stacks, from
//              32 distinct call stacks (interned: the depot's bytes are in
//              the figure too); and with stack capture off
//
// and prints bytes per block, and beyond native, as CSV on stdout:
//
//   block_memory [--blocks=1000000]
//
// Under a sanitizer (whose allocator glibc's mallinfo2 does not see) the
// figures are meaningless; the program still runs, as a smoke test.
#include <leakguard/global_new.hpp>
#include <leakguard.hpp>

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace {

std::size_t in_use() { return mallinfo2().uordblks; }

long blocks = 1000000;
void** slots = nullptr;

// Allocates at a stack depth of 20 + (i % 32): 32 distinct stacks.
__attribute__((noinline)) void* allocate_at(int depth, std::size_t size) {
  if (depth == 0) return ::operator new(size);
  void* p = allocate_at(depth - 1, size);
  __asm__ volatile("" ::: "memory");  // keep the frame: not a tail call
  return p;
}

enum class mode { native, untracked, tracked };

double bytes_per_block(mode m, std::size_t size) {
  const std::size_t before = in_use();
  for (long i = 0; i < blocks; ++i) {
    if (m == mode::native) slots[i] = std::malloc(size);
    else slots[i] = allocate_at(20 + static_cast<int>(i % 32), size);
  }
  const std::size_t after = in_use();
  for (long i = 0; i < blocks; ++i) {
    if (m == mode::native) std::free(slots[i]);
    else ::operator delete(slots[i], size);
  }
  return static_cast<double>(after - before) / static_cast<double>(blocks);
}

double measure(mode m, std::size_t size, int depth) {
  if (m != mode::tracked) return bytes_per_block(m, size);
  leakguard::runtime_options o = leakguard::options();
  o.stack_depth = depth;
  leakguard::set_options(o);
  double r;
  {
    leakguard::scope s("block_memory");
    r = bytes_per_block(m, size);
  }
  o.stack_depth = 16;
  leakguard::set_options(o);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--blocks=", 9) == 0) blocks = std::atol(argv[i] + 9);
  }
  if (blocks <= 0) blocks = 1;
  slots = static_cast<void**>(std::malloc(static_cast<std::size_t>(blocks) * sizeof(void*)));
  if (!slots) return 1;
  // Warm-up round: grows the heap once, so every later round reuses it.
  bytes_per_block(mode::tracked, 256);

  static const std::size_t sizes[] = {8, 16, 24, 32, 48, 64, 100, 128, 256, 1000};
  std::printf("size,native,untracked,tracked_depth0,tracked_depth16,untracked_extra,tracked_depth0_extra,"
              "tracked_depth16_extra\n");
  double sum_u = 0, sum_t0 = 0, sum_t16 = 0, max_u = 0, max_t16 = 0;
  for (std::size_t size : sizes) {
    const double native = measure(mode::native, size, 0);
    const double untracked = measure(mode::untracked, size, 0);
    const double tracked0 = measure(mode::tracked, size, 0);
    const double tracked16 = measure(mode::tracked, size, 16);
    std::printf("%zu,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f\n", size, native, untracked, tracked0, tracked16,
                untracked - native, tracked0 - native, tracked16 - native);
    sum_u += untracked - native;
    sum_t0 += tracked0 - native;
    sum_t16 += tracked16 - native;
    if (untracked - native > max_u) max_u = untracked - native;
    if (tracked16 - native > max_t16) max_t16 = tracked16 - native;
  }
  const double n = static_cast<double>(sizeof sizes / sizeof sizes[0]);
  std::printf("# blocks=%ld mean_extra untracked=%.2f tracked_depth0=%.2f tracked_depth16=%.2f "
              "max_extra untracked=%.2f tracked_depth16=%.2f\n",
              blocks, sum_u / n, sum_t0 / n, sum_t16 / n, max_u, max_t16);
  std::free(slots);
  return 0;
}
