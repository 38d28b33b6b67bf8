// leakguard/impl/scope_books.hpp — opening and ending a scope, and turning
// what it still holds into a report.
#pragma once

#include <algorithm>
#include <atomic>
#include <span>
#include <new>
#include <optional>
#include <source_location>
#include <string>
#include <vector>

#include <unistd.h>

#include "../report.hpp"
#include "interned.hpp"
#include "reachability.hpp"
#include "report_parts.hpp"
#include "retained.hpp"
#include "scope_state.hpp"
#include "sort.hpp"
#include "suppressions.hpp"
#include "symbolize.hpp"
#include "tracking.hpp"

namespace leakguard::detail {

struct block_snapshot {
  const void* address;
  std::size_t size;
  std::size_t alignment;
  std::uint64_t serial;
  const stack_trace* stack;
  const allocation_origin* origin;
  alloc_kind kind;
};

// What a scope holds at one moment, copied under its lock so that the report
// can be built (symbolized, formatted) without holding any lock.
struct scope_snapshot {
  internal_vector<block_snapshot> blocks;
  budget_violation violation;
  std::size_t max_allocations = 0;
  std::size_t max_bytes = 0;
};

inline block_snapshot snapshot_of(block_record* r) noexcept {
  block_header* h = header_of(r);
  return {user_of(r), h->size, h->alignment(), r->serial, stack_of(r), r->origin, h->kind()};
}

// REQUIRES: s->lock held, so it must not throw: without memory for the
// whole snapshot, the report has what fit and counts itself as not built.
inline void collect_live(scope_state* s, scope_snapshot& out) noexcept {
  try {
    for (block_record* r = s->live.next; r != &s->live; r = r->next) out.blocks.push_back(snapshot_of(r));
  } catch (const std::bad_alloc&) {
    count_lost(lost.reports);
  }
}

// REQUIRES: s->lock held (see collect_live).
inline void collect(scope_state* s, scope_snapshot& out) noexcept {
  collect_live(s, out);
  try {
    for (foreign_link* f = s->foreign.next; f != &s->foreign; f = f->next)
      out.blocks.push_back(snapshot_of(record_of(f)));
  } catch (const std::bad_alloc&) {
    count_lost(lost.reports);
  }
  out.violation = s->violation;
  out.max_allocations = s->max_allocations;
  out.max_bytes = s->max_bytes;
}

// Calls `f(c)` with each scope_state other than `except`, under its lock.
// For rare calls only (check(), an out-of-order end): it visits every
// scope_state ever made. pool.all's next_made links are written once, before
// a state is listed, so the list can be walked without the pool's lock.
template <class F>
void for_each_scope(const scope_state* except, F f) noexcept {
  scope_state* first;
  {
    lock_guard g(pool.lock);
    first = pool.all;
  }
  for (scope_state* c = first; c; c = c->next_made) {
    if (c == except) continue;
    lock_guard g(c->lock);
    f(c);
  }
}

// The same, for the open scopes only.
template <class F>
void for_each_open_scope(const scope_state* except, F f) noexcept {
  for_each_scope(except, [&](scope_state* c) {
    if (c->active) f(c);
  });
}

// True if the open scope `c` (locked) is nested in the scope `s` of
// generation `gen`, on any thread: its chain of parents reaches `s`. The
// links above `c` are read without their locks (atomically; scope_states are
// never freed), and a link whose scope has ended since ends the chain, as it
// ends the attribution of an allocation.
inline bool nested_in(scope_state* c, scope_state* s, std::uint64_t gen) noexcept {
  scope_state* p = parent_of(c);
  std::uint64_t g = parent_generation_of(c);
  for (int i = 0; p && i < max_chain; ++i) {
    if (p == s) return g == gen;
    if (generation_of(p) != g) return false;
    g = parent_generation_of(p);
    p = parent_of(p);
  }
  return false;
}

// For check(): what the scope `s` of generation `gen` holds so far,
// including the blocks owned by the open scopes nested in it, on this thread
// or under an adopt of its context on any thread (their blocks have not moved
// up to `s` yet: `s` counts them but does not list them).
inline void collect_nested(scope_state* s, std::uint64_t gen, scope_snapshot& out) {
  for_each_open_scope(s, [&](scope_state* c) {
    if (nested_in(c, s, gen)) collect_live(c, out);
  });
  if (lock_if_current(s, gen)) {
    collect(s, out);
    s->lock.unlock();
  }
}

struct scope_settings {
  std::size_t max_allocations;
  std::size_t max_bytes;
  bool all_threads;
};

// The calling thread's stack bounds, found on first need; false if unknown.
inline bool known_stack(thread_state& t) noexcept {
  if (t.stack_hi == 0) {
    t.stack_hi = 1;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      void* low = nullptr;
      std::size_t size = 0;
      if (pthread_attr_getstack(&attr, &low, &size) == 0 && size != 0) {
        t.stack_lo = reinterpret_cast<std::uintptr_t>(low);
        t.stack_hi = t.stack_lo + size;
      }
      pthread_attr_destroy(&attr);
    }
  }
  return t.stack_hi > 1;
}

