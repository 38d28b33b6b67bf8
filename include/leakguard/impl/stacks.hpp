// leakguard/impl/stacks.hpp — allocation stacks: capture and interning.
//
// Capture is the dominant cost of a tracked allocation, so a stack is only a
// list of return addresses here; names and lines are looked up when a report
// is built (symbolize.hpp). Identical stacks are stored once in a depot that
// is never freed: a lock-free hash table whose chains only ever grow at the
// head, so lookups take no lock and a node's address is its identity.
#pragma once

#include <absl/debugging/stacktrace.h>
#include <pthread.h>
#include <unwind.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

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

struct stack_trace {
  const stack_trace* next;  // depot chain
  std::uint64_t hash;
  std::uint32_t depth;       // frames captured, leakguard's own included
  std::uint32_t user_depth;  // frames asked for: a report shows at most these
  void* frames[];  // return addresses, innermost first
};

// Stands for the stack of a tracked block that the depot had no memory for;
// never dereferenced.
inline const stack_trace* not_recorded() noexcept { return reinterpret_cast<const stack_trace*>(2 * alignof(stack_trace)); }

class stack_depot {
 public:
  // The interned copy of `frames[0..depth)`; null if depth is 0, not_recorded() if memory ran out.
  const stack_trace* intern(void* const* frames, int depth, int user_depth) noexcept {
    if (depth <= 0) return nullptr;
    const std::uint64_t hash = hash_frames(frames, depth) ^ static_cast<std::uint64_t>(user_depth) << 56;
    std::atomic<const stack_trace*>& bucket = buckets_[hash & (bucket_count - 1)];
    const stack_trace* head = bucket.load(std::memory_order_acquire);
    for (;;) {
      for (const stack_trace* s = head; s; s = s->next) {
        if (s->hash == hash && s->depth == static_cast<std::uint32_t>(depth) &&
            s->user_depth == static_cast<std::uint32_t>(user_depth) &&
            same_frames(*s, frames, depth))
          return s;
      }
      auto* fresh = static_cast<stack_trace*>(arena_allocate(sizeof(stack_trace) + depth * sizeof(void*)));
      if (!fresh) return not_recorded();
      fresh->next = head;
      fresh->hash = hash;
      fresh->depth = static_cast<std::uint32_t>(depth);
      fresh->user_depth = static_cast<std::uint32_t>(user_depth);
      std::memcpy(fresh->frames, frames, depth * sizeof(void*));
      if (bucket.compare_exchange_strong(head, fresh, std::memory_order_acq_rel)) return fresh;
      // Lost a race: `head` now holds the new chain; search it again. The
      // node we made is dropped into the arena, a rare few bytes.
    }
  }

  spin_lock& arena_lock() noexcept { return arena_lock_; }  // fork.hpp

 private:
  static constexpr std::size_t bucket_count = std::size_t{1} << 16;
  static constexpr std::size_t chunk_size = std::size_t{1} << 16;

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

  void* arena_allocate(std::size_t bytes) noexcept {
    bytes = (bytes + 15) & ~std::size_t{15};
    if (out_of_books(book_stack)) return nullptr;
    lock_guard g(arena_lock_);
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

  std::atomic<const stack_trace*> buckets_[bucket_count] = {};
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

// The unwinder's walk, from the frame that called capture_stack() like the
// frame-pointer walk, as far as the first frame with a frame pointer past the
// library's: from there the frame-pointer walk goes on, a few instructions a
// frame instead of an unwind-table lookup. No lock and no allocation where
// glibc has _dl_find_object (2.35 and later).
LEAKGUARD_NOINLINE int unwind_frames(void** frames, int max_depth) noexcept {
  struct walk {
    void** frames;
    int n, max, skip;
    bool in_library;
    std::uintptr_t frame_pointer;
  } w{frames, 0, max_depth, 2, false, 0};  // skipped: this function's frame and capture_stack()'s
  _Unwind_Backtrace(
      [](_Unwind_Context* context, void* arg) -> _Unwind_Reason_Code {
        auto& w = *static_cast<walk*>(arg);
        const _Unwind_Ptr pc = _Unwind_GetIP(context);
        if (w.skip > 0) {
          --w.skip;
          return _URC_NO_REASON;
        }
        if (pc == 0 || w.n == w.max) return _URC_END_OF_STACK;
        w.frames[w.n++] = reinterpret_cast<void*>(pc);
        if (lacks_frame_pointers(reinterpret_cast<void*>(pc))) {
          w.in_library = true;
        } else if (w.in_library && frame_pointer_register >= 0) {
          w.frame_pointer = _Unwind_GetGR(context, frame_pointer_register);
          return _URC_END_OF_STACK;
        }
        return _URC_NO_REASON;
      },
      &w);
  if (w.frame_pointer != 0 && w.n < w.max) {
    const int more = walk_frame_pointers(reinterpret_cast<const std::uintptr_t*>(w.frame_pointer), frames + w.n,
                                         w.max - w.n);
    if (more > 0) w.n += more;
  }
  return w.n;
}

// Captures `depth` frames of the calling thread below leakguard's own (see
// internal_frames), skipping this function, and interns them.
LEAKGUARD_NOINLINE const stack_trace* capture_stack(int depth) noexcept {
  if (depth <= 0) return nullptr;
  void* frames[max_frames];
  if (depth > max_frames - internal_frames) depth = max_frames - internal_frames;
  int n = -1;
  if (LEAKGUARD_UNLIKELY(capture_by_unwinding)) n = unwind_frames(frames, depth + internal_frames);
#if defined(__x86_64__) || defined(__aarch64__)
  else n = walk_frame_pointers(static_cast<const std::uintptr_t*>(__builtin_frame_address(0)), frames,
                               depth + internal_frames);
#endif
  if (n < 0) n = absl::GetStackTrace(frames, depth + internal_frames, 1);
  return depot.intern(frames, n, depth);
}

}  // namespace leakguard::detail
