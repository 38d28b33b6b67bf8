// leakguard/zones.hpp — zones inside (or outside) scopes: what is never
// reported, and where nothing may be allocated.
//
//   { LEAKGUARD_IGNORE_SCOPE(); static auto& table = build_table(); }  // never reported
//   leakguard::ignore(ptr);                   // this one live block is never reported
//   { LEAKGUARD_NO_ALLOC(); hot_loop(); }     // any allocation here is a violation
#pragma once

#include <source_location>

#include "config.hpp"
#include "detail/runtime_api.hpp"

namespace leakguard {

#if LEAKGUARD_ENABLED

// Blocks allocated on this thread while an ignore_scope is active are never
// attributed to any scope, hence never reported (one-time initialisation,
// caches meant to live for the whole process).
class LEAKGUARD_API ignore_scope {
 public:
  ignore_scope() noexcept;
  ~ignore_scope();
  ignore_scope(const ignore_scope&) = delete;
  ignore_scope& operator=(const ignore_scope&) = delete;
};

// Any allocation on this thread while it is active is a violation, reported
// through the leak handler when it ends (label "no_alloc_scope").
class LEAKGUARD_API no_alloc_scope {
 public:
  no_alloc_scope(std::source_location where = std::source_location::current()) noexcept;
  no_alloc_scope(const no_alloc_scope&) = delete;
  no_alloc_scope& operator=(const no_alloc_scope&) = delete;
  ~no_alloc_scope() noexcept(false);

 private:
  detail::no_alloc_state zone_;
  std::source_location where_;
  int uncaught_;
};

// This live block is never reported: it leaves the books of every scope it
// belongs to (their live counts drop; deallocations do not). Pointers
// leakguard did not allocate, and null, are ignored.
LEAKGUARD_API void ignore(const void* p) noexcept;

#define LEAKGUARD_IGNORE_SCOPE() ::leakguard::ignore_scope LEAKGUARD_CONCAT(leakguard_ignore_, __COUNTER__){}
#define LEAKGUARD_NO_ALLOC() ::leakguard::no_alloc_scope LEAKGUARD_CONCAT(leakguard_no_alloc_, __COUNTER__){}

#else  // LEAKGUARD_DISABLE: the same types, doing nothing.

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

#define LEAKGUARD_IGNORE_SCOPE()
#define LEAKGUARD_NO_ALLOC()

#endif

}  // namespace leakguard
