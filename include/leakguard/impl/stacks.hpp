// leakguard/impl/stacks.hpp — allocation stacks: capture and interning.
//
// Capture is the dominant cost of a tracked allocation, so a stack is only a
// list of return addresses here; names and lines are looked up when a report
// is built (symbolize.hpp). Identical stacks are stored once in a depot that
// is never freed (a node's address is its identity), found through a hash
// table that lookups read without a lock.
#pragma once

#include <absl/debugging/stacktrace.h>
#include <pthread.h>
#include <unwind.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "code_map.hpp"
#include "internal_memory.hpp"
#include "thread_state.hpp"

namespace leakguard::detail {

// Frames of leakguard itself (the cold path, operator new) sit on top of every
// captured stack; they are captured on top of the requested depth and trimmed
// when the stack is symbolized.
inline constexpr int internal_frames = 4;
// Frames every tracked block keeps, when sampling skips its stack or capture
// is off (stack_depth=0): enough to name the line that allocated it, so that
// per-site totals keep two leak lines apart in every mode.
inline constexpr int site_frames = 6;
inline constexpr int max_frames = 64 + internal_frames;

// A flexible array member: a GNU extension, which a user's -Wpedantic names.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
struct stack_trace {
  std::uint64_t hash;
  std::uint32_t depth;       // frames captured, leakguard's own included
  std::uint32_t user_depth;  // frames asked for: a report shows at most these
  void* frames[];  // return addresses, innermost first
};
#pragma GCC diagnostic pop

// Stands for the stack of a tracked block that the depot had no memory for;
// never dereferenced.
inline const stack_trace* not_recorded() noexcept { return reinterpret_cast<const stack_trace*>(2 * alignof(stack_trace)); }

// The table is open-addressed: each slot holds a node's address and, in the
// bits above the 48 a user address takes, the top of its hash, so that a
// lookup reads slots in a row and follows a node only when that tag
// matches: about one cache miss for the slot and one for the node. A stack
// not found is added under the arena's lock, which also moves the nodes to
// a table twice as large when it is three quarters full. The old table
// stays readable for lookups that started in it, and is never freed.
class stack_depot {
 public:
  // The interned copy of `frames[0..depth)`; null if depth is 0, not_recorded() if memory ran out.
  const stack_trace* intern(void* const* frames, int depth, int user_depth) noexcept {
    if (depth <= 0) return nullptr;
    const std::uint64_t hash = hash_frames(frames, depth) ^ static_cast<std::uint64_t>(user_depth) << 56;
    if (const stack_trace* s = find(current(), hash, frames, depth, user_depth)) return s;
    return add(hash, frames, depth, user_depth);
  }

  spin_lock& arena_lock() noexcept { return arena_lock_; }  // fork.hpp

  // Stacks interned so far (a test's probe: a lock).
  std::size_t stacks() noexcept {
    lock_guard g(arena_lock_);
    return count_;
  }

 private:
  struct table {
    std::atomic<std::uintptr_t>* slots;
    std::size_t mask;  // slots - 1, a power of two less one
  };
  static constexpr std::size_t first_slots = std::size_t{1} << 16;
  static constexpr std::size_t chunk_size = std::size_t{1} << 16;
  static constexpr std::uintptr_t address_bits = (std::uintptr_t{1} << 48) - 1;

  const table& current() const noexcept {
    const table* t = current_.load(std::memory_order_acquire);
    return t ? *t : first_;
  }

  static const stack_trace* find(const table& t, std::uint64_t hash, void* const* frames, int depth,
                                 int user_depth) noexcept {
    const std::uintptr_t tag = hash & ~address_bits;
    for (std::size_t i = hash & t.mask;; i = (i + 1) & t.mask) {
      const std::uintptr_t slot = t.slots[i].load(std::memory_order_acquire);
      if (slot == 0) return nullptr;  // a table is never full
      if ((slot & ~address_bits) != tag) continue;
      const auto* s = reinterpret_cast<const stack_trace*>(slot & address_bits);
      if (s->hash == hash && s->depth == static_cast<std::uint32_t>(depth) &&
          s->user_depth == static_cast<std::uint32_t>(user_depth) && same_frames(*s, frames, depth))
        return s;
    }
  }

  // REQUIRES: arena_lock_. Puts a node in a slot of `t` that is free.
  static void place(const table& t, std::uintptr_t node, std::uint64_t hash) noexcept {
    std::size_t i = hash & t.mask;
    while (t.slots[i].load(std::memory_order_relaxed) != 0) i = (i + 1) & t.mask;
    t.slots[i].store(node | (hash & ~address_bits), std::memory_order_release);
  }

