// benchmarks/verdict_bench.cpp — what a scope's verdict costs the thread
// that ends the scope.
//
//   BM_end_no_survivors         a scope whose blocks were all freed: no scan
//   BM_end_one_leak/MB          one leaked block, judged at once, with MB
//                               megabytes of live heap reachable from a global
//                               (256-byte nodes, each pointing at two others):
//                               the reachability scan walks all of it
//   BM_end_suppressed           a block a suppression names (a test framework's
//                               bookkeeping, alive at every test's end): no
//                               scan, its stack symbolized once for the run
//   BM_end_suppressed_new_test  the same bookkeeping, allocated from a test body
//                               no report has seen (each test's own code):
//                               only the framework's frames are looked up
//   BM_end_new_site             one leaked block, allocated at a return address
//                               no report has named yet (a test's new code):
//                               the cost of symbolizing it, its unit already
//                               indexed by an earlier report
//   BM_end_escaping/grace_ms    a response object that outlives the scope and
//                               is freed right after it: with grace 0 a report
//                               (handler does nothing), with a grace period the
//                               verdict is queued for leakguard's thread
//   BM_request/leaks            a small request (a map of 16 strings) in a
//                               scope, on 1 or 2 threads; with leaks=1 every
//                               request leaks a block, with on_leak=log to
//                               /dev/null: the verdicts, symbols and writes
//                               run on leakguard's thread. The ratio of the
//                               two throughputs is what a server whose every
//                               request leaks keeps.
#include <leakguard/global_new.hpp>
#include <leakguard.hpp>

#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

// What a test framework keeps between tests, named by a suppression.
namespace framework {
[[gnu::noinline]] int* bookkeeping() {
  int* p = new int(1);
  benchmark::DoNotOptimize(p);
  return p;
}
}  // namespace framework

namespace {

struct heap_node {
  heap_node* left = nullptr;
  heap_node* right = nullptr;
  char payload[240] = {};
};

// The program's long-lived heap, reachable from this global.
std::vector<heap_node*> live_heap;

void build_heap(std::size_t megabytes) {
  for (heap_node* n : live_heap) delete n;
  std::vector<heap_node*>().swap(live_heap);  // no stale pointers left for later scans
  const std::size_t count = megabytes * 1024 * 1024 / sizeof(heap_node);
  live_heap.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    auto* n = new heap_node;
    if (i) {
      n->left = live_heap[i / 2];
      n->right = live_heap[i - 1];
    }
    live_heap.push_back(n);
  }
}

leakguard::scope_options quiet(const char* label, std::chrono::milliseconds grace) {
  return {.label = label, .handler = [](const leakguard::report& r) { benchmark::DoNotOptimize(r.leaked_blocks()); },
          .grace = grace};
}

void BM_end_no_survivors(benchmark::State& state) {
  for (auto _ : state) {
    leakguard::scope s(quiet("clean", std::chrono::milliseconds(0)));
    int* p = new int(1);
    benchmark::DoNotOptimize(p);
    delete p;
  }
}
BENCHMARK(BM_end_no_survivors);

void BM_end_one_leak(benchmark::State& state) {
  build_heap(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    int* leaked;
    {
      leakguard::scope s(quiet("leak", std::chrono::milliseconds(0)));
      leaked = new int(1);
      benchmark::DoNotOptimize(leaked);
    }
    delete leaked;
  }
  state.counters["heap_MB"] = static_cast<double>(state.range(0));
  build_heap(0);
}
BENCHMARK(BM_end_one_leak)->Arg(0)->Arg(10)->Arg(100)->Unit(benchmark::kMicrosecond);

void BM_end_suppressed(benchmark::State& state) {
  leakguard::suppress("framework::bookkeeping");
  for (auto _ : state) {
    int* kept;
    {
      leakguard::scope s(quiet("test", std::chrono::milliseconds(0)));
      kept = framework::bookkeeping();
    }
    delete kept;
  }
  leakguard::unsuppress("framework::bookkeeping");
}
BENCHMARK(BM_end_suppressed)->Unit(benchmark::kMicrosecond);

