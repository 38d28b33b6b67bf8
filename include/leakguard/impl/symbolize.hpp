// leakguard/impl/symbolize.hpp — return addresses to functions, files, lines.
//
// Runs only when a report is built. file:line comes from GCC's libbacktrace
// (DWARF, inlined frames expanded) when the build system found it; function
// names otherwise come from absl::Symbolize (the ELF symbol table).
#pragma once

#include <absl/debugging/symbolize.h>
#include <cxxabi.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "../report.hpp"
#include "frame_kind.hpp"
#include "stacks.hpp"

#if LEAKGUARD_HAVE_LIBBACKTRACE
#include <backtrace.h>
#endif

namespace leakguard::detail {

// Spells the standard string types the way people write them.
inline void shorten_names(std::string& name) {
  static constexpr std::string_view long_forms[][2] = {
      {"std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >", "std::string"},
      {"std::basic_string<char, std::char_traits<char>, std::allocator<char> >", "std::string"},
      {"std::__cxx11::", "std::"},
  };
  for (const auto& [from, to] : long_forms) {
    for (std::size_t at; (at = name.find(from)) != std::string::npos;) name.replace(at, from.size(), to);
  }
}

inline std::string demangle(const char* name) {
  if (!name) return {};
  int status = 0;
  char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string result = status == 0 && out ? out : name;
  std::free(out);
  shorten_names(result);
  return result;
}

#if LEAKGUARD_HAVE_LIBBACKTRACE
inline backtrace_state* libbacktrace_state() {
  // Thread-safe creation; the state lives for the whole process.
  static backtrace_state* state =
      backtrace_create_state(nullptr, /*threaded=*/1, [](void*, const char*, int) {}, nullptr);
  return state;
}
#endif

// libbacktrace's "threaded" mode still races on its lazily read DWARF tables
// (ThreadSanitizer finds it), and absl::Symbolize keeps a small cache: one
// lock serialises lookups. They run only while a report is built.
inline spin_lock& symbolizer_lock() {
  static constinit spin_lock lock;
  return lock;
}

// Appends the frames of one return address, innermost inlined frame first.
inline void symbolize_pc(const void* pc, std::vector<frame>& out) {
  lock_guard serialised(symbolizer_lock());
  // A return address points after the call; look up the call itself.
  const auto lookup = reinterpret_cast<std::uintptr_t>(pc) - 1;
  const std::size_t before = out.size();
#if LEAKGUARD_HAVE_LIBBACKTRACE
  struct context {
    const void* pc;
    std::vector<frame>* out;
  } ctx{pc, &out};
  backtrace_pcinfo(
      libbacktrace_state(), lookup,
      [](void* data, std::uintptr_t, const char* file, int line, const char* function) -> int {
        auto* c = static_cast<context*>(data);
        if (!file && !function) return 0;
        c->out->push_back(frame{c->pc, demangle(function), file ? file : "", file ? line : 0});
        return 0;
      },
      [](void*, const char*, int) {}, &ctx);
#endif
  // No debug info: the symbol table still names the function; for a
  // stripped shared library (libstdc++.so) only the dynamic one does.
  if (out.size() == before || out.back().function.empty()) {
    char name[1024];
    std::string function;
    Dl_info info;
    if (absl::Symbolize(reinterpret_cast<const void*>(lookup), name, sizeof name)) {
      function = name;
    } else if (dladdr(reinterpret_cast<const void*>(lookup), &info) && info.dli_sname) {
      function = demangle(info.dli_sname);
    }
    shorten_names(function);
    if (out.size() == before) out.push_back(frame{pc, std::move(function), {}, 0});
    else out.back().function = std::move(function);
  }
}

struct symbolized_stack {
  std::vector<frame> frames;  // leakguard's own frames trimmed
  std::string site;
};

inline std::string frame_site(const frame& f) {
  if (!f.file.empty()) return f.file + ':' + std::to_string(f.line);
  if (!f.function.empty()) return f.function;
  char buf[2 + 16 + 1];
  std::snprintf(buf, sizeof buf, "%p", f.pc);
  return buf;
}

// Symbolizes a captured stack, trims leakguard's frames from its top, keeps
// at most `depth` frames and picks the user's site: the first frame that is
// neither leakguard's nor the standard library's.
inline symbolized_stack symbolize(const stack_trace* stack, int depth) {
  symbolized_stack result;
  if (!stack) return result;
  if (stack == not_sampled()) {
    result.site = "(not sampled)";
    return result;
  }
  if (stack == not_recorded()) {
    result.site = "(stack not recorded: leakguard out of memory)";
    return result;
  }
  // Depth counts return addresses, as captured; inlined frames come free.
  std::vector<frame> all;
  std::vector<std::uint32_t> pc_index;
  for (std::uint32_t i = 0; i < stack->depth; ++i) {
    symbolize_pc(stack->frames[i], all);
    pc_index.resize(all.size(), i);
  }
  std::size_t first = 0;
  while (first < all.size() && is_internal_frame(all[first].function, all[first].file)) ++first;
  if (first < all.size()) {
    const std::size_t keep = std::min<std::size_t>(static_cast<std::size_t>(depth), stack->user_depth);
    for (std::size_t i = first; i < all.size() && pc_index[i] < pc_index[first] + keep; ++i)
      result.frames.push_back(std::move(all[i]));
  }
  // The site: the first frame of the user's code, else the first named frame.
  auto named = [](const frame& f) { return !f.file.empty() || !f.function.empty(); };
  for (const frame& f : result.frames) {
    if (named(f) && !is_library_frame(f.function, f.file) && !is_internal_frame(f.function, f.file)) {
      result.site = frame_site(f);
      break;
    }
  }
  for (auto it = result.frames.begin(); result.site.empty() && it != result.frames.end(); ++it)
    if (named(*it)) result.site = frame_site(*it);
  if (result.site.empty() && !result.frames.empty()) result.site = frame_site(result.frames.front());
  return result;
}

}  // namespace leakguard::detail
