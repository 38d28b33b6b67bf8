// leakguard/impl/suppressions.hpp — the suppression list and the matching
// of a leaked block's stack against it (see <leakguard/suppressions.hpp>).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../report.hpp"
#include "../suppressions.hpp"
#include "frame_kind.hpp"
#include "internal_memory.hpp"
#include "thread_state.hpp"

namespace leakguard::detail {

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


// leakguard::suppress.
inline void add_suppression(std::string_view function_pattern) {
  if (function_pattern.empty()) return;
  internal_guard guard;  // the list is leakguard's, never a leak
  suppression_list& list = suppressions_storage();
  lock_guard g(list.lock);
  for (const std::string& p : list.patterns)
    if (p == function_pattern) return;
  list.patterns.emplace_back(function_pattern);
}

// leakguard::unsuppress.
inline bool remove_suppression(std::string_view function_pattern) {
  internal_guard guard;
  suppression_list& list = suppressions_storage();
  lock_guard g(list.lock);
  for (auto it = list.patterns.begin(); it != list.patterns.end(); ++it) {
    if (*it == function_pattern) {
      list.patterns.erase(it);
      return true;
    }
  }
  return false;
}

// leakguard::suppressions.
inline std::vector<std::string> suppression_patterns() {
  suppression_list& list = suppressions_storage();
  lock_guard g(list.lock);
  return list.patterns;
}

}  // namespace leakguard::detail
