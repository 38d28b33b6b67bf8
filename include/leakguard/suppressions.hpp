// leakguard/suppressions.hpp — leaked blocks that are somebody else's
// bookkeeping, recognised by who allocated them.
//
//   leakguard::suppress("mylib::detail::cache::");  // never report what this code keeps
//
// When a report is built, each leaked block's symbolized stack is examined
// from the allocation down to the first frame of the user's own code (the
// first frame that is neither leakguard's nor the standard library's), that
// frame included. If one of those frames' function names contains a
// suppression pattern, starting at a name boundary (the start of the name,
// or after a character that is not a letter, digit, '_' or ':'), the block
// is dropped from the report. A report left with nothing is no report: the
// leak handler is not called.
//
// A pattern containing '/' is matched against the frame's source file
// instead (a substring of its path): "/doctest/doctest.h" names doctest's
// inlined frames, whose debug-info names are unqualified.
//
// So "doctest::" drops what doctest's Subcase bookkeeping keeps when a test
// body is the caller, but a block leaked by the test body itself (its frame
// is the first user frame) or by a helper it calls is still reported; and
// "mydoctest::" or "foo::doctest::" are not matched by "doctest::".
//
// Suppression needs symbols: without them (stripped binaries) nothing
// matches. Frames of code built without frame pointers may be missing from
// stacks; that is why first-use initialisation inside the standard library
// (locale, iostreams) is handled by warming it up, not by suppression.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "detail/frame_kind.hpp"
#include "detail/internal_memory.hpp"
#include "report.hpp"

#if LEAKGUARD_ENABLED
#include "detail/thread_state.hpp"
#endif

namespace leakguard {

namespace detail {

struct suppression_list {
  spin_lock lock;
  std::vector<std::string> patterns{
      // thread_local objects' first-use construction on this thread: they live
      // as long as the thread, like a static.
      "TLS init function for ",
      "__tls_init",
      // clang's initialiser of one thread_local (or global) object, called
      // from __tls_init; global ones run before main, outside any scope.
      "__cxx_global_var_init",
      "TLS wrapper function for ",
      // The C++ runtime's per-thread exception globals and emergency pool.
      "__cxa_get_globals",
      "__cxa_eh_globals",
  };
};

inline suppression_list& suppressions_storage() {
  static no_destroy<suppression_list> list;
  return list.get();
}

inline bool at_name_boundary(std::string_view name, std::size_t at) noexcept {
  if (at == 0) return true;
  const char c = name[at - 1];
  const bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == ':';
  return !word;
}

inline bool pattern_matches(std::string_view function, std::string_view pattern) noexcept {
  if (pattern.empty()) return false;
  for (std::size_t at = function.find(pattern); at != std::string_view::npos; at = function.find(pattern, at + 1))
    if (at_name_boundary(function, at)) return true;
  return false;
}

// True if `stack` (innermost first, leakguard's frames already trimmed)
// matches a suppression; see the file comment. Takes the list's lock.
inline bool suppressed(std::span<const frame> stack) {
  suppression_list& list = suppressions_storage();
  lock_guard g(list.lock);
  if (list.patterns.empty()) return false;
  for (const frame& f : stack) {
    if (is_internal_frame(f.function, f.file)) continue;
    for (const std::string& p : list.patterns) {
      if (p.find('/') != std::string::npos ? f.file.find(p) != std::string::npos : pattern_matches(f.function, p))
        return true;
    }
    if (!is_library_frame(f.function, f.file)) break;  // the first user frame: stop here
  }
  return false;
}

}  // namespace detail

// Adds a pattern (see the file comment). Adding one already present does
// nothing. Thread-safe; takes effect for reports built from now on.
inline void suppress(std::string_view function_pattern) {
  if (function_pattern.empty()) return;
#if LEAKGUARD_ENABLED
  detail::internal_guard guard;  // the list is leakguard's, never a leak
#endif
  detail::suppression_list& list = detail::suppressions_storage();
  detail::lock_guard g(list.lock);
  for (const std::string& p : list.patterns)
    if (p == function_pattern) return;
  list.patterns.emplace_back(function_pattern);
}

// Removes a pattern, the defaults included. Returns whether it was there.
inline bool unsuppress(std::string_view function_pattern) {
#if LEAKGUARD_ENABLED
  detail::internal_guard guard;
#endif
  detail::suppression_list& list = detail::suppressions_storage();
  detail::lock_guard g(list.lock);
  for (auto it = list.patterns.begin(); it != list.patterns.end(); ++it) {
    if (*it == function_pattern) {
      list.patterns.erase(it);
      return true;
    }
  }
  return false;
}

// The patterns in force, the defaults first.
inline std::vector<std::string> suppressions() {
  detail::suppression_list& list = detail::suppressions_storage();
  detail::lock_guard g(list.lock);
  return list.patterns;
}

}  // namespace leakguard
