// leakguard/scope.hpp — leak scopes and the zones inside them.
//
//   void handle(const request& r) {
//     LEAKGUARD_SCOPE("handle");   // to the end of this block
//     ...                          // everything allocated here must be freed here
//   }
//
// An allocation belongs to the scopes active on the allocating thread (all
// of them, when nested) and to every active all_threads scope. A free from
// any thread settles the block in every scope it belongs to. When a scope
// ends with blocks still live, or over budget, the leak handler is called
// once with a report; the blocks then belong to the enclosing scope.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <source_location>
#include <string>
#include <string_view>
#include <utility>

#include "config.hpp"
#include "handler.hpp"
#include "report.hpp"

#if LEAKGUARD_ENABLED
#include "detail/scope_books.hpp"
#endif

namespace leakguard {

inline constexpr std::size_t unlimited = static_cast<std::size_t>(-1);

struct scope_options {
  std::string_view label = {};              // shown in reports (copied)
  std::size_t max_allocations = unlimited;  // allows this many allocations, no more
  std::size_t max_bytes = unlimited;        // allows this many bytes in total
  bool all_threads = false;  // also attribute other threads' allocations while active
  leak_handler handler = {};  // this scope's handler; empty: the global one
  // Failure injection: if N > 0, the Nth allocation this thread makes inside
  // the scope fails (operator new throws std::bad_alloc, nothrow forms and
  // allocators report failure as usual). See failure_injection.hpp.
  std::size_t fail_allocation = 0;
};

// What happened inside one scope so far, counting only blocks attributed to
// it (including those of scopes nested in it).
struct scope_stats {
  std::uint64_t allocations = 0;
  std::uint64_t deallocations = 0;
  std::size_t live_blocks = 0;
  std::size_t live_bytes = 0;
  std::size_t peak_bytes = 0;
};

#if LEAKGUARD_ENABLED

namespace detail {
// Runs a handler with tracking off. While unwinding, a throwing handler is
// reported and dropped instead of terminating the program.
inline void call_leak_handler(const leak_handler& own, const report& r, int uncaught_at_open) {
  internal_guard guard;
  try {
    ledger().record(r);
  } catch (const std::bad_alloc&) {
    count_lost(lost.reports);
  }
  struct restore {
    const report* saved;
    ~restore() { dispatching = saved; }
  } restore_note{std::exchange(dispatching, &r)};
  leak_handler handler = own ? own : leak_handler_slot().get();
  if (!handler) handler = &default_leak_handler;
  if (std::uncaught_exceptions() <= uncaught_at_open) return handler(r);
  try {
    handler(r);
  } catch (...) {
    std::fputs("leakguard: leak handler threw while the scope was unwound by another exception; dropped\n", stderr);
  }
}
}  // namespace detail

// RAII leak scope; see the file comment. Not copyable, not movable.
class scope {
 public:
  scope(std::source_location where = std::source_location::current()) : scope(scope_options{}, where) {}
  explicit scope(std::string_view label, std::source_location where = std::source_location::current())
      : scope(scope_options{.label = label}, where) {}
  explicit scope(scope_options options, std::source_location where = std::source_location::current())
      : where_(where), uncaught_(std::uncaught_exceptions()), handler_(std::move(options.handler)) {
    if (!options.label.empty()) {
      detail::internal_guard guard;  // the label's copy is leakguard's, not the user's
      label_ = std::string(options.label);
    }
    state_ = detail::open_scope({options.max_allocations, options.max_bytes, options.all_threads}, generation_);
    if ((injects_failure_ = options.fail_allocation != 0))
      saved_fail_countdown_ = std::exchange(detail::tls.fail_countdown, options.fail_allocation);
  }
  scope(const scope&) = delete;
  scope& operator=(const scope&) = delete;

  // The check: calls the leak handler once if blocks are still live or a
  // budget was exceeded. Throws only what a handler throws.
  ~scope() noexcept(false) {
    if (!state_) {
      release();
      return;
    }
    end_failure_injection();
    detail::scope_snapshot snapshot;  // internal memory: malloc, not operator new
    detail::end_scope(std::exchange(state_, nullptr), &snapshot);
    report r;
    if (!snapshot.blocks.empty() || snapshot.violation.count) {
      detail::internal_guard guard;
      try {
        r = detail::build_report(label_, where_, snapshot);
      } catch (const std::bad_alloc&) {  // the next report says so
        detail::count_lost(detail::lost.reports);
      }
      if (r.empty()) detail::give_back(r.unrecorded());
    }
    if (!r.empty()) detail::call_leak_handler(handler_, r, uncaught_);
    release();
  }

