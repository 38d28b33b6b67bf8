// tests/model.hpp — a reference model of which blocks each leak scope must
// report, and an `actor` that applies one operation both to leakguard and to
// the model and compares what leakguard says (the handler's report, check(),
// stats(), global_stats()) with what the model says it must.
//
// Used by tests/stress_test.cpp (several threads, serialized and concurrent
// phases) and fuzz/ops_fuzz.cpp (one thread, operations decoded from bytes).
//
// The model is API.md's attribution rules, written down plainly:
//  - an allocation belongs to every active scope on the allocating thread's
//    chain (its innermost scope, or the adopted context's, and their parents),
//    and to the active all_threads scopes; inside an ignore_scope, to none;
//  - a free from any thread settles the block in all of them; ignore(p) too,
//    without counting a deallocation;
//  - a scope's end reports exactly its live blocks that no scope nested in
//    it reported already (a block is reported once), and a budget violation;
//    the handler is called once if there is anything to report, else never;
//    a dismissed scope reports nothing. check() lists the same blocks. (A
//    block an all_threads scope has from another thread stays that thread's
//    scopes' to report too.)
//    (Scopes are strict, allow_retained = false: every survivor is reported,
//    whatever the conservative scan finds.)
//  - a scope with a grace period that ends with survivors reports nothing
//    then: its survivors are pending, the enclosing scopes never report
//    them, frees still settle them (and count as escaped and freed in time
//    in it and its enclosing scopes), and flush() reports those still live,
//    with the scope's budget violation, through its handler; without
//    survivors it reports at once, as any scope. Grace periods are an hour
//    long, so that only flush() gives verdicts;
//  - release(p) hands p (blocks hold no pointers: they are zero-filled) from
//    the scope that holds it to that scope's enclosing scope, or to no one;
//    a block a scope reported stays reported.
// Two documented readings where API.md is less precise:
//  - known limitation (ARCHITECTURE.md, "Who owns a block"): of the active
//    all_threads scopes outside the allocating chain, only the newest gets the
//    block;
//  - a context whose innermost scope has ended attributes nothing, not even to
//    its parents (scope.hpp: "If those scopes have ended, nothing is
//    attributed"), and a scope opened while adopting it has no parent.
// What callers must not generate (the actor refuses it):
//  - ending a scope while a scope opened inside it on another thread (under
//    adopt) is still open: API.md does not say where that child's blocks go;
//  - a grace period on an all_threads scope (not generated).
// A known leakguard limitation, also refused unless `world::known_bugs` is
// set (the model has the contract's answer, so the option shows it):
//  - dismiss(), under an adopt, of a scope of the thread's own chain: when the
//    adopt ends, the thread goes back to the dismissed scope, and its
//    allocations reach no enclosing scope.
// ("Nested elsewhere" counts through dismissed scopes in between: a scope
// opened under adopt in a scope that was dismissed since is still nested in
// that scope's parent; see model::active_descendants.)
//
// Harness memory: all bookkeeping runs inside an ignore_scope, so that it
// belongs to no scope (an all_threads scope would otherwise take it).
#pragma once

#include <leakguard.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lgt::model {

using address_size = std::pair<const void*, std::size_t>;

// What a scope must report.
struct expectation {
  std::vector<address_size> blocks;  // sorted
  bool violation = false;
  leakguard::violation_kind kind = leakguard::violation_kind::allocation_budget;
};

struct scope_rec {
  int parent = -1;  // model id of the enclosing scope, -1: none
  bool all_threads = false;
  bool graced = false;
  bool active = true;
  bool pending = false;  // ended with survivors: its verdict waits for flush()
  int active_children = 0;
  std::size_t max_allocations = leakguard::unlimited;
  std::size_t max_bytes = leakguard::unlimited;
  std::set<std::uint64_t> live;  // blocks attributed to it, neither freed nor ignored
  std::uint64_t allocations = 0, deallocations = 0;
  std::size_t bytes_allocated = 0, live_bytes = 0;
  // peak_bytes lies in [peak_lo, peak_hi]; equal unless a concurrent phase
  // ran while the scope was open (then the order of its allocations is open).
  std::size_t peak_lo = 0, peak_hi = 0;
  std::size_t burst_start_live = 0, burst_bytes = 0;
  std::size_t escaped_blocks = 0, escaped_bytes = 0, escaped_freed_blocks = 0, escaped_freed_bytes = 0;
};

struct block_rec {
  const void* address;
  std::size_t size;
  std::vector<int> scopes;
  bool reported = false;  // by a scope's end: no enclosing scope reports it again
  int foreign = -1;       // the all_threads scope outside the chain that has it
  int pending_in = -1;    // the graced scope whose verdict it waits for
};