  LEAKGUARD_NOINLINE const stack_trace* add(std::uint64_t hash, void* const* frames, int depth,
                                            int user_depth) noexcept {
    lock_guard g(arena_lock_);
    const table* t = &current();
    if (const stack_trace* s = find(*t, hash, frames, depth, user_depth)) return s;  // added meanwhile
    if (4 * (count_ + 1) > 3 * (t->mask + 1)) {
      t = grow(*t);
      if (!t) return not_recorded();
    }
    const std::size_t bytes = sizeof(stack_trace) + static_cast<std::size_t>(depth) * sizeof(void*);
    auto* fresh = static_cast<stack_trace*>(arena_allocate(bytes));
    const auto node = reinterpret_cast<std::uintptr_t>(fresh);
    if (!fresh || (node & ~address_bits) != 0) return not_recorded();  // (no user address has those bits on Linux)
    fresh->hash = hash;
    fresh->depth = static_cast<std::uint32_t>(depth);
    fresh->user_depth = static_cast<std::uint32_t>(user_depth);
    std::memcpy(fresh->frames, frames, static_cast<std::size_t>(depth) * sizeof(void*));
    place(*t, node, hash);
    ++count_;
    return fresh;
  }

  // REQUIRES: arena_lock_. A table twice the size of `old`, holding its
  // nodes, made current; null without memory.
  const table* grow(const table& old) noexcept {
    const std::size_t n = 2 * (old.mask + 1);
    auto* fresh = static_cast<table*>(heap_malloc(sizeof(table) + n * sizeof(std::atomic<std::uintptr_t>)));
    if (!fresh) return nullptr;
    auto* slots = reinterpret_cast<std::atomic<std::uintptr_t>*>(fresh + 1);
    for (std::size_t i = 0; i < n; ++i) new (&slots[i]) std::atomic<std::uintptr_t>(0);
    new (fresh) table{slots, n - 1};
    for (std::size_t i = 0; i <= old.mask; ++i) {
      const std::uintptr_t slot = old.slots[i].load(std::memory_order_relaxed);
      if (slot != 0) place(*fresh, slot & address_bits, reinterpret_cast<const stack_trace*>(slot & address_bits)->hash);
    }
    current_.store(fresh, std::memory_order_release);
    return fresh;
  }

  static std::uint64_t hash_frames(void* const* frames, int depth) noexcept {
    // This runs on every tracked allocation. Each frame gets its own
    // multiplier (two stacks with the same frames in another order differ)
    // and the products are summed: the multiplies do not wait on each other,
    // as they would in a chain. One mix at the end.
    std::uint64_t h = static_cast<std::uint64_t>(depth);
    for (int i = 0; i < depth; ++i)
      h += reinterpret_cast<std::uintptr_t>(frames[i]) * (0x9e3779b97f4a7c15ull + 2 * static_cast<std::uint64_t>(i));
    h = (h ^ h >> 32) * 0xff51afd7ed558ccdull;
    return h ^ h >> 29;
  }

  static bool same_frames(const stack_trace& s, void* const* frames, int depth) noexcept {
    for (int i = 0; i < depth; ++i)  // a few words: no call to memcmp
      if (s.frames[i] != frames[i]) return false;
    return true;
  }

  // REQUIRES: arena_lock_.
  void* arena_allocate(std::size_t bytes) noexcept {
    bytes = (bytes + 15) & ~std::size_t{15};
    if (out_of_books(book_stack)) return nullptr;
    if (arena_left_ < bytes) {
      const std::size_t size = bytes > chunk_size ? bytes : chunk_size;
      arena_next_ = static_cast<char*>(heap_malloc(size));
      if (!arena_next_) {
        arena_left_ = 0;
        return nullptr;
      }
      arena_left_ = size;
    }
    void* p = arena_next_;
    arena_next_ += bytes;
    arena_left_ -= bytes;
    return p;
  }

