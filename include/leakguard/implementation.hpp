// leakguard/implementation.hpp — leakguard's runtime, for exactly ONE .cpp
// file of a program (like doctest's DOCTEST_CONFIG_IMPLEMENT).
//
// <leakguard.hpp> and the other headers only declare; this file defines what
// they declare: tracking, the scopes' books, stacks and symbolization,
// reports, handlers, options and the fork handlers. <leakguard/global_new.hpp>
// includes it, so a program that replaces operator new already has it; a
// program that does not (allocators only, or a library that only opens
// scopes) includes this instead, in one .cpp:
//
//   // leakguard_runtime.cpp
//   #include <leakguard/implementation.hpp>
//
// No such file: the link fails with an undefined reference to
// leakguard_implementation__include_leakguard_global_new_hpp_or_..., which
// names the fix; two: "multiple definition of" the same name.
//
// Shared libraries and dlopen()ed plugins that include <leakguard.hpp> use
// the program's runtime: its entry points have default visibility, and the
// CMake, Meson and pkg-config packages export them from the executable
// (--export-dynamic-symbol), so one process has one leakguard.
#pragma once
// For <leakguard/global_malloc.hpp>, which must come first.
#define LEAKGUARD_IMPLEMENTATION_INCLUDED 1

#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory_resource>
#include <new>
#include <source_location>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "../leakguard.hpp"
#include "impl/handler.hpp"
#include "impl/interned.hpp"
#include "impl/leak_ledger.hpp"
#include "impl/metrics.hpp"
#include "impl/one_runtime.hpp"
#include "impl/options.hpp"
#include "impl/report_format.hpp"
#include "impl/sort.hpp"
#include "impl/suppressions.hpp"
#include "impl/test_support.hpp"
#include "impl/thread_state.hpp"
#include "test.hpp"

#if LEAKGUARD_ENABLED
#include "impl/fork.hpp"
#include "impl/scope_books.hpp"
#include "impl/symbolize.hpp"
#include "impl/tracking.hpp"
#include "impl/upstream.hpp"
#include "impl/verdicts.hpp"
#endif

#if !defined(LEAKGUARD_REPLACES_MALLOC)
// Where leakguard's memory comes from (impl/heap.hpp): the C library's heap,
// which <leakguard/global_malloc.hpp> replaces and then defines this itself.
namespace leakguard::detail {
constinit heap_functions heap_below{&::malloc, &::calloc, &::realloc, &::free, &::memalign, &::malloc_usable_size};
}  // namespace leakguard::detail
#endif

extern "C" LEAKGUARD_API const char
    leakguard_implementation__include_leakguard_global_new_hpp_or_leakguard_implementation_hpp_in_exactly_one_cpp = 1;

// Which copy of the runtime this is (impl/one_runtime.hpp): an address of its
// own, which no other copy can bind to.
namespace leakguard::detail {
static const char this_runtime = 0;
}  // namespace leakguard::detail
extern "C" LEAKGUARD_API const void* leakguard_runtime_identity() noexcept { return &leakguard::detail::this_runtime; }

