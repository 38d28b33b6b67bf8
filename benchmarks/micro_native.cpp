// benchmarks/micro_native.cpp — the same microbenchmarks without leakguard:
// libstdc++'s own operator new/delete. The baseline for micro_bench.cpp.
#define LEAKGUARD_BENCH_WITH_LEAKGUARD 0
#include "micro_common.hpp"

int main(int argc, char** argv) { return bench_main(argc, argv, "native"); }
