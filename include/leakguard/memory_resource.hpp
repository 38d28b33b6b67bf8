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
#include <memory_resource>
#include <new>
#include <source_location>
#include <string>
#include <string_view>

#include "config.hpp"
#include "report.hpp"

#if LEAKGUARD_ENABLED
#include "detail/scope_books.hpp"
#include "detail/tracking.hpp"
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
  ~memory_resource() override {
#if LEAKGUARD_ENABLED
    detail::internal_guard guard;
    std::string().swap(label_);
#endif
  }

  std::pmr::memory_resource* upstream() const noexcept { return upstream_; }

  // The blocks of this resource still live, whatever scope they belong to.
  report outstanding() const {
#if LEAKGUARD_ENABLED
    detail::internal_guard guard;
    detail::scope_snapshot snapshot;
    {
      detail::lock_guard g(lock_);
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
  mutable detail::spin_lock lock_;
  detail::resource_link live_;  // sentinel of this resource's live blocks
#endif
};

#if LEAKGUARD_ENABLED

inline void* memory_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  using namespace detail;
  if (bytes >= max_request) throw std::bad_alloc();
  thread_state& t = tls;
  const watch w = watch_of(t);
  if (inject_failure(t, w)) throw std::bad_alloc();
  const std::uint8_t flags = layout_for(w, /*resource=*/true);
  alignment = effective_alignment(alignment);
  const std::size_t total = block_bytes(bytes, flags, alignment);
  void* raw;
  if (upstream_ == std::pmr::new_delete_resource()) {
    // The usual upstream: leakguard's own raw path, so that with
    // global_new.hpp the block is not counted a second time as a `new`.
    raw = alignment <= default_alignment ? std::malloc(total)
                                         : (posix_memalign(&raw, alignment, total) == 0 ? raw : nullptr);
    if (!raw) throw std::bad_alloc();
  } else {
    internal_guard guard;  // the upstream's own allocations are not the user's
    raw = upstream_->allocate(total, alignment);
  }
  void* p = init_block(raw, bytes, alignment, alloc_kind::resource, flags);
  if (!(flags & flag_internal)) count_allocation_cold(t, bytes);
  resource_link* l = resource_of(header_of(p));
  l->resource = this;
  l->flags = flags;
  {
    lock_guard g(lock_);
    link(live_, l);
  }
  const origin_ref origin{label_, where_, "leakguard::memory_resource"};
  track_block(t, p, bytes, w, flags, &origin);
  return p;
}

inline void memory_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  using namespace detail;
  if (!p) return;
  block_header* h = header_of(p);
  const bool ours = header_readable(p) && h->magic() == header_magic && !(h->flags() & flag_freed) &&
                    h->kind() == alloc_kind::resource && (h->flags() & flag_resource) &&
                    resource_of(h)->resource == this;
  if (!ours) {
    // Not this resource's live block: report it, and free nothing (its
    // memory, if any, belongs to some other heap).
    std::string msg;
    misuse_kind kind = misuse_kind::foreign_pointer;
    {
      internal_guard guard;
      msg = "leakguard::memory_resource::deallocate of " + describe(p);
      if (!header_readable(p)) {
        kind = user_poisoned(p) ? misuse_kind::double_free : misuse_kind::foreign_pointer;
        msg += kind == misuse_kind::double_free ? ", a block that was already freed" : ", which leakguard did not allocate";
      } else if (h->magic() == header_magic && (h->flags() & flag_freed)) {
        kind = misuse_kind::double_free;
        msg = "double free: " + msg + ", a block that was already freed";
      } else if (h->magic() != header_magic) {
        if (looks_freed(p)) kind = misuse_kind::double_free;
        msg += kind == misuse_kind::double_free ? ", a block that was already freed"
                                                : ", which leakguard did not allocate";
      } else {
        kind = misuse_kind::wrong_allocator;
        msg += h->kind() == alloc_kind::resource ? ", a block of another leakguard::memory_resource"
                                                 : std::string(", a block allocated by ") + kind_name(h->kind());
      }
    }
    return report_misuse(kind, p, kind == misuse_kind::wrong_allocator ? h : nullptr, std::move(msg));
  }
  if (bytes != h->size || effective_alignment(alignment) != h->alignment()) {
    std::string msg;
    {
      internal_guard guard;
      msg = "leakguard::memory_resource::deallocate of " + describe(p) + " with size " + std::to_string(bytes) +
            " and alignment " + std::to_string(alignment) + ", but the block was allocated with size " +
            std::to_string(h->size) + " and alignment " + std::to_string(h->alignment());
    }
    report_misuse(bytes != h->size ? misuse_kind::size_mismatch : misuse_kind::alignment_mismatch, p, h,
                  std::move(msg));
  }
  // Freed as it was allocated, whatever the call said.
  const std::uint8_t flags = h->flags();
  settle(h, true);
  {
    lock_guard g(lock_);
    unlink(resource_of(h));
  }
  if (!(flags & flag_internal)) count_deallocation_cold(tls, h->size);
  const std::size_t total = block_bytes(h->size, flags, h->alignment());
  const std::size_t align = h->alignment();
  void* raw = raw_of(h);
  h->set_flags(flags | flag_freed);
  mark_freed(p);
  if (upstream_ == std::pmr::new_delete_resource()) std::free(raw);
  else upstream_->deallocate(raw, total, align);
}

#endif  // LEAKGUARD_ENABLED

}  // namespace leakguard
