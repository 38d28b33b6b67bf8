// leakguard/impl/retained.hpp — the blocks that outermost scopes judged
// retained (reachable from a global, a static, a thread_local), per site:
// leakguard::retained_sites(), and the line that names a site whose
// retained memory keeps growing, a daemon's slow leak.
//
// Those blocks are owned by one scope_state that is never active (`books`):
// a free settles them like any tracked block, so the per-site live figures
// stay exact. Its lock guards the sites; lock order: after every other
// scope's (it is the parent of all).
//
// "Keeps growing": time is counted in scopes ended in the process since the
// site was first seen, in windows that double in length (64, 128, 256 ...
// scope ends). A site is growing when its live bytes reached a new high in
// `growth_windows` windows with no sign of a plateau between them: a window
// where a verdict added blocks to it without a new high breaks the streak,
// a window where nothing touched the site does not (a list that gains a node
// every 100th request may see no verdict in a 64-scope window). A list that
// gains a node every 50th request is named after about 600 scope ends; a
// cache that stops filling within its first 512 or so stays unnamed for good.
#pragma once

#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "internal_memory.hpp"
#include "scope_state.hpp"

namespace leakguard::detail {

struct stack_trace;

inline constexpr std::uint64_t growth_first_window = 64;
inline constexpr int growth_windows = 4;

struct retained_site_state {
  std::size_t live_blocks = 0;
  std::size_t live_bytes = 0;
  std::size_t peak_bytes = 0;
  std::uint64_t scopes = 0;      // verdicts that added blocks to it
  std::uint64_t first_ends = 0;  // process scope ends when first seen
  int last_high_window = -2;     // the window of its latest new high
  int flat_window = -2;          // the latest window where it was added to without a new high
  int streak = 0;                // windows with a new high, no flat window between them
  bool growing = false;
  std::size_t named_bytes = 0;   // live bytes when last named in the log
  std::chrono::system_clock::time_point first_seen{}, last_seen{};
};

// A site that started growing, or doubled since it was last named: for the log.
struct growth_event {
  const stack_trace* stack;
  retained_site_state state;
};

struct retained_books {
  scope_state* state = nullptr;  // never active; null until the first retained block
  std::unordered_map<const stack_trace*, retained_site_state, std::hash<const stack_trace*>,
                     std::equal_to<const stack_trace*>,
                     internal_allocator<std::pair<const stack_trace* const, retained_site_state>>>
      sites;
};

inline retained_books& retained() {
  static no_destroy<retained_books> books;
  return books.get();
}

// The owner of the retained books, for retained_sites() (null until made).
inline constinit std::atomic<scope_state*> retained_state{nullptr};

// The owner of retained blocks, made on first use (a pooled scope_state, so
// that fork's prepare handler locks it with the others). Null without memory.
inline scope_state* retained_owner() {
  static scope_state* const state = [] {
    scope_state* s = acquire_scope_state();
    if (s) {
      lock_guard g(s->lock);
      s->clear_lists();
      set_parent(s, nullptr, 0);
      s->active = false;
      s->retained_books = true;
      retained_state.store(s, std::memory_order_release);
    }
    return s;
  }();
  return state;
}

// The window (0, 1, 2 ...) of `elapsed` scope ends after a site was first
// seen; -1 while it is warming up.
inline int growth_window(std::uint64_t elapsed) noexcept {
  if (elapsed < growth_first_window) return -1;
  return static_cast<int>(std::bit_width(elapsed / growth_first_window)) - 1;
}

// REQUIRES: owner->lock. Counts a block moved into the retained books.
inline void count_retained(retained_books& books, const block_record* r, std::size_t size) {
  retained_site_state& site = books.sites[stack_of(r)];
  ++site.live_blocks;
  site.live_bytes += size;
}

// REQUIRES: owner->lock. After a verdict added blocks at these stacks: the
// sites' growth, and the events worth a log line.
inline void note_growth(retained_books& books, const internal_vector<const stack_trace*>& touched,
                        std::uint64_t scope_ends, internal_vector<growth_event>& events) {
  const auto now = std::chrono::system_clock::now();
  for (const stack_trace* stack : touched) {
    retained_site_state& site = books.sites[stack];
    if (site.scopes++ == 0) {
      site.first_seen = now;
      site.first_ends = scope_ends;
    }
    site.last_seen = now;
    const int window = growth_window(scope_ends - site.first_ends);
    if (site.live_bytes <= site.peak_bytes) {
      site.flat_window = window;
      continue;
    }
    site.peak_bytes = site.live_bytes;
    if (window < 0 || window == site.last_high_window) continue;
    site.streak = site.flat_window <= site.last_high_window ? site.streak + 1 : 1;
    site.last_high_window = window;
    if (site.streak >= growth_windows) site.growing = true;
    if (site.growing && site.live_bytes >= 2 * site.named_bytes) {
      site.named_bytes = site.live_bytes;
      events.push_back({stack, site});
    }
  }
}

// REQUIRES: owner->lock. A retained block changed size (realloc).
inline void resize_retained(retained_books& books, const block_record* r, std::size_t old_size,
                            std::size_t new_size) noexcept {
  auto it = books.sites.find(stack_of(r));
  if (it == books.sites.end()) return;
  it->second.live_bytes += new_size - old_size;
}

// REQUIRES: owner->lock. A retained block leaves the books (freed, ignored, released).
inline void forget_retained(retained_books& books, const block_record* r, std::size_t size) noexcept {
  auto it = books.sites.find(stack_of(r));
  if (it == books.sites.end()) return;
  --it->second.live_blocks;
  it->second.live_bytes -= size;
}

}  // namespace leakguard::detail