class heap_model {
 public:
  int open(int parent, bool all_threads, std::size_t max_allocations, std::size_t max_bytes, bool graced = false) {
    scope_rec s;
    s.parent = parent;
    s.all_threads = all_threads;
    s.graced = graced;
    s.max_allocations = max_allocations;
    s.max_bytes = max_bytes;
    if (parent >= 0) ++scopes_[static_cast<std::size_t>(parent)].active_children;
    scopes_.push_back(std::move(s));
    const int id = static_cast<int>(scopes_.size()) - 1;
    if (all_threads) all_threads_.push_back(id);
    return id;
  }

  const scope_rec& scope(int s) const { return scopes_[static_cast<std::size_t>(s)]; }
  bool active(int s) const { return s >= 0 && scope(s).active; }

  // Is `s` nested in `ancestor` (at any depth, through ended scopes too)?
  bool nested_in(int s, int ancestor) const {
    for (int p = scope(s).parent; p >= 0; p = scope(p).parent)
      if (p == ancestor) return true;
    return false;
  }

  // The nearest active scope enclosing `s` (-1: none): an open scope's
  // parent link skips the scopes dismissed around it.
  int active_parent(int s) const {
    int p = scope(s).parent;
    while (p >= 0 && !scope(p).active) p = scope(p).parent;
    return p;
  }

  // Active scopes nested in `sid` at any depth, on any thread.
  int active_descendants(int sid) const {
    int n = 0;
    for (int s = sid + 1; s < static_cast<int>(scopes_.size()); ++s) n += scope(s).active && nested_in(s, sid);
    return n;
  }

  // How often the all_threads rules mattered (coverage, not correctness).
  std::uint64_t foreign = 0;  // allocations given to an all_threads scope outside the chain
  std::uint64_t limited = 0;  // ... while an older one outside the chain went without

  std::uint64_t allocate(const void* address, std::size_t size, int innermost, bool ignored) {
    block_rec b{address, size, {}, false, -1, -1};
    const std::uint64_t id = next_block_++;
    if (!ignored) {
      // The active scopes of the chain from the thread's innermost scope...
      for (int s = innermost; s >= 0; s = scope(s).parent)
        if (scope(s).active) b.scopes.push_back(s);
      // ... and, the known limitation, only the newest all_threads scope outside it.
      int newest = -1, outside = 0;
      for (int a : all_threads_) {
        if (std::find(b.scopes.begin(), b.scopes.end(), a) != b.scopes.end()) continue;
        newest = a;
        ++outside;
      }
      if (newest >= 0) b.scopes.push_back(newest);
      b.foreign = newest;
      foreign += newest >= 0;
      limited += outside > 1;
    }
    for (int sid : b.scopes) {
      scope_rec& s = scopes_[static_cast<std::size_t>(sid)];
      s.live.insert(id);
      ++s.allocations;
      s.bytes_allocated += size;
      s.live_bytes += size;
      if (in_burst_) {
        s.burst_bytes += size;
      } else {
        s.peak_lo = std::max(s.peak_lo, s.live_bytes);
        s.peak_hi = std::max(s.peak_hi, s.live_bytes);
      }
    }
    blocks_.emplace(id, std::move(b));
    return id;
  }

  // A free (`freed`) or leakguard::ignore (not `freed`).
  void release(std::uint64_t id, bool freed) {
    auto it = blocks_.find(id);
    if (it == blocks_.end()) return;
    block_rec& b = it->second;
    for (int sid : b.scopes) {
      scope_rec& s = scopes_[static_cast<std::size_t>(sid)];
      if (!s.active) continue;  // its books are closed
      s.live.erase(id);
      s.deallocations += freed;
      s.live_bytes -= b.size;
    }
    if (b.pending_in >= 0) {  // freed in time: escaped, and freed before the verdict
      scope_rec& p = scopes_[static_cast<std::size_t>(b.pending_in)];
      p.live.erase(id);
      if (freed)
        for_pending_and_enclosing(b.pending_in, [&](scope_rec& s) {
          ++s.escaped_freed_blocks;
          s.escaped_freed_bytes += b.size;
        });
      b.pending_in = -1;
    }
    b.scopes.clear();
    if (freed) blocks_.erase(it);
  }

