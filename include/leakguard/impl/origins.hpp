// leakguard/impl/origins.hpp — which allocator or resource made a block.
//
// A leakguard::allocator holds an origin_ref (its label and where the user
// constructed it) by value; only when one of its allocations is tracked is
// the pair interned, once, into an allocation_origin that the block's record
// points to. So an allocator costs nothing extra while no scope watches.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <source_location>
#include <string>
#include <string_view>

#include "../detail/runtime_api.hpp"
#include "internal_memory.hpp"

namespace leakguard::detail {

// Interned, never freed.
struct allocation_origin {
  allocation_origin* next;
  const char* label;  // a copy, NUL-terminated
  std::size_t label_size;
  std::source_location where;
  const char* what;
};

class origin_table {
 public:
  const allocation_origin* intern(const origin_ref& o) noexcept {
    lock_guard g(lock_);
    for (allocation_origin* a = head_; a; a = a->next) {
      if (a->where.file_name() == o.where.file_name() && a->where.line() == o.where.line() &&
          a->where.column() == o.where.column() && a->what == o.what &&
          std::string_view(a->label, a->label_size) == std::string_view(o.label, o.label_size))
        return a;
    }
    auto* a = out_of_books(book_origin)
                  ? nullptr
                  : static_cast<allocation_origin*>(std::malloc(sizeof(allocation_origin) + o.label_size + 1));
    if (!a) {
      count_lost(lost.origins);
      return nullptr;
    }
    char* label = reinterpret_cast<char*>(a + 1);
    if (o.label_size) std::memcpy(label, o.label, o.label_size);
    label[o.label_size] = '\0';
    *a = {head_, label, o.label_size, o.where, o.what};
    head_ = a;
    return a;
  }

  spin_lock& lock() noexcept { return lock_; }  // fork.hpp

 private:
  spin_lock lock_;
  allocation_origin* head_ = nullptr;
};

inline constinit origin_table origins{};

// For reports: `"session cache" (leakguard::allocator constructed at cache.cpp:12)`.
// A construction site inside the standard library (a container that
// default-constructed its allocator) is not worth showing.
inline std::string describe_origin(const allocation_origin* o) {
  if (!o) return {};
  std::string out;
  if (o->label_size) {
    out += '"';
    out.append(o->label, o->label_size);
    out += "\" ";
  }
  const std::string_view file = o->where.file_name();
  out += '(';
  out += o->what;
  if (!file.empty() && file.find("/c++/") == std::string_view::npos) {
    out += " constructed at ";
    out += file;
    out += ':';
    out += std::to_string(o->where.line());
  }
  out += ')';
  return out;
}

}  // namespace leakguard::detail