inline bool end_scope(scope_state* s, scope_snapshot* out, bool hand_up);

// Closes the scopes of this thread's own chain that a longjmp (or siglongjmp)
// jumped over, leaving their destructors unrun: found when the thread opens
// its next scope. `frame` is the opening constructor's frame: every live
// scope object on this stack lies above it (in a caller's frame); one below
// it, or at the address of the scope being opened, belongs to a frame that
// is gone. Each is closed as dismissed (its blocks go to the enclosing
// scope), with one line on stderr. Scopes on the heap, adopted ones, and a
// thread running on another stack (a fiber) are left alone.
LEAKGUARD_COLD void close_abandoned(thread_state& t, std::uintptr_t opening, std::uintptr_t frame) {
  if (!known_stack(t) || frame < t.stack_lo || frame >= t.stack_hi) return;
  for (scope_state* s; (s = t.innermost) && s->opener == &t && s->active;) {
    const std::uintptr_t o = s->object;
    if (o < t.stack_lo || o >= t.stack_hi || (o >= frame && o != opening)) return;
    {
      internal_guard guard;
      const bool readable = still_loaded(s->where);  // its plugin may be gone
      std::fprintf(stderr,
                   "leakguard: the scope opened at %s:%u was abandoned (a longjmp jumped over its end); "
                   "closed without a verdict, its blocks go to the enclosing scope\n",
                   readable ? s->where.file_name() : "(an unloaded module)",
                   readable ? static_cast<unsigned>(s->where.line()) : 0u);
    }
    end_scope(s, nullptr, false);
  }
}

// Opens a scope on the calling thread: it becomes the innermost scope of the
// thread's chain. Returns null (an inert scope) if no memory was left.
// `object`, `where` and `frame` (the constructor's frame) come from a
// leakguard::scope, for close_abandoned(); other openers pass none.
inline scope_state* open_scope(const scope_settings& settings, std::uint64_t& generation, const void* object = nullptr,
                               std::source_location where = {}, std::uintptr_t frame = 0) noexcept {
  thread_state& t = tls;
  ensure_registered(t);
  if (t.innermost && frame) close_abandoned(t, reinterpret_cast<std::uintptr_t>(object), frame);
  // The parent is the thread's innermost scope only while it is current: an
  // adopted context's scope may have ended, and its recycled scope_state may
  // be the very one acquired below (a scope its own parent deadlocks).
  scope_state* parent = t.innermost;
  if (lock_if_current(parent, t.innermost_generation)) parent->lock.unlock();
  else parent = nullptr;
  scope_state* s = acquire_scope_state();
  if (!s) {
    count_lost(lost.scopes);
    return nullptr;
  }
  {
    lock_guard g(s->lock);
    s->clear_lists();
    set_parent(s, parent, parent ? t.innermost_generation : 0);  // nested_in() reads it unlocked
    s->max_allocations = settings.max_allocations;
    s->max_bytes = settings.max_bytes;
    s->all_threads = settings.all_threads;
    s->allocations = s->deallocations = 0;
    s->bytes_allocated = s->live_blocks = s->live_bytes = s->peak_bytes = 0;
    s->escaped_blocks = s->escaped_bytes = s->escaped_freed_blocks = s->escaped_freed_bytes = 0;
    s->waiting_children.store(0, std::memory_order_relaxed);
    s->violation = {};
    s->opener = &t;
    s->object = reinterpret_cast<std::uintptr_t>(object);
    s->where = where;
    s->opened_from = nullptr;
    s->active = true;
    generation = s->generation;
  }
  t.innermost = s;
  t.innermost_generation = generation;
  t.set(slow_scoped);
  if (settings.all_threads) {
    lock_guard g(registry.lock);
    s->next_all_threads = registry.all_threads;
    registry.all_threads = s;
    ++registry.all_threads_count;
    ++t.opened_all_threads;
    refresh_all_threads();
  }
  return s;
}

// A scope that ends hands the scopes whose parent link names it over to its
// own parent: its open children, when it ends before them (dismiss() of an
// enclosing scope), so that the scopes above keep counting and receive their
// blocks; and its children still waiting out a grace period, so that frees
// of their survivors keep settling the scopes above, and their verdicts hand
// retained blocks to a scope that is still open. A child may sit on this
// thread, also below an adopt, or under an adopt on another thread: both are
// rare, so look through every scope_state.
inline void bypass(scope_state* s, bool open_children) noexcept {
  const std::uint64_t gen = s->generation;
  std::uint32_t waiting = 0;
  for_each_scope(s, [&](scope_state* c) {
    if (!(c->active ? open_children : c->waiting)) return;
    if (parent_of(c) != s || parent_generation_of(c) != gen) return;
    set_parent(c, parent_of(s), parent_generation_of(s));
    waiting += c->waiting;
  });
  if (waiting == 0) return;
  lock_guard g(s->lock);
  s->waiting_children.fetch_sub(waiting, std::memory_order_relaxed);
  if (lock_parent_if_current(s->parent, s->parent_generation)) {
    s->parent->waiting_children.fetch_add(waiting, std::memory_order_relaxed);
    s->parent->lock.unlock();
  }
}

