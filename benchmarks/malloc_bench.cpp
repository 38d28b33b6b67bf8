// The C heap replaced (<leakguard/global_malloc.hpp>) against glibc's own
// malloc, in one program: glibc's entry points (__libc_malloc, __libc_free)
// stay callable beside the replaced malloc and free.
//
//   glibc/N          __libc_malloc + __libc_free of N bytes (native)
//   call_layer/N     the same through the least any replacement does: a
//                    function of its own that tests a thread-local and calls
//                    glibc through a pointer (no header, no counting)
//   leakguard/N      malloc + free of N bytes outside any scope
//   scoped/N         the same inside a scope (tracked: a record, 6 frames)
//   zlib_native      deflateInit + deflateEnd outside any scope (5 blocks)
//   zlib_scoped      the same inside a scope with stack_depth=16: each block's
//                    stack is captured with the unwinder, through libz,
//                    which keeps no frame pointers
//   program_scoped16 five mallocs from the program's own code in such a scope
//                    (the frame-pointer walk), for comparison
#include <leakguard/global_malloc.hpp>

#include <benchmark/benchmark.h>
#include <leakguard.hpp>
#include <zlib.h>

#include <atomic>
#include <cstdlib>

extern "C" void* __libc_malloc(std::size_t);
extern "C" void __libc_free(void*);

namespace {

// An allocation of state.range(0) bytes and its free, per iteration
// (template arguments: direct calls, as the program's own).
template <void* (*Allocate)(std::size_t), void (*Free)(void*)>
void churn(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = Allocate(n);
    benchmark::DoNotOptimize(p);
    Free(p);
  }
}

void glibc(benchmark::State& state) { churn<__libc_malloc, __libc_free>(state); }
BENCHMARK(glibc)->Arg(64)->Arg(1024);

thread_local int watched = 0;
std::atomic<void* (*)(std::size_t)> below_malloc{&__libc_malloc};
std::atomic<void (*)(void*)> below_free{&__libc_free};

[[gnu::noinline]] void* layer_malloc(std::size_t n) {
  if (__builtin_expect(watched != 0, 0)) return nullptr;
  return below_malloc.load(std::memory_order_relaxed)(n);
}
[[gnu::noinline]] void layer_free(void* p) {
  if (__builtin_expect(watched != 0, 0)) return;
  below_free.load(std::memory_order_relaxed)(p);
}

void call_layer(benchmark::State& state) { churn<layer_malloc, layer_free>(state); }
BENCHMARK(call_layer)->Arg(64)->Arg(1024);

// Calls of std::malloc and std::free (leakguard's here), whose addresses a
// program may not take.
void* leakguard_allocate(std::size_t n) { return std::malloc(n); }
void leakguard_release(void* p) { std::free(p); }

void leakguard_malloc(benchmark::State& state) { churn<leakguard_allocate, leakguard_release>(state); }
BENCHMARK(leakguard_malloc)->Name("leakguard")->Arg(64)->Arg(1024);

void scoped(benchmark::State& state) {
  leakguard::scope s("bench");
  churn<leakguard_allocate, leakguard_release>(state);
}
BENCHMARK(scoped)->Arg(64)->Arg(1024);

void zlib_round(benchmark::State& state) {
  for (auto _ : state) {
    z_stream z{};
    if (deflateInit(&z, Z_DEFAULT_COMPRESSION) != Z_OK) state.SkipWithError("deflateInit");
    deflateEnd(&z);
  }
}

void zlib_native(benchmark::State& state) { zlib_round(state); }
BENCHMARK(zlib_native);

// A scope with full 16-frame stacks for every block.
struct deep_stacks {
  leakguard::runtime_options saved = leakguard::options();
  deep_stacks() {
    leakguard::runtime_options o = saved;
    o.stack_depth = 16;
    leakguard::set_options(o);
  }
  ~deep_stacks() { leakguard::set_options(saved); }
};

void zlib_scoped(benchmark::State& state) {
  deep_stacks deep;
  leakguard::scope s("bench");
  zlib_round(state);
}
BENCHMARK(zlib_scoped);

[[gnu::noinline]] void* program_allocation(std::size_t n) {
  void* p = std::malloc(n);
  benchmark::DoNotOptimize(p);
  return p;
}

void program_scoped16(benchmark::State& state) {
  deep_stacks deep;
  leakguard::scope s("bench");
  for (auto _ : state) {
    void* p[5];
    for (void*& q : p) q = program_allocation(4096);
    for (void* q : p) std::free(q);
  }
}
BENCHMARK(program_scoped16);

}  // namespace

BENCHMARK_MAIN();
