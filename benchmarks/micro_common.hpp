// benchmarks/micro_common.hpp — the microbenchmarks, compiled twice:
//
//   micro_bench.cpp   LEAKGUARD_BENCH_WITH_LEAKGUARD=1, with <leakguard/global_new.hpp>:
//                     every new/delete goes through leakguard
//   micro_native.cpp  LEAKGUARD_BENCH_WITH_LEAKGUARD=0, no leakguard at all:
//                     libstdc++'s own operator new (malloc + a null check)
//
// A program with global_new.hpp cannot also call the native operator new, so
// the native baseline lives in the second binary; benchmarks/compare.py runs
// both and prints the ratios. The rows that exist in both binaries have the
// same names (BM_new_delete/64 in micro_native is the baseline of
// BM_new_delete/64 and of BM_new_delete_scoped/64/<depth> in micro_bench);
// BM_malloc_free is the in-binary baseline (what libstdc++'s operator new
// does). Benchmarks only: no timing is asserted anywhere.
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>

#if LEAKGUARD_BENCH_WITH_LEAKGUARD
#include <leakguard.hpp>
#endif

namespace bench {

// Frames our own code puts under the measured loop, so that a 32-frame walk
// finds 32 frame-pointer frames of ours (Debian's libbenchmark is built
// without frame pointers; a walk would stop there after a few frames).
inline constexpr int extra_frames = 40;

template <class F>
__attribute__((noinline)) void with_frames(int n, F& f) {
  if (n <= 0) {
    f();
  } else {
    with_frames(n - 1, f);
  }
  benchmark::ClobberMemory();  // not a tail call: the frame stays
}

template <class F>
void deep(F&& f) {
  with_frames(extra_frames, f);
}

// new/delete of `size` bytes, as std::allocator does it: ::operator new(n)
// and the sized ::operator delete(p, n).
inline void new_delete_loop(benchmark::State& state, std::size_t size) {
  for (auto _ : state) {
    void* p = ::operator new(size);
    benchmark::DoNotOptimize(p);
    ::operator delete(p, size);
  }
  state.SetItemsProcessed(state.iterations());
}

template <class Alloc>
void allocator_loop(benchmark::State& state, std::size_t size) {
  Alloc a;
  for (auto _ : state) {
    char* p = a.allocate(size);
    benchmark::DoNotOptimize(p);
    a.deallocate(p, size);
  }
  state.SetItemsProcessed(state.iterations());
}

// 64 inserts and a clear: node allocations of a real container.
template <class Alloc>
void map_loop(benchmark::State& state) {
  for (auto _ : state) {
    std::map<int, int, std::less<int>, Alloc> m;
    for (int i = 0; i < 64; ++i) m.emplace((i * 37) & 63, i);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations() * 64);
}

// An exception's message, copied by libstdc++.so (built without frame
// pointers): its operator new is called from a library, whose frame
// leakguard's stack walk must step over to reach the caller.
inline void library_loop(benchmark::State& state) {
  const std::string message(64, 'm');
  for (auto _ : state) {
    std::runtime_error e(message);
    benchmark::DoNotOptimize(e.what());
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace bench

// ---- rows present in both binaries ------------------------------------------------

static void BM_library_new(benchmark::State& state) { bench::library_loop(state); }
BENCHMARK(BM_library_new);

static void BM_malloc_free(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = std::malloc(size);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_malloc_free)->ArgName("size")->Arg(16)->Arg(64)->Arg(256)->Arg(4096);

// Outside any scope (leakguard's fast path in micro_bench).
static void BM_new_delete(benchmark::State& state) {
  bench::new_delete_loop(state, static_cast<std::size_t>(state.range(0)));
}
BENCHMARK(BM_new_delete)->ArgName("size")->Arg(16)->Arg(64)->Arg(256)->Arg(4096);

static void BM_std_allocator(benchmark::State& state) {
  bench::allocator_loop<std::allocator<char>>(state, static_cast<std::size_t>(state.range(0)));
}
BENCHMARK(BM_std_allocator)->ArgName("size")->Arg(64);

static void BM_map_std_allocator(benchmark::State& state) {
  bench::map_loop<std::allocator<std::pair<const int, int>>>(state);
}
BENCHMARK(BM_map_std_allocator);

// Two threads, each doing its own new/delete pairs: the native ceiling of
// what two threads can do on this machine.
static void BM_threads_new_delete(benchmark::State& state) { bench::new_delete_loop(state, 64); }
BENCHMARK(BM_threads_new_delete)->Threads(1)->Threads(2)->UseRealTime();

#if LEAKGUARD_BENCH_WITH_LEAKGUARD

// ---- leakguard only ----------------------------------------------------------------

namespace bench {

// Sets the stack depth, keeping every other option (sample_bytes from
// LEAKGUARD_OPTIONS in particular: compare.py runs this binary once more with
// LEAKGUARD_OPTIONS=sample_bytes=N for the "sampled" rows).
inline void set_depth(int depth) {
  leakguard::runtime_options o = leakguard::options();
  o.stack_depth = depth;
  leakguard::set_options(o);
}

inline void reset_depth(const benchmark::State&) { set_depth(16); }

}  // namespace bench

// Inside a scope, stack depth range(1): 0 (capture off), 8, 16, 32.
static void BM_new_delete_scoped(benchmark::State& state) {
  bench::set_depth(static_cast<int>(state.range(1)));
  bench::deep([&] {
    leakguard::scope s("BM_new_delete_scoped");
    bench::new_delete_loop(state, static_cast<std::size_t>(state.range(0)));
  });
  bench::set_depth(16);
}
BENCHMARK(BM_new_delete_scoped)
    ->ArgNames({"size", "depth"})
    ->ArgsProduct({{16, 64, 256, 4096}, {0, 8, 16, 32}});

// leakguard::allocator<T>: outside a scope and inside one (depth 0 / 16).
static void BM_leakguard_allocator(benchmark::State& state) {
  bench::allocator_loop<leakguard::allocator<char>>(state, static_cast<std::size_t>(state.range(0)));
}
BENCHMARK(BM_leakguard_allocator)->ArgName("size")->Arg(64);

static void BM_leakguard_allocator_scoped(benchmark::State& state) {
  bench::set_depth(static_cast<int>(state.range(1)));
  bench::deep([&] {
    leakguard::scope s("BM_leakguard_allocator_scoped");
    bench::allocator_loop<leakguard::allocator<char>>(state, static_cast<std::size_t>(state.range(0)));
  });
  bench::set_depth(16);
}
BENCHMARK(BM_leakguard_allocator_scoped)->ArgNames({"size", "depth"})->ArgsProduct({{64}, {0, 16}});

static void BM_std_allocator_scoped(benchmark::State& state) {
  bench::set_depth(static_cast<int>(state.range(1)));
  bench::deep([&] {
    leakguard::scope s("BM_std_allocator_scoped");
    bench::allocator_loop<std::allocator<char>>(state, static_cast<std::size_t>(state.range(0)));
  });
  bench::set_depth(16);
}
BENCHMARK(BM_std_allocator_scoped)->ArgNames({"size", "depth"})->ArgsProduct({{64}, {0, 16}});

// The same inside a scope: 16-frame stacks through libstdc++.so's frames.
static void BM_library_new_scoped(benchmark::State& state) {
  bench::deep([&] {
    leakguard::scope s("BM_library_new_scoped");
    bench::library_loop(state);
  });
}
BENCHMARK(BM_library_new_scoped)->Name("BM_library_new_scoped/depth:16");

static void BM_map_leakguard_allocator(benchmark::State& state) {
  bench::map_loop<leakguard::allocator<std::pair<const int, int>>>(state);
}
BENCHMARK(BM_map_leakguard_allocator);

static void BM_map_scoped(benchmark::State& state) {
  bench::set_depth(static_cast<int>(state.range(0)));
  bench::deep([&] {
    leakguard::scope s("BM_map_scoped");
    if (state.range(1)) bench::map_loop<leakguard::allocator<std::pair<const int, int>>>(state);
    else bench::map_loop<std::allocator<std::pair<const int, int>>>(state);
  });
  bench::set_depth(16);
}
// range(1): 0 = std::allocator (through global new), 1 = leakguard::allocator.
BENCHMARK(BM_map_scoped)->ArgNames({"depth", "lg_alloc"})->ArgsProduct({{0, 16}, {0, 1}});

// Threads, each in its own scope. The depth is set before the threads start.
template <int Depth>
static void threads_setup(const benchmark::State&) {
  bench::set_depth(Depth);
}

static void BM_threads_scoped(benchmark::State& state) {
  bench::deep([&] {
    leakguard::scope s("BM_threads_scoped");
    bench::new_delete_loop(state, 64);
  });
}
BENCHMARK(BM_threads_scoped)
    ->Name("BM_threads_scoped/depth:0")
    ->Setup(threads_setup<0>)
    ->Teardown(bench::reset_depth)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK(BM_threads_scoped)
    ->Name("BM_threads_scoped/depth:16")
    ->Setup(threads_setup<16>)
    ->Teardown(bench::reset_depth)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

#endif  // LEAKGUARD_BENCH_WITH_LEAKGUARD

// Fixed work for instruction counting (valgrind --tool=callgrind), where
// Google Benchmark's adaptive iteration counts get in the way:
//   micro_bench --pairs=N [--depth=D | --no-scope]   N new/delete pairs of 64 B
// compare.py runs it with N and with 0 and takes the difference.
namespace bench {
__attribute__((noinline)) void fixed_pairs(long n) {
  for (long i = 0; i < n; ++i) {
    void* p = ::operator new(64);
    benchmark::DoNotOptimize(p);
    ::operator delete(p, 64);
  }
}

inline bool fixed_mode(int argc, char** argv) {
  long pairs = -1;
  int depth = 16;
  bool scoped = true;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.starts_with("--pairs=")) pairs = std::atol(argv[i] + 8);
    else if (a.starts_with("--depth=")) depth = std::atoi(argv[i] + 8);
    else if (a == "--no-scope") scoped = false;
  }
  if (pairs < 0) return false;
#if LEAKGUARD_BENCH_WITH_LEAKGUARD
  set_depth(depth);
  if (scoped) {
    deep([&] {
      leakguard::scope s("fixed_pairs");
      fixed_pairs(pairs);
    });
    return true;
  }
#else
  (void)depth;
  (void)scoped;
#endif
  deep([&] { fixed_pairs(pairs); });
  return true;
}
}  // namespace bench

// Both binaries: Google Benchmark's main, plus a leak handler that logs
// instead of aborting (a benchmark must finish; the counting is in the
// report text, which should stay empty).
inline int bench_main(int argc, char** argv, const char* variant) {
#if LEAKGUARD_BENCH_WITH_LEAKGUARD
  leakguard::set_leak_handler(leakguard::log_leak);
#endif
  if (bench::fixed_mode(argc, argv)) return 0;
  benchmark::AddCustomContext("leakguard_variant", variant);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