// Ends a scope: no more blocks are attributed to it, what it still holds is
// copied into `out` (when given), and the scope becomes its parent's again
// on this thread. Scopes end in reverse order of opening on their thread;
// one that ends out of order hands the scopes nested in it over to its
// parent first.
//
// Returns true when the books stay open for a verdict: `out` holds the
// survivors, frees still settle them, and finish_scope() closes the books.
// Otherwise (nothing survived, no `out`: dismiss(), or `hand_up` and a
// current parent) the blocks went to the parent and the scope is recycled.
inline bool end_scope(scope_state* s, scope_snapshot* out, bool hand_up = false) {
  thread_state& t = tls;
  settle_deferred_if_any(t);  // a signal handler's frees count before the verdict
  if (t.innermost != s || s->waiting_children.load(std::memory_order_relaxed)) bypass(s, t.innermost != s);
  if (s->all_threads || s->opener != &t) {
    lock_guard g(registry.lock);
    if (s->opener != &t) registry.chain_left_behind = true;
    else --t.opened_all_threads;
    if (s->all_threads) unlist_all_threads(s);
    else refresh_all_threads();
  }
  bool keep_open = false;
  {
    lock_guard g(s->lock);
    s->active = false;
    if (out) collect(s, *out);
    scope_state* parent = lock_parent_if_current(s->parent, s->parent_generation) ? s->parent : nullptr;
    keep_open = out && !out->blocks.empty() && !(hand_up && parent);
    if (!keep_open) {
      close_books(s, parent);
      if (out) out->blocks.clear();  // handed up: the parent judges them
    } else {
      // Judged already: never this scope's survivors.
      hand_over(s->judged, parent ? &parent->judged : nullptr, parent);
      s->judged.prev = s->judged.next = &s->judged;
    }
    if (parent) parent->lock.unlock();
  }
  if (t.innermost == s) {
    t.innermost = s->parent;
    t.innermost_generation = s->parent_generation;
    if (!t.innermost) t.clear(slow_scoped);
  }
  bump(t.scope_ends, 1);
  if (!keep_open) release_scope_state(s);
  return keep_open;
}

// Calls `f(p)` for each current ancestor of `s` (whose lock the caller
// holds), nearest first, each under its lock.
template <class F>
void for_each_ancestor(scope_state* s, F f) noexcept {
  for (int n = 1; n < max_chain; ++n) {
    scope_state* parent = parent_of(s);
    if (!lock_parent_if_current(parent, parent_generation_of(s))) break;
    f(parent);
    parent->lock.unlock();
    s = parent;
  }
}

// The survivors of the ended scope `s` wait out a grace period: frees of
// them now count as escaped and freed in time (scope_stats).
inline void start_grace(scope_state* s, const scope_snapshot& survivors) noexcept {
  std::size_t bytes = 0;
  for (const block_snapshot& b : survivors.blocks) bytes += b.size;
  const std::size_t n = survivors.blocks.size();
  lock_guard g(s->lock);
  s->waiting = true;
  s->escaped_blocks += n;
  s->escaped_bytes += bytes;
  bool nearest = true;
  for_each_ancestor(s, [&](scope_state* x) {
    x->escaped_blocks += n;
    x->escaped_bytes += bytes;
    if (std::exchange(nearest, false)) x->waiting_children.fetch_add(1, std::memory_order_relaxed);
  });
}

// What the scope `s`, ended with its books open, still holds.
inline void collect_survivors(scope_state* s, scope_snapshot& out) noexcept {
  lock_guard g(s->lock);
  collect(s, out);
}

using growth_events = internal_vector<growth_event>;

// REQUIRES: s->lock, and no current parent. Moves the blocks left in the
// scope's `live` list (those it judged retained) into the retained books.
inline void retain(scope_state* s, std::uint64_t scope_ends, growth_events* events) noexcept {
  if (s->live.next == &s->live) return;
  scope_state* owner = retained_owner();
  if (!owner) return;  // no memory for the books: owned by no one, as before
  retained_books& books = retained();
  lock_guard g(owner->lock);
  try {
    internal_vector<const stack_trace*> touched;
    for (block_record* r = s->live.next; r != &s->live; r = r->next) {
      count_retained(books, r, header_of(r)->size);
      const stack_trace* stack = stack_of(r);
      if (std::find(touched.begin(), touched.end(), stack) == touched.end()) touched.push_back(stack);
    }
    growth_events none;
    note_growth(books, touched, scope_ends, events ? *events : none);
  } catch (const std::bad_alloc&) {
    count_lost(lost.reports);
  }
  hand_over(s->live, &owner->live, owner);
}

