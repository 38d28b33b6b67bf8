// leakguard/impl/frame_kind.hpp — whose code a stack frame is: leakguard's,
// the standard library's, or the user's (the one a report should point at).
#pragma once

#include <initializer_list>
#include <string_view>

namespace leakguard::detail {

// "void std::vector<int>::push_back(int const&)" -> "std::vector<int>::push_back":
// the qualified name without return type and parameters.
inline std::string_view qualified_name(std::string_view function) {
  int depth = 0;
  std::size_t start = 0;
  static constexpr std::string_view anonymous = "(anonymous namespace)";
  for (std::size_t i = 0; i < function.size(); ++i) {
    const char c = function[i];
    if (function.compare(i, anonymous.size(), anonymous) == 0) {  // a name part, not parameters
      i += anonymous.size() - 1;
      continue;
    }
    if (depth == 0 && function.compare(i, 8, "operator") == 0 &&
        (i == 0 || function[i - 1] == ':' || function[i - 1] == ' ')) {
      // "operator new", "operator<<", "operator()": the name runs to its '('.
      std::size_t end = i + 8;
      if (function.compare(end, 2, "()") == 0) end += 2;
      while (end < function.size() && function[end] != '(') ++end;
      return function.substr(start, end - start);
    }
    if (c == '<') ++depth;
    else if (c == '>' && depth > 0) --depth;
    else if (depth == 0 && c == ' ') start = i + 1;
    else if (depth == 0 && c == '(' && i > start) return function.substr(start, i - start);
  }
  return function.substr(start);
}

inline bool starts_with_any(std::string_view s, std::initializer_list<std::string_view> prefixes) {
  for (std::string_view p : prefixes)
    if (s.starts_with(p)) return true;
  return false;
}

// leakguard's own frames: trimmed from the top of every stack.
inline bool is_internal_frame(std::string_view function, std::string_view file) {
  if (file.find("include/leakguard/") != std::string_view::npos) return true;
  return starts_with_any(qualified_name(function),
                         {"leakguard::", "operator new", "operator delete", "absl::"});
}

// The standard library's frames: skipped when choosing a block's site.
inline bool is_library_frame(std::string_view function, std::string_view file) {
  if (file.find("/c++/") != std::string_view::npos) return true;  // libstdc++ and libc++ headers
  // A name the demangler could not read stays mangled: _ZSt..., _ZNSt..., _ZNKSt...
  return starts_with_any(function, {"_ZSt", "_ZNSt", "_ZNKSt", "_ZN9__gnu_cxx", "_ZNK9__gnu_cxx"}) ||
         starts_with_any(qualified_name(function),
                         {"std::", "__gnu_cxx::", "__cxxabiv1::", "__cxa_", "__libc_", "__pthread"});
}

}  // namespace leakguard::detail
