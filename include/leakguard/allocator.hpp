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
#pragma once

#include <cstddef>
#include <limits>
#include <memory>
#include <new>
#include <source_location>
#include <string_view>
#include <type_traits>

#include "config.hpp"

#if LEAKGUARD_ENABLED
#include "detail/tracking.hpp"
#endif

namespace leakguard {

template <class T>
class allocator {
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
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
#if LEAKGUARD_ENABLED
    void* p = detail::allocate_from<detail::alloc_kind::allocator>(
        n * sizeof(T), alignof(T), detail::origin_ref{label_, where_, "leakguard::allocator"});
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
    detail::deallocate<detail::alloc_kind::allocator>(p, n * sizeof(T), alignof(T));
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

}  // namespace leakguard
