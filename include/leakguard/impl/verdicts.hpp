// leakguard/impl/verdicts.hpp — a scope's verdict, now or after its grace
// period.
//
// A scope that ends with survivors and a grace period leaves its books open
// (scope_books.hpp: inactive, frees still settle them) and queues a pending
// verdict here. A leakguard thread, started on first need, sleeps until the
// earliest deadline and gives the verdicts that are due; flush() gives every
// pending one at once, on the caller's thread; at exit, an atexit handler
// stops the thread and flushes. The same thread writes log_leak's summary
// lines when their interval ends (schedule_summary). The allocating threads
// never wait for any of it. The thread's own work is leakguard's
// (internal_guard): never attributed to a scope, never in global_stats.
#pragma once

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iterator>
#include <mutex>
#include <new>
#include <span>
#include <source_location>
#include <string>
#include <type_traits>
#include <vector>

#include "../handler.hpp"
#include "handler.hpp"
#include "scope_books.hpp"

namespace leakguard::detail {

using verdict_clock = std::chrono::steady_clock;

struct pending_verdict {  // moves never throw (the verdict thread relies on it)
  scope_state* state;
  verdict_clock::time_point deadline;
  std::string label;
  std::source_location where;
  leak_handler handler;
  verdict_rules rules;
  std::uint64_t scope_ends;  // total_scope_ends() when the scope ended: the clock of retained growth
};
static_assert(std::is_nothrow_move_constructible_v<pending_verdict> && std::is_nothrow_move_assignable_v<pending_verdict>);

using verdict_deque = std::deque<pending_verdict, internal_allocator<pending_verdict>>;

struct verdict_queue {
  std::mutex mutex;  // guards the members below
  alignas(std::condition_variable) unsigned char wake_storage[sizeof(std::condition_variable)];
  // By deadline. malloc'd (internal_allocator): fork's prepare handler may
  // make the queue, and must not allocate through operator new.
  verdict_deque pending;
  int in_progress = 0;                   // verdicts taken off `pending`, being given
  verdict_clock::time_point summary_due = verdict_clock::time_point::max();  // log_interval's next summary
  bool thread_running = false;
  bool stopping = false;                 // exit has begun: no thread any more
  bool exit_hook = false;
  pthread_t thread{};

  verdict_queue() { ::new (static_cast<void*>(wake_storage)) std::condition_variable(); }
  std::condition_variable& wake() noexcept { return *std::launder(reinterpret_cast<std::condition_variable*>(wake_storage)); }
};

inline verdict_queue& verdicts() {
  static no_destroy<verdict_queue> q;
  return q.get();
}

// In on_leak=log mode: one line per retained site that started growing, or
// doubled since it was last named.
inline void log_growth(const growth_events& events) {
  if (events.empty() || current_options().on_leak != leak_action::log) return;
  internal_guard guard;
  const bool json = current_options().report == report_format::json;
  for (const growth_event& e : events) {
    const std::string site = e.stack == not_sampled() ? std::string("(not sampled)")
                                                      : symbolize(e.stack, max_stack_depth).site;
    std::string out;
    if (json) {
      out = "{\"retained_growth\":{\"site\":";
      append_json_string(out, site);
      out += ",\"live_blocks\":" + std::to_string(e.state.live_blocks) +
             ",\"live_bytes\":" + std::to_string(e.state.live_bytes) +
             ",\"scopes\":" + std::to_string(e.state.scopes) + "}}\n";
    } else {
      out = "leakguard: retained memory keeps growing at " + (site.empty() ? std::string("(unknown site)") : site) +
            ": " + std::to_string(e.state.live_blocks) + " blocks, " + std::to_string(e.state.live_bytes) +
            " bytes live, added by " + std::to_string(e.state.scopes) +
            " scopes; reachable from a global, a static or a thread_local (a registry or cache never pruned?)\n";
    }
    write_output(out);
  }
}

// Closes the books of an ended scope after its verdict (finish_scope), and
// logs the retained growth it shows. `scope_ends`: total_scope_ends() when
// the scope ended.
inline void close_verdict(scope_state* s, std::span<const std::uintptr_t> retained, std::uint64_t scope_ends) {
  growth_events events;
  finish_scope(s, retained, scope_ends, &events);
  log_growth(events);
}

// leakguard::retained_sites(): the retained books by stack, symbolized and
// summed by site.
inline std::vector<retained_site> retained_site_list() {
  internal_guard guard;
  std::vector<std::pair<const stack_trace*, retained_site_state>> by_stack;
  if (scope_state* owner = retained_state.load(std::memory_order_acquire)) {
    lock_guard g(owner->lock);
    by_stack.assign(retained().sites.begin(), retained().sites.end());
  }
  std::vector<retained_site> out;
  for (const auto& [stack, state] : by_stack) {
    if (state.live_blocks == 0) continue;
    std::string site = stack == not_sampled() ? std::string("(not sampled)") : symbolize(stack, max_stack_depth).site;
    auto it = std::find_if(out.begin(), out.end(), [&](const retained_site& r) { return r.site == site; });
    if (it == out.end()) {
      out.push_back({std::move(site), 0, 0, 0, false, state.first_seen, state.last_seen});
      it = out.end() - 1;
    }
    it->live_blocks += state.live_blocks;
    it->live_bytes += state.live_bytes;
    it->scopes = std::max(it->scopes, state.scopes);  // one verdict may add to several of a site's stacks
    it->growing |= state.growing;
    it->first_seen = std::min(it->first_seen, state.first_seen);
    it->last_seen = std::max(it->last_seen, state.last_seen);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const retained_site& a, const retained_site& b) { return a.live_bytes > b.live_bytes; });
  return out;
}

