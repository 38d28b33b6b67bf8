// leakguard/impl/suppressions.hpp — the suppression list and the matching
// of a leaked block's stack against it (see <leakguard/suppressions.hpp>).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
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
  // What each pattern dropped, by index in `patterns`.
  struct use {
    std::uint64_t blocks = 0, bytes = 0;
  };
  std::vector<use> uses = std::vector<use>(patterns.size());
  // Whether the user added each pattern (suppress(), a suppressions file),
  // not leakguard or a test framework's integration.
  std::vector<char> from_user = std::vector<char>(patterns.size(), 0);
  std::uint64_t generation = 0;  // changes with `patterns`
};

inline suppression_list& suppressions_storage() {
  static no_destroy<suppression_list> list;
  return list.get();
}

inline bool at_name_boundary(std::string_view name, std::size_t at) noexcept {
  if (at == 0) return true;
  // "(anonymous namespace)::f" is matched by "f": nobody can name that namespace.
  if (name.substr(0, at).ends_with("(anonymous namespace)::")) return true;
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

// What a stack's frames say of its suppression: the index of the pattern
// that names it, or one of these.
inline constexpr int suppression_none = -1;       // the first user frame came first
inline constexpr int suppression_undecided = -2;  // the frames ended first: read on
inline constexpr int suppression_c_library = -3;  // the C library's own state: dropped, not counted

// The first pattern that names a frame of `function` in `file` (empty
// where only the name is known: the symbol table's), or
// suppression_undecided.
inline int pattern_for(std::string_view function, std::string_view file, std::span<const std::string> patterns) {
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    const std::string& p = patterns[i];
    if (p.find('/') != std::string::npos ? file.find(p) != std::string_view::npos : pattern_matches(function, p))
      return static_cast<int>(i);
  }
  return suppression_undecided;
}

// The answer for `frames` (innermost first, taken up where the previous
// call left off: each frame decides alone). Patterns name a frame's function
// at a name boundary, or, with a '/', a part of its file's path; the search
// stops at the first user frame (a frame with no name at all is inside a
// library), and skips leakguard's own.
inline int suppression_of(std::span<const frame> frames, std::span<const std::string> patterns) {
  for (const frame& f : frames) {
    if (is_internal_frame(f.function, f.file)) continue;
    if (f.file.empty() && is_c_library_state(f.function)) return suppression_c_library;
    if (const int by = pattern_for(f.function, f.file, patterns); by != suppression_undecided) return by;
    if (!is_library_frame(f.function, f.file) && !(f.file.empty() && f.function.empty())) return suppression_none;
  }
  return suppression_undecided;
}

// Adds what a report dropped to each pattern's count: `blocks` and `bytes`
// by index in `patterns`, a copy of the list that it may have outlived.
inline void count_suppressed(std::span<const std::string> patterns, std::span<const std::uint64_t> blocks,
                             std::span<const std::uint64_t> bytes) {
  suppression_list& list = suppressions_storage();
  lock_guard g(list.lock);
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    if (blocks[i] == 0) continue;
    for (std::size_t j = 0; j < list.patterns.size(); ++j) {
      if (list.patterns[j] != patterns[i]) continue;
      list.uses[j].blocks += blocks[i];
      list.uses[j].bytes += bytes[i];
      break;
    }
  }
}

// leakguard::suppress, and a test framework's integration (`from_user`
// false: its patterns name only the framework's own code).
inline void add_suppression(std::string_view function_pattern, bool from_user = true) {
  if (function_pattern.empty()) return;
  internal_guard guard;  // the list is leakguard's, never a leak
  suppression_list& list = suppressions_storage();
  lock_guard g(list.lock);
  for (const std::string& p : list.patterns)
    if (p == function_pattern) return;
  list.uses.reserve(list.patterns.size() + 1);  // all grow, or none
  list.from_user.reserve(list.patterns.size() + 1);
  list.patterns.emplace_back(function_pattern);
  list.uses.emplace_back();
  list.from_user.push_back(from_user);
  ++list.generation;
}

// leakguard::unsuppress.
inline bool remove_suppression(std::string_view function_pattern) {
  internal_guard guard;
  suppression_list& list = suppressions_storage();
  lock_guard g(list.lock);
  for (auto it = list.patterns.begin(); it != list.patterns.end(); ++it) {
    if (*it == function_pattern) {
      list.uses.erase(list.uses.begin() + (it - list.patterns.begin()));
      list.from_user.erase(list.from_user.begin() + (it - list.patterns.begin()));
      list.patterns.erase(it);
      ++list.generation;
      return true;
    }
  }
  return false;
}