// Closes the books of an ended scope after its verdict: the blocks whose
// user address is in `retained` (sorted) go to the parent to be judged
// again (without one, to the retained books), the others, judged leaked,
// are never reported again. `scope_ends` is total_scope_ends() before the
// call; the retained sites that started or kept growing go to `events`.
inline void finish_scope(scope_state* s, std::span<const std::uintptr_t> retained, std::uint64_t scope_ends = 0,
                         growth_events* events = nullptr) noexcept {
  {
    lock_guard g(s->lock);
    const bool waited = std::exchange(s->waiting, false);
    for (block_record* r = s->live.next; r != &s->live;) {
      block_record* next = r->next;
      if (!std::binary_search(retained.begin(), retained.end(), reinterpret_cast<std::uintptr_t>(user_of(r)))) {
        unlink(r);
        link(s->judged, r);
      }
      r = next;
    }
    scope_state* parent = lock_parent_if_current(s->parent, s->parent_generation) ? s->parent : nullptr;
    if (parent && waited) parent->waiting_children.fetch_sub(1, std::memory_order_relaxed);
    if (!parent) retain(s, scope_ends, events);
    close_books(s, parent);
    if (parent) parent->lock.unlock();
  }
  release_scope_state(s);
}

// What was lost since the previous report, for the next one.
inline unrecorded_counts take_lost() noexcept {
  auto take = [](std::atomic<std::uint64_t>& n) { return n.exchange(0, std::memory_order_relaxed); };
  return {take(lost.allocations), take(lost.stacks), take(lost.origins), take(lost.scopes), take(lost.reports)};
}

// For a report that is dropped (nothing left after suppressions): the next one says it.
inline void give_back(const unrecorded_counts& u) noexcept {
  lost.allocations.fetch_add(u.allocations, std::memory_order_relaxed);
  lost.stacks.fetch_add(u.stacks, std::memory_order_relaxed);
  lost.origins.fetch_add(u.origins, std::memory_order_relaxed);
  lost.scopes.fetch_add(u.scopes, std::memory_order_relaxed);
  lost.reports.fetch_add(u.reports, std::memory_order_relaxed);
}

inline std::string violation_message(const budget_violation& v, std::size_t max_allocations, std::size_t max_bytes) {
  std::string msg = v.bytes ? "byte budget exceeded (max_bytes = " + std::to_string(max_bytes)
                            : "allocation budget exceeded (max_allocations = " + std::to_string(max_allocations);
  msg += "; " + std::to_string(v.count) + (v.count == 1 ? " allocation" : " allocations") + " over budget)";
  return msg;
}

// leakguard::release(): hands the tracked block `h`, and the blocks of its
// scope that it reaches, to that scope's parent (to be judged there) or to
// no one. Only the scope's `live` blocks move: what a nested scope judged
// leaked stays judged.
inline void release_graph(block_header* h) noexcept {
  internal_guard guard;
  block_record* const r = record_of(h);
  for (scope_state* s; (s = r->owner.load(std::memory_order_acquire));) {
    scope_snapshot live;
    {
      lock_guard g(s->lock);
      if (r->owner.load(std::memory_order_relaxed) != s) continue;  // moved meanwhile
      collect_live(s, live);
    }
    internal_vector<std::uintptr_t> graph;
    try {
      const std::size_t n = live.blocks.size();
      internal_vector<std::uintptr_t> begins(n);
      internal_vector<std::size_t> sizes(n);
      std::uint32_t first = static_cast<std::uint32_t>(n);
      for (std::size_t i = 0; i < n; ++i) {
        begins[i] = reinterpret_cast<std::uintptr_t>(live.blocks[i].address);
        sizes[i] = live.blocks[i].size;
        if (live.blocks[i].address == user_of(r)) first = static_cast<std::uint32_t>(i);
      }
      if (first == n) return;  // judged already: not the scope's to hand out
      reachability scan(begins.data(), sizes.data(), n);
      for (std::uint32_t i : scan.reachable_from(first)) graph.push_back(begins[i]);
    } catch (const std::bad_alloc&) {
      graph.assign(1, reinterpret_cast<std::uintptr_t>(user_of(r)));
    }
    sort_words(graph.data(), graph.data() + graph.size());
    lock_guard g(s->lock);
    if (r->owner.load(std::memory_order_relaxed) != s) continue;
    scope_state* parent = lock_parent_if_current(s->parent, s->parent_generation) ? s->parent : nullptr;
    block_record moved;
    moved.prev = moved.next = &moved;
    for (block_record* b = s->live.next; b != &s->live;) {
      block_record* next = b->next;
      if (std::binary_search(graph.begin(), graph.end(), reinterpret_cast<std::uintptr_t>(user_of(b)))) {
        unlink(b);
        link(moved, b);
        released_from(s, b, header_of(b)->size, false);  // the parent still counts it
      }
      b = next;
    }
    hand_over(moved, parent ? &parent->live : nullptr, parent);
    if (parent) parent->lock.unlock();
    return;
  }
}