  // leakguard::release(p): the scope that holds the block (a pending one, or
  // the innermost active one that has it) hands it to its enclosing scope.
  void hand_out(std::uint64_t id) {
    auto it = blocks_.find(id);
    if (it == blocks_.end() || it->second.reported) return;
    block_rec& b = it->second;
    if (const int pending = std::exchange(b.pending_in, -1); pending >= 0) {
      scopes_[static_cast<std::size_t>(pending)].live.erase(id);
      // Its enclosing scopes counted it since it was allocated: the nearest
      // one still open takes it; without one, no one does.
      if (active_parent(pending) < 0) drop_from_books(b, id);
      return;
    }
    for (auto s = b.scopes.begin(); s != b.scopes.end(); ++s) {
      scope_rec& holder = scopes_[static_cast<std::size_t>(*s)];
      if (!holder.active || *s == b.foreign) continue;
      holder.live.erase(id);  // handed out, not freed: its parent still counts it
      holder.live_bytes -= b.size;
      b.scopes.erase(s);
      return;
    }
  }

  expectation expected(int sid) const {
    const scope_rec& s = scope(sid);
    expectation e;
    for (std::uint64_t id : s.live) {
      const block_rec& b = blocks_.at(id);
      if (b.pending_in >= 0 && b.pending_in != sid && b.foreign != sid) continue;  // a nested scope's to judge
      if (!b.reported || b.foreign == sid) e.blocks.emplace_back(b.address, b.size);
    }
    std::sort(e.blocks.begin(), e.blocks.end());
    // At most one budget is set per scope, so the kind does not depend on order.
    if (s.allocations > s.max_allocations) {
      e.violation = true;
    } else if (s.bytes_allocated > s.max_bytes) {
      e.violation = true;
      e.kind = leakguard::violation_kind::byte_budget;
    }
    return e;
  }

  // The scope ends (`checked`, or dismissed): nothing is attributed to it any
  // more; what it checked is reported, or with a grace period and survivors,
  // waits for flush() (returns true).
  bool end(int sid, bool checked) {
    scope_rec& s = scopes_[static_cast<std::size_t>(sid)];
    if (checked && s.graced && !expected(sid).blocks.empty()) {
      std::set<std::uint64_t> survivors;
      for (std::uint64_t id : s.live) {
        block_rec& b = blocks_.at(id);
        if (b.reported || b.pending_in >= 0) continue;
        b.pending_in = sid;
        survivors.insert(id);
      }
      for (std::uint64_t id : survivors)
        for_pending_and_enclosing(sid, [&](scope_rec& x) {
          ++x.escaped_blocks;
          x.escaped_bytes += blocks_.at(id).size;
        });
      s.live = std::move(survivors);
      s.pending = true;
      close(sid);
      return true;
    }
    // An all_threads scope's report of another thread's block leaves it to
    // that thread's own scopes as well, and theirs leave it to that scope.
    if (checked)
      for (std::uint64_t id : s.live) {
        block_rec& b = blocks_.at(id);
        if (b.foreign != sid && b.pending_in < 0) b.reported = true;  // a pending one is its scope's to judge
      }
    s.live.clear();
    close(sid);
    return false;
  }

  // flush(): every pending scope's verdict, as (scope, what it must report).
  std::vector<std::pair<int, expectation>> flush() {
    std::vector<std::pair<int, expectation>> verdicts;
    for (int sid = 0; sid < static_cast<int>(scopes_.size()); ++sid) {
      scope_rec& s = scopes_[static_cast<std::size_t>(sid)];
      if (!s.pending) continue;
      verdicts.emplace_back(sid, expected(sid));
      for (std::uint64_t id : s.live) {
        blocks_.at(id).reported = true;
        blocks_.at(id).pending_in = -1;
      }
      s.live.clear();
      s.pending = false;
    }
    return verdicts;
  }

  // What the model knows of the live block at `address`, in words.
  std::string describe(const void* address) const {
    for (const auto& [id, b] : blocks_) {
      if (b.address != address) continue;
      std::string out = "block " + std::to_string(id) + " in scopes";
      for (int sid : b.scopes) out += " " + std::to_string(sid) + (scope(sid).active ? "" : "(ended)");
      return out + (b.reported ? ", reported" : "") + ", foreign " + std::to_string(b.foreign) + ", pending in " +
             std::to_string(b.pending_in);
    }
    return "no live block";
  }

  // A concurrent phase: allocations may interleave in any order.
  void begin_burst() {
    in_burst_ = true;
    for (scope_rec& s : scopes_) {
      s.burst_start_live = s.live_bytes;
      s.burst_bytes = 0;
    }
  }
  void end_burst() {
    in_burst_ = false;
    for (scope_rec& s : scopes_) {
      if (!s.active) continue;
      s.peak_lo = std::max(s.peak_lo, s.live_bytes);
      s.peak_hi = std::max(s.peak_hi, s.burst_start_live + s.burst_bytes);
    }
  }

