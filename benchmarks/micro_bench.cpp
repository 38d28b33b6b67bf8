// benchmarks/micro_bench.cpp — the microbenchmarks with leakguard: every
// new/delete of this program goes through <leakguard/global_new.hpp>.
// Its native twin is micro_native.cpp; see micro_common.hpp.
#include <leakguard/global_new.hpp>

#define LEAKGUARD_BENCH_WITH_LEAKGUARD 1
#include "micro_common.hpp"

int main(int argc, char** argv) { return bench_main(argc, argv, "leakguard (global_new.hpp)"); }
