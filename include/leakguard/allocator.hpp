// leakguard/allocator.hpp — a tracking std allocator, for code that wants
// only some containers watched or cannot replace global operator new.
//
//   std::unordered_map<int, std::string, std::hash<int>, std::equal_to<>,
//                      leakguard::allocator<std::pair<const int, std::string>>>
//       cache{leakguard::allocator<std::pair<const int, std::string>>{"session cache"}};
//
// Its blocks are tracked and attributed like `new` blocks, with or without
// <leakguard/global_new.hpp>, and counted once: they come from leakguard's
// own raw path, not from operator new. Reports name the allocating line and
// the allocator's label and construction site.
//
// allocator<T, Upstream> tracks blocks that come from the user's own
// allocator instead (an arena, a pool):
//
//   std::vector<int, leakguard::allocator<int, arena_allocator<int>>> v{
//       leakguard::allocator<int, arena_allocator<int>>{arena_allocator<int>{arena}, "ids"}};
#pragma once

#include <cstddef>
#include <new>
#include <source_location>
#include <string_view>
#include <type_traits>

#include "config.hpp"
#include "detail/runtime_api.hpp"
#include "detail/std_parts.hpp"  // std::allocator_traits, std::to_address

namespace leakguard {

// Upstream = void: leakguard's own heap.
template <class T, class Upstream = void>
class allocator;

template <class T>
class allocator<T, void> {
 public:
  using value_type = T;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  // Every instance can free every other's blocks: they share one heap.
  using is_always_equal = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;

  // `where` is shown in reports; a label (a string that outlives the
  // allocator and its copies, e.g. a literal) names the container.
  allocator(std::source_location where = std::source_location::current()) noexcept
      : label_(), where_(where) {}
  explicit allocator(std::string_view label, std::source_location where = std::source_location::current()) noexcept
      : label_(label), where_(where) {}
  template <class U>
  allocator(const allocator<U>& other) noexcept : label_(other.label()), where_(other.where()) {}

  [[nodiscard]] T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
#if LEAKGUARD_ENABLED
    void* p = detail::allocator_allocate(n * sizeof(T), alignof(T),
                                         detail::origin_ref{label_.data(), label_.size(), where_, "leakguard::allocator"});
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
#else
    return std::allocator<T>{}.allocate(n);
#endif
  }

#if defined(__cpp_lib_allocate_at_least) && __cpp_lib_allocate_at_least >= 202106L
  [[nodiscard]] std::allocation_result<T*, std::size_t> allocate_at_least(std::size_t n) {
    return {allocate(n), n};
  }
#endif

  // REQUIRES: p came from allocate(n) of a leakguard::allocator (any T, same
  // n * sizeof(T)); anything else is reported as heap misuse.
  void deallocate(T* p, std::size_t n) noexcept {
#if LEAKGUARD_ENABLED
    detail::allocator_deallocate(p, n * sizeof(T), alignof(T));
#else
    std::allocator<T>{}.deallocate(p, n);
#endif
  }

  std::string_view label() const noexcept { return label_; }
  std::source_location where() const noexcept { return where_; }

  template <class U>
  friend bool operator==(const allocator&, const allocator<U>&) noexcept {
    return true;
  }

 private:
  std::string_view label_;
  std::source_location where_;
};

// Tracks the blocks of a user's allocator: each block (with leakguard's
// header in front) comes from `Upstream` rebound to suitably aligned units,
// and goes back to it. Equality, propagation and is_always_equal follow
// Upstream; rebinding rebinds Upstream too.
template <class T, class Upstream>
class allocator {
  using upstream_traits = std::allocator_traits<Upstream>;

 public:
  using value_type = T;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using upstream_type = Upstream;
  using is_always_equal = typename upstream_traits::is_always_equal;
  using propagate_on_container_copy_assignment = typename upstream_traits::propagate_on_container_copy_assignment;
  using propagate_on_container_move_assignment = typename upstream_traits::propagate_on_container_move_assignment;
  using propagate_on_container_swap = typename upstream_traits::propagate_on_container_swap;
  template <class U>
  struct rebind {
    using other = allocator<U, typename upstream_traits::template rebind_alloc<U>>;
  };

  allocator(std::source_location where = std::source_location::current()) noexcept(
      std::is_nothrow_default_constructible_v<Upstream>)
      : upstream_(), where_(where) {}
  explicit allocator(const Upstream& upstream, std::string_view label = {},
                     std::source_location where = std::source_location::current()) noexcept
      : upstream_(upstream), label_(label), where_(where) {}
  template <class U, class OtherUpstream>
  allocator(const allocator<U, OtherUpstream>& other) noexcept
      : upstream_(other.upstream()), label_(other.label()), where_(other.where()) {}

  [[nodiscard]] T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
#if LEAKGUARD_ENABLED
    const detail::upstream_plan plan = detail::adaptor_plan(n * sizeof(T), alignof(T));
    void* raw;
    {
      detail::internal_section upstream_work;  // the block is counted once, below
      unit_allocator units(upstream_);
      raw = std::to_address(std::allocator_traits<unit_allocator>::allocate(units, units_for(plan.bytes)));
    }
    return static_cast<T*>(
        detail::adaptor_place(raw, n * sizeof(T), plan,
                              detail::origin_ref{label_.data(), label_.size(), where_, "leakguard::allocator"}));
#else
    typename upstream_traits::template rebind_alloc<T> typed(upstream_);
    return std::to_address(std::allocator_traits<decltype(typed)>::allocate(typed, n));
#endif
  }

  void deallocate(T* p, std::size_t n) noexcept {
#if LEAKGUARD_ENABLED
    if (!p) return;
    const detail::upstream_release r = detail::adaptor_release(p, n * sizeof(T), alignof(T));
    if (!r.raw) return;
    unit_allocator units(upstream_);
    std::allocator_traits<unit_allocator>::deallocate(units, static_cast<unit*>(r.raw), units_for(r.bytes));
#else
    typename upstream_traits::template rebind_alloc<T> typed(upstream_);
    std::allocator_traits<decltype(typed)>::deallocate(typed, p, n);
#endif
  }

  const Upstream& upstream() const noexcept { return upstream_; }
  std::string_view label() const noexcept { return label_; }
  std::source_location where() const noexcept { return where_; }

  template <class U, class OtherUpstream>
  friend bool operator==(const allocator& a, const allocator<U, OtherUpstream>& b) noexcept {
    return a.upstream() == b.upstream();
  }

 private:
  // The upstream hands out whole units aligned for T and for the header.
  struct alignas(alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__ ? alignof(T) : __STDCPP_DEFAULT_NEW_ALIGNMENT__) unit {
    unsigned char bytes[alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__ ? alignof(T) : __STDCPP_DEFAULT_NEW_ALIGNMENT__];
  };
  using unit_allocator = typename upstream_traits::template rebind_alloc<unit>;
  static std::size_t units_for(std::size_t bytes) noexcept { return (bytes + sizeof(unit) - 1) / sizeof(unit); }

  Upstream upstream_;
  std::string_view label_;
  std::source_location where_;
};

}  // namespace leakguard
