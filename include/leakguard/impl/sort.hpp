// leakguard/impl/sort.hpp — one sort for the runtime's many.
//
// Every std::sort or std::stable_sort over a type of its own instantiates
// kilobytes of code in the translation unit that compiles the runtime. The
// runtime sorts by one integer key each time, off the allocation path, so
// its sorts share one instantiation: they sort (key, index) pairs, then move
// the elements into that order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace leakguard::detail {

using sort_entry = std::pair<std::uint64_t, std::uint32_t>;  // key, index

inline void sort_entries(sort_entry* first, sort_entry* last) { std::sort(first, last); }

inline void sort_words(std::uintptr_t* first, std::uintptr_t* last) { std::sort(first, last); }

// For a descending order: the key to sort by ascending instead.
inline constexpr std::uint64_t descending(std::uint64_t key) noexcept { return ~key; }

// Sorts `v` (a vector) by `key(element)`, ascending; elements with equal
// keys keep their order.
template <class Vector, class Key>
void sort_by(Vector& v, Key key) {
  const std::size_t n = v.size();
  if (n < 2) return;
  using entries = std::vector<sort_entry, typename std::allocator_traits<
                                              typename Vector::allocator_type>::template rebind_alloc<sort_entry>>;
  entries order(n, sort_entry{}, v.get_allocator());
  for (std::size_t i = 0; i < n; ++i) order[i] = {static_cast<std::uint64_t>(key(v[i])), static_cast<std::uint32_t>(i)};
  sort_entries(order.data(), order.data() + n);
  Vector sorted(v.get_allocator());
  sorted.reserve(n);
  for (const sort_entry& e : order) sorted.push_back(std::move(v[e.second]));
  v = std::move(sorted);
}

}  // namespace leakguard::detail