  std::atomic<std::uintptr_t> first_slots_[first_slots] = {};
  const table first_{first_slots_, first_slots - 1};
  std::atomic<const table*> current_{nullptr};  // null: first_
  std::size_t count_ = 0;                      // nodes; under arena_lock_
  spin_lock arena_lock_;
  char* arena_next_ = nullptr;
  std::size_t arena_left_ = 0;
};

// Zero-initialised (constinit), never destroyed: usable before main and in
// static destructors.
inline constinit stack_depot depot{};

// The calling thread's stack, [lo, hi): bounds for the frame-pointer walk.
struct stack_bounds {
  std::uintptr_t lo = 0, hi = 0;
  bool known = false;  // looked up (hi stays 0 if that failed)
};
inline constinit thread_local stack_bounds this_stack{};

LEAKGUARD_COLD void find_stack_bounds(stack_bounds& b) noexcept {
  b.known = true;
  internal_guard own_work;  // it reads /proc/self/maps through stdio: malloc, getline
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
  void* addr = nullptr;
  std::size_t size = 0;
  if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
    b.lo = reinterpret_cast<std::uintptr_t>(addr);
    b.hi = b.lo + size;
  }
  pthread_attr_destroy(&attr);
}

// Follows the frame-pointer chain from `fp`. The thread's stack bounds are
// known here, so every link is one compare against them: about 12
// instructions per frame, where absl::GetStackTrace takes 36 (callgrind).
// Returns -1 when `fp` is not on the thread's own stack (a signal stack, a
// fiber): let absl walk.
inline int walk_frame_pointers(const std::uintptr_t* fp, void** frames, int max_depth) noexcept {
  stack_bounds& b = this_stack;
  if (LEAKGUARD_UNLIKELY(!b.known)) find_stack_bounds(b);
  const std::uintptr_t limit = b.hi - 2 * sizeof(void*);  // room for a whole frame record
  const auto at = reinterpret_cast<std::uintptr_t>(fp);
  if (b.hi == 0 || at < b.lo || at >= limit) return -1;  // hi is 0 if the lookup failed
  int n = 0;
  while (n < max_depth) {
    // A frame is [saved fp, return address]; the saved fp must point higher
    // up the same stack, or the chain is broken (code built without frame
    // pointers) and the walk ends. Every read stays inside the stack.
    const std::uintptr_t next = fp[0];
    const std::uintptr_t pc = fp[1];
    if (pc == 0) break;
    frames[n++] = reinterpret_cast<void*>(pc);
    if (next <= reinterpret_cast<std::uintptr_t>(fp) || next >= limit) break;
    fp = reinterpret_cast<const std::uintptr_t*>(next);
  }
  return n;
}

// Set around an allocation called from a library without frame pointers
// (code_map.hpp): the frame-pointer walk would skip the user's own frame, the
// one that called it. The unwind tables (.eh_frame, through libgcc's
// unwinder) do not.
inline constinit thread_local bool capture_by_unwinding = false;

// The frame pointer's register in the unwinder's numbering.
#if defined(__x86_64__)
inline constexpr int frame_pointer_register = 6;  // rbp
#elif defined(__aarch64__)
inline constexpr int frame_pointer_register = 29;  // x29
#else
inline constexpr int frame_pointer_register = -1;
#endif

#if defined(__x86_64__)
// How each call from a library without frame pointers into code that
// allocates left the library's frame, by the call's return address: the
// frame's size at that call (its CFA less the stack pointer at the call),
// and where it saved its caller's frame pointer, if it changed it. Learnt
// from the unwinder's walk, the first time a call is seen; the next walks
// through the same call read two words instead of the unwind tables. An
// entry is one word: the return address in the low 47 bits, the size and
// the frame pointer's place below the CFA in 8-byte units above them (0:
// not saved, the register still holds the caller's). Entries replace each
// other by slot.
class library_frames {
 public:
  struct frame {
    std::uintptr_t size = 0;        // CFA - stack pointer at the call
    std::uintptr_t saved_fp = 0;    // CFA - where the caller's frame pointer is; 0: in the register
  };

  bool find(std::uintptr_t pc, frame& out) const noexcept {
    const std::uint64_t e = slots_[slot(pc)].load(std::memory_order_relaxed);
    if (e == 0 || (e & pc_mask) != pc) return false;
    out = {(e >> 47 & 511) * 8, (e >> 56) * 8};
    return true;
  }

  void learn(std::uintptr_t pc, frame f) noexcept {
    if (pc > pc_mask || f.size == 0 || f.size % 8 || f.size > 511 * 8 || f.saved_fp % 8 || f.saved_fp > 255 * 8)
      return;  // not what one word holds
    slots_[slot(pc)].store(pc | std::uint64_t{f.size / 8} << 47 | std::uint64_t{f.saved_fp / 8} << 56,
                           std::memory_order_relaxed);
  }

