// leakguard/impl/stack_stash.hpp — allocation stacks interned only for the
// blocks that live long enough to need one.
//
// Most tracked blocks are freed soon after they are made, and nobody ever
// looks at their stacks. Interning a stack (stacks.hpp) costs a hash-table
// lookup that misses the cache and, for a stack not seen before, a depot node
// that is never freed. So a tracked block's return addresses first go to its
// thread's stash: a ring of entries, written in turn, and its record points
// at its entry. The stack is interned when something reads it (a verdict, a
// report, the retained books: stack_of), or when the ring comes round to the
// entry while the block still lives. A block freed before either costs no
// interning.
//
// An entry's key is its block's serial (unique in the process, so never
// mistaken for a later block's). Whoever interns an entry's frames claims it
// first, by setting the key's busy bit with a compare-and-swap, and writes the
// record before clearing the key. A free takes its block's key away with a
// compare-and-swap too, and if a claim got there first, waits for the record
// to be written: the record a claim writes to is alive until the claim ends.
// Stashes are never freed. A thread's stash goes to the next thread when it
// exits, entries and all: they are claimed like any other, and a late
// compare-and-swap on a reused entry just fails.
#pragma once

#include <atomic>
#include <cstdint>

#include "block.hpp"
#include "heap.hpp"
#include "internal_memory.hpp"
#include "stacks.hpp"
#include "thread_state.hpp"