 private:
  void close(int sid) {
    scope_rec& s = scopes_[static_cast<std::size_t>(sid)];
    s.active = false;
    if (s.parent >= 0) --scopes_[static_cast<std::size_t>(s.parent)].active_children;
    if (s.all_threads) all_threads_.erase(std::find(all_threads_.begin(), all_threads_.end(), sid));
  }

  // `f` on the pending scope `sid` and every active scope enclosing it.
  template <class F>
  void for_pending_and_enclosing(int sid, F f) {
    f(scopes_[static_cast<std::size_t>(sid)]);
    for (int a = active_parent(sid); a >= 0; a = active_parent(a)) f(scopes_[static_cast<std::size_t>(a)]);
  }

  // A block no scope of its chain holds any more: they stop counting it (an
  // all_threads scope that has it from another thread keeps it).
  void drop_from_books(block_rec& b, std::uint64_t id) {
    std::erase_if(b.scopes, [&](int sid) {
      scope_rec& s = scopes_[static_cast<std::size_t>(sid)];
      if (sid == b.foreign) return false;
      if (s.active && s.live.erase(id)) s.live_bytes -= b.size;
      return true;
    });
  }

  std::vector<scope_rec> scopes_;
  std::vector<int> all_threads_;  // active ones, oldest first
  std::unordered_map<std::uint64_t, block_rec> blocks_;
  std::uint64_t next_block_ = 1;
  bool in_burst_ = false;
};

// Counts, and the first few discrepancies in words.
struct tally {
  std::atomic<std::uint64_t> ops{0};             // operations applied
  std::atomic<std::uint64_t> scopes_checked{0};  // scope ends compared
  std::atomic<std::uint64_t> reports_compared{0};
  std::atomic<std::uint64_t> discrepancies{0};
  std::atomic<std::uint64_t> cross_thread_frees{0};  // coverage
  std::atomic<std::uint64_t> late_verdicts{0};       // coverage: graced scopes' verdicts given by flush()
  std::mutex mutex;
  std::vector<std::string> first;

  void fail(std::string what) {
    discrepancies.fetch_add(1);
    leakguard::ignore_scope ig;
    std::lock_guard<std::mutex> g(mutex);
    if (first.size() < 20) first.push_back(std::move(what));
  }
};

// What a scope's handler was given. Outlives the scope: a graced scope's
// verdict comes later.
struct capture {
  int scope = -1;
  int calls = 0;
  std::optional<leakguard::report> got;
};

// State shared by all actors.
struct world {
  std::mutex mutex;  // guards `model` (concurrent phases)
  heap_model model;
  // Captured contexts and the model scope each names (-1: none). Appended
  // only in serialized phases, read by all.
  std::vector<std::pair<leakguard::context, int>> contexts;
  tally counts;
  bool known_bugs = false;  // also generate what leakguard gets wrong today (see the top)
  // Every scope's capture (never freed before the world), and those of the
  // graced scopes whose verdict waits for flush(). Guarded by `mutex`.
  std::vector<std::unique_ptr<capture>> captures;
  std::vector<capture*> pending;
};

enum class op_kind : std::uint8_t {
  alloc, free, ignore_block, open, close, dismiss, check, push_ignore, push_adopt, capture, flush, release_block,
  count_
};
inline constexpr int op_kinds = static_cast<int>(op_kind::count_);

// Parameters are raw numbers; the actor reduces them to what is valid.
struct op {
  op_kind kind;
  std::uint32_t a = 0, b = 0;
};

// How a block was allocated, hence how it must be freed.
enum class via : std::uint8_t { new_single, new_array, new_aligned, allocator };

struct block {
  std::uint64_t id;
  void* p;
  std::size_t size;
  via how;
  std::thread::id thread;  // that allocated it
};

inline std::size_t size_from(std::uint32_t a) {
  switch (a % 16) {
    case 0: return 0;
    case 1: return 1 + (a >> 4) % 8192;  // sometimes large
    case 2: case 3: return 1 + (a >> 4) % 512;
    default: return 1 + (a >> 4) % 64;
  }
}

inline void* allocate(via how, std::size_t size) {
  switch (how) {
    case via::new_single: return ::operator new(size);
    case via::new_array: return ::operator new[](size);
    case via::new_aligned: return ::operator new(size, std::align_val_t{64});
    case via::allocator: return leakguard::allocator<char>{}.allocate(size);
  }
  return nullptr;
}

inline void deallocate(const block& b) {
  switch (b.how) {
    case via::new_single: return ::operator delete(b.p, b.size);  // sized: the fast path's size check
    case via::new_array: return ::operator delete[](b.p);
    case via::new_aligned: return ::operator delete(b.p, std::align_val_t{64});
    case via::allocator: return leakguard::allocator<char>{}.deallocate(static_cast<char*>(b.p), b.size);
  }
}

