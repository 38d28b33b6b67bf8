// tests/stress_test.cpp — random operations on several threads (nested
// scopes, all_threads scopes, budgets, cross-thread frees, contexts and adopt,
// ignore scopes, ignore(p), dismiss, check) compared with the reference model
// in model.hpp: every scope's report (blocks by address and size, budget
// violation), its stats and global_stats must match exactly.
//
// Phases alternate: serialized (one thread at a time, chosen at random; every
// comparison is exact) and concurrent bursts (all threads at once, doing only
// what commutes: allocations, frees, ignores, ignore scopes and adopt — no
// scope opens or ends, so each outcome is independent of the interleaving).
//
//   LEAKGUARD_STRESS_SEED=N   replay a run (the seed is printed on failure)
//   LEAKGUARD_STRESS_OPS=N    operations per run (default 30000: under 1 s idle,
//                             a few seconds on a loaded 2-core machine)
//   LEAKGUARD_STRESS_KNOWN_BUGS=1  also generate what leakguard gets wrong
//                             today (fails: see model.hpp)
#include <doctest/doctest.h>
#include <leakguard.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <semaphore>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "model.hpp"
#include "support.hpp"

namespace {

using lgt::model::actor;
using lgt::model::op;
using lgt::model::op_kind;

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : fallback;
}

// A thread that runs jobs on one actor, one at a time, when told.
class worker {
 public:
  explicit worker(actor& a) : actor_(a) { start(); }
  ~worker() { stop(); }
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  void start() {
    quit_ = false;
    thread_ = std::thread([this] {
      for (;;) {
        go_.acquire();
        if (quit_) return;
        job_(actor_);
        done_.release();
      }
    });
  }
  void stop() {
    if (!thread_.joinable()) return;
    quit_ = true;
    go_.release();
    thread_.join();
  }
  void post(std::function<void(actor&)> job) {
    job_ = std::move(job);
    go_.release();
  }
  void wait() { done_.acquire(); }
  void run(std::function<void(actor&)> job) {
    post(std::move(job));
    wait();
  }

 private:
  actor& actor_;
  std::function<void(actor&)> job_;
  bool quit_ = false;
  std::binary_semaphore go_{0}, done_{0};
  std::thread thread_;
};

// Draws an operation kind by weight.
template <class Rng, std::size_t N>
op_kind pick(Rng& rng, const std::array<std::pair<op_kind, unsigned>, N>& weights) {
  unsigned total = 0;
  for (const auto& w : weights) total += w.second;
  unsigned r = static_cast<unsigned>(rng() % total);
  for (const auto& w : weights) {
    if (r < w.second) return w.first;
    r -= w.second;
  }
  return weights[0].first;
}

template <class Rng>
op serialized_op(Rng& rng, const actor& a) {
  const unsigned frees = a.bag.size() > 48 ? 60 : 20;  // keep the heap small
  const std::array<std::pair<op_kind, unsigned>, 12> weights{{
      {op_kind::alloc, 30}, {op_kind::free, frees}, {op_kind::ignore_block, 2}, {op_kind::open, 9},
      {op_kind::close, 16}, {op_kind::dismiss, 2}, {op_kind::check, 3}, {op_kind::push_ignore, 3},
      {op_kind::push_adopt, 4}, {op_kind::capture, 4}, {op_kind::flush, 1},
      {op_kind::release_block, 2}}};  // close ~ open + pushes: depth wanders 0..8
  return op{pick(rng, weights), static_cast<std::uint32_t>(rng()), static_cast<std::uint32_t>(rng())};
}

template <class Rng>
op burst_op(Rng& rng, const actor& a) {
  const unsigned frees = a.bag.size() > 48 ? 100 : 35;
  const std::array<std::pair<op_kind, unsigned>, 7> weights{{
      {op_kind::alloc, 40}, {op_kind::free, frees}, {op_kind::ignore_block, 2}, {op_kind::release_block, 2},
      {op_kind::push_ignore, 5}, {op_kind::push_adopt, 6}, {op_kind::close, 10}}};
  return op{pick(rng, weights), static_cast<std::uint32_t>(rng()), static_cast<std::uint32_t>(rng())};
}

}  // namespace