namespace leakguard {

// ---- options ----------------------------------------------------------------------

runtime_options parse_options(std::string_view text, runtime_options base, std::string* errors) {
  return detail::parse_option_text(text, std::move(base), errors);
}
runtime_options options() { return detail::current_options(); }
void set_options(const runtime_options& o) { detail::replace_options(o); }

#if LEAKGUARD_ENABLED
namespace detail {
// LEAKGUARD_OPTIONS is read during static initialisation, so that a bad value
// is reported at start-up, whichever leakguard header the program includes.
const bool options_loaded = (options_storage(), true);
const bool second_runtime_checked = (warn_if_second_runtime(&this_runtime), true);
// Which code lacks frame pointers (code_map.hpp), before a second thread can
// exist; with global_malloc.hpp the heap's first use made it already.
const bool code_mapped = (make_code_map(), true);
}  // namespace detail
#endif

// ---- reports and handlers ---------------------------------------------------------------

report::report(std::string label, std::source_location where, std::vector<leaked_block> blocks,
               std::vector<violation> violations, unrecorded_counts unrecorded)
    : label_(std::move(label)),
      where_(detail::lasting(where)),
      blocks_(std::move(blocks)),
      violations_(std::move(violations)),
      unrecorded_(unrecorded) {
  detail::sort_by(blocks_, [](const leaked_block& b) { return b.serial; });
  for (const leaked_block& b : blocks_) bytes_ += b.size;
}

// A report's text is leakguard's output, not the user's allocation: never
// attributed to a scope, not in global_stats.
std::string report::to_text() const {
  detail::internal_guard guard;
  return detail::report_text(*this, detail::style_in_force());
}
std::string report::to_json() const {
  detail::internal_guard guard;
  return detail::report_json(*this, detail::style_in_force());
}

void abort_on_leak(const report& r) { detail::abort_with_report(r); }
void log_leak(const report& r) { detail::log_report(r); }

std::vector<site_totals> leak_sites() {
  std::vector<site_totals> out = detail::ledger().totals();
  detail::sort_by(out, [](const site_totals& s) { return detail::descending(s.bytes); });
  return out;
}

#if !LEAKGUARD_ENABLED
std::vector<retained_site> retained_sites() { return {}; }
// No leakguard thread: log_leak's sums are written by the next leak or at exit.
void detail::schedule_summary(std::chrono::steady_clock::time_point) {}
#endif

void write_metrics(std::ostream& out) {
  std::string text;
  {
    detail::internal_guard guard;
    std::ostringstream os;
    detail::write_metrics_text(os);
    text = os.str();
  }
  out << text;
}

void reset_leak_sites() {
  detail::internal_guard guard;
  detail::ledger().reset();
}

leak_handler set_leak_handler(leak_handler h) {
  leak_handler previous = detail::leak_handler_slot().exchange(std::move(h));
  if (!previous) previous = &detail::default_leak_handler;
  return previous;
}

void abort_on_misuse(const misuse& m) { detail::abort_with_misuse(m); }

misuse_handler set_misuse_handler(misuse_handler h) {
  misuse_handler previous = detail::misuse_handler_slot().exchange(std::move(h));
  if (!previous) previous = &abort_on_misuse;
  return previous;
}

void suppress(std::string_view function_pattern) { detail::add_suppression(function_pattern); }
bool unsuppress(std::string_view function_pattern) { return detail::remove_suppression(function_pattern); }
std::vector<std::string> suppressions() { return detail::suppression_patterns(); }
std::vector<suppression_use> suppression_uses() { return detail::suppression_use_list(); }

detail::internal_section::internal_section() noexcept {
  thread_state& t = tls;
  if (t.internal_depth++ == 0) t.set(slow_internal);
}
detail::internal_section::~internal_section() {
  thread_state& t = tls;
  if (--t.internal_depth == 0) t.clear(slow_internal);
}

// ---- test integrations --------------------------------------------------------------------

void test::configure(const settings& s) { detail::state().config = s; }
test::settings test::current_settings() { return detail::state().config; }
void test::allow_leaks() noexcept { detail::state().allowed.store(true, std::memory_order_relaxed); }

void test::detail::start_run(const framework_hooks& hooks) { start(hooks); }
void test::detail::end_run() { stop(); }
void test::detail::begin_test(const char* name, const char* file, int line) { open_test(name, file, line); }
void test::detail::end_test(bool check) { close_test(check); }
void test::detail::write_text(std::ostream& os, const char* text) { os << text; }
void test::detail::grow_stream(std::ostream& os, std::size_t bytes) {
  leakguard::detail::internal_guard guard;
  os << std::string(bytes, ' ');
}

void test::detail::decorate_test(const char* file, unsigned line, const decorations& d) {
  leakguard::detail::internal_guard guard;
  merge(registry().tests[{file, line}], d);
}
void test::detail::decorate_suite(const char* suite, const decorations& d) {
  leakguard::detail::internal_guard guard;
  merge(registry().suites[suite ? suite : ""], d);
}
test::detail::decorations test::detail::decorations_of(const char* file, unsigned line, const char* suite) {
  leakguard::detail::internal_guard guard;
  return find_decorations(file, line, suite);
}

#if LEAKGUARD_ENABLED

// ---- scopes ---------------------------------------------------------------------------------

// Not inlined into the caller: its frame is the line between live scope
// objects (above it) and those of frames a longjmp left (close_abandoned).
__attribute__((noinline)) scope::scope(scope_options options, std::source_location where)
    : where_(where),
      uncaught_(std::uncaught_exceptions()),
      allow_retained_(options.allow_retained),
      grace_(options.grace.count() >= 0 ? options.grace : std::chrono::milliseconds(detail::grace_ms())),
      handler_(std::move(options.handler)) {
  if (!options.label.empty()) {
    detail::internal_guard guard;  // the label's copy is leakguard's, not the user's
    label_ = std::string(options.label);
  }
  state_ = detail::open_scope({options.max_allocations, options.max_bytes, options.all_threads}, generation_, this,
                              where, reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)));
  if (state_ && detail::opened_in_library(where)) {
    detail::internal_guard guard;
    state_->opened_from = detail::capture_stack(16);
  }
  if ((injects_failure_ = options.fail_allocation != 0))
    saved_fail_countdown_ = std::exchange(detail::tls.fail_countdown, options.fail_allocation);
}

