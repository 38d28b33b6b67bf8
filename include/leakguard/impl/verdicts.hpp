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
#include "sort.hpp"
#include "verdict_limits.hpp"

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
  const suppression_snapshot list = suppressions_now();
  for (const growth_event& e : events) {
    if (suppressed_retained(e.stack, list)) continue;
    const std::string site = symbolize(e.stack, max_stack_depth).site;
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
  const suppression_snapshot list = suppressions_now();
  for (const auto& [stack, state] : by_stack) {
    if (state.live_blocks == 0 || suppressed_retained(stack, list)) continue;
    std::string site = symbolize(stack, max_stack_depth).site;
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
  sort_by(out, [](const retained_site& s) { return descending(s.live_bytes); });
  return out;
}

// True on a thread that is giving a verdict (its handler may call flush()).
inline constinit thread_local bool giving_verdict = false;

// Gives one verdict: what the scope held (`snap`, judged in `kinds` unless
// null) is reported through its handler, then its books close. `uncaught`
// as for call_leak_handler.
inline void give_verdict(pending_verdict& v, const scope_snapshot& snap, const verdict_kinds* kinds, int uncaught) {
  internal_guard guard;
  report r;
  internal_vector<std::uintptr_t> retained;
  if (!snap.blocks.empty() || snap.violation.count) {
    try {
      r = build_report(std::move(v.label), v.where, snap, {}, v.rules, &retained, kinds);
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

using verdict_batch = internal_vector<pending_verdict>;

// Gives a batch of verdicts, in order, with one scan of the roots for all of
// them: a server whose every request leaks pays for one scan per batch, not
// per request. Judging them together is judging them one after another,
// because a verdict hands its retained blocks to a scope that is still open
// (an ended scope's waiting children move to its parent: bypass), never to
// another scope of the batch. Returns the first exception a handler threw.
inline std::exception_ptr give_verdicts(std::span<pending_verdict> batch, int uncaught) noexcept {
  internal_guard guard;
  std::exception_ptr first;
  try {
    internal_vector<scope_snapshot> snaps(batch.size());
    // The verdicts whose survivors are all suppressed are not scanned for.
    internal_vector<const scope_snapshot*> judged_snaps;
    internal_vector<std::size_t> kinds_of(batch.size(), batch.size());  // index in `kinds`; batch.size(): none
    for (std::size_t i = 0; i < batch.size(); ++i) {
      collect_survivors(batch[i].state, snaps[i]);
      if (all_suppressed(snaps[i])) continue;
      kinds_of[i] = judged_snaps.size();
      judged_snaps.push_back(&snaps[i]);
    }
    internal_vector<verdict_kinds> kinds(judged_snaps.size());
    bool judged = true;
    try {
      judge(judged_snaps, kinds);
    } catch (const std::bad_alloc&) {  // each verdict scans on its own
      judged = false;
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      try {
        const bool has_kinds = judged && kinds_of[i] < kinds.size();
        give_verdict(batch[i], snaps[i], has_kinds ? &kinds[kinds_of[i]] : nullptr, uncaught);
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
  } catch (const std::bad_alloc&) {  // no memory for the batch: one at a time
    for (pending_verdict& v : batch) {
      try {
        scope_snapshot snap;
        collect_survivors(v.state, snap);
        give_verdict(v, snap, nullptr, uncaught);
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
  }
  return first;
}


inline void* verdict_thread_main(void*) {
  internal_guard guard;  // for the thread's whole life
  // Listed as inside leakguard from the start: a test's verdict reads the
  // frames of every other thread that is not (thread_stacks.hpp).
  ensure_registered(tls);
  verdict_queue& q = verdicts();
  std::unique_lock lock(q.mutex);
  verdict_batch batch;
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
    if (batch.capacity() == 0) {
      try {
        batch.reserve(max_batch);
      } catch (const std::bad_alloc&) {  // flush() and exit give them meanwhile
        q.wake().wait_for(lock, std::chrono::milliseconds(100));
        continue;
      }
    }
    const bool was_full = q.pending.size() >= max_queued;
    do {  // moves cannot throw, and the reserve made room
      batch.push_back(std::move(q.pending.front()));
      q.pending.pop_front();
    } while (!q.pending.empty() && q.pending.front().deadline <= now && batch.size() < batch.capacity());
    q.in_progress += static_cast<int>(batch.size());
    lock.unlock();
    if (was_full) q.wake().notify_all();  // scopes' threads wait for room
    if (give_verdicts(batch, 0))
      std::fputs("leakguard: a leak handler threw on leakguard's verdict thread; dropped\n", stderr);
    lock.lock();
    q.in_progress -= static_cast<int>(batch.size());
    batch.clear();
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
// period, or whose report is written off its thread (`v` is moved from).
// False, leaving `v` whole, when the queue is full: the caller gives it.
// Throws std::bad_alloc, leaving `v` whole.
inline bool queue_verdict(pending_verdict& v) {
  internal_guard guard;
  verdict_queue& q = verdicts();
  bool earliest;
  {
    std::unique_lock lock(q.mutex);
    // A flood of verdicts due now: wait for leakguard's thread to take a
    // batch, which it judges with one scan, rather than give this one here
    // with a scan of its own. Not for a thread that is not there (not
    // started, a forked child, exit; or this is it), nor for deadlines still
    // to come (grace periods), nor for long.
    const verdict_clock::time_point give_up = verdict_clock::now() + std::chrono::seconds(1);
    while (q.pending.size() >= max_queued) {
      const bool working = q.thread_running && !q.stopping && !pthread_equal(q.thread, pthread_self()) &&
                           (q.in_progress > 0 || q.pending.front().deadline <= verdict_clock::now());
      if (!working || q.wake().wait_until(lock, give_up) == std::cv_status::timeout) {
        verdicts_given_in_place.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
    }
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
  return true;
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

// leakguard::flush(): every pending verdict now, on this thread, after
// those leakguard's thread is giving (reports keep the order the scopes
// ended in). The first exception a handler throws is rethrown once every
// verdict was given.
inline void flush_verdicts() {
  internal_guard guard;
  verdict_queue& q = verdicts();
  verdict_batch all;
  {
    std::unique_lock lock(q.mutex);
    if (!giving_verdict) q.wake().wait(lock, [&] { return q.in_progress == 0; });
    all.reserve(q.pending.size());  // moves cannot throw once there is room
    for (pending_verdict& v : q.pending) all.push_back(std::move(v));
    q.pending.clear();
  }
  std::exception_ptr first;
  for (std::size_t at = 0; at < all.size(); at += max_batch) {
    const std::span<pending_verdict> batch(all.data() + at, std::min(max_batch, all.size() - at));
    if (std::exception_ptr e = give_verdicts(batch, std::uncaught_exceptions()); e && !first) first = e;
  }
  if (!giving_verdict) {
    std::unique_lock lock(q.mutex);
    q.wake().wait(lock, [&] { return q.in_progress == 0; });
  }
  if (first) std::rethrow_exception(first);
}

// In on_leak=log mode (the default handler with on_leak=log, or log_leak
// itself) a scope's verdict is given on leakguard's thread: the scan, the
// symbols, the text and the write stay off the thread that ended the scope.
// Any other handler (a test's, abort_on_leak, the user's) is called on that
// thread, at the scope's end, as before. The choice is made at the end, with
// the handler then in force. The default handler, which set_leak_handler()
// returns when none was set (and a program may set again), follows on_leak.
inline bool reports_off_thread(const leak_handler& own) {
  auto logs = [](const leak_handler& h) {
    auto* f = h ? h.target<void (*)(const report&)>() : nullptr;
    if (!h || (f && *f == &default_leak_handler)) return on_leak_log();
    return f && *f == &leakguard::log_leak;
  };
  return own ? logs(own) : leak_handler_slot().test(logs);
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