// True on a thread that is giving a verdict (its handler may call flush()).
inline constinit thread_local bool giving_verdict = false;

// Gives one verdict: what the scope still holds is judged and reported
// through its handler, then its books close. `uncaught` as for
// call_leak_handler.
inline void give_verdict(pending_verdict& v, int uncaught) {
  internal_guard guard;
  scope_snapshot snap;
  collect_survivors(v.state, snap);
  report r;
  internal_vector<std::uintptr_t> retained;
  if (!snap.blocks.empty() || snap.violation.count) {
    try {
      r = build_report(std::move(v.label), v.where, snap, {}, v.rules, &retained);
    } catch (const std::bad_alloc&) {  // the next report says so; nothing is retained
      count_lost(lost.reports);
      retained.clear();
    }
    if (r.empty()) give_back(r.unrecorded());
  }
  close_verdict(v.state, retained, v.scope_ends);
  if (r.empty()) return;
  struct mark {
    bool saved = std::exchange(giving_verdict, true);
    ~mark() { giving_verdict = saved; }
  } marked;
  call_leak_handler(v.handler, r, uncaught);
}

// On leakguard's thread a handler that throws has no one to throw to.
inline void give_verdict_here(pending_verdict& v) noexcept {
  try {
    give_verdict(v, 0);
  } catch (...) {
    std::fputs("leakguard: a leak handler threw on leakguard's verdict thread; dropped\n", stderr);
  }
}

inline void* verdict_thread_main(void*) {
  internal_guard guard;  // for the thread's whole life
  verdict_queue& q = verdicts();
  std::unique_lock lock(q.mutex);
  while (!q.stopping) {
    const verdict_clock::time_point now = verdict_clock::now();
    if (q.summary_due <= now) {
      q.summary_due = verdict_clock::time_point::max();
      lock.unlock();
      const auto next = write_due_summary();
      lock.lock();
      if (next) q.summary_due = std::min(q.summary_due, std::max(*next, now + std::chrono::milliseconds(1)));
      continue;
    }
    const verdict_clock::time_point next =
        std::min(q.pending.empty() ? verdict_clock::time_point::max() : q.pending.front().deadline, q.summary_due);
    if (next > now) {
      if (next == verdict_clock::time_point::max()) q.wake().wait(lock);
      else q.wake().wait_until(lock, next);
      continue;
    }
    pending_verdict v = std::move(q.pending.front());  // cannot throw: nothing to lose
    q.pending.pop_front();
    ++q.in_progress;
    lock.unlock();
    give_verdict_here(v);
    lock.lock();
    --q.in_progress;
    q.wake().notify_all();  // a flush() may be waiting for it
  }
  return nullptr;
}