namespace leakguard::detail {

// A power of two: enough for a request of a thousand allocations whose
// blocks all live until it ends, at 192 bytes an entry.
inline constexpr std::uint32_t stash_entries = 1024;
// Frames an entry holds: the default depth and leakguard's own. A block
// whose stack is asked deeper has it interned at once.
inline constexpr int stash_frames = 16 + internal_frames;
inline constexpr std::uint64_t stash_busy = std::uint64_t{1} << 63;
// A record's `stack` word with this bit is its entry's address.
inline constexpr std::uintptr_t stashed = 1;

struct alignas(64) stash_entry {
  std::atomic<std::uint64_t> key{0};  // the block's serial; 0: none; | stash_busy while claimed
  block_record* record = nullptr;
  std::uint32_t depth = 0, user_depth = 0;  // as stack_trace's
  void* frames[stash_frames];
};

struct stack_stash {
  stash_entry entries[stash_entries];
  std::uint32_t next = 0;        // the entry the owner writes next
  stack_stash* next_free = nullptr;  // stash_pool, under registry.lock
  stack_stash* next_made = nullptr;  // every stash, for a forked child
};

// Under registry.lock.
struct stash_lists {
  stack_stash* free = nullptr;
  stack_stash* all = nullptr;
};
inline constinit stash_lists stash_pool{};

// The depot's copy of `frames`, as a record's `stack` word; a stack the
// depot had no memory for is counted.
inline std::uintptr_t intern_counted(void* const* frames, int depth, int user_depth) noexcept {
  const stack_trace* s = depot.intern(frames, depth, user_depth);
  if (s == not_recorded()) count_lost(lost.stacks);
  return reinterpret_cast<std::uintptr_t>(s);
}

// REQUIRES: entry claimed. Interns its frames into its record, and lets it go.
inline void intern_claimed(stash_entry& e) noexcept {
  const std::uintptr_t s = intern_counted(e.frames, static_cast<int>(e.depth), static_cast<int>(e.user_depth));
  e.record->stack.store(s, std::memory_order_release);
  e.key.store(0, std::memory_order_release);
}

// The owner's ring came round to an entry whose block may still live: its
// stack is interned now. A signal handler that interrupts the claim must
// not wait for it (tracking.hpp's reentered), hence the held lock.
LEAKGUARD_NOINLINE void intern_before_reuse(stash_entry& e) noexcept {
  hold_lock();
  for (std::uint64_t k; (k = e.key.load(std::memory_order_acquire)) != 0;) {
    if (!(k & stash_busy) && e.key.compare_exchange_weak(k, k | stash_busy, std::memory_order_acquire)) {
      intern_claimed(e);
      break;
    }
    cpu_pause();
  }
  drop_lock();
}

// The calling thread's stash; null without memory. Cold: once per thread.
LEAKGUARD_NOINLINE stack_stash* take_stash(thread_state& t) noexcept {
  if (t.slow.load(std::memory_order_relaxed) & slow_exited) return nullptr;  // not given back again
  lock_guard g(registry.lock);
  stack_stash* s = stash_pool.free;
  if (s) {
    stash_pool.free = s->next_free;
  } else if (!out_of_books(book_stack) &&
             (s = static_cast<stack_stash*>(heap_memalign(alignof(stack_stash), sizeof(stack_stash))))) {
    new (s) stack_stash();
    s->next_made = stash_pool.all;
    stash_pool.all = s;
  }
  return t.stash = s;
}

// REQUIRES: registry.lock. At the thread's exit (or in a forked child, for a
// thread that did not survive the fork): its stash goes to the next thread.
inline void release_stash(thread_state& t) noexcept {
  if (!t.stash) return;
  t.stash->next_free = stash_pool.free;
  stash_pool.free = std::exchange(t.stash, nullptr);
}

// REQUIRES: registry.lock, in a forked child. A claim by a thread that did
// not survive the fork never ends: the entry goes back to unclaimed, its
// frames intact (nobody writes them while it is claimed).
inline void unclaim_stashes() noexcept {
  for (stack_stash* s = stash_pool.all; s; s = s->next_made)
    for (stash_entry& e : s->entries)
      e.key.store(e.key.load(std::memory_order_relaxed) & ~stash_busy, std::memory_order_relaxed);
}

// Captures `depth` frames below leakguard's own (as capture_stack does, from
// the same depth of call) for the tracked block of `r`, whose serial is
// `serial`, into the thread's stash: the value of the record's `stack` word.
// Interns them at once when the stash cannot hold them.
LEAKGUARD_NOINLINE std::uintptr_t stash_stack(thread_state& t, block_record* r, std::uint64_t serial,
                                              int depth) noexcept {
  if (depth <= 0) return 0;
  if (depth > max_frames - internal_frames) depth = max_frames - internal_frames;
  stack_stash* s = depth + internal_frames > stash_frames ? nullptr : t.stash;
  if (LEAKGUARD_UNLIKELY(!s) && depth + internal_frames <= stash_frames) s = take_stash(t);
  if (LEAKGUARD_UNLIKELY(!s)) {  // walked here, not by capture_stack(), whose frame would be one more
    void* frames[max_frames];
    return intern_counted(frames, walk_stack(frames, depth + internal_frames), depth);
  }
  stash_entry& e = s->entries[s->next++ & (stash_entries - 1)];
  if (LEAKGUARD_UNLIKELY(e.key.load(std::memory_order_acquire) != 0)) intern_before_reuse(e);
  const int n = walk_stack(e.frames, depth + internal_frames);
  if (n <= 0) return 0;
  e.record = r;
  e.depth = static_cast<std::uint32_t>(n);
  e.user_depth = static_cast<std::uint32_t>(depth);
  e.key.store(serial, std::memory_order_release);
  return reinterpret_cast<std::uintptr_t>(&e) | stashed;
}

// The interned stack of a stashed record. REQUIRES: the block is not freed
// meanwhile (its scope's lock, or the caller's own block).
LEAKGUARD_NOINLINE const stack_trace* intern_stashed(const block_record* r, std::uintptr_t word) noexcept {
  auto& e = *reinterpret_cast<stash_entry*>(word & ~stashed);
  hold_lock();
  for (;;) {
    std::uint64_t k = r->serial;
    if (e.key.compare_exchange_strong(k, k | stash_busy, std::memory_order_acquire, std::memory_order_relaxed)) {
      intern_claimed(e);
      break;
    }
    // Another thread's claim: wait for it to write the record.
    if (!(r->stack.load(std::memory_order_acquire) & stashed)) break;
    cpu_pause();
  }
  drop_lock();
  return reinterpret_cast<const stack_trace*>(r->stack.load(std::memory_order_acquire));
}

// A tracked block's stack, interned. REQUIRES: as intern_stashed().
inline const stack_trace* stack_of(const block_record* r) noexcept {
  const std::uintptr_t word = r->stack.load(std::memory_order_acquire);
  if (LEAKGUARD_LIKELY(!(word & stashed))) return reinterpret_cast<const stack_trace*>(word);
  return intern_stashed(r, word);
}

// A tracked block is being freed, off its books: its entry, if it still has
// one, is never to be interned; a claim already under way ends first.
LEAKGUARD_ALWAYS_INLINE void forget_stack(block_record* r) noexcept {
  const std::uintptr_t word = r->stack.load(std::memory_order_relaxed);
  if (LEAKGUARD_LIKELY(!(word & stashed))) return;
  auto& e = *reinterpret_cast<stash_entry*>(word & ~stashed);
  std::uint64_t k = r->serial;
  if (LEAKGUARD_LIKELY(e.key.compare_exchange_strong(k, 0, std::memory_order_relaxed))) return;
  while (r->stack.load(std::memory_order_acquire) & stashed) cpu_pause();
}

}  // namespace leakguard::detail