namespace detail {
// A scope ended by an exception: what survives it may belong to the
// exception (its message), freed where it is caught. Without a grace period
// its survivors go to the enclosing scope, which judges them; an outermost
// scope gives them this long.
inline constexpr std::chrono::milliseconds unwind_grace{1000};
}  // namespace detail

scope::~scope() noexcept(false) {
  if (!state_) {
    release();
    return;
  }
  end_failure_injection();
  const bool unwinding = std::uncaught_exceptions() > uncaught_;
  detail::scope_snapshot snapshot;  // internal memory: malloc, not operator new
  detail::scope_state* const s = std::exchange(state_, nullptr);
  detail::verdict_rules rules{.allow_retained = allow_retained_,
                              .opened_from = s->opened_from,
                              .lone_retained = false,
                              .other_threads_frames = detail::ending_a_test};
  const bool open = detail::end_scope(s, &snapshot, unwinding && grace_.count() == 0);
  if (open) rules.ended = s;  // kept open until close_verdict
  // Taken here, where the scope's function is still on the stack.
  if (open) rules.scope_stack = detail::capture_stack(std::max(detail::stack_depth(), detail::site_frames));
  // Survivors wait out a grace period on leakguard's thread; in on_leak=log
  // mode they are judged and reported there at once (grace 0).
  const bool off_thread = open && grace_.count() == 0 && !unwinding && detail::reports_off_thread(handler_);
  if (open && (grace_.count() > 0 || unwinding || off_thread)) {
    detail::start_grace(s, snapshot);
    detail::internal_guard guard;
    if (off_thread) handler_ = &log_leak;  // the handler in force now, whatever is set later
    const std::chrono::milliseconds grace = grace_.count() > 0 ? grace_
                                            : unwinding          ? detail::unwind_grace
                                                                 : std::chrono::milliseconds(0);
    detail::verdict_rules later = rules;
    later.thread = static_cast<std::uint64_t>(gettid());
    later.other_threads_frames = false;  // given elsewhere, the reading would include this thread's frames
    later.grace_ms = grace.count();
    detail::pending_verdict v{s,     detail::verdict_clock::now() + grace, std::move(label_), detail::lasting(where_),
                              std::move(handler_), later, detail::total_scope_ends()};
    try {
      if (detail::queue_verdict(v)) {
        release();
        return;
      }
    } catch (const std::bad_alloc&) {  // no memory to queue it: the verdict is given now
      detail::count_lost(detail::lost.reports);
    }
    label_ = std::move(v.label);
    handler_ = std::move(v.handler);
  }
  report r;
  if (open || snapshot.violation.count) {
    detail::internal_guard guard;
    detail::internal_vector<std::uintptr_t> retained;
    try {
      r = detail::build_report(label_, where_, snapshot, {}, rules, &retained);
    } catch (const std::bad_alloc&) {  // the next report says so; nothing is retained
      detail::count_lost(detail::lost.reports);
      retained.clear();
    }
    if (open) detail::close_verdict(s, retained, detail::total_scope_ends());
    if (r.empty()) detail::give_back(r.unrecorded());
  }
  if (!r.empty()) detail::call_leak_handler(handler_, r, uncaught_);
  release();
}

