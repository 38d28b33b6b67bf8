// leakguard/report.hpp — what a scope found: leaked blocks and violations.
//
// A report is a plain value: copy it, keep it after the scope and its label
// are gone, print it with to_text() or to_json().
#pragma once

#include <cstddef>
#include <cstdint>
#include <source_location>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config.hpp"

namespace leakguard {

namespace detail {
struct report_parts;
}

// One symbolized stack frame. `file` is empty and `line` 0 without debug info.
struct frame {
  const void* pc = nullptr;
  std::string function;
  std::string file;
  int line = 0;
  // For a frame without a source line: the object that holds `pc` and the
  // offset in it, "/usr/lib/x86_64-linux-gnu/libz.so.1+0x3a4f" (for
  // addr2line); empty where the loader knows no object there.
  std::string module = {};
};

// What the verdict found a surviving block to be (impl/reachability.hpp):
// `direct`: nothing the program can reach points to it; `indirect`: only
// other leaked blocks of the same report do; `retained`: it is reachable
// from a global, a function-local static or a thread_local.
enum class leak_kind { direct, indirect, retained };

struct leaked_block {
  const void* address = nullptr;  // what the allocation function returned
  std::size_t size = 0;           // bytes asked for
  std::size_t alignment = 0;
  // Allocation number: unique in the process, increasing on each thread and
  // across threads whenever one allocation happens after another (threads
  // allocating at the same moment: see impl/serial.hpp).
  std::uint64_t serial = 0;
  std::string site;               // user's "file:line", else the function
  std::vector<frame> stack;       // allocation stack, innermost first
  // Blocks of leakguard::allocator / memory_resource: its label and where it
  // was constructed, e.g. `"session cache" (leakguard::allocator constructed
  // at cache.cpp:12)`. Empty for `new`.
  std::string origin;
  leak_kind kind = leak_kind::direct;
  // The allocation function: "new", "new[]", "leakguard::allocator", and with
  // <leakguard/global_malloc.hpp> "malloc", "calloc", "realloc",
  // "aligned_alloc" ..., or the C library function that called it for the
  // user ("strdup", "getline", "asprintf") when the stack shows one.
  std::string allocated_by;
};

enum class violation_kind { allocation_budget, byte_budget, no_alloc };

// A budget exceeded, or an allocation inside a no_alloc_scope. A scope keeps
// the first offending allocation; `message` says how many more there were.
struct violation {
  violation_kind kind = violation_kind::allocation_budget;
  std::size_t size = 0;  // bytes asked for by the offending allocation
  std::uint64_t serial = 0;
  std::string site;
  std::vector<frame> stack;
  std::string message;
};

// What leakguard could not record since the previous report because its own
// bookkeeping ran out of memory, or because a signal handler allocated while
// the thread it interrupted was inside leakguard. The user's allocations were
// not affected (they succeed or fail as they would without leakguard), but
// this report may miss leaks or sites.
struct unrecorded_counts {
  std::uint64_t allocations = 0;  // made without a record (out of memory, a signal handler): their leaks cannot be reported
  std::uint64_t stacks = 0;       // recorded without their stack: their site is unknown
  std::uint64_t origins = 0;      // recorded without the name of their allocator or resource
  std::uint64_t scopes = 0;       // scopes that could not be opened: nothing in them was checked
  std::uint64_t reports = 0;      // reports that could not be built (their leaks are missing) or added to leak_sites()
  bool any() const noexcept { return allocations || stacks || origins || scopes || reports; }
};

class LEAKGUARD_API report {
 public:
  report() = default;
  // Reports are normally made by leakguard; this constructor lets a user's
  // tests feed their own handlers. Blocks are sorted by serial.
  report(std::string label, std::source_location where, std::vector<leaked_block> blocks,
         std::vector<violation> violations = {}, unrecorded_counts unrecorded = {});

  // No leak and no violation.
  bool empty() const noexcept { return blocks_.empty() && violations_.empty(); }
  std::size_t leaked_blocks() const noexcept { return blocks_.size(); }
  std::size_t leaked_bytes() const noexcept { return bytes_; }
  std::span<const leaked_block> blocks() const noexcept { return blocks_; }
  // Blocks kept reachable from a global or thread_local, which the scope's
  // allow_retained (the default) does not count as leaks; ordered by serial.
  std::span<const leaked_block> retained() const noexcept { return retained_; }
  std::span<const violation> violations() const noexcept { return violations_; }
  std::string_view label() const noexcept { return label_; }
  // Not part of empty(): a scope without leaks is not reported for this.
  const unrecorded_counts& unrecorded() const noexcept { return unrecorded_; }

  // Where the scope was opened (its strings are the compiler's literals,
  // valid for the life of the program).
  std::source_location where() const noexcept { return where_; }

  std::string to_text() const;
  std::string to_json() const;

 private:
  friend struct detail::report_parts;
  std::string label_;
  std::source_location where_;
  std::vector<leaked_block> blocks_;
  std::vector<violation> violations_;
  unrecorded_counts unrecorded_;
  std::size_t bytes_ = 0;
  std::vector<leaked_block> retained_;
  std::vector<std::uint64_t> leaders_;  // per block: the serial of the direct block an indirect one hangs from
  std::uint64_t thread_ = 0;           // the thread that ended the scope
  std::vector<frame> scope_stack_;     // at the scope's end, from its function outward
  long long grace_ms_ = 0;             // the grace period that verdict waited
};

}  // namespace leakguard
