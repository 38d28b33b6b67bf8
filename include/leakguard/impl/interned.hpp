// leakguard/impl/interned.hpp — copies of the source locations a report may
// read after the code that made them is gone.
//
// A std::source_location, and the literals an allocator passes with it,
// point into the read-only data of the module compiled with them; dlclose()
// unmaps a plugin's. So what a report may read later (where a scope was
// opened, where an allocator was constructed) is copied here when it is
// recorded: one copy per distinct location, never freed, so that
// report::where() stays valid for the life of the program.
#pragma once

#include <dlfcn.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <source_location>
#include <string_view>

#include "internal_memory.hpp"

namespace leakguard::detail {

// libstdc++ and libc++ both hold a source_location as one pointer to what
// __builtin_source_location() returns: {file, function, line, column}. A
// location is made from a copy of that record. Elsewhere the location is
// kept as it is (valid while its module is loaded).
#if defined(__GLIBCXX__) || defined(_LIBCPP_VERSION)
inline constexpr bool can_copy_locations = true;
#else
inline constexpr bool can_copy_locations = false;
#endif

struct location_record {
  const char* file;
  const char* function;
  std::uint_least32_t line;
  std::uint_least32_t column;
};

class location_table {
 public:
  std::source_location intern(std::source_location where) noexcept {
    if constexpr (!can_copy_locations) {
      return where;
    } else if (where.line() == 0 && *where.file_name() == '\0') {
      return where;  // a default-constructed location points at nothing
    } else {
      const std::source_location* copy = find_or_add(where.file_name(), where.function_name(), where.line(), where.column());
      return copy ? *copy : where;  // the original stays valid while its module is loaded
    }
  }

  // A location that no source_location::current() made (a frame's file and
  // line); null where locations cannot be made, or without memory.
  const std::source_location* make(std::string_view file, std::string_view function, std::uint32_t line) noexcept {
    if constexpr (!can_copy_locations) return nullptr;
    return find_or_add(file, function, line, 0);
  }

  spin_lock& lock() noexcept { return lock_; }  // fork.hpp

 private:
  static constexpr std::size_t buckets = 256;
  struct entry {
    location_record record;       // a source_location points here
    std::source_location location;  // that source_location
    entry* next;
  };

  const std::source_location* find_or_add(std::string_view file, std::string_view function, std::uint32_t line,
                                          std::uint32_t column) noexcept {
    static_assert(sizeof(std::source_location) == sizeof(const location_record*));
    const std::size_t h = hash(file, function, line, column) % buckets;
    lock_guard g(lock_);
    for (entry* e = bucket_[h]; e; e = e->next) {
      if (e->record.line == line && e->record.column == column && file == e->record.file &&
          function == e->record.function)
        return &e->location;
    }
    auto* e = static_cast<entry*>(heap_malloc(sizeof(entry) + file.size() + function.size() + 2));
    if (!e) return nullptr;
    char* text = reinterpret_cast<char*>(e + 1);
    std::memcpy(text, file.data(), file.size());
    text[file.size()] = '\0';
    char* fn = text + file.size() + 1;
    std::memcpy(fn, function.data(), function.size());
    fn[function.size()] = '\0';
    e->record = {text, fn, line, column};
    e->location = std::bit_cast<std::source_location>(&e->record);
    e->next = bucket_[h];
    bucket_[h] = e;
    return &e->location;
  }

  static std::size_t hash(std::string_view file, std::string_view function, std::uint32_t line,
                          std::uint32_t column) noexcept {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (std::string_view s : {file, function})
      for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    for (std::uint32_t n : {line, column}) h = (h ^ n) * 1099511628211ull;
    return static_cast<std::size_t>(h);
  }

  spin_lock lock_;
  entry* bucket_[buckets] = {};
};

inline constinit location_table locations{};

// A copy of `where` that outlives the module it came from.
inline std::source_location lasting(std::source_location where) noexcept { return locations.intern(where); }

// Whether a location that was not copied can still be read: not once
// dlclose() has unmapped the module it points into.
inline bool still_loaded(std::source_location where) noexcept {
  if constexpr (can_copy_locations) {
    const void* record = std::bit_cast<const void*>(where);
    Dl_info info;
    lock_guard g(loader_lock());
    return !record || dladdr(record, &info) != 0;
  }
  return true;
}

}  // namespace leakguard::detail
