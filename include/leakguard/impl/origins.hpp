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
#include "interned.hpp"

namespace leakguard::detail {

// Interned, never freed: copies, so that a plugin's allocator can be
// described after dlclose() (interned.hpp).
struct allocation_origin {
  allocation_origin* next;
  const char* label;  // NUL-terminated
  std::size_t label_size;
  std::source_location where;
  const char* what;
  // The caller's own pointers, for a match without comparing text.
  const char* seen_file;
  const char* seen_what;
};

class origin_table {
 public:
  // On every tracked allocation of an allocator: the pointers the caller
  // passes match an entry's without reading text. Only a new pair (or the
  // same literals at new addresses) compares the strings. A module loaded
  // where an unloaded one was, with an allocator of the same label, line and
  // column, could match the old entry: a wrong file name at worst, never a
  // read of unmapped memory (the saved pointers are only compared).
  const allocation_origin* intern(const origin_ref& o) noexcept {
    const std::string_view label(o.label, o.label_size);
    const char* file = o.where.file_name();
    lock_guard g(lock_);
    for (allocation_origin* a = head_; a; a = a->next) {
      if (a->where.line() != o.where.line() || a->where.column() != o.where.column() ||
          std::string_view(a->label, a->label_size) != label)
        continue;
      if ((a->seen_file == file && a->seen_what == o.what) ||
          (std::strcmp(a->what, o.what) == 0 && std::strcmp(a->where.file_name(), file) == 0))
        return a;
    }
    const std::string_view what(o.what);
    auto* a = out_of_books(book_origin)
                  ? nullptr
                  : static_cast<allocation_origin*>(heap_malloc(sizeof(allocation_origin) + label.size() + what.size() + 2));
    if (!a) {
      count_lost(lost.origins);
      return nullptr;
    }
    char* text = reinterpret_cast<char*>(a + 1);
    if (!label.empty()) std::memcpy(text, label.data(), label.size());
    text[label.size()] = '\0';
    char* what_copy = text + label.size() + 1;
    std::memcpy(what_copy, what.data(), what.size());
    what_copy[what.size()] = '\0';
    *a = {head_, text, label.size(), lasting(o.where), what_copy, file, o.what};
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