inline constexpr int max_depth = 8;  // frames per thread; 4 threads x 8 fits leakguard's max_chain (32)

// One thread's RAII objects, and the blocks it may free. Every method but
// the constructor runs on that thread (a fresh thread may take over an actor
// whose frames are all closed).
class actor {
 public:
  actor(world& w, int id) : w_(w), id_(id) {}
  actor(const actor&) = delete;
  actor& operator=(const actor&) = delete;

  bool exclusive = true;  // no other thread runs: global_stats deltas are exact
  bool burst = false;     // concurrent phase: only operations whose outcome does not depend on order
  std::vector<block> bag;

  int depth() const { return depth_; }
  int id() const { return id_; }

  // Applies `o`; false if it does not apply now (nothing was done).
  bool apply(const op& o) {
    bool done = false;
    switch (o.kind) {
      case op_kind::alloc: done = do_alloc(o); break;
      case op_kind::free: done = do_free(o); break;
      case op_kind::ignore_block: done = do_ignore(o); break;
      case op_kind::open: done = do_open(o); break;
      case op_kind::close: done = do_close(); break;
      case op_kind::dismiss: done = do_dismiss(o); break;
      case op_kind::check: done = do_check(o); break;
      case op_kind::push_ignore: done = do_push_ignore(); break;
      case op_kind::push_adopt: done = do_push_adopt(o); break;
      case op_kind::capture: done = do_capture(); break;
      case op_kind::flush: done = do_flush(); break;
      case op_kind::release_block: done = do_release(o); break;
      case op_kind::count_: break;
    }
    if (done) w_.counts.ops.fetch_add(1, std::memory_order_relaxed);
    return done;
  }

  // Closes every frame (innermost first); false if one cannot close yet
  // because another thread still has a scope open inside one of ours.
  bool close_all() {
    while (depth_ > 0)
      if (!do_close()) return false;
    return true;
  }

  void free_all() {
    while (!bag.empty()) do_free(op{op_kind::free, 0, 0});
  }

 private:
  enum class frame_kind { scope, ignore, adopt };
  struct frame {
    frame_kind kind = frame_kind::ignore;
    int scope = -1;  // scope: its model id; adopt: the context's model scope
    bool dismissed = false;
    std::optional<leakguard::scope> real_scope;
    std::optional<leakguard::ignore_scope> real_ignore;
    std::optional<leakguard::adopt> real_adopt;
    capture* sink = nullptr;  // scope: what its handler was given
  };

  // Model view of this thread. REQUIRES: w_.mutex held.
  int innermost() const {
    for (int i = depth_ - 1; i >= 0; --i) {
      const frame& f = frames_[static_cast<std::size_t>(i)];
      if (f.kind == frame_kind::scope && !f.dismissed) return f.scope;
      if (f.kind == frame_kind::adopt) return w_.model.active(f.scope) ? f.scope : -1;
    }
    return -1;
  }
  bool ignoring() const {
    for (int i = 0; i < depth_; ++i)
      if (frames_[static_cast<std::size_t>(i)].kind == frame_kind::ignore) return true;
    return false;
  }

  std::string where(const char* what, int scope) const {
    return std::string(what) + " (thread " + std::to_string(id_) + ", scope " + std::to_string(scope) + ")";
  }

  void compare_global(const leakguard::heap_stats& before, const leakguard::heap_stats& after, long blocks,
                      long bytes, const char* what) {
    leakguard::ignore_scope ig;
    const bool ok = after.allocations == before.allocations + (blocks > 0) &&
                    after.deallocations == before.deallocations + (blocks < 0) &&
                    after.live_blocks == before.live_blocks + blocks &&
                    after.live_bytes == before.live_bytes + bytes && after.peak_bytes >= after.live_bytes;
    if (!ok)
      w_.counts.fail(where(what, -1) + ": global_stats moved by allocations " +
                     std::to_string(after.allocations - before.allocations) + ", deallocations " +
                     std::to_string(after.deallocations - before.deallocations) + ", live_bytes " +
                     std::to_string(static_cast<long>(after.live_bytes - before.live_bytes)) + "; expected " +
                     std::to_string(blocks) + " block(s), " + std::to_string(bytes) + " bytes");
  }

  std::string describe(const void* address) {
    std::lock_guard<std::mutex> g(w_.mutex);
    return w_.model.describe(address);
  }