TEST_SUITE("stress") {

// Found by the stress test: the ended scope's scope_state, recycled for the
// new scope, became its own parent, and the first allocation spun forever on
// a lock it held. In a child: before the fix it hung (the child's alarm).
TEST_CASE("regression: a scope opened under an adopted context that has ended reports its own leak, no deadlock") {
  auto result = lgt::run_in_child([] {
    lgt::capture_reports captured;
    leakguard::context ctx;
    { leakguard::scope request("request"); ctx = leakguard::current_context(); }
    int* q = nullptr;
    {
      leakguard::adopt a{ctx};  // a late pool task
      leakguard::scope task("task");
      delete lgt::keep(new int(1));
      q = lgt::keep(new int(2));
    }
    LGT_CHILD_CHECK(3, captured.reports.size() == 1);
    LGT_CHILD_CHECK(4, captured.reports[0].label() == "task");
    LGT_CHILD_CHECK(5, lgt::find_block(captured.reports[0], q) != nullptr);
    delete q;
  });
  INFO(result.describe());
  CHECK(result.ok());
}

// Found by the stress test (LEAKGUARD_STRESS_KNOWN_BUGS=1): after an outer
// scope is dismissed out of order, a new scope recycles its scope_state and
// the chain walk of an allocation reached the lock it already held. Only the
// hang is fixed; the enclosing scopes still lose track of the nested scopes'
// blocks (see model.hpp), so this checks only what is right either way.
TEST_CASE("regression: an allocation after an out-of-order dismiss() does not deadlock") {
  auto result = lgt::run_in_child([] {
    lgt::capture_reports captured;
    int* q = nullptr;
    {
      leakguard::scope middle("middle");
      leakguard::scope inner("inner");
      middle.dismiss();
      leakguard::scope innermost("innermost");
      delete lgt::keep(new int(1));
      q = lgt::keep(new int(2));
    }
    LGT_CHILD_CHECK(3, !captured.reports.empty());
    LGT_CHILD_CHECK(4, captured.reports[0].label() == "innermost");
    LGT_CHILD_CHECK(5, lgt::find_block(captured.reports[0], q) != nullptr);
    delete q;
  });
  INFO(result.describe());
  CHECK(result.ok());
}

// Found by reading the code: a free locked its block's scope ("child", opened
// under adopt), then the child's parent link, and only then checked the
// parent's generation. The parent had ended first, and its recycled
// scope_state was a scope nested in the child, whose thread held it while
// waiting for the child's lock: each thread held what the other waited for.
// Before the fix the child hung (its alarm).
TEST_CASE("regression: a free racing an allocation through a stale parent link does not deadlock") {
  auto result = lgt::run_in_child([] {
    lgt::capture_reports captured;
    constexpr int blocks = 200000;
    std::vector<int*> owned;
    owned.reserve(blocks);
    std::binary_semaphore ctx_ready{0}, child_open{0}, parent_ended{0}, nested_open{0};
    std::atomic<bool> done{false};
    leakguard::context ctx;
    std::thread worker([&] {
      ctx_ready.acquire();
      leakguard::adopt a{ctx};
      leakguard::scope child("child");
      for (int i = 0; i < blocks; ++i) owned.push_back(lgt::keep(new int(i)));
      child_open.release();
      parent_ended.acquire();
      leakguard::scope nested("nested");  // recycles the parent's scope_state
      nested_open.release();
      while (!done.load(std::memory_order_relaxed)) delete lgt::keep(new int(0));  // locks nested, then child
    });
    std::optional<leakguard::scope> parent;
    parent.emplace("parent");
    ctx = leakguard::current_context();
    { leakguard::scope filler("filler"); }  // fills this thread's spare: the parent's state goes to the pool
    ctx_ready.release();
    child_open.acquire();
    parent.reset();  // the child keeps a link to the ended parent
    parent_ended.release();
    nested_open.acquire();
    for (int* p : owned) delete p;  // locks child, then its stale parent link
    done = true;
    worker.join();
    LGT_CHILD_CHECK(3, captured.reports.empty());
  });
  INFO(result.describe());
  CHECK(result.ok());
}

TEST_CASE("random operations on threads, scopes, contexts and ignores match the reference model") {
  const std::uint64_t seed = env_number("LEAKGUARD_STRESS_SEED", std::random_device{}());
  const std::uint64_t budget = env_number("LEAKGUARD_STRESS_OPS", 30000);
  constexpr std::size_t threads = 4;  // x max_depth must stay within leakguard's max_chain (32)
  // A turn is a run of operations on one thread: each handover costs two
  // wake-ups, which on a loaded machine take milliseconds each.
  constexpr int turns_per_round = 16, max_turn = 24, burst_per_thread = 60;
  INFO("replay with LEAKGUARD_STRESS_SEED=", seed, " LEAKGUARD_STRESS_OPS=", budget);

  const leakguard::heap_stats before = leakguard::global_stats();
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t ops = 0, scopes_checked = 0, reports = 0, discrepancies = 0, rounds = 0, respawns = 0,
                cross_thread_frees = 0, foreign = 0, limited = 0, late_verdicts = 0;
  // The first discrepancies, in words; not on the heap, which must be back
  // where it started when `after` is taken.
  std::array<char, 4096> first{};
  std::size_t first_size = 0;
  {
    leakguard::ignore_scope harness;  // the driver's own allocations belong to no scope
    lgt::model::world w;
    w.known_bugs = env_number("LEAKGUARD_STRESS_KNOWN_BUGS", 0) != 0;
    // Every scope has its own handler: a call to the global one is a bug.
    lgt::leak_handler_guard unexpected([&w](const leakguard::report& r) {
      w.counts.fail("global leak handler called for '" + std::string(r.label()) + "'");
    });
    std::vector<std::unique_ptr<actor>> actors;
    std::vector<std::unique_ptr<worker>> workers;
    for (std::size_t i = 0; i < threads; ++i) {
      actors.push_back(std::make_unique<actor>(w, static_cast<int>(i)));
      workers.push_back(std::make_unique<worker>(*actors.back()));
    }
    std::mt19937_64 rng(seed);

    while (w.counts.ops.load() < budget) {
      ++rounds;
      // Serialized: one thread at a time; blocks change hands between threads.
      for (int turn = 0; turn < turns_per_round; ++turn) {
        const std::size_t k = rng() % threads;
        actor& a = *actors[k];
        if (rng() % 2 == 0 && !a.bag.empty()) {
          const std::size_t j = rng() % a.bag.size();
          actors[(k + 1 + rng() % (threads - 1)) % threads]->bag.push_back(a.bag[j]);
          a.bag[j] = a.bag.back();
          a.bag.pop_back();
        }
        workers[k]->run([s = rng(), n = 1 + rng() % max_turn](actor& x) {
          std::mt19937_64 r(s);
          for (std::uint64_t i = 0; i < n; ++i) x.apply(serialized_op(r, x));
        });
      }
      // Concurrent burst.
      {
        std::lock_guard<std::mutex> g(w.mutex);
        w.model.begin_burst();
      }
      const std::uint64_t burst_seed = rng();
      for (std::size_t k = 0; k < threads; ++k) {
        actors[k]->exclusive = false;
        actors[k]->burst = true;
        workers[k]->post([s = burst_seed + k](actor& x) {
          std::mt19937_64 r(s);
          for (int i = 0; i < burst_per_thread; ++i) x.apply(burst_op(r, x));
        });
      }
      for (auto& wk : workers) wk->wait();
      for (auto& a : actors) {
        a->exclusive = true;
        a->burst = false;
      }
      {
        std::lock_guard<std::mutex> g(w.mutex);
        w.model.end_burst();
      }
      // Every fourth round a thread closes what it has open and exits; a new
      // one takes over its blocks (thread registration, exit, counters folded).
      if (rounds % 4 == 0) {
        const std::size_t k = rng() % threads;
        workers[k]->run([](actor& x) { x.close_all(); });  // may wait for another thread's scope
        if (actors[k]->depth() == 0) {
          workers[k]->stop();
          workers[k]->start();
          ++respawns;
        }
      }
    }

    // Close everything; a scope waits for scopes opened inside it on other threads.
    for (std::size_t pass = 0; pass <= threads * lgt::model::max_depth; ++pass) {
      bool open = false;
      for (std::size_t k = 0; k < threads; ++k) {
        workers[k]->run([](actor& x) { x.close_all(); });
        open |= actors[k]->depth() != 0;
      }
      if (!open) break;
    }
    // The verdicts still pending (their handlers write into `w`).
    workers[0]->run([](actor& x) { x.do_flush(); });
    for (std::size_t k = 0; k < threads; ++k) {
      if (actors[k]->depth() != 0) w.counts.fail("thread " + std::to_string(k) + " could not close its frames");
      workers[k]->run([](actor& x) { x.free_all(); });
    }
    workers.clear();

    ops = w.counts.ops.load();
    scopes_checked = w.counts.scopes_checked.load();
    reports = w.counts.reports_compared.load();
    discrepancies = w.counts.discrepancies.load();
    cross_thread_frees = w.counts.cross_thread_frees.load();
    late_verdicts = w.counts.late_verdicts.load();
    foreign = w.model.foreign;
    limited = w.model.limited;
    for (const std::string& what : w.counts.first) {
      const std::size_t n = std::min(what.size() + 1, first.size() - first_size);
      std::copy_n((what + '\n').data(), n, first.data() + first_size);
      first_size += n;
    }
  }
  const leakguard::heap_stats after = leakguard::global_stats();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  MESSAGE("stress: seed ", seed, ": ", ops, " ops on ", threads, " threads in ", seconds, " s (", rounds,
          " rounds, ", respawns, " thread respawns, ", cross_thread_frees, " cross-thread frees, ", foreign,
          " blocks given to an all_threads scope outside their chain, ", limited,
          " of them with an older one left out); ", scopes_checked, " scopes checked (", late_verdicts,
          " after a grace period), ", reports,
          " reports compared, discrepancies=", discrepancies);
  INFO(std::string_view(first.data(), first_size));
  CHECK(discrepancies == 0);
  CHECK(ops >= budget);
  if (budget >= 30000) {  // the default run exercises what it claims to
    CHECK(scopes_checked > 100);
    CHECK(cross_thread_frees > 0);
    CHECK(foreign > 0);
    CHECK(respawns > 0);
    CHECK(late_verdicts > 0);
  }
  // Everything the run allocated was freed (the harness's memory too).
  CHECK(after.live_blocks == before.live_blocks);
  CHECK(after.live_bytes == before.live_bytes);
  CHECK(after.allocations - before.allocations == after.deallocations - before.deallocations);
}

}  // TEST_SUITE