// How a verdict treats surviving blocks.
struct verdict_rules {
  bool classify = true;        // scan for reachability (else every block is direct)
  bool allow_retained = true;  // retained blocks are not leaks
  std::uint64_t thread = 0;    // the thread that ended the scope; 0: this one
  long long grace_ms = 0;      // the grace period the verdict waited
  // The stack at the scope's end, whose frames above the scope's function
  // (its callers) every block of the scope shares: reports write them once.
  const stack_trace* scope_stack = nullptr;
  const stack_trace* opened_from = nullptr;  // scope_state::opened_from
  // Whether a report that would hold retained blocks alone lists them
  // (scope::check()). A scope's end delivers no such report, so its
  // retained blocks are not symbolized: a test's lazily built statics cost
  // a reachability scan, not a lookup of their stacks.
  bool lone_retained = true;
  bool other_threads_frames = false;  // other threads' frames are roots (reachability::classify)
  // The ended scope, kept open for its verdict: frees still settle its
  // books, so a block another thread frees while the verdict is given (its
  // work ending) is seen to be gone. Null: judge the snapshot as it is.
  scope_state* ended = nullptr;
};

// Set while a test integration ends a test's scope (test_support.hpp): its
// verdict reads other threads' frames.
inline constinit thread_local bool ending_a_test = false;

// A scope the standard library constructed is named after the first frame
// of the user's code that led to it, not the library's line.
LEAKGUARD_COLD std::source_location user_location(std::source_location where, const stack_trace* opened_from) {
  if (!opened_from) return where;
  for (const frame& f : symbolize(opened_from, max_stack_depth).frames) {
    if (f.file.empty() || is_library_frame(f.function, f.file) || is_internal_frame(f.function, f.file)) continue;
    const std::source_location* made = locations.make(f.file, f.function, static_cast<std::uint32_t>(f.line));
    return made ? *made : where;
  }
  return where;
}

// Whether a scope's location is the standard library's (see opened_from).
// One thread-local entry remembers the last location that was not, so that
// a scope opened again and again at one line checks its file once.
inline bool opened_in_library(std::source_location where) noexcept {
  static constinit thread_local const char* known_user_file = nullptr;
  const char* file = where.file_name();
  if (file == known_user_file) return false;
  if (is_library_frame({}, file)) return true;
  known_user_file = file;
  return false;
}

// A snapshot's blocks in serial order: a cycle's first block leads it, and
// reports list blocks by serial.
inline internal_vector<std::uint32_t> serial_order(const scope_snapshot& snap) {
  internal_vector<std::uint32_t> order(snap.blocks.size());
  for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  sort_by(order, [&](std::uint32_t i) { return snap.blocks[i].serial; });
  return order;
}

// A verdict's kinds, one per block in serial order (leaders in those positions).
using verdict_kinds = internal_vector<reach_result>;

// Judges the blocks of several snapshots with one scan of the roots
// (reachability.hpp): a block is indirect only through blocks of its own
// snapshot. `wanted`, for one snapshot, names the blocks (in serial order)
// whose verdict matters. REQUIRES: no leakguard lock held.
inline void judge(std::span<const scope_snapshot* const> snaps, std::span<verdict_kinds> out,
                  bool other_threads_frames = false, const char* wanted = nullptr) {
  internal_vector<std::uintptr_t> begins;
  internal_vector<std::size_t> sizes;
  internal_vector<std::uint32_t> groups;
  for (std::uint32_t g = 0; g < snaps.size(); ++g) {
    const scope_snapshot& snap = *snaps[g];
    out[g].assign(snap.blocks.size(), reach_result{});
    for (std::uint32_t k = 0; k < snap.blocks.size(); ++k) out[g][k].leader = k;
    for (std::uint32_t i : serial_order(snap)) {
      begins.push_back(reinterpret_cast<std::uintptr_t>(snap.blocks[i].address));
      sizes.push_back(snap.blocks[i].size);
      groups.push_back(g);
    }
  }
  if (begins.empty()) return;
  reachability scan(begins.data(), sizes.data(), begins.size(), snaps.size() > 1 ? groups.data() : nullptr, wanted);
  const std::span<const reach_result> found = scan.classify(other_threads_frames);
  std::uint32_t offset = 0;
  for (verdict_kinds& kinds : out) {
    for (std::uint32_t k = 0; k < kinds.size(); ++k)
      kinds[k] = {found[offset + k].kind, found[offset + k].leader - offset};
    offset += static_cast<std::uint32_t>(kinds.size());
  }
}