 private:
  static constexpr std::uint64_t pc_mask = (std::uint64_t{1} << 47) - 1;
  static constexpr int slot_bits = 12;
  static std::size_t slot(std::uintptr_t pc) noexcept { return pc * 0x9E3779B97F4A7C15ull >> (64 - slot_bits); }
  std::atomic<std::uint64_t> slots_[std::size_t{1} << slot_bits]{};
};
inline constinit library_frames known_library_frames{};

// Whether `pc`, read from a stack, can be a return address: it lies in a
// loaded object's code, after a call instruction (call rel32, or call
// through a register or memory, ModRM reg field 2).
inline bool after_a_call(std::uintptr_t pc) noexcept {
  const void* at = reinterpret_cast<const void*>(pc);
  code_range r = code.executable;
  if (!r.contains(at)) r = code.loader;
  if (!r.contains(at)) {
    const code_map::entry* e = find_code(at);
    if (!e) return false;
    r = e->range;
  }
  if (pc - r.lo < 8) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(pc);
  if (p[-5] == 0xE8) return true;
  for (int length : {2, 3, 4, 6, 7})
    if (p[-length] == 0xFF && (p[-length + 1] & 0x38) == 0x10) return true;
  return false;
}

// The frame-pointer walk from `fp` through the first run of library frames
// it meets, each known (library_frames), on to the first frame with a frame
// pointer past them; from there the plain walk. -1 where a library frame is
// not known, or what the entries say does not look like a stack: let the
// unwinder walk, and learn.
inline int walk_through_known_libraries(const std::uintptr_t* fp, void** frames, int max_depth) noexcept {
  stack_bounds& b = this_stack;
  if (LEAKGUARD_UNLIKELY(!b.known)) find_stack_bounds(b);
  const std::uintptr_t limit = b.hi - 2 * sizeof(void*);
  auto on_stack = [&](std::uintptr_t at) { return at >= b.lo && at < limit; };
  if (b.hi == 0 || !on_stack(reinterpret_cast<std::uintptr_t>(fp))) return -1;
  int n = 0;
  while (n < max_depth) {
    std::uintptr_t next = fp[0];
    std::uintptr_t pc = fp[1];
    if (pc == 0) return n;
    frames[n++] = reinterpret_cast<void*>(pc);
    if (lacks_frame_pointers(reinterpret_cast<void*>(pc))) {
      // The library's frame: the return address into it is at fp + 8, the
      // stack pointer at its call just above; `next` is its frame pointer
      // register then.
      std::uintptr_t slot = reinterpret_cast<std::uintptr_t>(fp + 1);
      do {
        library_frames::frame f;
        if (!known_library_frames.find(pc, f)) return -1;
        const std::uintptr_t cfa = slot + sizeof(void*) + f.size;
        if (!on_stack(cfa - sizeof(void*)) || (f.saved_fp && !on_stack(cfa - f.saved_fp))) return -1;
        if (f.saved_fp) next = *reinterpret_cast<const std::uintptr_t*>(cfa - f.saved_fp);
        slot = cfa - sizeof(void*);
        pc = *reinterpret_cast<const std::uintptr_t*>(slot);
        if (!after_a_call(pc)) return -1;
        if (n == max_depth) return n;
        frames[n++] = reinterpret_cast<void*>(pc);
      } while (lacks_frame_pointers(reinterpret_cast<void*>(pc)));
      if (next <= slot || !on_stack(next)) return n;
      const int more = walk_frame_pointers(reinterpret_cast<const std::uintptr_t*>(next), frames + n, max_depth - n);
      return more > 0 ? n + more : n;
    }
    if (next <= reinterpret_cast<std::uintptr_t>(fp) || !on_stack(next)) return n;
    fp = reinterpret_cast<const std::uintptr_t*>(next);
  }
  return n;
}
#endif

#if defined(__x86_64__)
inline constexpr std::uintptr_t no_single_slot = ~std::uintptr_t{0};

// Where a library frame occupying [sp, cfa) kept its caller's frame pointer
// `caller_fp`, as cfa less that slot: 0 if its own register still held it at
// the call (`fp_at_call`), no_single_slot if no slot or more than one does.
inline std::uintptr_t saved_frame_pointer(std::uintptr_t sp, std::uintptr_t cfa, std::uintptr_t fp_at_call,
                                          std::uintptr_t caller_fp) noexcept {
  if (fp_at_call == caller_fp) return 0;
  std::uintptr_t saved = no_single_slot;
  for (std::uintptr_t at = sp; at < cfa; at += sizeof(void*)) {
    if (*reinterpret_cast<const std::uintptr_t*>(at) != caller_fp) continue;
    if (saved != no_single_slot) return no_single_slot;  // two copies: which one is the save?
    saved = cfa - at;
  }
  return saved;
}
#endif

