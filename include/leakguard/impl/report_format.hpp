// leakguard/impl/report_format.hpp — what report::to_text() and to_json() write.
#pragma once

#include <algorithm>
#include <cstdio>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../report.hpp"
#include "frame_kind.hpp"
#include "report_parts.hpp"
#include "sort.hpp"

namespace leakguard::detail {

inline void append_number(std::string& out, unsigned long long n) { out += std::to_string(n); }

inline void append_pointer(std::string& out, const void* p) {
  char buf[2 + 16 + 1];
  std::snprintf(buf, sizeof buf, "%p", p);
  out += buf;
}

inline void append_location(std::string& out, const std::source_location& where) {
  out += where.file_name();
  out += ':';
  append_number(out, where.line());
}

inline void append_frame_text(std::string& out, std::size_t index, const frame& f) {
  out += "    #";
  append_number(out, index);
  out += ' ';
  append_pointer(out, f.pc);
  out += " in ";
  out += f.function.empty() ? std::string_view("??") : std::string_view(f.function);
  if (!f.file.empty()) {
    out += ' ';
    out += f.file;
    out += ':';
    append_number(out, static_cast<unsigned long long>(f.line));
  } else if (!f.module.empty()) {
    out += " (";
    out += f.module;
    out += ')';
  }
  out += '\n';
}

// How a written report shows stacks (LEAKGUARD_OPTIONS stack_root and
// report_frames).
struct report_style {
  bool scope_root;  // callers once, each stack down to the scope's function
  int max_frames;   // per stack; 0: no cap
};

// How many of a block's frames are its own, down to the scope's function.
// `scope` is the scope's stack from its function outward: its first frame
// and the frames inlined at the same return address (the function's inline
// callers), then the outer frames, which are found in `stack` by return
// address where it continues as they do (as far as both were captured).
// The inline callers, if the block's frame has them too, go with the outer
// ones. A block from another thread keeps all.
inline std::size_t own_frames(std::span<const frame> stack, std::span<const frame> scope) {
  if (scope.empty()) return stack.size();
  std::size_t inlined = 1;
  while (inlined < scope.size() && scope[inlined].pc == scope[0].pc) ++inlined;
  const std::span<const frame> outer = scope.subspan(inlined);
  if (outer.empty()) return stack.size();
  for (std::size_t i = 0; i < stack.size(); ++i) {
    if (stack[i].pc != outer[0].pc) continue;
    const std::size_t n = std::min(stack.size() - i, outer.size());
    std::size_t t = 1;
    while (t < n && stack[i + t].pc == outer[t].pc) ++t;
    if (t < n) continue;
    std::size_t callers = inlined - 1;  // the inline callers, innermost first: scope[1..inlined)
    if (callers > i) return i;
    for (std::size_t c = 0; c < callers; ++c) {
      const frame& f = stack[i - callers + c];
      if (f.pc != stack[i - 1].pc || f.function != scope[1 + c].function) return i;
    }
    return i - callers;
  }
  return stack.size();
}

// The frames of `stack` a report shows under `style`.
inline std::span<const frame> shown_frames(std::span<const frame> stack, std::span<const frame> scope,
                                           const report_style& style) {
  return style.scope_root ? stack.first(own_frames(stack, scope)) : stack;
}

// The standard library's frames on top of a stack (inside push_back, say);
// 0 when the stack has nothing else, so that they are shown.
inline std::size_t library_frames_on_top(std::span<const frame> stack) {
  std::size_t i = 0;
  while (i < stack.size() && is_library_frame(stack[i].function, stack[i].file)) ++i;
  return i == stack.size() ? 0 : i;
}

// For people: the standard library's frames on top of the stack are summed
// up in one line, at most `max_frames` others follow (0: all), and nothing
// below main() is shown. report::blocks() keeps every frame.
inline void append_stack_text(std::string& out, std::span<const frame> stack, int max_frames) {
  std::size_t i = library_frames_on_top(stack);
  if (i > 0) {
    out += "    (";
    append_number(out, i);
    out += i == 1 ? " standard library frame)\n" : " standard library frames)\n";
  }
  const std::size_t end = max_frames > 0 ? std::min(stack.size(), i + static_cast<std::size_t>(max_frames)) : stack.size();
  for (; i < end; ++i) {
    append_frame_text(out, i, stack[i]);
    if (qualified_name(stack[i].function) == "main") return;
  }
  if (end < stack.size()) {
    out += "    (";
    append_number(out, stack.size() - end);
    out += " more frames: report_frames)\n";
  }
}

inline std::string_view violation_kind_name(violation_kind k) {
  switch (k) {
    case violation_kind::allocation_budget: return "allocation_budget";
    case violation_kind::byte_budget: return "byte_budget";
    case violation_kind::no_alloc: return "no_alloc";
  }
  return "unknown";
}

inline void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

inline void append_json_pointer(std::string& out, const void* p) {
  out += '"';
  append_pointer(out, p);
  out += '"';
}

// A JSON array of at most `max_frames` frames (0: all); `"more_frames":N`
// follows it, in the same object, when some were left out.
inline void append_stack_json(std::string& out, std::span<const frame> stack, int max_frames) {
  const std::size_t cap = max_frames > 0 ? static_cast<std::size_t>(max_frames) : stack.size();
  const std::span<const frame> all = stack;
  if (stack.size() > cap) stack = stack.first(cap);
  out += '[';
  for (std::size_t i = 0; i < stack.size(); ++i) {
    const frame& f = stack[i];
    if (i) out += ',';
    out += "{\"pc\":";
    append_json_pointer(out, f.pc);
    out += ",\"function\":";
    append_json_string(out, f.function);
    out += ",\"file\":";
    append_json_string(out, f.file);
    out += ",\"line\":";
    out += std::to_string(f.line);
    if (!f.module.empty()) {
      out += ",\"module\":";
      append_json_string(out, f.module);
    }
    out += '}';
  }
  out += ']';
  if (all.size() > stack.size()) out += ",\"more_frames\":" + std::to_string(all.size() - stack.size());
}

// `,"stack":[...]` of a block or violation. With style.scope_root, the
// standard library's frames on top are left out and counted, as in text:
// `,"library_frames":N`.
inline void append_block_stack_json(std::string& out, std::span<const frame> stack, const report_style& style) {
  const std::size_t library = style.scope_root ? library_frames_on_top(stack) : 0;
  if (library) out += ",\"library_frames\":" + std::to_string(library);
  out += ",\"stack\":";
  append_stack_json(out, stack.subspan(library), style.max_frames);
}

// One line per kind of loss, e.g. "leakguard: 3 allocations could not be
// recorded (bookkeeping out of memory); their leaks may be missing".
inline void append_unrecorded_text(std::string& out, const unrecorded_counts& u) {
  auto line = [&](std::uint64_t n, std::string_view what, std::string_view happened, std::string_view so) {
    if (!n) return;
    out += "leakguard: ";
    append_number(out, n);
    out += ' ';
    out += what;
    if (n != 1) out += 's';
    out += ' ';
    out += happened;
    out += " (bookkeeping out of memory)";
    out += so;
    out += '\n';
  };
  line(u.allocations, "allocation", "could not be recorded", "; their leaks may be missing");
  line(u.stacks, "allocation", "recorded without a stack", "; their sites are unknown");
  line(u.origins, "allocation", "recorded without the allocator's name", "");
  line(u.scopes, "scope", "could not be opened", "; what was allocated in them was not checked");
  line(u.reports, "report", "could not be built or tallied", "; leaks may be missing");
}

inline std::string_view leak_kind_name(leak_kind k) {
  switch (k) {
    case leak_kind::direct: return "direct";
    case leak_kind::indirect: return "indirect";
    case leak_kind::retained: return "retained";
  }
  return "unknown";
}

inline void append_blocks(std::string& out, std::size_t count, std::size_t bytes) {
  append_number(out, bytes);
  out += " bytes in ";
  append_number(out, count);
  out += count == 1 ? " block" : " blocks";
}

struct block_tally {
  std::size_t bytes = 0, count = 0;
};

// The blocks of a report with one allocation site and kind, and the
// indirect blocks that hang from them.
struct site_group {
  block_tally own, hanging;
  const leaked_block* first = nullptr;  // r.blocks() is sorted by serial
  std::map<std::string_view, block_tally> hanging_sites;
};

// Groups r's blocks by (site, kind); each indirect block joins the group of
// the direct block it was reached from (when that is in the report), not a
// group of its own. Largest total first; ties: earliest allocation first.
inline std::vector<site_group> group_by_site(const report& r) {
  const std::span<const std::uint64_t> leaders = report_parts::leaders(r);
  std::map<std::uint64_t, std::size_t> by_serial;
  for (std::size_t i = 0; i < r.blocks().size(); ++i) by_serial[r.blocks()[i].serial] = i;
  auto leader_of = [&](std::size_t i) {
    if (i >= leaders.size()) return i;
    auto it = by_serial.find(leaders[i]);
    return it == by_serial.end() ? i : it->second;
  };
  std::vector<site_group> groups;
  std::map<std::size_t, std::size_t> group_of_block;
  std::map<std::pair<std::string_view, leak_kind>, std::size_t> index;  // (site, kind) -> group
  for (std::size_t i = 0; i < r.blocks().size(); ++i) {
    const leaked_block& b = r.blocks()[i];
    if (leader_of(i) != i) continue;
    auto [it, fresh] = index.try_emplace({b.site, b.kind}, groups.size());
    if (fresh) groups.push_back({{}, {}, &b, {}});
    site_group& g = groups[it->second];
    g.own.bytes += b.size;
    ++g.own.count;
    group_of_block[i] = it->second;
  }
  for (std::size_t i = 0; i < r.blocks().size(); ++i) {
    const std::size_t lead = leader_of(i);
    if (lead == i) continue;
    const leaked_block& b = r.blocks()[i];
    site_group& g = groups[group_of_block[lead]];
    g.hanging.bytes += b.size;
    ++g.hanging.count;
    block_tally& t = g.hanging_sites[b.site];
    t.bytes += b.size;
    ++t.count;
  }
  sort_by(groups, [](const site_group& g) { return descending(g.own.bytes + g.hanging.bytes); });
  return groups;
}

// ", plus 2 indirect blocks, 94 bytes" after a group's own blocks.
inline void append_hanging(std::string& out, const site_group& g) {
  if (!g.hanging.count) return;
  out += ", plus ";
  append_number(out, g.hanging.count);
  out += g.hanging.count == 1 ? " indirect block, " : " indirect blocks, ";
  append_number(out, g.hanging.bytes);
  out += " bytes";
}

// "      indirect: 72 bytes in 1 block allocated at x.cpp:3" per site.
inline void append_hanging_sites(std::string& out, const site_group& g) {
  for (const auto& [site, t] : g.hanging_sites) {
    out += "      indirect: ";
    append_blocks(out, t.count, t.bytes);
    out += " allocated at ";
    out += site.empty() ? std::string_view("(unknown site)") : site;
    out += '\n';
  }
}

// Whether a report's stacks continue into its scope's callers, so that
// stack_root=scope writes those once.
inline bool shares_callers(const report& r) {
  const std::span<const frame> scope = report_parts::scope_stack(r);
  for (const leaked_block& b : r.blocks())
    if (own_frames(b.stack, scope) < b.stack.size()) return true;
  for (const violation& v : r.violations())
    if (own_frames(v.stack, scope) < v.stack.size()) return true;
  return false;
}

// The scope's callers: its stack past its own function's frame.
inline std::span<const frame> scope_callers(const report& r) {
  const std::span<const frame> scope = report_parts::scope_stack(r);
  return scope.empty() ? scope : scope.subspan(1);
}

// Names the scope, then groups the leaked blocks by site, largest total
// first (ties: earliest allocation first), each group with one stack, and
// under it the indirect blocks that hang from it; then the violations.
// With style.scope_root, the scope's callers come once, after the first line.
inline std::string report_text(const report& r, const report_style& style) {
  std::string out = "leakguard: ";
  if (r.label().empty()) {
    out += "scope at ";
  } else {
    out += "scope \"";
    out += r.label();
    out += "\" at ";
  }
  append_location(out, r.where());
  if (const long long grace = report_parts::grace_ms(r)) {
    out += " (thread ";
    append_number(out, report_parts::thread(r));
    out += ", after a grace period of ";
    append_number(out, static_cast<unsigned long long>(grace));
    out += " ms)";
  }
  if (r.blocks().empty() && r.violations().empty()) {
    out += ": no leaks\n";
    append_unrecorded_text(out, r.unrecorded());
    return out;
  }
  out += ": ";
  append_number(out, r.leaked_bytes());
  out += " bytes leaked in ";
  append_number(out, r.blocks().size());
  out += r.blocks().size() == 1 ? " block" : " blocks";
  std::size_t kinds[3] = {};
  for (const leaked_block& b : r.blocks()) ++kinds[static_cast<int>(b.kind)];
  if (kinds[1] || kinds[2]) {
    out += " (";
    append_number(out, kinds[0]);
    out += " direct, ";
    append_number(out, kinds[1]);
    out += " indirect";
    if (kinds[2]) {
      out += ", ";
      append_number(out, kinds[2]);
      out += " retained";
    }
    out += ')';
  }
  if (!r.violations().empty()) {
    out += ", ";
    append_number(out, r.violations().size());
    out += r.violations().size() == 1 ? " violation" : " violations";
  }
  out += '\n';
  const std::span<const frame> scope = report_parts::scope_stack(r);
  if (style.scope_root && shares_callers(r)) {
    out += "  scope called from (every stack below continues there):\n";
    append_stack_text(out, scope_callers(r), style.max_frames);
  }

  for (const site_group& g : group_by_site(r)) {
    out += "  ";
    append_number(out, g.own.bytes);
    out += " bytes in ";
    append_number(out, g.own.count);
    if (g.first->kind == leak_kind::retained) out += " retained";
    out += g.own.count == 1 ? " block" : " blocks";
    out += " allocated ";
    if (!g.first->allocated_by.empty() && g.first->allocated_by != "new" && g.first->allocated_by != "new[]" &&
        g.first->origin.empty()) {
      out += "with ";
      out += g.first->allocated_by;
      out += ' ';
    }
    out += "at ";
    out += g.first->site.empty() ? std::string_view("(unknown site)") : std::string_view(g.first->site);
    if (!g.first->origin.empty()) {
      out += " by ";
      out += g.first->origin;
    }
    append_hanging(out, g);
    if (g.first->kind == leak_kind::retained) out += " (reachable from a global or thread_local)";
    out += '\n';
    append_stack_text(out, shown_frames(g.first->stack, scope, style), style.max_frames);
    append_hanging_sites(out, g);
  }
  if (!r.retained().empty()) {
    std::size_t bytes = 0;
    for (const leaked_block& b : r.retained()) bytes += b.size;
    out += "  not leaks: ";
    append_blocks(out, r.retained().size(), bytes);
    out += " retained (reachable from a global or thread_local)\n";
  }
  for (const violation& v : r.violations()) {
    out += "  violation: ";
    out += v.message;
    out += ": ";
    append_number(out, v.size);
    out += " bytes at ";
    out += v.site.empty() ? std::string_view("(unknown site)") : std::string_view(v.site);
    out += '\n';
    append_stack_text(out, shown_frames(v.stack, scope, style), style.max_frames);
  }
  append_unrecorded_text(out, r.unrecorded());
  return out;
}

// One line. `thread` is the thread that ended the scope. With
// style.scope_root, `scope_callers` holds the frames every block's `stack`
// continues into, left out of each, and each stack starts below the
// standard library's frames (`library_frames` counts them).
inline std::string report_json(const report& r, const report_style& style) {
  std::string out = "{\"label\":";
  append_json_string(out, r.label());
  out += ",\"file\":";
  append_json_string(out, r.where().file_name());
  out += ",\"line\":";
  out += std::to_string(r.where().line());
  out += ",\"function\":";
  append_json_string(out, r.where().function_name());
  out += ",\"leaked_blocks\":";
  out += std::to_string(r.blocks().size());
  out += ",\"leaked_bytes\":";
  out += std::to_string(r.leaked_bytes());
  out += ",\"thread\":" + std::to_string(report_parts::thread(r));
  if (const long long grace = report_parts::grace_ms(r)) out += ",\"grace_ms\":" + std::to_string(grace);
  const std::span<const frame> scope = report_parts::scope_stack(r);
  const bool scope_root = style.scope_root && shares_callers(r);
  out += scope_root ? ",\"stack_root\":\"scope\",\"scope_callers\":" : ",\"stack_root\":\"full\"";
  if (scope_root) append_stack_json(out, scope_callers(r), style.max_frames);
  const std::span<const std::uint64_t> leaders = report_parts::leaders(r);
  auto append_block_list = [&](std::span<const leaked_block> blocks, bool with_leaders) {
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      const leaked_block& b = blocks[i];
      if (i) out += ',';
      out += "{\"address\":";
      append_json_pointer(out, b.address);
      out += ",\"size\":" + std::to_string(b.size);
      out += ",\"alignment\":" + std::to_string(b.alignment);
      out += ",\"serial\":" + std::to_string(b.serial);
      out += ",\"kind\":";
      append_json_string(out, leak_kind_name(b.kind));
      // An indirect block names the direct block it hangs from, by serial.
      if (with_leaders && b.kind == leak_kind::indirect && i < leaders.size())
        out += ",\"direct\":" + std::to_string(leaders[i]);
      out += ",\"site\":";
      append_json_string(out, b.site);
      out += ",\"origin\":";
      append_json_string(out, b.origin);
      out += ",\"allocated_by\":";
      append_json_string(out, b.allocated_by);
      append_block_stack_json(out, shown_frames(b.stack, scope, style), style);
      out += '}';
    }
  };
  out += ",\"blocks\":[";
  append_block_list(r.blocks(), true);
  out += "],\"retained\":[";
  append_block_list(r.retained(), false);
  out += "],\"violations\":[";
  for (std::size_t i = 0; i < r.violations().size(); ++i) {
    const violation& v = r.violations()[i];
    if (i) out += ',';
    out += "{\"kind\":";
    append_json_string(out, violation_kind_name(v.kind));
    out += ",\"size\":" + std::to_string(v.size);
    out += ",\"serial\":" + std::to_string(v.serial);
    out += ",\"site\":";
    append_json_string(out, v.site);
    out += ",\"message\":";
    append_json_string(out, v.message);
    append_block_stack_json(out, shown_frames(v.stack, scope, style), style);
    out += '}';
  }
  out += "],\"unrecorded\":{\"allocations\":" + std::to_string(r.unrecorded().allocations);
  out += ",\"stacks\":" + std::to_string(r.unrecorded().stacks);
  out += ",\"origins\":" + std::to_string(r.unrecorded().origins);
  out += ",\"scopes\":" + std::to_string(r.unrecorded().scopes);
  out += ",\"reports\":" + std::to_string(r.unrecorded().reports);
  out += "}}";
  return out;
}

}  // namespace leakguard::detail