// The distinct stacks of a snapshot's blocks (and of its violation), in
// address order.
inline internal_vector<const stack_trace*> distinct_stacks(const scope_snapshot& snap, bool with_violation) {
  internal_vector<const stack_trace*> stacks;
  stacks.reserve(snap.blocks.size() + 1);
  for (const block_snapshot& b : snap.blocks) stacks.push_back(b.stack);
  if (with_violation && snap.violation.count) stacks.push_back(snap.violation.stack);
  sort_by(stacks, [](const stack_trace* s) { return reinterpret_cast<std::uintptr_t>(s); });
  stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
  return stacks;
}

// The answer of suppression_for when it was put off (see there).
inline constexpr int suppression_put_off = answer_not_kept;

// The units whose debug info decisions were put off for, to be read instead
// when the scan that settles them costs more than reading them would.
using put_off_units = internal_vector<unit_key>;

// The suppression that drops the blocks of `stack` (suppression_of: a
// pattern's index, suppression_c_library or suppression_none), found by
// looking up only as many return addresses as the answer needs: a test
// framework's bookkeeping at every test's end costs the same few frames,
// each looked up once, not each test's whole stack. The frames read are
// those a report shows (trimmed()): from the first that is not leakguard's,
// `depth` return addresses at most.
//
// With `put_off`, a frame whose function's name does not decide and whose
// compilation unit's debug info nobody has read yet is not looked up: the
// answer is suppression_put_off, and the unit is added to `put_off`. A
// verdict's scan decides instead: most such blocks are a static's, built
// once by the user's code, which the scan finds retained; only those it
// does not are looked up. A unit is read anyway once the scans that its
// blocks caused have read as many bytes as its debug info holds.
inline int suppression_for(const stack_trace* stack, const suppression_snapshot& list, int depth,
                           put_off_units* put_off = nullptr) {
  constexpr int internal_function = suppression_c_library - 1;  // a frame of leakguard's own function
  if (!stack || stack == not_recorded()) return suppression_none;
  std::size_t left = std::min<std::size_t>(static_cast<std::size_t>(depth), stack->user_depth);
  if (left == 0) return suppression_none;
  bool counting = false;  // from the first frame that is not leakguard's
  auto read_on = [&](int a) { return a == suppression_undecided && --left == 0 ? suppression_none : a; };
  const std::uint64_t key = list.generation * (max_frames + 1) + left;
  const int answer = decide_stack(stack, key, suppression_undecided, [&](symbolizer& sym, const void* pc) {
    const int said = sym.remembered(pc, list.generation, [&] {
      // The symbol table's name first: leakguard's own function is passed
      // over, and one a pattern names (a framework's) decides, without the
      // debug info that the frames inlined into it take.
      const std::string& name = sym.symbol_at(pc);
      if (is_internal_frame(name, {})) return internal_function;
      const int by_name = pattern_for(name, {}, list.patterns);
      if (by_name != suppression_undecided) return by_name;
      // A standard library function instantiated with the library's types
      // alone (a framework's bookkeeping goes through std::string and
      // hash tables made in its large unit) inlines only library frames,
      // which suppression_of passes over: read on, unless a pattern of the
      // user's might name one of them.
      if (!list.from_user && names_only_the_library(name)) return suppression_undecided;
      if (put_off) {
        if (const std::optional<unread_unit> unit = sym.unread_unit_at(pc);
            unit && sym.scanned_instead_of(unit->id) < unit->bytes) {
          put_off->push_back(unit->id);
          return suppression_put_off;
        }
      }
      return suppression_of(sym.frames_at(pc), list.patterns);
    });
    if (said == internal_function) return counting ? read_on(suppression_undecided) : suppression_undecided;
    counting = true;
    return read_on(said);
  });
  return answer == suppression_undecided ? suppression_none : answer;  // the stack ended first
}

// Whether the retained blocks of `stack` are suppressed after all: a
// verdict that put off its decision and found them retained books them
// undecided, and what names them (retained_sites(), the growth log) asks.
inline bool suppressed_retained(const stack_trace* stack, const suppression_snapshot& list) {
  return suppression_for(stack, list, max_stack_depth) != suppression_none;
}

// Charges the `bytes` a scan read for put-off decisions alone to their
// units (suppression_for).
inline void charge_put_off(put_off_units& units, std::uint64_t bytes) {
  std::sort(units.begin(), units.end());
  units.erase(std::unique(units.begin(), units.end()), units.end());
  symbolizer& sym = the_symbolizer();
  lock_guard g(sym.lock);
  for (const unit_key& id : units) sym.scanned_instead_of(id) += bytes;
}

// Whether every survivor of `snap` is suppressed, so that its verdict needs
// no scan (build_report drops them all). Stops at the first stack that is
// not.
inline bool all_suppressed(const scope_snapshot& snap) {
  const suppression_snapshot list = suppressions_now();
  for (const stack_trace* stack : distinct_stacks(snap, false))
    if (suppression_for(stack, list, max_stack_depth) == suppression_none) return false;
  return true;
}

