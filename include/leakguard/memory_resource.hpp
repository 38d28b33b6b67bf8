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
#include <source_location>
#include <string>
#include <string_view>

#include "config.hpp"
#include "detail/runtime_api.hpp"
#include "report.hpp"

namespace leakguard {

#if LEAKGUARD_ENABLED

class LEAKGUARD_API memory_resource : public std::pmr::memory_resource {
 public:
  explicit memory_resource(std::pmr::memory_resource* upstream = std::pmr::get_default_resource(),
                           std::source_location where = std::source_location::current())
      : memory_resource(std::string_view{}, upstream, where) {}
  // `label` names the resource in reports (copied).
  explicit memory_resource(std::string_view label,
                           std::pmr::memory_resource* upstream = std::pmr::get_default_resource(),
                           std::source_location where = std::source_location::current());
  memory_resource(const memory_resource&) = delete;
  memory_resource& operator=(const memory_resource&) = delete;
  // With check_on_destruction(), blocks still live here go to the leak
  // handler as one report (label and construction site of the resource).
  ~memory_resource() override;

  std::pmr::memory_resource* upstream() const noexcept { return upstream_; }

  // Asks the destructor to report what is still live. Off by default: a
  // resource under a pool, or one whose owner frees wholesale, legitimately
  // dies with blocks outstanding.
  void check_on_destruction(bool on = true) noexcept;

  // The blocks of this resource still live, whatever scope they belong to.
  report outstanding() const;

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

 private:
  std::pmr::memory_resource* upstream_;
  std::source_location where_;
  std::string label_;
  bool check_on_destruction_ = false;
  int uncaught_ = 0;
  detail::resource_link live_;  // sentinel of this resource's live blocks
};

#else  // LEAKGUARD_DISABLE: a plain pass-through to the upstream.

class memory_resource : public std::pmr::memory_resource {
 public:
  explicit memory_resource(std::pmr::memory_resource* upstream = std::pmr::get_default_resource(),
                           std::source_location = std::source_location::current()) noexcept
      : upstream_(upstream ? upstream : std::pmr::get_default_resource()) {}
  explicit memory_resource(std::string_view, std::pmr::memory_resource* upstream = std::pmr::get_default_resource(),
                           std::source_location where = std::source_location::current()) noexcept
      : memory_resource(upstream, where) {}
  memory_resource(const memory_resource&) = delete;
  memory_resource& operator=(const memory_resource&) = delete;

  std::pmr::memory_resource* upstream() const noexcept { return upstream_; }
  void check_on_destruction(bool = true) noexcept {}
  report outstanding() const { return {}; }

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override { return upstream_->allocate(bytes, alignment); }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    upstream_->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

 private:
  std::pmr::memory_resource* upstream_;
};

#endif

}  // namespace leakguard