  // The blocks allocated in the scope (or scopes nested in it) and still
  // live, and any budget violation so far.
  report check() const {
    detail::internal_guard guard;
    detail::scope_snapshot snapshot;
    if (state_) detail::collect_nested(state_, generation_, snapshot);
    return detail::build_report(label_, where_, snapshot);
  }

  scope_stats stats() const {
    scope_stats s;
    if (state_ && detail::lock_if_current(state_, generation_)) {
      s = {state_->allocations, state_->deallocations, state_->live_blocks, state_->live_bytes, state_->peak_bytes};
      state_->lock.unlock();
    }
    return s;
  }

  // Ends the scope now without a check; its live blocks go to the
  // enclosing scope. The destructor then does nothing.
  void dismiss() noexcept {
    if (!state_) return;
    end_failure_injection();
    detail::end_scope(std::exchange(state_, nullptr), nullptr);
  }

 private:
  void end_failure_injection() noexcept {
    if (injects_failure_) detail::tls.fail_countdown = saved_fail_countdown_;
  }

  // Frees the label and handler now: a scope object may outlive its scope.
  void release() noexcept {
    std::string().swap(label_);
    leak_handler().swap(handler_);
  }

  detail::scope_state* state_ = nullptr;
  std::uint64_t generation_ = 0;
  std::uint64_t saved_fail_countdown_ = 0;
  bool injects_failure_ = false;
  std::source_location where_;
  int uncaught_;
  leak_handler handler_;
  std::string label_;
};

// Blocks allocated on this thread while an ignore_scope is active are never
// attributed to any scope, hence never reported (one-time initialisation,
// caches meant to live for the whole process).
class ignore_scope {
 public:
  ignore_scope() noexcept { ++detail::tls.ignore_depth; }
  ~ignore_scope() { --detail::tls.ignore_depth; }
  ignore_scope(const ignore_scope&) = delete;
  ignore_scope& operator=(const ignore_scope&) = delete;
};

// Any allocation on this thread while it is active is a violation, reported
// through the leak handler when it ends (label "no_alloc_scope").
class no_alloc_scope {
 public:
  no_alloc_scope(std::source_location where = std::source_location::current()) noexcept
      : where_(where), uncaught_(std::uncaught_exceptions()) {
    detail::thread_state& t = detail::tls;
    zone_.outer = t.no_alloc;
    t.no_alloc = &zone_;
    t.set(detail::slow_no_alloc);
  }
  no_alloc_scope(const no_alloc_scope&) = delete;
  no_alloc_scope& operator=(const no_alloc_scope&) = delete;
  ~no_alloc_scope() noexcept(false) {
    detail::thread_state& t = detail::tls;
    if (t.no_alloc == &zone_) t.no_alloc = zone_.outer;
    if (!t.no_alloc) t.clear(detail::slow_no_alloc);
    if (zone_.count == 0) return;
    report r;
    try {
      detail::internal_guard guard;
      const detail::symbolized_stack st = detail::symbolize(zone_.stack, max_stack_depth);
      std::string msg = "allocation inside a no_alloc_scope (" + std::to_string(zone_.count) +
                        (zone_.count == 1 ? " allocation)" : " allocations)");
      std::vector<violation> v{violation{violation_kind::no_alloc, zone_.size, zone_.serial, st.site, st.frames, msg}};
      r = report("no_alloc_scope", where_, {}, std::move(v), detail::take_lost());
    } catch (const std::bad_alloc&) {  // the next report says so
      detail::count_lost(detail::lost.reports);
      return;
    }
    detail::call_leak_handler({}, r, uncaught_);
  }

