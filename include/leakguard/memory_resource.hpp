// leakguard/memory_resource.hpp — a tracking std::pmr::memory_resource.
//
//   leakguard::memory_resource tracked;                     // over the default resource
//   std::pmr::vector<std::pmr::string> names{&tracked};
//
//   std::pmr::monotonic_buffer_resource arena;
//   leakguard::memory_resource over_arena{&arena};         // any upstream
//
// Blocks are tracked and attributed like `new` blocks and counted once. The
// resource also keeps its own list: outstanding() reports what is live.
#pragma once

#include <cstddef>
#include <cstdio>
#include <exception>
#include <memory_resource>
#include <new>
#include <source_location>
#include <string>
#include <string_view>

#include "config.hpp"
#include "report.hpp"

#if LEAKGUARD_ENABLED
#include "detail/scope_books.hpp"
#include "scope.hpp"
#include "detail/tracking.hpp"
#include "detail/upstream.hpp"
#endif

namespace leakguard {

class memory_resource : public std::pmr::memory_resource {
 public:
  explicit memory_resource(std::pmr::memory_resource* upstream = std::pmr::get_default_resource(),
                           std::source_location where = std::source_location::current())
      : memory_resource(std::string_view{}, upstream, where) {}
  // `label` names the resource in reports (copied).
  explicit memory_resource(std::string_view label,
                           std::pmr::memory_resource* upstream = std::pmr::get_default_resource(),
                           std::source_location where = std::source_location::current())
      : upstream_(upstream ? upstream : std::pmr::get_default_resource()), where_(where) {
#if LEAKGUARD_ENABLED
    detail::internal_guard guard;
    label_ = std::string(label);
    live_.prev = live_.next = &live_;
    live_.resource = this;
    live_.flags = 0;
#else
    (void)label;
#endif
  }
  memory_resource(const memory_resource&) = delete;
  memory_resource& operator=(const memory_resource&) = delete;
  // With check_on_destruction(), blocks still live here go to the leak
  // handler as one report (label and construction site of the resource).
  ~memory_resource() override {
#if LEAKGUARD_ENABLED
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
#endif
  }

  std::pmr::memory_resource* upstream() const noexcept { return upstream_; }

  // Asks the destructor to report what is still live. Off by default: a
  // resource under a pool, or one whose owner frees wholesale, legitimately
  // dies with blocks outstanding.
  void check_on_destruction(bool on = true) noexcept {
#if LEAKGUARD_ENABLED
    check_on_destruction_ = on;
    uncaught_ = std::uncaught_exceptions();
#else
    (void)on;
#endif
  }

  // The blocks of this resource still live, whatever scope they belong to.
  report outstanding() const {
#if LEAKGUARD_ENABLED
    detail::internal_guard guard;
    detail::scope_snapshot snapshot;
    {
      detail::lock_guard g(detail::resource_lock(this));
      for (detail::resource_link* l = live_.next; l != &live_; l = l->next) {
        const auto flags = static_cast<std::uint8_t>(l->flags);
        snapshot.blocks.push_back(detail::snapshot_of(detail::record_of(detail::header_of(l, flags))));
      }
    }
    return detail::build_report(label_.empty() ? "memory_resource" : label_, where_, snapshot);
#else
    return {};
#endif
  }

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

 private:
  std::pmr::memory_resource* upstream_;
  std::source_location where_;
#if LEAKGUARD_ENABLED
  std::string label_;
  bool check_on_destruction_ = false;
  int uncaught_ = 0;
  detail::resource_link live_;  // sentinel of this resource's live blocks, under resource_lock(this)
#endif
};

#if LEAKGUARD_ENABLED

inline void* memory_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  using namespace detail;
  const bool direct = upstream_ == std::pmr::new_delete_resource();
  const upstream_block b =
      allocate_upstream(bytes, alignment, alloc_kind::resource, /*resource=*/true, [&](std::size_t n, std::size_t a) {
        // The usual upstream: malloc directly, so that with global_new.hpp
        // the block is not counted a second time as a `new`.
        if (!direct) return upstream_->allocate(n, a);
        void* raw = nullptr;
        if (a <= default_alignment) raw = std::malloc(n);
        else if (posix_memalign(&raw, a, n) != 0) raw = nullptr;
        return raw;
      });
  resource_link* l = resource_of(header_of(b.user));
  l->resource = this;
  l->flags = b.flags;
  {
    lock_guard g(resource_lock(this));
    link(live_, l);
  }
  const origin_ref origin{label_, where_, "leakguard::memory_resource"};
  track_block(tls, b.user, bytes, b.w, b.flags, &origin);
  return b.user;
}

inline void memory_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
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
  if (upstream_ == std::pmr::new_delete_resource()) std::free(r.raw);
  else upstream_->deallocate(r.raw, r.bytes, r.alignment);
}

#else  // LEAKGUARD_DISABLE: a plain pass-through to the upstream.

inline void* memory_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  return upstream_->allocate(bytes, alignment);
}

inline void memory_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  upstream_->deallocate(p, bytes, alignment);
}

#endif  // LEAKGUARD_ENABLED

}  // namespace leakguard