  void compare_report(const char* what, int sid, const expectation& e, const leakguard::report& r) {
    w_.counts.reports_compared.fetch_add(1, std::memory_order_relaxed);
    std::vector<address_size> got;
    for (const leakguard::leaked_block& b : r.blocks()) got.emplace_back(b.address, b.size);
    std::sort(got.begin(), got.end());
    const bool violation_ok = r.violations().size() == (e.violation ? 1u : 0u) &&
                              (!e.violation || r.violations()[0].kind == e.kind);
    if (got != e.blocks || !violation_ok) {
      std::size_t missing = 0, extra = 0;
      std::string first;  // what the model says of the first block that differs
      for (const auto& b : e.blocks)
        if (!std::binary_search(got.begin(), got.end(), b) && missing++ == 0 && first.empty()) first = describe(b.first);
      for (const auto& b : got)
        if (!std::binary_search(e.blocks.begin(), e.blocks.end(), b) && extra++ == 0 && first.empty())
          first = describe(b.first);
      w_.counts.fail(where(what, sid) + ": report has " + std::to_string(got.size()) + " blocks, model " +
                     std::to_string(e.blocks.size()) + " (" + std::to_string(missing) + " missing, " +
                     std::to_string(extra) + " extra); violations " + std::to_string(r.violations().size()) +
                     ", model " + std::to_string(e.violation ? 1 : 0) + (first.empty() ? "" : "; " + first));
    }
  }

  // REQUIRES: exclusive (no frees race with it).
  void compare_stats(const char* what, int sid, const leakguard::scope_stats& st) {
    leakguard::ignore_scope ig;
    std::lock_guard<std::mutex> g(w_.mutex);
    const scope_rec& s = w_.model.scope(sid);
    if (st.allocations != s.allocations || st.deallocations != s.deallocations ||
        st.live_blocks != s.live.size() || st.live_bytes != s.live_bytes || st.peak_bytes < s.peak_lo ||
        st.peak_bytes > s.peak_hi || st.escaped_blocks != s.escaped_blocks || st.escaped_bytes != s.escaped_bytes ||
        st.escaped_freed_blocks != s.escaped_freed_blocks || st.escaped_freed_bytes != s.escaped_freed_bytes)
      w_.counts.fail(where(what, sid) + ": stats allocations " + std::to_string(st.allocations) + "/" +
                     std::to_string(s.allocations) + ", deallocations " + std::to_string(st.deallocations) +
                     "/" + std::to_string(s.deallocations) + ", live_blocks " +
                     std::to_string(st.live_blocks) + "/" + std::to_string(s.live.size()) + ", live_bytes " +
                     std::to_string(st.live_bytes) + "/" + std::to_string(s.live_bytes) + ", peak " +
                     std::to_string(st.peak_bytes) + " in [" + std::to_string(s.peak_lo) + ", " +
                     std::to_string(s.peak_hi) + "], escaped " + std::to_string(st.escaped_blocks) + "/" +
                     std::to_string(s.escaped_blocks) + " blocks, " + std::to_string(st.escaped_bytes) + "/" +
                     std::to_string(s.escaped_bytes) + " bytes, freed in time " +
                     std::to_string(st.escaped_freed_blocks) + "/" + std::to_string(s.escaped_freed_blocks) +
                     " blocks, " + std::to_string(st.escaped_freed_bytes) + "/" +
                     std::to_string(s.escaped_freed_bytes) + " bytes (leakguard/model)");
  }

  bool do_alloc(const op& o) {
    const via how = static_cast<via>(o.b % 4);
    std::size_t size = size_from(o.a);
    if (how == via::allocator && size == 0) size = 1;
    leakguard::heap_stats before{};
    if (exclusive) before = leakguard::global_stats();
    void* p = allocate(how, size);
    std::memset(p, 0, size);  // no pointers in blocks: release(p) hands out p alone
    if (exclusive) compare_global(before, leakguard::global_stats(), 1, static_cast<long>(size), "alloc");
    leakguard::ignore_scope ig;
    std::lock_guard<std::mutex> g(w_.mutex);
    bag.push_back(block{w_.model.allocate(p, size, innermost(), ignoring()), p, size, how,
                        std::this_thread::get_id()});
    return true;
  }

  bool do_free(const op& o) {
    if (bag.empty()) return false;
    const std::size_t i = o.a % bag.size();
    const block b = bag[i];
    bag[i] = bag.back();
    bag.pop_back();
    leakguard::heap_stats before{};
    if (exclusive) before = leakguard::global_stats();
    deallocate(b);
    if (exclusive) compare_global(before, leakguard::global_stats(), -1, -static_cast<long>(b.size), "free");
    if (b.thread != std::this_thread::get_id()) w_.counts.cross_thread_frees.fetch_add(1, std::memory_order_relaxed);
    leakguard::ignore_scope ig;
    std::lock_guard<std::mutex> g(w_.mutex);
    w_.model.release(b.id, true);
    return true;
  }

