// leakguard/impl/report_parts.hpp — the parts of a report that its public
// constructor does not take: retained blocks, which direct block each
// indirect one hangs from, the thread that ended the scope, the grace period
// its verdict waited, and the scope's stack at its end.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "../report.hpp"

namespace leakguard::detail {

struct report_parts {
  static void attach(report& r, std::vector<leaked_block> retained, std::vector<std::uint64_t> leaders,
                     std::uint64_t thread, long long grace_ms) {
    r.retained_ = std::move(retained);
    r.leaders_ = std::move(leaders);
    r.thread_ = thread;
    r.grace_ms_ = grace_ms;
  }
  static void set_scope_stack(report& r, std::vector<frame> stack) { r.scope_stack_ = std::move(stack); }
  static std::span<const std::uint64_t> leaders(const report& r) noexcept { return r.leaders_; }
  static std::uint64_t thread(const report& r) noexcept { return r.thread_; }
  static long long grace_ms(const report& r) noexcept { return r.grace_ms_; }
  static std::span<const frame> scope_stack(const report& r) noexcept { return r.scope_stack_; }
};

}  // namespace leakguard::detail