report scope::check() const {
  detail::internal_guard guard;
  detail::scope_snapshot snapshot;
  if (state_) detail::collect_nested(state_, generation_, snapshot);
  return detail::build_report(label_, where_, snapshot, {},
                              {.allow_retained = allow_retained_, .opened_from = state_ ? state_->opened_from : nullptr});
}

scope_stats scope::stats() const {
  scope_stats s;
  if (state_ && detail::lock_if_current(state_, generation_)) {
    s = {state_->allocations,    state_->deallocations,       state_->live_blocks,
         state_->live_bytes,     state_->peak_bytes,          state_->escaped_blocks,
         state_->escaped_bytes,  state_->escaped_freed_blocks, state_->escaped_freed_bytes};
    state_->lock.unlock();
  }
  return s;
}

void scope::dismiss() noexcept {
  if (!state_) return;
  end_failure_injection();
  detail::end_scope(std::exchange(state_, nullptr), nullptr);
}

void scope::end_failure_injection() noexcept {
  if (injects_failure_) detail::tls.fail_countdown = saved_fail_countdown_;
}

void scope::release() noexcept {
  std::string().swap(label_);
  leak_handler().swap(handler_);
}

ignore_scope::ignore_scope() noexcept { ++detail::tls.ignore_depth; }
ignore_scope::~ignore_scope() { --detail::tls.ignore_depth; }

no_alloc_scope::no_alloc_scope(std::source_location where) noexcept
    : where_(where), uncaught_(std::uncaught_exceptions()) {
  detail::thread_state& t = detail::tls;
  zone_.outer = t.no_alloc;
  t.no_alloc = &zone_;
  t.set(detail::slow_no_alloc);
}

no_alloc_scope::~no_alloc_scope() noexcept(false) {
  detail::thread_state& t = detail::tls;
  if (t.no_alloc == &zone_) t.no_alloc = zone_.outer;
  if (!t.no_alloc) t.clear(detail::slow_no_alloc);
  if (zone_.count == 0) return;
  report r;
  try {
    detail::internal_guard guard;
    const detail::symbolized_stack st = detail::symbolize(zone_.stack, max_stack_depth);
    std::string msg = "allocation inside a no_alloc_scope (" + std::to_string(zone_.count) +
                      (zone_.count == 1 ? " allocation)" : " allocations)");
    std::vector<violation> v{violation{violation_kind::no_alloc, zone_.size, zone_.serial, st.site, st.frames, msg}};
    r = report("no_alloc_scope", where_, {}, std::move(v), detail::take_lost());
  } catch (const std::bad_alloc&) {  // the next report says so
    detail::count_lost(detail::lost.reports);
    return;
  }
  detail::call_leak_handler({}, r, uncaught_);
}

