// leakguard/scope.hpp — leak scopes (zones inside them: zones.hpp).
//
//   void handle(const request& r) {
//     LEAKGUARD_SCOPE("handle");   // to the end of this block
//     ...                          // everything allocated here must be freed here
//   }
//
// An allocation belongs to the scopes active on the allocating thread (all
// of them, when nested) and to every active all_threads scope. A free from
// any thread settles the block in every scope it belongs to.
//
// The verdict. When a scope ends, the blocks it still holds are judged:
// those reachable from a global, a function-local static or a thread_local
// are retained (not leaks, unless allow_retained = false); the others are
// leaked, each `direct` or `indirect` (reachable only from other leaked
// blocks). With a grace period, the judgement waits: a surviving block freed
// by any thread before it runs out was handed on, not leaked. When leaks
// remain or a budget was exceeded, the leak handler is called once with a
// report. A block is reported by one scope only: leaked blocks are never
// reported again by the enclosing scopes; retained ones pass to the
// enclosing scope, which judges them again when it ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <source_location>
#include <string>
#include <string_view>

#include "config.hpp"
#include "detail/runtime_api.hpp"
#include "handler.hpp"
#include "report.hpp"
#include "zones.hpp"

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
  // How long blocks that outlive the scope may take to be freed before they
  // count as leaked: a response object the framework frees after the
  // handler, a buffer handed to a writer thread. The verdict is then given
  // on a leakguard thread (or by flush(), or at exit), through this scope's
  // handler. Negative: the runtime option grace_ms (0 by default: at once).
  std::chrono::milliseconds grace{-1};
  // Retained blocks (reachable from a global, a static, a thread_local) are
  // not leaks: a lazily built singleton or cache passes. The price: a
  // registry that keeps what it should drop is not this scope's leak; it
  // shows in retained_sites() as a growing site. false: retained blocks are
  // leaks too, as every block still live was before the verdicts.
  bool allow_retained = true;
};

// What happened inside one scope so far, counting only blocks attributed to
// it (including those of scopes nested in it).
struct scope_stats {
  std::uint64_t allocations = 0;
  std::uint64_t deallocations = 0;
  std::size_t live_blocks = 0;
  std::size_t live_bytes = 0;
  std::size_t peak_bytes = 0;
  // Blocks that outlived the end of a scope nested in this one and waited
  // out its grace period, and those of them freed in time (not leaks).
  std::size_t escaped_blocks = 0;
  std::size_t escaped_bytes = 0;
  std::size_t escaped_freed_blocks = 0;
  std::size_t escaped_freed_bytes = 0;
};

#if LEAKGUARD_ENABLED

// RAII leak scope; see the file comment. Not copyable, not movable.
class LEAKGUARD_API scope {
 public:
  scope(std::source_location where = std::source_location::current()) : scope(scope_options{}, where) {}
  explicit scope(std::string_view label, std::source_location where = std::source_location::current())
      : scope(scope_options{.label = label}, where) {}
  explicit scope(scope_options options, std::source_location where = std::source_location::current());
  scope(const scope&) = delete;
  scope& operator=(const scope&) = delete;

  // The check: calls the leak handler once if blocks are still live or a
  // budget was exceeded. Throws only what a handler throws.
  ~scope() noexcept(false);

  // The blocks allocated in the scope (or scopes nested in it) and still
  // live, and any budget violation so far.
  report check() const;

  scope_stats stats() const;

  // Ends the scope now without a check; its live blocks go to the
  // enclosing scope. The destructor then does nothing.
  void dismiss() noexcept;

 private:
  void end_failure_injection() noexcept;
  void release() noexcept;  // frees the label and handler now: a scope object may outlive its scope

  detail::scope_state* state_ = nullptr;
  std::uint64_t generation_ = 0;
  std::uint64_t saved_fail_countdown_ = 0;
  bool injects_failure_ = false;
  std::source_location where_;
  int uncaught_;
  bool allow_retained_ = true;
  std::chrono::milliseconds grace_{0};
  leak_handler handler_;
  std::string label_;
};

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

LEAKGUARD_API context current_context() noexcept;

// RAII: while it lives, this thread's allocations are attributed to the
// scopes of `ctx` (instead of the thread's own). If those scopes have ended,
// nothing is attributed.
//
//   auto ctx = leakguard::current_context();
//   pool.submit([ctx] { leakguard::adopt a{ctx}; work(); });
class LEAKGUARD_API adopt {
 public:
  explicit adopt(const context& ctx) noexcept;
  ~adopt();
  adopt(const adopt&) = delete;
  adopt& operator=(const adopt&) = delete;

 private:
  detail::scope_state* saved_ = nullptr;
  std::uint64_t saved_generation_ = 0;
};

// Hands block `p` (a pointer leakguard returned), and every block of the
// same scope reachable from it, out of its scope: to the enclosing scope if
// there is one (it judges them when it ends), else to no one. For an object
// built in a handler and handed to a framework that frees it later. A
// pointer leakguard did not allocate is ignored.
LEAKGUARD_API void release(const void* p) noexcept;

// Gives every pending verdict (scopes whose grace period is still running)
// now, on the calling thread, and waits for those being given elsewhere;
// then writes log_leak's pending summary lines. For tests, and before a
// clean shutdown; leakguard also does it at exit.
LEAKGUARD_API void flush();

#define LEAKGUARD_SCOPE(...) ::leakguard::scope LEAKGUARD_CONCAT(leakguard_scope_, __COUNTER__){__VA_ARGS__}

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
class context {
 public:
  bool empty() const noexcept { return true; }
};
inline context current_context() noexcept { return {}; }
inline void release(const void*) noexcept {}
inline void flush() {}
class adopt {
 public:
  explicit adopt(const context&) noexcept {}
  adopt(const adopt&) = delete;
  adopt& operator=(const adopt&) = delete;
};

#define LEAKGUARD_SCOPE(...)

#endif

}  // namespace leakguard