// Judges the snapshot's blocks (unless `judged` has their kinds already, from
// judge()), symbolizes their stacks (each distinct stack once) and builds the
// report. The user addresses of the blocks judged retained (suppressed ones
// are not judged) go to `retained_out`, sorted.
inline report build_report(std::string label, std::source_location where, const scope_snapshot& snap,
                           std::vector<violation> violations = {}, const verdict_rules& rules = {},
                           internal_vector<std::uintptr_t>* retained_out = nullptr,
                           const verdict_kinds* judged = nullptr) {
  // Where the scope was opened, told only for a report with something in
  // it: a test's scope whose survivors are all suppressed symbolizes nothing
  // more.
  bool where_told = false;
  auto tell_where = [&] {
    if (!std::exchange(where_told, true)) where = user_location(where, rules.opened_from);
  };
  // Stacks were captured at the depth in force then; show what was captured.
  const int depth = max_stack_depth;
  const std::size_t n = snap.blocks.size();
  // Each distinct stack once: first whether a suppression drops its blocks,
  // then the frames of the others, all in one hold of the symbolizer.
  const internal_vector<const stack_trace*> stacks = distinct_stacks(snap, true);
  std::optional<symbolizer_batch> batch;  // debug info given back once, when the report is built
  if (!stacks.empty()) batch.emplace();
  auto index_in = [](const internal_vector<const stack_trace*>& sorted, const stack_trace* st) {
    return static_cast<std::size_t>(std::lower_bound(sorted.begin(), sorted.end(), st) - sorted.begin());
  };
  const suppression_snapshot list = suppressions_now();
  const std::vector<std::string>& patterns = list.patterns;
  // Decisions that would read a unit's debug info are put off where a scan
  // follows (suppression_for).
  const bool scan_follows = !judged && rules.classify;
  put_off_units put_off;
  internal_vector<int> suppression(stacks.size());
  for (std::size_t i = 0; i < stacks.size(); ++i)
    suppression[i] = suppression_for(stacks[i], list, depth, scan_follows ? &put_off : nullptr);
  const internal_vector<std::uint32_t> order = serial_order(snap);
  auto stack_of = [&](std::size_t k) { return index_in(stacks, snap.blocks[order[k]].stack); };
  // A suppressed block is not judged: dropped from the report and from the
  // books (never retained). A scope whose survivors are all suppressed (a
  // test framework's bookkeeping, at every test's end) needs no scan.
  internal_vector<char> dropped(n, 0);
  bool all_dropped = true, only_put_off = !put_off.empty();  // what the scan is for
  for (std::size_t k = 0; k < n; ++k) {
    const int by = suppression[stack_of(k)];
    dropped[k] = by != suppression_none && by != suppression_put_off;
    all_dropped = all_dropped && dropped[k];
    only_put_off = only_put_off && (dropped[k] || by == suppression_put_off);
  }
  verdict_kinds kinds;
  if (judged) {
    kinds = *judged;
  } else if (rules.classify && !all_dropped) {
    // A suppressed block's verdict does not matter: the scan stops once the
    // others are reached.
    internal_vector<char> wanted(n);
    for (std::size_t k = 0; k < n; ++k) wanted[k] = !dropped[k];
    const scope_snapshot* one = &snap;
    const std::uint64_t scanned_before = bytes_scanned.load(std::memory_order_relaxed);
    judge({&one, 1}, {&kinds, 1}, rules.other_threads_frames, wanted.data());
    if (only_put_off) charge_put_off(put_off, bytes_scanned.load(std::memory_order_relaxed) - scanned_before);
  } else {
    kinds.resize(n);
    for (std::uint32_t k = 0; k < n; ++k) kinds[k].leader = k;
  }
  auto kept = [&](std::size_t k) { return kinds[k].kind == reach_retained && rules.allow_retained; };
  // A decision put off is made now for the blocks the scan did not find
  // kept, and, where the report lists retained blocks, for all.
  auto decide_put_off = [&](bool all) {
    for (std::size_t k = 0; k < n; ++k) {
      int& by = suppression[stack_of(k)];
      if (by != suppression_put_off || (!all && kept(k))) continue;
      by = suppression_for(stacks[stack_of(k)], list, depth);
      if (by == suppression_none) continue;
      for (std::size_t j = 0; j < n; ++j)  // never undoes a drop made since (a block freed meanwhile)
        if (stack_of(j) == stack_of(k)) dropped[j] = 1;
    }
  };
  decide_put_off(false);
  // A block without a frame is named after its scope, so that per-site
  // totals (leak_sites, log_leak's summaries, metrics) still tell one
  // scope's leaks from another's: no frame the walk could follow (code
  // built without frame pointers), or no memory to record the stack.
  auto site_of = [&](const stack_trace* stack, const symbolized_stack& st) {
    if (!st.site.empty()) return st.site;
    tell_where();
    std::string in_scope = " in scope ";
    if (!label.empty()) in_scope += '"' + label + "\" ";
    in_scope += std::string("at ") + where.file_name() + ':' + std::to_string(where.line());
    if (stack == not_recorded()) return "(stack not recorded)" + in_scope;
    return "(no frames: built without frame pointers?)" + in_scope;
  };
  auto any_leaked = [&] {
    for (std::size_t k = 0; k < n; ++k)
      if (!dropped[k] && !kept(k)) return true;
    return false;
  };
  // A block freed while the verdict was given (by another thread, its work
  // ending) is no leak: the ended scope's books say which are live now.
  // Read only when a block would be reported: a test's end that leaves
  // only suppressed bookkeeping and retained statics pays nothing for it.
  if (rules.ended && any_leaked()) {
    scope_snapshot now;
    collect_survivors(rules.ended, now);
    internal_vector<std::uint64_t> live;
    for (const block_snapshot& b : now.blocks) live.push_back(b.serial);
    std::sort(live.begin(), live.end());
    for (std::size_t k = 0; k < n; ++k)
      if (!std::binary_search(live.begin(), live.end(), snap.blocks[order[k]].serial)) dropped[k] = 1;
  }
  // A dropped block takes the blocks it leads (its object graph) with it.
  for (std::size_t k = 0; k < n; ++k)
    if (kinds[k].kind == reach_indirect && dropped[kinds[k].leader]) dropped[k] = 1;
  const bool leaks = snap.violation.count || !violations.empty() || any_leaked();
  const bool list_retained = leaks || rules.lone_retained;
  if (list_retained) decide_put_off(true);
  // Each suppression's use: the blocks of the stacks it decided.
  std::vector<std::uint64_t> used_blocks(patterns.size()), used_bytes(patterns.size());
  for (std::size_t k = 0; k < n; ++k) {
    if (const int by = suppression[stack_of(k)]; by >= 0) {
      ++used_blocks[static_cast<std::size_t>(by)];
      used_bytes[static_cast<std::size_t>(by)] += snap.blocks[order[k]].size;
    }
  }
  count_suppressed(patterns, used_blocks, used_bytes);
  // Only the stacks the report shows are symbolized, each once.
  internal_vector<char> needed(stacks.size(), 0);
  for (std::size_t k = 0; k < n; ++k)
    if (!dropped[k] && (list_retained || !kept(k))) needed[index_in(stacks, snap.blocks[order[k]].stack)] = 1;
  if (snap.violation.count) needed[index_in(stacks, snap.violation.stack)] = 1;
  internal_vector<const stack_trace*> shown;  // in address order, as `stacks`
  for (std::size_t i = 0; i < stacks.size(); ++i)
    if (needed[i]) shown.push_back(stacks[i]);
  const std::vector<symbolized_stack> symbolized = symbolize_each(shown, depth);
  auto lookup = [&](const stack_trace* st) -> const symbolized_stack& { return symbolized[index_in(shown, st)]; };
  std::vector<leaked_block> blocks, retained;
  std::vector<std::uint64_t> leaders;
  for (std::size_t k = 0; k < n; ++k) {
    const block_snapshot& b = snap.blocks[order[k]];
    if (dropped[k]) continue;
    const bool keep = kept(k);
    if (keep && retained_out) retained_out->push_back(reinterpret_cast<std::uintptr_t>(b.address));
    if (keep && !list_retained) continue;
    const symbolized_stack& st = lookup(b.stack);
    leaked_block block{b.address, b.size, b.alignment, b.serial, site_of(b.stack, st), st.frames,
                       describe_origin(b.origin), static_cast<leak_kind>(kinds[k].kind),
                       allocated_by(b.kind, st.frames)};
    if (keep) {
      retained.push_back(std::move(block));
    } else {
      blocks.push_back(std::move(block));
      leaders.push_back(snap.blocks[order[kinds[k].leader]].serial);
    }
  }
  if (retained_out) sort_words(retained_out->data(), retained_out->data() + retained_out->size());
  if (snap.violation.count) {
    const symbolized_stack& st = lookup(snap.violation.stack);
    violations.insert(violations.begin(),
                      violation{snap.violation.bytes ? violation_kind::byte_budget : violation_kind::allocation_budget,
                                snap.violation.size, snap.violation.serial, st.site, st.frames,
                                violation_message(snap.violation, snap.max_allocations, snap.max_bytes)});
  }
  if (!blocks.empty() || !retained.empty() || !violations.empty()) tell_where();
  report r(std::move(label), where, std::move(blocks), std::move(violations), take_lost());
  report_parts::attach(r, std::move(retained), std::move(leaders),
                       rules.thread ? rules.thread : static_cast<std::uint64_t>(gettid()), rules.grace_ms);
  if (rules.scope_stack && !r.empty())
    report_parts::set_scope_stack(r, symbolize(rules.scope_stack, depth).frames);
  return r;
}

}  // namespace leakguard::detail
