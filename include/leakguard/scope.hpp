// leakguard/scope.hpp — leak scopes (zones inside them: zones.hpp).
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
class adopt {
 public:
  explicit adopt(const context&) noexcept {}
  adopt(const adopt&) = delete;
  adopt& operator=(const adopt&) = delete;
};

#define LEAKGUARD_SCOPE(...)

#endif

}  // namespace leakguard