 private:
  detail::no_alloc_state zone_;
  std::source_location where_;
  int uncaught_;
};

// This live block is never reported: it leaves the books of every scope it
// belongs to (their live counts drop; deallocations do not). Pointers
// leakguard did not allocate, and null, are ignored.
inline void ignore(const void* p) noexcept {
  if (!p || !detail::header_readable(p)) return;
  detail::block_header* h = detail::header_of(p);
  if (h->magic() != detail::header_magic || (h->flags() & detail::flag_freed)) return;
  if (h->flags() & detail::flag_tracked) detail::settle(h, false);
}

// The calling thread's active scopes, to hand to another thread.
class context {
 public:
  context() = default;
  bool empty() const noexcept { return scope_ == nullptr; }

 private:
  friend context current_context() noexcept;
  friend class adopt;
  detail::scope_state* scope_ = nullptr;
  std::uint64_t generation_ = 0;
};

inline context current_context() noexcept {
  context c;
  c.scope_ = detail::tls.innermost;
  c.generation_ = detail::tls.innermost_generation;
  return c;
}

// RAII: while it lives, this thread's allocations are attributed to the
// scopes of `ctx` (instead of the thread's own). If those scopes have ended,
// nothing is attributed.
//
//   auto ctx = leakguard::current_context();
//   pool.submit([ctx] { leakguard::adopt a{ctx}; work(); });
class adopt {
 public:
  explicit adopt(const context& ctx) noexcept {
    detail::thread_state& t = detail::tls;
    if (t.slow.load(std::memory_order_relaxed) & detail::slow_unregistered) detail::register_thread(t);
    saved_ = t.innermost;
    saved_generation_ = t.innermost_generation;
    t.innermost = ctx.scope_;
    t.innermost_generation = ctx.generation_;
    if (t.innermost) t.set(detail::slow_scoped);
    else t.clear(detail::slow_scoped);
  }
  ~adopt() {
    detail::thread_state& t = detail::tls;
    t.innermost = saved_;
    t.innermost_generation = saved_generation_;
    if (t.innermost) t.set(detail::slow_scoped);
    else t.clear(detail::slow_scoped);
  }
  adopt(const adopt&) = delete;
  adopt& operator=(const adopt&) = delete;

 private:
  detail::scope_state* saved_ = nullptr;
  std::uint64_t saved_generation_ = 0;
};

#define LEAKGUARD_SCOPE(...) ::leakguard::scope LEAKGUARD_CONCAT(leakguard_scope_, __COUNTER__){__VA_ARGS__}
#define LEAKGUARD_IGNORE_SCOPE() ::leakguard::ignore_scope LEAKGUARD_CONCAT(leakguard_ignore_, __COUNTER__){}
#define LEAKGUARD_NO_ALLOC() ::leakguard::no_alloc_scope LEAKGUARD_CONCAT(leakguard_no_alloc_, __COUNTER__){}

#else  // LEAKGUARD_DISABLE: the same types, doing nothing.

class scope {
 public:
  scope(std::source_location = std::source_location::current()) noexcept {}
  explicit scope(std::string_view, std::source_location = std::source_location::current()) noexcept {}
  explicit scope(const scope_options&, std::source_location = std::source_location::current()) noexcept {}
  scope(const scope&) = delete;
  scope& operator=(const scope&) = delete;
  ~scope() noexcept(false) {}
  report check() const { return {}; }
  scope_stats stats() const noexcept { return {}; }
  void dismiss() noexcept {}
};
class ignore_scope {
 public:
  ignore_scope() noexcept {}
  ignore_scope(const ignore_scope&) = delete;
  ignore_scope& operator=(const ignore_scope&) = delete;
};
class no_alloc_scope {
 public:
  no_alloc_scope(std::source_location = std::source_location::current()) noexcept {}
  no_alloc_scope(const no_alloc_scope&) = delete;
  no_alloc_scope& operator=(const no_alloc_scope&) = delete;
};
inline void ignore(const void*) noexcept {}
class context {
 public:
  bool empty() const noexcept { return true; }
};
inline context current_context() noexcept { return {}; }
class adopt {
 public:
  explicit adopt(const context&) noexcept {}
  adopt(const adopt&) = delete;
  adopt& operator=(const adopt&) = delete;
};

#define LEAKGUARD_SCOPE(...)
#define LEAKGUARD_IGNORE_SCOPE()
#define LEAKGUARD_NO_ALLOC()

#endif

}  // namespace leakguard