// One line of a suppressions file: LeakSanitizer's `leak:pattern`, with
// '*' allowed at either end (leakguard's patterns already match a part of a
// name, or of a path when they contain '/'). Returns why the line is not
// one, or null with `pattern` set (empty for a blank or `#` comment line).
inline const char* suppression_line(std::string_view line, std::string_view& pattern) {
  auto trim = [](std::string_view t) {
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t' || t.back() == '\r')) t.remove_suffix(1);
    return t;
  };
  line = trim(line);
  pattern = {};
  if (line.empty() || line.front() == '#') return nullptr;
  if (!line.starts_with("leak:")) return "not a leak:PATTERN line";
  std::string_view p = trim(line.substr(5));
  while (!p.empty() && p.front() == '*') p.remove_prefix(1);
  while (!p.empty() && p.back() == '*') p.remove_suffix(1);
  if (p.empty()) return "empty pattern (it would suppress every leak)";
  if (p.find_first_of("*^$") != std::string_view::npos) return "'*' inside a pattern, '^' and '$' are not supported";
  pattern = p;
  return nullptr;
}

// LEAKGUARD_OPTIONS=suppressions=FILE: adds the file's patterns. A file it
// cannot read and each bad line are reported on stderr, one line each (at
// most 16, then a count), naming the file and line; the good lines apply.
// Only a regular file of at most 1 MiB is read (not a FIFO, not /dev/zero).
inline void load_suppression_file(const std::string& path) {
  constexpr int max_named = 16;
  constexpr long max_bytes = 1 << 20;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st {};
  const char* refused = fd < 0                      ? std::strerror(errno)
                        : ::fstat(fd, &st) != 0     ? std::strerror(errno)
                        : !S_ISREG(st.st_mode)      ? "not a regular file"
                        : st.st_size > max_bytes    ? "larger than 1 MiB"
                                                    : nullptr;
  std::FILE* f = refused ? nullptr : ::fdopen(fd, "r");
  if (!f) {
    if (fd >= 0) ::close(fd);
    std::fprintf(stderr, "leakguard: suppressions=%s: cannot read it: %s\n", path.c_str(),
                 refused ? refused : std::strerror(errno));
    return;
  }
  std::string line;
  int number = 0, bad = 0;
  for (int c = 0; c != EOF;) {
    line.clear();
    while ((c = std::fgetc(f)) != EOF && c != '\n') line += static_cast<char>(c);
    if (c == EOF && line.empty()) break;
    ++number;
    std::string_view pattern;
    if (const char* why = suppression_line(line, pattern)) {
      if (++bad <= max_named)
        std::fprintf(stderr, "leakguard: %s:%d: %s: '%.200s' ignored\n", path.c_str(), number, why, line.c_str());
    } else if (!pattern.empty()) {
      add_suppression(pattern);
    }
  }
  std::fclose(f);
  if (bad > max_named) std::fprintf(stderr, "leakguard: %s: %d more bad lines ignored\n", path.c_str(), bad - max_named);
}

// leakguard::suppressions.
inline std::vector<std::string> suppression_patterns() {
  suppression_list& list = suppressions_storage();
  lock_guard g(list.lock);
  return list.patterns;
}

// The patterns in force, copied once for a report: its stacks are matched
// without the list's lock (fork takes it before the symbolizer's).
struct suppression_snapshot {
  std::vector<std::string> patterns;
  std::uint64_t generation = 0;
  bool from_user = false;  // some pattern is the user's: it may name the standard library's code
};
inline suppression_snapshot suppressions_now() {
  suppression_list& list = suppressions_storage();
  lock_guard g(list.lock);
  return {list.patterns, list.generation, std::find(list.from_user.begin(), list.from_user.end(), 1) != list.from_user.end()};
}

// leakguard::suppression_uses.
inline std::vector<suppression_use> suppression_use_list() {
  suppression_list& list = suppressions_storage();
  std::vector<suppression_use> out;
  lock_guard g(list.lock);
  out.reserve(list.patterns.size());
  for (std::size_t i = 0; i < list.patterns.size(); ++i)
    out.push_back({list.patterns[i], list.uses[i].blocks, list.uses[i].bytes});
  return out;
}

}  // namespace leakguard::detail