  bool do_ignore(const op& o) {
    if (bag.empty()) return false;
    const block& b = bag[o.a % bag.size()];
    leakguard::heap_stats before{};
    if (exclusive) before = leakguard::global_stats();
    leakguard::ignore(b.p);
    if (exclusive) compare_global(before, leakguard::global_stats(), 0, 0, "ignore");
    leakguard::ignore_scope ig;
    std::lock_guard<std::mutex> g(w_.mutex);
    w_.model.release(b.id, false);
    return true;
  }

  bool do_open(const op& o) {
    if (burst || depth_ == max_depth) return false;
    frame& f = fresh_frame(frame_kind::scope);
    leakguard::scope_options opts;
    opts.label = "stress";
    opts.all_threads = (o.a & 7) == 0;
    // The model is about attribution, not reachability: with many tests in
    // one process, a stale copy of an old pointer in a global could make a
    // block look retained. Strict verdicts report every survivor.
    opts.allow_retained = false;
    switch (o.a >> 3 & 7) {
      case 0: opts.max_allocations = o.b % 8; break;
      case 1: opts.max_bytes = o.b % 512; break;
      default: break;
    }
    // Long enough that only flush() gives the verdict.
    const bool graced = !opts.all_threads && (o.a >> 6 & 3) == 0;
    if (graced) opts.grace = std::chrono::hours(1);
    {
      leakguard::ignore_scope ig;
      std::lock_guard<std::mutex> g(w_.mutex);
      f.scope = w_.model.open(innermost(), opts.all_threads, opts.max_allocations, opts.max_bytes, graced);
      f.sink = w_.captures.emplace_back(std::make_unique<capture>()).get();
      f.sink->scope = f.scope;
    }
    opts.handler = [c = f.sink](const leakguard::report& r) {  // runs with tracking off
      ++c->calls;
      c->got = r;
    };
    f.real_scope.emplace(std::move(opts));
    ++depth_;
    return true;
  }

  // Scopes nested in `sid` at any depth that are open on this thread.
  int own_descendants(int sid) const {
    int n = 0;
    for (int i = 0; i < depth_; ++i) {
      const frame& f = frames_[static_cast<std::size_t>(i)];
      n += f.kind == frame_kind::scope && !f.dismissed && w_.model.nested_in(f.scope, sid);
    }
    return n;
  }

  // Scopes nested in `sid` that are open on this thread.
  int own_children(int sid) const {
    int n = 0;
    for (int i = 0; i < depth_; ++i) {
      const frame& f = frames_[static_cast<std::size_t>(i)];
      n += f.kind == frame_kind::scope && !f.dismissed && w_.model.scope(f.scope).parent == sid;
    }
    return n;
  }

  bool do_close() {
    if (depth_ == 0) return false;
    frame& f = frames_[static_cast<std::size_t>(depth_ - 1)];
    if (f.kind != frame_kind::scope) {
      f.real_ignore.reset();
      f.real_adopt.reset();
      --depth_;
      return true;
    }
    if (burst) return false;  // a scope's end races with other threads' frees
    if (!f.dismissed) {
      {
        std::lock_guard<std::mutex> g(w_.mutex);
        if (w_.model.active_descendants(f.scope) > 0) return false;  // see do_dismiss
      }
      compare_stats("stats before end", f.scope, f.real_scope->stats());
    }
    f.real_scope.reset();  // the check
    leakguard::ignore_scope ig;
    w_.counts.scopes_checked.fetch_add(1, std::memory_order_relaxed);
    if (f.dismissed) {
      if (f.sink->calls != 0) w_.counts.fail(where("dismissed scope called its handler", f.scope));
    } else {
      expectation e;
      bool pending = false;
      {
        std::lock_guard<std::mutex> g(w_.mutex);
        e = w_.model.expected(f.scope);
        if ((pending = w_.model.end(f.scope, true))) w_.pending.push_back(f.sink);
      }
      if (pending) {
        if (f.sink->calls != 0) w_.counts.fail(where("end: a pending verdict called its handler", f.scope));
      } else {
        compare_verdict("end", e, *f.sink);
      }
    }
    --depth_;
    return true;
  }

  void compare_verdict(const char* what, const expectation& e, capture& c) {
    const bool expect_call = !e.blocks.empty() || e.violation;
    if (c.calls != (expect_call ? 1 : 0)) {
      w_.counts.fail(where(what, c.scope) + ": handler calls " + std::to_string(c.calls) + ", model " +
                     (expect_call ? "1" : "0") + " (" + std::to_string(e.blocks.size()) + " blocks, violation " +
                     (e.violation ? "yes" : "no") + ")");
    } else if (expect_call) {
      compare_report(what, c.scope, e, *c.got);
    }
    c.got.reset();
  }