inline void flush_verdicts();

inline void stop_verdicts_at_exit() {
  verdict_queue& q = verdicts();
  bool join;
  {
    std::lock_guard lock(q.mutex);
    q.stopping = true;
    join = q.thread_running && !pthread_equal(q.thread, pthread_self());
    q.thread_running = false;
  }
  q.wake().notify_all();
  if (join) pthread_join(q.thread, nullptr);
  try {
    flush_verdicts();
  } catch (...) {
    std::fputs("leakguard: a leak handler threw at exit; dropped\n", stderr);
  }
  write_pending_summary();  // what log_leak summed meanwhile
}

// REQUIRES: q.mutex. Starts the verdict thread if it is not running. If it
// cannot start, verdicts wait for flush() or exit.
inline void start_verdict_thread(verdict_queue& q) {
  if (q.thread_running || q.stopping) return;
  if (!q.exit_hook) q.exit_hook = std::atexit([] { stop_verdicts_at_exit(); }) == 0;
  // Block every signal in the thread: they are the program's to handle.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  q.thread_running = pthread_create(&q.thread, nullptr, verdict_thread_main, nullptr) == 0;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

// Queues the verdict of an ended scope whose survivors wait out a grace
// period (`v` is moved from). Throws std::bad_alloc, leaving `v` whole.
inline void queue_verdict(pending_verdict& v) {
  internal_guard guard;
  verdict_queue& q = verdicts();
  bool earliest;
  {
    std::lock_guard lock(q.mutex);
    // Usually the latest deadline (one grace period for all): at the back.
    auto at = q.pending.end();
    while (at != q.pending.begin() && std::prev(at)->deadline > v.deadline) --at;
    earliest = at == q.pending.begin();
    if (at == q.pending.end()) q.pending.push_back(std::move(v));
    else q.pending.insert(at, std::move(v));
    start_verdict_thread(q);
  }
  // The thread sleeps until the earliest deadline: only a new earliest one
  // needs to wake it (not every request).
  if (earliest) q.wake().notify_all();
}

void schedule_summary(verdict_clock::time_point due) {
  verdict_queue& q = verdicts();
  bool earlier;
  {
    std::lock_guard lock(q.mutex);
    earlier = due < q.summary_due;
    if (earlier) q.summary_due = due;
    start_verdict_thread(q);
  }
  if (earlier) q.wake().notify_all();
}

// leakguard::flush(): every pending verdict now, on this thread; then waits
// for those being given on leakguard's thread. The first exception a
// handler throws is rethrown once every verdict was given.
inline void flush_verdicts() {
  internal_guard guard;
  verdict_queue& q = verdicts();
  verdict_deque all;
  {
    std::lock_guard lock(q.mutex);
    all.swap(q.pending);
  }
  std::exception_ptr first;
  for (pending_verdict& v : all) {
    try {
      give_verdict(v, std::uncaught_exceptions());
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (!giving_verdict) {
    std::unique_lock lock(q.mutex);
    q.wake().wait(lock, [&] { return q.in_progress == 0; });
  }
  if (first) std::rethrow_exception(first);
}

// fork(): the queue's mutex is taken in prepare, so that the child gets the
// list whole; the child has no verdict thread (the next queued verdict
// starts one) and a fresh condition variable (the old one may list the
// vanished thread as a waiter). Verdicts the thread was giving are lost in
// the child; the parent gives them.
inline void verdicts_before_fork() { verdicts().mutex.lock(); }
inline void verdicts_after_fork_in_parent() { verdicts().mutex.unlock(); }
inline void verdicts_after_fork_in_child() {
  verdict_queue& q = verdicts();
  ::new (static_cast<void*>(q.wake_storage)) std::condition_variable();
  q.thread_running = false;
  q.in_progress = 0;
  q.mutex.unlock();
}

// Registered after fork.hpp's handlers (this file comes later in the
// runtime's translation unit), so this prepare handler runs before theirs:
// the queue's mutex is taken before any of leakguard's other locks.
inline const bool verdict_fork_handlers_installed =
    pthread_atfork(&verdicts_before_fork, &verdicts_after_fork_in_parent, &verdicts_after_fork_in_child) == 0;

}  // namespace leakguard::detail
