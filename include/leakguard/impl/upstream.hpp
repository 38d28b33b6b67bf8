// leakguard/impl/upstream.hpp — blocks whose memory comes from somewhere
// other than malloc: a memory_resource's upstream resource, or the user's
// allocator under allocator<T, Upstream>.
//
// Their headers carry flag_upstream (and flag_resource for resources), so a
// plain `delete` of one is reported and left alone: the memory belongs to a
// heap leakguard cannot free into.
#pragma once

#include <cstddef>
#include <new>
#include <string>

#include "../detail/runtime_api.hpp"
#include "tracking.hpp"

namespace leakguard::detail {

// Checks the request and decides the block's layout; the caller gets
// plan.bytes aligned to plan.alignment from its upstream as leakguard's own
// work, then place_upstream() writes the header and counts the block. Upstream
// allocations are never attributed or counted themselves (the block is, once).
inline upstream_plan plan_upstream(std::size_t size, std::size_t alignment, bool resource) {
  if (size >= max_request) throw std::bad_alloc();
  thread_state& t = tls;
  const watch w = watch_of(t);
  if (inject_failure(t, w)) throw std::bad_alloc();
  const std::uint8_t flags = layout_for(w, resource) | flag_upstream;
  alignment = effective_alignment(alignment);
  return {block_bytes(size, flags, alignment), alignment, flags, w.slow, w.watched, w.forbidden};
}

inline void* place_upstream(void* raw, std::size_t size, const upstream_plan& plan, alloc_kind kind) noexcept {
  void* user = init_block(raw, size, plan.alignment, kind, plan.flags);
  if (!(plan.flags & flag_internal)) count_allocation_cold(tls, size);
  return user;
}

inline watch watch_of(const upstream_plan& plan) noexcept { return {plan.slow, plan.watched, plan.forbidden}; }

// Checks a block handed back to `who` (an allocator adaptor, or the resource
// `resource`), reports misuse, settles it in its scopes, and tells where its
// memory goes back to. A mismatched size or alignment is reported and the
// block freed as it was allocated.
inline upstream_release release_upstream(void* p, std::size_t size, std::size_t alignment, alloc_kind kind,
                                         const void* resource, const char* who) noexcept {
  block_header* h = header_of(p);
  const bool readable = header_readable(p);
  const bool live = readable && h->magic() == header_magic && !(h->flags() & flag_freed);
  const bool ours = live && h->kind() == kind && (h->flags() & flag_upstream) &&
                    (!resource || resource_of(h)->resource == resource);
  if (!ours) {
    misuse_kind problem = misuse_kind::wrong_allocator;
    if (!readable) problem = user_poisoned(p) ? misuse_kind::double_free : misuse_kind::foreign_pointer;
    else if (h->magic() == header_magic && (h->flags() & flag_freed)) problem = misuse_kind::double_free;
    else if (h->magic() != header_magic) problem = looks_freed(p) ? misuse_kind::double_free : misuse_kind::foreign_pointer;
    std::string msg;
    {
      internal_guard guard;
      msg = std::string(problem == misuse_kind::double_free ? "double free: " : "") + who + " deallocate of " +
            describe(p);
      if (problem == misuse_kind::double_free) msg += ", a block that was already freed";
      else if (problem == misuse_kind::foreign_pointer) msg += ", which leakguard did not allocate";
      else if (h->kind() == kind && resource) msg += ", a block of another leakguard::memory_resource";
      else msg += std::string(", a block allocated by ") + kind_name(h->kind());
    }
    report_misuse(problem, p, problem == misuse_kind::wrong_allocator ? h : nullptr, std::move(msg));
    return {};
  }
  if (size != h->size || effective_alignment(alignment) != h->alignment()) {
    std::string msg;
    {
      internal_guard guard;
      msg = std::string(who) + " deallocate of " + describe(p) + " with size " + std::to_string(size) +
            " and alignment " + std::to_string(alignment) + ", but the block was allocated with size " +
            std::to_string(h->size) + " and alignment " + std::to_string(h->alignment());
    }
    report_misuse(size != h->size ? misuse_kind::size_mismatch : misuse_kind::alignment_mismatch, p, h,
                  std::move(msg));
  }
  const std::uint8_t flags = h->flags();
  if (flags & flag_tracked) settle(h, true);
  if (!(flags & flag_internal)) count_deallocation_cold(tls, h->size);
  upstream_release out{raw_of(h), block_bytes(h->size, flags, h->alignment()), h->alignment()};
  h->set_flags(flags | flag_freed);
  mark_freed(p);
  return out;
}

}  // namespace leakguard::detail