void ignore(const void* p) noexcept {
  if (!p || !detail::header_readable(p)) return;
  detail::block_header* h = detail::header_of(p);
  if (h->magic() != detail::header_magic || (h->flags() & detail::flag_freed)) return;
  if (h->flags() & detail::flag_tracked) detail::settle(h, false);
}

void release(const void* p) noexcept {
  if (!p || !detail::header_readable(p)) return;
  detail::block_header* h = detail::header_of(p);
  if (h->magic() != detail::header_magic || (h->flags() & detail::flag_freed)) return;
  if (h->flags() & detail::flag_tracked) detail::release_graph(h);
}

void flush() {
  struct sums_after {  // what the verdicts add included, also when a handler threw
    ~sums_after() { detail::write_pending_summary(); }
  } after;
  detail::flush_verdicts();
}

std::vector<retained_site> retained_sites() { return detail::retained_site_list(); }

context current_context() noexcept {
  context c;
  c.scope_ = detail::tls.innermost;
  c.generation_ = detail::tls.innermost_generation;
  return c;
}

adopt::adopt(const context& ctx) noexcept {
  detail::thread_state& t = detail::tls;
  if (t.slow.load(std::memory_order_relaxed) & detail::slow_unregistered) detail::register_thread(t);
  saved_ = t.innermost;
  saved_generation_ = t.innermost_generation;
  t.innermost = ctx.scope_;
  t.innermost_generation = ctx.generation_;
  if (t.innermost) t.set(detail::slow_scoped);
  else t.clear(detail::slow_scoped);
  t.adopting.fetch_add(1);  // the adopted chain may not hold an all_threads scope this thread opened
  detail::adopting_changed(t);
}

adopt::~adopt() {
  detail::thread_state& t = detail::tls;
  t.adopting.fetch_sub(1);
  detail::adopting_changed(t);
  t.innermost = saved_;
  t.innermost_generation = saved_generation_;
  if (t.innermost) t.set(detail::slow_scoped);
  else t.clear(detail::slow_scoped);
}

// ---- whole-process figures ------------------------------------------------------------------

heap_stats global_stats() noexcept {
  const detail::process_counts c = detail::sum_counts();
  heap_stats s;
  s.allocations = c.allocations;
  s.deallocations = c.deallocations;
  // Threads' counters are read one after another: a block allocated on one
  // thread after its counters were read and freed on another before its
  // were can make the sum dip below zero for a moment. Never wrap.
  const auto blocks = static_cast<std::int64_t>(c.allocations - c.deallocations);
  const auto bytes = static_cast<std::int64_t>(c.bytes_allocated - c.bytes_freed);
  s.live_blocks = static_cast<std::size_t>(blocks > 0 ? blocks : 0);
  s.live_bytes = static_cast<std::size_t>(bytes > 0 ? bytes : 0);
  s.peak_bytes = static_cast<std::size_t>(detail::raise_peak(static_cast<std::int64_t>(s.live_bytes)));
  return s;
}

// ---- allocators -------------------------------------------------------------------------------

void* detail::allocator_allocate(std::size_t bytes, std::size_t alignment, const origin_ref& origin) noexcept {
  return allocate_from<alloc_kind::allocator>(bytes, alignment, origin);
}

void detail::allocator_deallocate(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  deallocate<alloc_kind::allocator>(p, bytes, alignment);
}

detail::upstream_plan detail::adaptor_plan(std::size_t size, std::size_t alignment) {
  return plan_upstream(size, alignment, /*resource=*/false);
}

void* detail::adaptor_place(void* raw, std::size_t size, const upstream_plan& plan, const origin_ref& origin) noexcept {
  void* user = place_upstream(raw, size, plan, alloc_kind::allocator);
  track_block(tls, user, size, watch_of(plan), plan.flags, &origin);
  return user;
}

detail::upstream_release detail::adaptor_release(void* p, std::size_t size, std::size_t alignment) noexcept {
  return release_upstream(p, size, alignment, alloc_kind::allocator, nullptr, "leakguard::allocator<T, Upstream>");
}