// A distinct allocation site for each N: a return address to look up anew.
template <int N>
[[gnu::noinline]] int* allocate_at() {
  int* p = new int(N);
  benchmark::DoNotOptimize(p);
  return p;
}
template <int... N>
constexpr std::array<int* (*)(), sizeof...(N)> sites(std::integer_sequence<int, N...>) {
  return {&allocate_at<N>...};
}
constexpr auto new_sites = sites(std::make_integer_sequence<int, 1024>{});

// Each iteration: a scope around one call of the next function of `calls`
// (a code path no report has seen), whose block is freed after the scope.
template <std::size_t N>
void end_scopes_on_new_paths(benchmark::State& state, const std::array<int* (*)(), N>& calls, const char* label) {
  std::size_t next = 0;
  for (auto _ : state) {
    if (next == calls.size()) {
      state.SkipWithError("no new path left");
      break;
    }
    int* block;
    {
      leakguard::scope s(quiet(label, std::chrono::milliseconds(0)));
      block = calls[next++]();
    }
    delete block;
  }
}

void BM_end_new_site(benchmark::State& state) { end_scopes_on_new_paths(state, new_sites, "new site"); }
BENCHMARK(BM_end_new_site)->Iterations(256)->Unit(benchmark::kMicrosecond);

// A distinct test body for each N, each calling the framework.
template <int N>
[[gnu::noinline]] int* test_body() {
  int* p = framework::bookkeeping();
  benchmark::DoNotOptimize(p);
  return p;
}
template <int... N>
constexpr std::array<int* (*)(), sizeof...(N)> test_bodies(std::integer_sequence<int, N...>) {
  return {&test_body<N>...};
}
constexpr auto new_tests = test_bodies(std::make_integer_sequence<int, 1024>{});

void BM_end_suppressed_new_test(benchmark::State& state) {
  leakguard::suppress("framework::bookkeeping");
  end_scopes_on_new_paths(state, new_tests, "test");
  leakguard::unsuppress("framework::bookkeeping");
}
BENCHMARK(BM_end_suppressed_new_test)->Iterations(256)->Unit(benchmark::kMicrosecond);

void BM_end_escaping(benchmark::State& state) {
  const std::chrono::milliseconds grace(state.range(0));
  for (auto _ : state) {
    std::string* response;
    {
      leakguard::scope s(quiet("handler", grace));
      response = new std::string(64, 'r');
      benchmark::DoNotOptimize(response);
    }
    delete response;  // the framework, right after the handler
  }
  leakguard::flush();
}
BENCHMARK(BM_end_escaping)->Arg(0)->Arg(100)->Unit(benchmark::kMicrosecond);

void BM_request(benchmark::State& state) {
  const bool leaks = state.range(0) != 0;
  leakguard::runtime_options saved;
  if (state.thread_index() == 0) {
    saved = leakguard::options();
    leakguard::runtime_options o = saved;
    o.on_leak = leakguard::leak_action::log;
    o.report_path = "/dev/null";
    leakguard::set_options(o);
  }
  std::vector<int*> leaked;
  leaked.reserve(1 << 20);
  for (auto _ : state) {
    LEAKGUARD_SCOPE("request");
    std::map<std::string, std::string> fields;
    for (int i = 0; i < 16; ++i) fields.emplace("header-" + std::to_string(i), std::string(40, 'v'));
    benchmark::DoNotOptimize(fields);
    if (leaks) {
      int* volatile lost = new int(7);  // a true leak: nothing keeps it
      if (leaked.size() < leaked.capacity()) leaked.push_back(reinterpret_cast<int*>(~reinterpret_cast<std::uintptr_t>(+lost)));
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    leakguard::flush();  // the queue's work belongs to the run that made it
    leakguard::set_options(saved);
  }
  for (int* scrambled : leaked) delete reinterpret_cast<int*>(~reinterpret_cast<std::uintptr_t>(scrambled));
}
BENCHMARK(BM_request)->Arg(0)->Arg(1)->ArgName("leaks")->Threads(1)->Threads(2)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
