// leakguard/impl/frame_kind.hpp — whose code a stack frame is: leakguard's,
// the standard library's, or the user's (the one a report should point at).
#pragma once

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <iterator>
#include <string_view>

namespace leakguard::detail {

// The index of the ')' that closes the '(' at `open`, or npos.
inline std::size_t closing_paren(std::string_view s, std::size_t open) noexcept {
  int depth = 0;
  for (std::size_t i = open; i < s.size(); ++i) {
    if (s[i] == '(') ++depth;
    else if (s[i] == ')' && --depth == 0) return i;
  }
  return std::string_view::npos;
}

// "void std::vector<int>::push_back(int const&)" -> "std::vector<int>::push_back":
// the qualified name of a demangled function, without return type and
// parameters. Parentheses that are not the parameter list stay or are
// skipped: a "decltype (...)" return type, a function that returns a
// function pointer ("void (*ns::f<int>(int))(double)" -> "ns::f<int>"),
// the enclosing function of a lambda or a local ("f(int)::{lambda()#1}::
// operator()"), and template arguments ("apply<void (*)(int)>").
inline std::string_view qualified_name(std::string_view function) {
  int depth = 0;  // inside <...>, {...} or [...]
  std::size_t start = 0;
  static constexpr std::string_view anonymous = "(anonymous namespace)";
  for (std::size_t i = 0; i < function.size(); ++i) {
    const char c = function[i];
    if (c == '(' && function.compare(i, anonymous.size(), anonymous) == 0) {  // a name part, not parameters
      i += anonymous.size() - 1;
      continue;
    }
    if (depth == 0 && c == 'o' && function.compare(i, 8, "operator") == 0 &&
        (i == 0 || function[i - 1] == ':' || function[i - 1] == ' ')) {
      // "operator new", "operator<<", "operator()", "operator void (*)(int)":
      // the name runs to the '(' of the parameters, the last group before
      // the end or a qualifier.
      std::size_t end = i + 8;
      if (function.compare(end, 2, "()") == 0) end += 2;
      // "operator void (*)(int)()": the conversion's type keeps its groups.
      std::size_t params = std::string_view::npos;
      for (std::size_t j = end; j < function.size(); ++j) {
        if (function[j] != '(') continue;
        const std::size_t close = closing_paren(function, j);
        if (close == std::string_view::npos) break;
        params = j;
        j = close;
        if (close + 1 < function.size() && function[close + 1] != '(') break;
      }
      if (params == std::string_view::npos) return function.substr(start);
      return function.substr(start, params - start);
    }
    if (c == '<' || c == '{' || c == '[') {
      ++depth;
    } else if ((c == '>' || c == '}' || c == ']') && depth > 0) {
      --depth;
    } else if (depth == 0 && c == ' ') {
      start = i + 1;
    } else if (depth == 0 && c == '(') {
      const std::size_t close = closing_paren(function, i);
      if (close == std::string_view::npos) return function.substr(start, i - start);
      const std::string_view token = function.substr(start, i - start);
      if (token.empty() || token == "decltype") {
        // "(*ns::f<int>(int))(double)": the name is inside.
        const std::string_view inner = function.substr(i + 1, close - i - 1);
        const std::size_t name = inner.find_first_not_of("*&");
        if (token.empty() && name > 0 && name != std::string_view::npos) return qualified_name(inner.substr(name));
        i = close;  // a return type's "decltype (...)": skipped
        continue;
      }
      if (function.compare(close + 1, 2, "::") == 0) {  // "f(int)::{lambda()#1}": part of the name
        i = close;
        continue;
      }
      return token;
    }
  }
  return function.substr(start);
}

inline bool starts_with_any(std::string_view s, std::initializer_list<std::string_view> prefixes) {
  for (std::string_view p : prefixes)
    if (s.starts_with(p)) return true;
  return false;
}

// Whether the qualified name of `function` starts with one of `prefixes`.
// A report asks this of every frame, several times: most names hold none
// of the prefixes anywhere, which a search tells faster than qualified_name.
inline bool qualified_starts_with_any(std::string_view function, std::initializer_list<std::string_view> prefixes) {
  bool anywhere = false;
  for (std::string_view p : prefixes) anywhere = anywhere || function.find(p) != std::string_view::npos;
  return anywhere && starts_with_any(qualified_name(function), prefixes);
}

// Whether every name in `function`, a demangled symbol-table name (return
// type, qualified name, template arguments, parameters), is the standard
// library's or a built-in one's. Such a function can inline no code but the
// library's and global functions (the C library's, operator new), so every
// frame its debug info would show is a library frame. Not one that takes
// a function: a clone of it (" [clone .constprop.0]") may have a constant
// callback inlined; a clone of any other is that function's code.
inline bool names_only_the_library(std::string_view function) {
  function = function.substr(0, function.find(" [clone "));
  if (!qualified_starts_with_any(function, {"std::", "__gnu_cxx::"})) return false;
  for (std::string_view takes_function : {"(*", "(&"})
    if (function.find(takes_function) != std::string_view::npos) return false;
  static constexpr std::string_view builtin[] = {
      "void", "bool",     "char",     "wchar_t",  "char8_t",  "char16_t", "char32_t", "short", "int",
      "long", "signed",   "unsigned", "float",    "double",   "const",    "volatile", "true",  "false",
      "abi",  "cxx11",    "decltype", "__int128", "operator", "new",      "delete"};
  const auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (std::size_t i = 0; i < function.size();) {
    if (!word(function[i])) {
      ++i;
      continue;
    }
    const bool member = i >= 2 && function.compare(i - 2, 2, "::") == 0;  // of the name before it
    const std::size_t begin = i;
    while (i < function.size() && (word(function[i]) || function.compare(i, 2, "::") == 0))
      i += word(function[i]) ? 1u : 2u;
    const std::string_view name = function.substr(begin, i - begin);
    if (member || std::isdigit(static_cast<unsigned char>(name[0])) ||
        starts_with_any(name, {"std::", "__gnu_cxx::"}))
      continue;
    if (std::find(std::begin(builtin), std::end(builtin), name) == std::end(builtin)) return false;
  }
  return true;
}

// leakguard's own frames: trimmed from the top of every stack (where a
// malloc-family name is global_malloc.hpp's).
inline bool is_internal_frame(std::string_view function, std::string_view file) {
  if (file.find("include/leakguard/") != std::string_view::npos) return true;
  for (std::string_view c : {"malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
                             "memalign", "valloc", "pvalloc"})
    if (function == c) return true;
  return qualified_starts_with_any(function, {"leakguard::", "operator new", "operator delete", "absl::"});
}

// The C library's functions that allocate for their caller (under the names
// its symbol table gives them), and its stdio internals.
inline bool is_c_library_allocator(std::string_view function) {
  for (std::string_view name : {"strdup", "__strdup", "strndup", "__strndup", "asprintf", "__asprintf", "vasprintf",
                                "__vasprintf", "__vasprintf_internal", "getline", "getdelim", "__getdelim",
                                "open_memstream", "open_wmemstream", "realpath", "tempnam", "get_current_dir_name",
                                "getcwd", "scandir", "scandir64", "wordexp", "regcomp", "fopen", "fopen64", "fdopen"})
    if (function == name) return true;
  return starts_with_any(function, {"_IO_", "__GI_"});
}

// The C library's calls whose buffers it keeps per thread, in its thread
// descriptor and dlerror state, where the reachability scan does not look
// (the descriptor also holds stale copies of freed pointers): the message
// dlerror or strerror_l returns, dlopen's error state.
inline bool is_c_library_state(std::string_view function) {
  for (std::string_view name : {"dlerror", "dlopen", "dlmopen", "dlsym", "dlvsym", "_dlerror_run", "strerror_l",
                                "__strerror_l", "strsignal"})
    if (function == name) return true;
  return false;
}

// The standard library's frames: skipped when choosing a block's site.
inline bool is_library_frame(std::string_view function, std::string_view file) {
  if (file.find("/c++/") != std::string_view::npos) return true;  // libstdc++ and libc++ headers
  if (file.empty() && is_c_library_allocator(function)) return true;
  if (file.starts_with("/usr/include/")) return true;  // the C library's and other system headers
  // A name the demangler could not read stays mangled: _ZSt..., _ZNSt..., _ZNKSt...
  return starts_with_any(function, {"_ZSt", "_ZNSt", "_ZNKSt", "_ZN9__gnu_cxx", "_ZNK9__gnu_cxx"}) ||
         qualified_starts_with_any(function, {"std::", "__gnu_cxx::", "__cxxabiv1::", "__cxa_", "__libc_", "__pthread"});
}

}  // namespace leakguard::detail