// The unwinder's walk, from the frame that called capture_stack() like the
// frame-pointer walk, as far as the first frame with a frame pointer past the
// library's: from there the frame-pointer walk goes on, a few instructions a
// frame instead of an unwind-table lookup. No lock and no allocation where
// glibc has _dl_find_object (2.35 and later). Each library frame it passes
// is learnt (library_frames) for the walks after it.
LEAKGUARD_NOINLINE int unwind_frames(void** frames, int max_depth) noexcept {
  struct walk {
    void** frames;
    int n, max, skip;
    bool in_library;
    std::uintptr_t frame_pointer;
    // The library frame waiting for its caller's frame pointer and CFA.
    std::uintptr_t pending_pc = 0, pending_sp = 0, pending_fp = 0;
  } state{frames, 0, max_depth, 2, false, 0};  // skipped: this function's frame and capture_stack()'s
  _Unwind_Backtrace(
      [](_Unwind_Context* context, void* arg) -> _Unwind_Reason_Code {
        auto& w = *static_cast<walk*>(arg);
        const _Unwind_Ptr pc = _Unwind_GetIP(context);
        const bool in_library = pc != 0 && lacks_frame_pointers(reinterpret_cast<void*>(pc));
#if defined(__x86_64__)
        // The unwinder's "CFA" of a context is its callee's: the frame's
        // stack pointer at its call.
        const std::uintptr_t sp = _Unwind_GetCFA(context);
        const std::uintptr_t fp = _Unwind_GetGR(context, frame_pointer_register);
        if (w.pending_pc) {  // the caller of a library frame: that frame ends at `sp`
          const library_frames::frame f{sp - w.pending_sp, saved_frame_pointer(w.pending_sp, sp, w.pending_fp, fp)};
          if (f.saved_fp != no_single_slot) known_library_frames.learn(w.pending_pc, f);
          w.pending_pc = 0;
        }
        if (w.skip == 0 && in_library) {
          w.pending_pc = pc;
          w.pending_sp = sp;
          w.pending_fp = fp;
        }
#endif
        if (w.skip > 0) {
          --w.skip;
          return _URC_NO_REASON;
        }
        if (pc == 0 || w.n == w.max) return _URC_END_OF_STACK;
        w.frames[w.n++] = reinterpret_cast<void*>(pc);
        if (in_library) {
          w.in_library = true;
        } else if (w.in_library && frame_pointer_register >= 0) {
          w.frame_pointer = _Unwind_GetGR(context, frame_pointer_register);
          return _URC_END_OF_STACK;
        }
        return _URC_NO_REASON;
      },
      &state);
  if (state.frame_pointer != 0 && state.n < state.max) {
    const int more = walk_frame_pointers(reinterpret_cast<const std::uintptr_t*>(state.frame_pointer),
                                         frames + state.n, state.max - state.n);
    if (more > 0) state.n += more;
  }
  return state.n;
}

// Walks up to `max_depth` return addresses of the calling thread into
// `frames`, from the caller of the function it is inlined into; the number
// walked. Inlined into capture_stack() and stash_stack() alike, so that both
// see leakguard's own frames (internal_frames) the same way.
LEAKGUARD_ALWAYS_INLINE int walk_stack(void** frames, int max_depth) noexcept {
  int n = -1;
  if (LEAKGUARD_UNLIKELY(capture_by_unwinding)) {
#if defined(__x86_64__)
    n = walk_through_known_libraries(static_cast<const std::uintptr_t*>(__builtin_frame_address(0)), frames,
                                     max_depth);
#endif
    if (n < 0) n = unwind_frames(frames, max_depth);
  }
#if defined(__x86_64__) || defined(__aarch64__)
  else n = walk_frame_pointers(static_cast<const std::uintptr_t*>(__builtin_frame_address(0)), frames,
                               max_depth);
#endif
  if (n < 0) n = absl::GetStackTrace(frames, max_depth, 1);
  return n;
}

// Captures `depth` frames of the calling thread below leakguard's own (see
// internal_frames), skipping this function, and interns them.
LEAKGUARD_NOINLINE const stack_trace* capture_stack(int depth) noexcept {
  if (depth <= 0) return nullptr;
  void* frames[max_frames];
  if (depth > max_frames - internal_frames) depth = max_frames - internal_frames;
  return depot.intern(frames, walk_stack(frames, depth + internal_frames), depth);
}

}  // namespace leakguard::detail
