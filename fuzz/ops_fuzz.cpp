// fuzz/ops_fuzz.cpp — the fuzzer's bytes as a sequence of operations on one
// thread (allocations of every kind, frees, ignore(p), nested scopes with
// all_threads and budgets, ignore scopes, dismiss, check, contexts and
// adopt), each compared with the reference model of tests/model.hpp: every
// report, scope_stats and global_stats delta must match. A mismatch aborts
// with the first discrepancies in words.
//
// LEAKGUARD_FUZZ_KNOWN_BUGS=1 also generates what leakguard gets wrong today
// (model.hpp): the fuzzer should then find it within seconds.
//
// Input: 4 bytes per operation — kind, then parameter a (2 bytes, little
// endian) and b (1 byte); see lgt::model::actor::apply for their meaning.
#include <leakguard.hpp>
#include <leakguard/global_new.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "model.hpp"

namespace {

const bool known_bugs = std::getenv("LEAKGUARD_FUZZ_KNOWN_BUGS") != nullptr;

// Every scope has its own handler; a call to the global one is a bug.
void unexpected_global_handler(const leakguard::report& r) {
  std::fprintf(stderr, "ops_fuzz: global leak handler called for '%.*s'\n", static_cast<int>(r.label().size()),
               r.label().data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  leakguard::set_leak_handler(unexpected_global_handler);
  // Stacks cost symbolization in every report and the model does not look at
  // them: off unless LEAKGUARD_OPTIONS says otherwise.
  if (!std::getenv("LEAKGUARD_OPTIONS")) {
    leakguard::runtime_options o = leakguard::options();
    o.stack_depth = 0;
    leakguard::set_options(o);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  lgt::model::world w;
  w.known_bugs = known_bugs;
  lgt::model::actor a(w, 0);
  for (std::size_t i = 0; i + 4 <= size; i += 4) {
    const lgt::model::op o{static_cast<lgt::model::op_kind>(data[i] % lgt::model::op_kinds),
                           static_cast<std::uint32_t>(data[i + 1] | data[i + 2] << 8), data[i + 3]};
    a.apply(o);
  }
  if (!a.close_all()) w.counts.fail("could not close every frame");  // one thread: always can
  a.do_flush();  // the verdicts still pending: their handlers write into `w`
  a.free_all();
  if (w.counts.discrepancies.load() != 0) {
    std::fprintf(stderr, "ops_fuzz: %llu discrepancies with the model after %llu operations:\n",
                 static_cast<unsigned long long>(w.counts.discrepancies.load()),
                 static_cast<unsigned long long>(w.counts.ops.load()));
    for (const std::string& what : w.counts.first) std::fprintf(stderr, "  %s\n", what.c_str());
    std::abort();
  }
  return 0;
}