memory_resource::memory_resource(std::string_view label, std::pmr::memory_resource* upstream,
                                 std::source_location where)
    : upstream_(upstream ? upstream : std::pmr::get_default_resource()), where_(where) {
  detail::internal_guard guard;
  label_ = std::string(label);
  live_.prev = live_.next = &live_;
  live_.resource = this;
  live_.flags = 0;
}

memory_resource::~memory_resource() {
  if (check_on_destruction_) {
    try {
      report r = outstanding();
      if (!r.empty()) detail::call_leak_handler({}, r, uncaught_);
    } catch (const std::bad_alloc&) {  // no memory for the report: the next one says so
      detail::count_lost(detail::lost.reports);
    } catch (...) {  // a destructor cannot pass it on
      std::fputs("leakguard: leak handler threw from ~memory_resource; dropped\n", stderr);
    }
  }
  detail::internal_guard guard;
  std::string().swap(label_);
}

void memory_resource::check_on_destruction(bool on) noexcept {
  check_on_destruction_ = on;
  uncaught_ = std::uncaught_exceptions();
}

report memory_resource::outstanding() const {
  detail::internal_guard guard;
  detail::scope_snapshot snapshot;
  {
    detail::lock_guard g(detail::resource_lock(this));
    for (detail::resource_link* l = live_.next; l != &live_; l = l->next) {
      const auto flags = static_cast<std::uint8_t>(l->flags);
      snapshot.blocks.push_back(detail::snapshot_of(detail::record_of(detail::header_of(l, flags))));
    }
  }
  // The resource is going away: every block it still has is lost, reachable or not.
  return detail::build_report(label_.empty() ? "memory_resource" : label_, where_, snapshot, {}, {.classify = false});
}

void* memory_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  using namespace detail;
  const upstream_plan plan = plan_upstream(bytes, alignment, /*resource=*/true);
  void* raw = nullptr;
  {
    internal_guard guard;
    if (upstream_ != std::pmr::new_delete_resource()) {
      raw = upstream_->allocate(plan.bytes, plan.alignment);
    } else if (plan.alignment <= default_alignment) {
      // The usual upstream: the heap below directly, so that with
      // global_new.hpp the block is not counted a second time as a `new`.
      raw = heap_malloc(plan.bytes);
    } else {
      raw = heap_memalign(plan.alignment, plan.bytes);
    }
  }
  if (!raw) throw std::bad_alloc();
  void* user = place_upstream(raw, bytes, plan, alloc_kind::resource);
  resource_link* l = resource_of(header_of(user));
  l->resource = this;
  l->flags = plan.flags;
  {
    lock_guard g(resource_lock(this));
    link(live_, l);
  }
  const origin_ref origin{label_.data(), label_.size(), where_, "leakguard::memory_resource"};
  track_block(tls, user, bytes, watch_of(plan), plan.flags, &origin);
  return user;
}

void memory_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  using namespace detail;
  if (!p) return;
  if (header_readable(p)) {  // unlink first: release_upstream frees the block's books
    block_header* h = header_of(p);
    if (h->magic() == header_magic && !(h->flags() & flag_freed) && (h->flags() & flag_resource) &&
        resource_of(h)->resource == this) {
      lock_guard g(resource_lock(this));
      unlink(resource_of(h));
    }
  }
  const upstream_release r = release_upstream(p, bytes, alignment, alloc_kind::resource, this, "leakguard::memory_resource");
  if (!r.raw) return;
  if (upstream_ == std::pmr::new_delete_resource()) heap_free(r.raw);
  else upstream_->deallocate(r.raw, r.bytes, r.alignment);
}

#else  // LEAKGUARD_DISABLE: nothing is tracked.

heap_stats global_stats() noexcept { return {}; }

#endif  // LEAKGUARD_ENABLED

}  // namespace leakguard