 public:
  // Every pending verdict now (leakguard::flush), compared with the model's.
  bool do_flush() {
    if (burst) return false;  // a verdict races with other threads' frees
    leakguard::flush();
    leakguard::ignore_scope ig;
    std::vector<std::pair<int, expectation>> verdicts;
    std::vector<capture*> pending;
    {
      std::lock_guard<std::mutex> g(w_.mutex);
      verdicts = w_.model.flush();
      pending.swap(w_.pending);
    }
    if (verdicts.size() != pending.size()) w_.counts.fail(where("flush: pending scopes differ", -1));
    for (const auto& [sid, e] : verdicts)
      for (capture* c : pending)
        if (c->scope == sid) compare_verdict("flush", e, *c);
    w_.counts.late_verdicts.fetch_add(verdicts.size(), std::memory_order_relaxed);
    return true;
  }

 private:
  bool do_release(const op& o) {
    if (bag.empty()) return false;
    const block& b = bag[o.a % bag.size()];
    leakguard::release(b.p);
    leakguard::ignore_scope ig;
    std::lock_guard<std::mutex> g(w_.mutex);
    w_.model.hand_out(b.id);
    return true;
  }

  bool do_dismiss(const op& o) {
    if (burst) return false;
    leakguard::ignore_scope ig;  // dismiss() allocates nothing; the candidate list does
    // The thread's innermost scope; with known_bugs, any of its open scopes.
    std::vector<int> candidates;
    for (int i = depth_ - 1; i >= 0; --i) {
      const frame& f = frames_[static_cast<std::size_t>(i)];
      if (f.kind == frame_kind::adopt && !w_.known_bugs) break;
      if (f.kind != frame_kind::scope || f.dismissed) continue;
      candidates.push_back(i);
    }
    if (candidates.empty()) return false;
    frame& f = frames_[static_cast<std::size_t>(candidates[o.a % candidates.size()])];
    {
      std::lock_guard<std::mutex> g(w_.mutex);
      // Scopes nested in it elsewhere (under adopt), also through a dismissed
      // scope between: where their blocks go is not in the contract.
      if (w_.model.active_descendants(f.scope) != own_descendants(f.scope)) return false;
    }
    compare_stats("stats before dismiss", f.scope, f.real_scope->stats());
    f.real_scope->dismiss();
    f.dismissed = true;
    std::lock_guard<std::mutex> g(w_.mutex);
    w_.model.end(f.scope, false);
    return true;
  }

  bool do_check(const op& o) {
    if (burst) return false;
    leakguard::ignore_scope ig;  // check() allocates as leakguard (untracked); the lists here do not
    std::vector<int> open;
    for (int i = depth_ - 1; i >= 0; --i) {
      const frame& f = frames_[static_cast<std::size_t>(i)];
      if (f.kind == frame_kind::scope && !f.dismissed) open.push_back(i);
    }
    if (open.empty()) return false;
    frame& f = frames_[static_cast<std::size_t>(open[o.a % open.size()])];
    compare_stats("stats", f.scope, f.real_scope->stats());
    const leakguard::report r = f.real_scope->check();
    expectation e;
    {
      std::lock_guard<std::mutex> g(w_.mutex);
      e = w_.model.expected(f.scope);
    }
    compare_report("check()", f.scope, e, r);
    return true;
  }

  bool do_push_ignore() {
    if (depth_ == max_depth) return false;
    fresh_frame(frame_kind::ignore).real_ignore.emplace();
    ++depth_;
    return true;
  }

  bool do_push_adopt(const op& o) {
    if (depth_ == max_depth) return false;
    frame& f = fresh_frame(frame_kind::adopt);
    // Index contexts.size() stands for an empty context.
    const std::size_t i = o.a % (w_.contexts.size() + 1);
    const leakguard::context ctx = i < w_.contexts.size() ? w_.contexts[i].first : leakguard::context{};
    f.scope = i < w_.contexts.size() ? w_.contexts[i].second : -1;
    f.real_adopt.emplace(ctx);
    ++depth_;
    return true;
  }

  bool do_capture() {
    if (burst) return false;
    leakguard::ignore_scope ig;
    std::lock_guard<std::mutex> g(w_.mutex);
    w_.contexts.emplace_back(leakguard::current_context(), innermost());
    return true;
  }

  frame& fresh_frame(frame_kind k) {
    frame& f = frames_[static_cast<std::size_t>(depth_)];
    f.kind = k;
    f.scope = -1;
    f.dismissed = false;
    f.sink = nullptr;
    return f;
  }

  world& w_;
  int id_;
  int depth_ = 0;
  std::array<frame, max_depth> frames_;
};

}  // namespace lgt::model
