// tests/memory_resource_test.cpp — leakguard::memory_resource over any
// upstream: every alignment, pools and monotonic buffers as upstream and as
// downstream, outstanding(), origins and sites, counting once (in a program
// WITH <leakguard/global_new.hpp>), and misuse through resources.
#include <doctest/doctest.h>
#include <leakguard.hpp>
#include <leakguard/memory_resource.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory_resource>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif

using lgt::aligned;
using lgt::keep;
using lgt::usable;

namespace {

constexpr std::size_t all_alignments[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};

// `"<label>" (leakguard::memory_resource constructed at <path>/<file>:<line>)`
bool resource_origin_is(std::string_view origin, std::string_view label, int ctor_line) {
  std::string head = label.empty() ? std::string() : "\"" + std::string(label) + "\" ";
  head += "(leakguard::memory_resource constructed at ";
  if (!origin.starts_with(head) || !origin.ends_with(")")) return false;
  return lgt::site_is(origin.substr(head.size(), origin.size() - head.size() - 1), __FILE__, ctor_line);
}

std::string blocks_of(const leakguard::report& r) {
  std::string s;
  for (const auto& b : r.blocks()) s += "[" + b.site + " | " + b.origin + " | " + std::to_string(b.size) + "] ";
  return s;
}

// An upstream that checks what it is asked: every deallocate must name a
// pointer it handed out, with the same size and alignment. Uses malloc only
// (no `new`), and a fixed table, so it is invisible to leakguard's counts.
class checking_resource : public std::pmr::memory_resource {
 public:
  int allocations = 0, deallocations = 0, mismatches = 0, unknown = 0, misaligned = 0;
  int live() const { return allocations - deallocations; }

  ~checking_resource() override {
    for (auto& e : table_)
      if (e.p) std::free(e.p);
  }

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    void* p = nullptr;
    if (posix_memalign(&p, alignment < sizeof(void*) ? sizeof(void*) : alignment, bytes ? bytes : 1) != 0)
      throw std::bad_alloc();
    if (!aligned(p, alignment)) ++misaligned;
    for (auto& e : table_) {
      if (!e.p) {
        e = {p, bytes, alignment};
        ++allocations;
        return p;
      }
    }
    std::free(p);
    throw std::bad_alloc();
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    for (auto& e : table_) {
      if (e.p == p) {
        if (e.bytes != bytes || e.alignment != alignment) ++mismatches;
        std::free(p);
        e = {};
        ++deallocations;
        return;
      }
    }
    ++unknown;
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override { return this == &o; }

 private:
  struct entry {
    void* p = nullptr;
    std::size_t bytes = 0, alignment = 0;
  };
  entry table_[512];
};

enum class upstream_kind { new_delete, checking, monotonic, unsync_pool, sync_pool };
const char* name_of(upstream_kind k) {
  switch (k) {
    case upstream_kind::new_delete: return "new_delete_resource";
    case upstream_kind::checking: return "checking upstream";
    case upstream_kind::monotonic: return "monotonic_buffer_resource";
    case upstream_kind::unsync_pool: return "unsynchronized_pool_resource";
    case upstream_kind::sync_pool: return "synchronized_pool_resource";
  }
  return "?";
}

// A non-allocating misuse handler (global figures stay exact).
struct count_misuse {
  static inline int count = 0;
  static inline leakguard::misuse_kind last = leakguard::misuse_kind::foreign_pointer;
  leakguard::misuse_handler previous;
  count_misuse() {
    count = 0;
    previous = leakguard::set_misuse_handler([](const leakguard::misuse& m) {
      ++count;
      last = m.kind;
    });
  }
  ~count_misuse() { leakguard::set_misuse_handler(std::move(previous)); }
};

}  // namespace

TEST_SUITE("memory_resource") {

// ---- construction, upstream(), is_equal -------------------------------------------------

TEST_CASE("memory_resource: upstream() is the given resource, the default resource by default and for null") {
  checking_resource up;
  leakguard::memory_resource a{&up};
  leakguard::memory_resource b;
  leakguard::memory_resource c{nullptr};
  leakguard::memory_resource d{"labelled", &up};
  leakguard::memory_resource e{"labelled, default upstream"};
  CHECK(a.upstream() == &up);
  CHECK(b.upstream() == std::pmr::get_default_resource());
  CHECK(c.upstream() == std::pmr::get_default_resource());
  CHECK(d.upstream() == &up);
  CHECK(e.upstream() == std::pmr::get_default_resource());
  // The default resource in force at construction, not at use.
  checking_resource other;
  std::pmr::memory_resource* old = std::pmr::set_default_resource(&other);
  leakguard::memory_resource f;
  std::pmr::set_default_resource(old);
  CHECK(f.upstream() == &other);
}

TEST_CASE("memory_resource: do_is_equal is identity") {
  leakguard::memory_resource a;
  leakguard::memory_resource b;
  CHECK(a.is_equal(a));
  CHECK_FALSE(a.is_equal(b));
  CHECK_FALSE(b.is_equal(a));
  CHECK_FALSE(a.is_equal(*std::pmr::new_delete_resource()));
  CHECK_FALSE(std::pmr::new_delete_resource()->is_equal(a));
  CHECK(a == a);
  CHECK(a != b);
  CHECK(std::pmr::polymorphic_allocator<int>(&a) == std::pmr::polymorphic_allocator<int>(&a));
  CHECK(std::pmr::polymorphic_allocator<int>(&a) != std::pmr::polymorphic_allocator<int>(&b));
}

// ---- every alignment, over every kind of upstream -----------------------------------------

TEST_CASE("memory_resource: every alignment 1..4096 and many sizes, over every kind of upstream, aligned, usable, clean") {
  for (upstream_kind k : {upstream_kind::new_delete, upstream_kind::checking, upstream_kind::monotonic,
                          upstream_kind::unsync_pool, upstream_kind::sync_pool}) {
    CAPTURE(name_of(k));
    checking_resource checking;
    std::optional<std::pmr::monotonic_buffer_resource> mono;
    std::optional<std::pmr::unsynchronized_pool_resource> upool;
    std::optional<std::pmr::synchronized_pool_resource> spool;
    std::pmr::memory_resource* up = std::pmr::new_delete_resource();
    if (k == upstream_kind::checking) up = &checking;
    if (k == upstream_kind::monotonic) up = &mono.emplace(&checking);
    if (k == upstream_kind::unsync_pool) up = &upool.emplace(&checking);
    if (k == upstream_kind::sync_pool) up = &spool.emplace(&checking);
    lgt::capture_reports captured;
    count_misuse misuses;
    leakguard::memory_resource lg{"alignments", up};
    for (std::size_t alignment : all_alignments) {
      for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{7}, alignment, alignment * 3 + 5,
                               std::size_t{70000}}) {
        CAPTURE(alignment);
        CAPTURE(size);
        bool ok_in = false, ok_out = false, listed = false, unlisted = false;
        leakguard::scope_stats st{};
        leakguard::heap_stats g0{}, g1{}, g2{};
        {
          leakguard::scope s("alignment");
          g0 = leakguard::global_stats();
          void* p = lg.allocate(size, alignment);
          g1 = leakguard::global_stats();
          ok_in = p && aligned(p, alignment) && usable(p, size);
          lg.deallocate(p, size, alignment);
          g2 = leakguard::global_stats();
          st = s.stats();
        }
        void* q = lg.allocate(size, alignment);  // outside any scope
        ok_out = q && aligned(q, alignment) && usable(q, size);
        {
          leakguard::report r = lg.outstanding();
          listed = r.leaked_blocks() == 1 && r.blocks()[0].address == q && r.blocks()[0].size == size;
        }
        lg.deallocate(q, size, alignment);
        unlisted = lg.outstanding().empty();
        CHECK(ok_in);
        CHECK(ok_out);
        CHECK(listed);
        CHECK(unlisted);
        CHECK(st.allocations == 1);
        CHECK(st.deallocations == 1);
        CHECK(st.live_blocks == 0);
        CHECK(st.peak_bytes == size);
        CHECK(g1.allocations - g0.allocations == 1);
        CHECK(g1.live_bytes - g0.live_bytes == size);
        CHECK(g2.live_blocks == g0.live_blocks);
        CHECK(g2.live_bytes == g0.live_bytes);
      }
    }
    CHECK(captured.reports.empty());
    CHECK(count_misuse::count == 0);
    if (k == upstream_kind::checking) {
      CHECK(checking.live() == 0);
      CHECK(checking.allocations > 0);
    }
    CHECK(checking.mismatches == 0);
    CHECK(checking.unknown == 0);
    CHECK(checking.misaligned == 0);
  }
}

TEST_CASE("memory_resource: a leaked block of each alignment is reported with its size, alignment and origin") {
  checking_resource up;
  lgt::capture_reports captured;
  const int ctor_line = __LINE__; leakguard::memory_resource lg{"aligned leak", &up};
  std::vector<void*> kept;  // outside the scope
  kept.reserve(std::size(all_alignments));
  int line = 0;
  {
    leakguard::scope s("aligned leaks");
    for (std::size_t a : all_alignments) { kept.push_back(lg.allocate(a + 3, a)); line = __LINE__; }
  }
  REQUIRE(captured.reports.size() == 1);
  const leakguard::report& r = captured.reports[0];
  REQUIRE(r.leaked_blocks() == std::size(all_alignments));
  for (std::size_t i = 0; i < std::size(all_alignments); ++i) {
    const std::size_t a = all_alignments[i];
    CAPTURE(a);
    const leakguard::leaked_block* b = lgt::find_block(r, kept[i]);
    REQUIRE(b != nullptr);
    CHECK(b->size == a + 3);
    CHECK(b->alignment >= a);
    if (a > __STDCPP_DEFAULT_NEW_ALIGNMENT__) CHECK(b->alignment == a);
    CHECK(lgt::site_is(b->site, __FILE__, line));
    CHECK(resource_origin_is(b->origin, "aligned leak", ctor_line));
  }
  for (std::size_t i = 0; i < std::size(all_alignments); ++i) lg.deallocate(kept[i], all_alignments[i] + 3, all_alignments[i]);
  CHECK(up.live() == 0);
  CHECK(up.mismatches == 0);
}

// ---- origins, sites, pmr containers ---------------------------------------------------------

TEST_CASE("memory_resource: a leaked pmr::vector buffer names the push_back line and the resource (with and without label)") {
  lgt::capture_reports captured;
  const int labelled_line = __LINE__; leakguard::memory_resource labelled{"sessions"};
  const int plain_line = __LINE__; leakguard::memory_resource plain;
  std::optional<std::pmr::vector<int>> v1, v2;
  int l1 = 0, l2 = 0;
  {
    leakguard::scope s("pmr leak");
    v1.emplace(&labelled);
    v2.emplace(&plain);
    v1->push_back(1); l1 = __LINE__;
    v2->push_back(2); l2 = __LINE__;
  }
  REQUIRE(captured.reports.size() == 1);
  const leakguard::report& r = captured.reports[0];
  INFO(blocks_of(r));
  REQUIRE(r.leaked_blocks() == 2);
  const leakguard::leaked_block* b1 = lgt::find_block(r, v1->data());
  const leakguard::leaked_block* b2 = lgt::find_block(r, v2->data());
  REQUIRE(b1 != nullptr);
  REQUIRE(b2 != nullptr);
  CHECK(lgt::site_is(b1->site, __FILE__, l1));
  CHECK(lgt::site_is(b2->site, __FILE__, l2));
  CHECK(resource_origin_is(b1->origin, "sessions", labelled_line));
  CHECK(resource_origin_is(b2->origin, "", plain_line));
  CHECK(b2->origin.starts_with("(leakguard::memory_resource constructed at "));
  CHECK(lgt::contains(r.to_text(), "\"sessions\" (leakguard::memory_resource constructed at "));
  v1.reset();
  v2.reset();
  CHECK(labelled.outstanding().empty());
  CHECK(plain.outstanding().empty());
}

TEST_CASE("memory_resource: pmr::vector<pmr::string> propagates the resource to its strings, clean, and leaky") {
  lgt::capture_reports captured;
  count_misuse misuses;
  const int ctor_line = __LINE__; leakguard::memory_resource lg{"names"};
  leakguard::scope_stats st{};
  {
    leakguard::scope s("pmr strings clean");
    std::pmr::vector<std::pmr::string> names{&lg};
    for (int i = 0; i < 10; ++i) names.emplace_back(100, 'n');
    std::pmr::vector<std::pmr::string> copy{names, &lg};
    st = s.stats();
  }
  CHECK(captured.reports.empty());
  CHECK(st.live_blocks >= 21);
  CHECK(lg.outstanding().empty());

  std::optional<std::pmr::vector<std::pmr::string>> holder;
  {
    leakguard::scope s("pmr strings leak");
    holder.emplace(&lg);
    holder->reserve(3);
    for (int i = 0; i < 3; ++i) holder->emplace_back(100, 'n');
  }
  REQUIRE(captured.reports.size() == 1);
  const leakguard::report& r = captured.reports[0];
  INFO(blocks_of(r));
  CHECK(r.leaked_blocks() == 4);
  for (const auto& b : r.blocks()) CHECK(resource_origin_is(b.origin, "names", ctor_line));
  CHECK(lg.outstanding().leaked_blocks() == 4);
  holder.reset();
  CHECK(lg.outstanding().empty());
  CHECK(count_misuse::count == 0);
}

// ---- outstanding() ---------------------------------------------------------------------------

TEST_CASE("memory_resource: outstanding() lists this resource's live blocks whatever scope, labelled 'memory_resource' by default") {
  lgt::capture_reports captured;
  const int ctor_line = __LINE__; leakguard::memory_resource lg;
  leakguard::memory_resource other{"other"};
  CHECK(lg.outstanding().empty());
  CHECK(lg.outstanding().label() == "memory_resource");
  CHECK(lgt::site_is(std::string(lg.outstanding().where().file_name()) + ":" +
                         std::to_string(lg.outstanding().where().line()),
                     __FILE__, ctor_line));
  void* before_any_scope = lg.allocate(10); const int l0 = __LINE__;
  void* foreign = other.allocate(20);
  void* in_scope = nullptr;
  void* freed_in_scope = nullptr;
  {
    leakguard::scope s("outstanding");
    in_scope = lg.allocate(30);
    freed_in_scope = lg.allocate(40);
    lg.deallocate(freed_in_scope, 40);
    leakguard::ignore(in_scope);  // not reported by the scope, still outstanding
  }
  CHECK(captured.reports.empty());
  const leakguard::report r = lg.outstanding();
  INFO(blocks_of(r));
  CHECK(r.label() == "memory_resource");
  REQUIRE(r.leaked_blocks() == 2);
  CHECK(r.leaked_bytes() == 40);
  const leakguard::leaked_block* b0 = lgt::find_block(r, before_any_scope);
  REQUIRE(b0 != nullptr);
  CHECK(b0->size == 10);
  CHECK(lgt::site_is(b0->site, __FILE__, l0));
  CHECK(resource_origin_is(b0->origin, "", ctor_line));
  CHECK(lgt::find_block(r, in_scope) != nullptr);
  CHECK(lgt::find_block(r, foreign) == nullptr);
  CHECK(r.blocks()[0].serial < r.blocks()[1].serial);
  const leakguard::report ro = other.outstanding();
  CHECK(ro.label() == "other");
  REQUIRE(ro.leaked_blocks() == 1);
  CHECK(ro.blocks()[0].address == foreign);
  lg.deallocate(before_any_scope, 10);
  lg.deallocate(in_scope, 30);
  other.deallocate(foreign, 20);
  CHECK(lg.outstanding().empty());
  CHECK(other.outstanding().empty());
  CHECK(captured.reports.empty());
}

TEST_CASE("memory_resource: outstanding() sees blocks allocated on other threads and a block freed on another thread") {
  leakguard::memory_resource lg{"threads"};
  void* p = nullptr;
  std::thread([&] { p = lg.allocate(64, 64); }).join();
  CHECK(lg.outstanding().leaked_blocks() == 1);
  std::thread([&] { lg.deallocate(p, 64, 64); }).join();
  CHECK(lg.outstanding().empty());
}

// ---- pools and monotonic buffers: leakguard resource UPSTREAM --------------------------------

TEST_CASE("memory_resource as UPSTREAM of an unsynchronized_pool_resource: chunks the pool still holds at scope end ARE reported") {
  lgt::capture_reports captured;
  count_misuse misuses;
  const int ctor_line = __LINE__; leakguard::memory_resource lg{"pool upstream"};
  std::pmr::unsynchronized_pool_resource pool{&lg};  // (libstdc++'s allocates here, before the scope)
  const std::size_t before = lg.outstanding().leaked_blocks();
  int line = 0;
  {
    leakguard::scope s("pool holds chunks");
    void* p = pool.allocate(32); line = __LINE__;
    pool.deallocate(p, 32);  // back to the pool, which keeps its chunk
  }
  REQUIRE(captured.reports.size() == 1);
  const leakguard::report& r = captured.reports[0];
  INFO(blocks_of(r));
  CHECK(r.leaked_blocks() >= 1);
  for (const auto& b : r.blocks()) CHECK(resource_origin_is(b.origin, "pool upstream", ctor_line));
  CHECK(lg.outstanding().leaked_blocks() == before + r.leaked_blocks());
  // Not required: the pool's code lives in libstdc++.so (no frame pointers),
  // so a frame-pointer unwinder may not reach this file. Shown, not failed.
  bool any_user_site = false;
  for (const auto& b : r.blocks()) any_user_site |= lgt::site_is(b.site, __FILE__, line);
  WARN_MESSAGE(any_user_site, "pool chunk sites do not reach the user's pool.allocate line: " << blocks_of(r));
  pool.release();
  CHECK(lg.outstanding().empty());
  CHECK(count_misuse::count == 0);
}

TEST_CASE("memory_resource as UPSTREAM of a pool: clean when the pool is released inside the scope, or was warmed before it") {
  lgt::capture_reports captured;
  count_misuse misuses;
  leakguard::memory_resource lg{"pool upstream"};
  leakguard::scope_stats st{};
  {
    leakguard::scope s("pool released");
    std::pmr::unsynchronized_pool_resource pool{&lg};
    std::pmr::vector<int> v{&pool};
    for (int i = 0; i < 1000; ++i) v.push_back(i);
    st = s.stats();
  }  // v, then the pool (releasing its chunks), then the check
  CHECK(captured.reports.empty());
  CHECK(st.allocations >= 1);
  CHECK(lg.outstanding().empty());

  std::pmr::unsynchronized_pool_resource warm{&lg};
  warm.deallocate(warm.allocate(48), 48);  // chunk taken before the scope
  leakguard::scope_stats st2{};
  {
    leakguard::scope s("warm pool");
    void* p = warm.allocate(48);
    warm.deallocate(p, 48);
    st2 = s.stats();
  }
  CHECK(captured.reports.empty());
  CHECK(st2.allocations == 0);
  warm.release();
  CHECK(lg.outstanding().empty());
  CHECK(count_misuse::count == 0);
}

TEST_CASE("memory_resource as UPSTREAM of a monotonic_buffer_resource: its buffers are reported until released") {
  lgt::capture_reports captured;
  count_misuse misuses;
  leakguard::memory_resource lg{"arena upstream"};
  std::pmr::monotonic_buffer_resource arena{&lg};
  {
    leakguard::scope s("arena holds buffers");
    std::pmr::vector<int> v{&arena};
    v.assign(100, 1);
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].leaked_blocks() >= 1);
  arena.release();
  CHECK(lg.outstanding().empty());
  {
    leakguard::scope s("arena released inside");
    std::pmr::vector<int> v{&arena};
    v.assign(100, 1);
    v = std::pmr::vector<int>{&arena};
    arena.release();
  }
  CHECK(captured.reports.size() == 1);
  CHECK(count_misuse::count == 0);
}

// ---- leakguard resource DOWNSTREAM (pool / arena as its upstream) ----------------------------

TEST_CASE("memory_resource DOWNSTREAM of a pool: only the user's blocks are tracked, not the pool's chunks") {
  lgt::capture_reports captured;
  count_misuse misuses;
  std::pmr::unsynchronized_pool_resource pool;  // over new_delete (global new)
  const int ctor_line = __LINE__; leakguard::memory_resource lg{"over pool", &pool};
  void* leak = nullptr;
  int line = 0;
  leakguard::scope_stats st{};
  leakguard::heap_stats g0{}, g1{};
  {
    leakguard::scope s("downstream");
    g0 = leakguard::global_stats();
    void* p = lg.allocate(100);
    lg.deallocate(p, 100);
    leak = lg.allocate(200, 32); line = __LINE__;
    st = s.stats();
    g1 = leakguard::global_stats();
  }
  REQUIRE(captured.reports.size() == 1);
  const leakguard::report& r = captured.reports[0];
  INFO(blocks_of(r));
  REQUIRE(r.leaked_blocks() == 1);
  CHECK(r.blocks()[0].address == leak);
  CHECK(r.blocks()[0].size == 200);
  CHECK(r.blocks()[0].alignment == 32);
  CHECK(lgt::site_is(r.blocks()[0].site, __FILE__, line));
  CHECK(resource_origin_is(r.blocks()[0].origin, "over pool", ctor_line));
  CHECK(st.allocations == 2);
  CHECK(st.deallocations == 1);
  CHECK(st.live_bytes == 200);
  // Counted once: the pool's chunks are not the user's blocks.
  CHECK(g1.allocations - g0.allocations == 2);
  CHECK(g1.live_blocks - g0.live_blocks == 1);
  CHECK(g1.live_bytes - g0.live_bytes == 200);
  lg.deallocate(leak, 200, 32);
  CHECK(lg.outstanding().empty());

  // Clean use: no report although the pool keeps its chunks.
  {
    leakguard::scope s("downstream clean");
    std::pmr::vector<std::pmr::string> v{&lg};
    for (int i = 0; i < 50; ++i) v.emplace_back(60, 'p');
  }
  CHECK(captured.reports.size() == 1);
  CHECK(count_misuse::count == 0);
}

TEST_CASE("memory_resource DOWNSTREAM of a monotonic_buffer_resource: user's blocks tracked, deallocation is the arena's no-op") {
  lgt::capture_reports captured;
  count_misuse misuses;
  checking_resource up;
  std::pmr::monotonic_buffer_resource arena{&up};
  leakguard::memory_resource lg{"over arena", &arena};
  leakguard::scope_stats st{};
  {
    leakguard::scope s("over arena");
    for (std::size_t a : all_alignments) {
      void* p = lg.allocate(50, a);
      lg.deallocate(p, 50, a);
    }
    st = s.stats();
  }
  CHECK(captured.reports.empty());
  CHECK(st.allocations == std::size(all_alignments));
  CHECK(st.live_blocks == 0);
  void* leak = nullptr;
  {
    leakguard::scope s("over arena leak");
    leak = lg.allocate(8);
  }
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].leaked_blocks() == 1);
  CHECK(captured.reports[0].blocks()[0].address == leak);
  lg.deallocate(leak, 8);
  CHECK(count_misuse::count == 0);
}

// ---- counting once ----------------------------------------------------------------------

TEST_CASE("memory_resource count once: over new_delete_resource, global_stats grows by exactly the resource's blocks, in and out of scopes") {
  leakguard::memory_resource lg{std::pmr::new_delete_resource()};
  leakguard::heap_stats g0 = leakguard::global_stats();
  void* a = lg.allocate(100);
  void* b = lg.allocate(300, 256);
  leakguard::heap_stats g1 = leakguard::global_stats();
  leakguard::heap_stats g2{}, g3{};
  leakguard::scope_stats st{};
  {
    leakguard::scope s("count once");
    g2 = leakguard::global_stats();
    void* c = lg.allocate(50, 64);
    void* d = lg.allocate(7);
    g3 = leakguard::global_stats();
    lg.deallocate(c, 50, 64);
    lg.deallocate(d, 7);
    st = s.stats();
  }
  lg.deallocate(a, 100);
  lg.deallocate(b, 300, 256);
  leakguard::heap_stats g4 = leakguard::global_stats();
  CHECK(g1.allocations - g0.allocations == 2);
  CHECK(g1.live_blocks - g0.live_blocks == 2);
  CHECK(g1.live_bytes - g0.live_bytes == 400);
  CHECK(g3.allocations - g2.allocations == 2);
  CHECK(g3.live_bytes - g2.live_bytes == 57);
  CHECK(st.allocations == 2);
  CHECK(st.deallocations == 2);
  CHECK(st.peak_bytes == 57);
  CHECK(g4.live_blocks == g0.live_blocks);
  CHECK(g4.live_bytes == g0.live_bytes);
}

TEST_CASE("memory_resource count once: DOWNSTREAM of a pool, outside any scope, global_stats grows by the user's block only") {
  std::pmr::unsynchronized_pool_resource pool;  // its chunks come from operator new (tracked here)
  leakguard::memory_resource lg{"over pool", &pool};
  const leakguard::heap_stats g0 = leakguard::global_stats();
  void* p = lg.allocate(100);
  const leakguard::heap_stats g1 = leakguard::global_stats();
  lg.deallocate(p, 100);
  pool.release();
  // Inside a scope the pool's own `new` calls are leakguard's (not counted);
  // outside one they must not be counted either.
  CHECK(g1.allocations - g0.allocations == 1);
  CHECK(g1.live_blocks - g0.live_blocks == 1);
  CHECK(g1.live_bytes - g0.live_bytes == 100);
}

// ---- zones ---------------------------------------------------------------------------------

TEST_CASE("memory_resource: a no_alloc_scope reports a resource allocation, ignore_scope hides it from scopes, not from outstanding()") {
  lgt::capture_reports captured;
  leakguard::memory_resource lg;
  {
    leakguard::no_alloc_scope z;
    lg.deallocate(lg.allocate(16), 16);
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].violations().size() == 1);
  void* p = nullptr;
  {
    leakguard::scope s("ignored");
    leakguard::ignore_scope i;
    p = lg.allocate(16);
  }
  CHECK(captured.reports.size() == 1);
  CHECK(lg.outstanding().leaked_blocks() == 1);
  lg.deallocate(p, 16);
}

}  // TEST_SUITE

// ---- misuse -----------------------------------------------------------------------------------

TEST_SUITE("memory_resource") {

using leakguard::misuse_kind;

TEST_CASE("memory_resource misuse (returning handler): resource A's block deallocated by resource B is wrong_allocator, A still owns it") {
  auto r = lgt::run_in_child([] {
    lgt::capture_misuse misuses;
    lgt::capture_reports captured;
    checking_resource up;
    leakguard::memory_resource a{"A", &up};
    leakguard::memory_resource b{"B", &up};
    leakguard::scope_stats st{};
    int line = 0;
    void* p = nullptr;
    {
      leakguard::scope s("wrong resource");
      p = a.allocate(24);
      b.deallocate(keep(p), 24); line = __LINE__;
      st = s.stats();
    }
    LGT_CHILD_CHECK(2, misuses.events.size() == 1);
    LGT_CHILD_CHECK(3, misuses.events[0].kind == misuse_kind::wrong_allocator);
    LGT_CHILD_CHECK(4, lgt::site_is(misuses.events[0].site, __FILE__, line));
    LGT_CHILD_CHECK(5, lgt::contains(misuses.events[0].message, "another leakguard::memory_resource"));
    // Nothing was freed: the block is still A's, and still live in the scope.
    LGT_CHILD_CHECK(6, st.live_blocks == 1);
    LGT_CHILD_CHECK(7, captured.reports.size() == 1);
    LGT_CHILD_CHECK(8, a.outstanding().leaked_blocks() == 1);
    LGT_CHILD_CHECK(9, b.outstanding().empty());
    LGT_CHILD_CHECK(10, up.live() == 1);
    a.deallocate(p, 24);
    LGT_CHILD_CHECK(11, a.outstanding().empty());
    LGT_CHILD_CHECK(12, up.live() == 0);
    LGT_CHILD_CHECK(13, up.mismatches == 0 && up.unknown == 0);
    LGT_CHILD_CHECK(14, misuses.events.size() == 1);
    // A later scope works.
    leakguard::scope_stats later{};
    {
      leakguard::scope s("later");
      b.deallocate(b.allocate(8), 8);
      later = s.stats();
    }
    LGT_CHILD_CHECK(15, later.allocations == 1 && later.live_blocks == 0);
    LGT_CHILD_CHECK(16, captured.reports.size() == 1);
  });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("memory_resource misuse (returning handler): deallocate with the wrong size is size_mismatch, block freed as allocated") {
  auto r = lgt::run_in_child([] {
    count_misuse misuses;
    lgt::capture_reports captured;
    checking_resource up;
    leakguard::memory_resource a{&up};
    leakguard::scope_stats st{};
    const leakguard::heap_stats g0 = leakguard::global_stats();
    {
      leakguard::scope s("wrong size");
      void* p = a.allocate(100, 64);
      a.deallocate(keep(p), 99, 64);
      st = s.stats();
    }
    const leakguard::heap_stats g1 = leakguard::global_stats();
    LGT_CHILD_CHECK(2, count_misuse::count == 1);
    LGT_CHILD_CHECK(3, count_misuse::last == misuse_kind::size_mismatch);
    LGT_CHILD_CHECK(4, st.live_blocks == 0 && st.deallocations == 1);
    LGT_CHILD_CHECK(5, captured.reports.empty());
    LGT_CHILD_CHECK(6, a.outstanding().empty());
    LGT_CHILD_CHECK(7, up.live() == 0 && up.mismatches == 0);
    LGT_CHILD_CHECK(8, g1.live_blocks == g0.live_blocks && g1.live_bytes == g0.live_bytes);
  });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("memory_resource misuse (returning handler): deallocate with the wrong alignment is alignment_mismatch, block freed as allocated") {
  auto r = lgt::run_in_child([] {
    count_misuse misuses;
    checking_resource up;
    leakguard::memory_resource a{&up};
    void* p = a.allocate(100, 256);
    a.deallocate(keep(p), 100, 64);
    LGT_CHILD_CHECK(2, count_misuse::count == 1);
    LGT_CHILD_CHECK(3, count_misuse::last == misuse_kind::alignment_mismatch);
    LGT_CHILD_CHECK(4, a.outstanding().empty());
    LGT_CHILD_CHECK(5, up.live() == 0 && up.mismatches == 0);
  });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("memory_resource misuse (returning handler): deallocating twice is double_free, nothing freed twice upstream" * doctest::skip(lgt::under_tsan)) {
  auto r = lgt::run_in_child([] {
    count_misuse misuses;
    lgt::capture_reports captured;
    checking_resource up;
    std::pmr::unsynchronized_pool_resource pool{&up};
    for (std::pmr::memory_resource* upstream : {static_cast<std::pmr::memory_resource*>(&up),
                                                 static_cast<std::pmr::memory_resource*>(&pool),
                                                 std::pmr::new_delete_resource()}) {
      count_misuse::count = 0;
      leakguard::memory_resource a{upstream};
      leakguard::scope_stats st{};
      {
        leakguard::scope s("double");
        void* p = a.allocate(40);
        a.deallocate(p, 40);
        a.deallocate(keep(p), 40);
        st = s.stats();
      }
      LGT_CHILD_CHECK(2, count_misuse::count == 1);
      LGT_CHILD_CHECK(3, count_misuse::last == misuse_kind::double_free);
      LGT_CHILD_CHECK(4, st.deallocations == 1 && st.live_blocks == 0);
      LGT_CHILD_CHECK(5, a.outstanding().empty());
    }
    pool.release();
    LGT_CHILD_CHECK(6, up.live() == 0 && up.unknown == 0 && up.mismatches == 0);
    LGT_CHILD_CHECK(7, captured.reports.empty());
  });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("memory_resource misuse (returning handler): `delete` of a resource block is wrong_allocator, the resource still owns it") {
  auto r = lgt::run_in_child([] {
    count_misuse misuses;
    checking_resource up;
    leakguard::memory_resource a{&up};
    void* p = a.allocate(sizeof(int));
    delete keep(static_cast<int*>(p));
    LGT_CHILD_CHECK(2, count_misuse::count == 1);
    LGT_CHILD_CHECK(3, count_misuse::last == misuse_kind::wrong_allocator);
    LGT_CHILD_CHECK(4, a.outstanding().leaked_blocks() == 1);
    LGT_CHILD_CHECK(5, up.live() == 1);
    a.deallocate(p, sizeof(int));
    LGT_CHILD_CHECK(6, a.outstanding().empty());
    LGT_CHILD_CHECK(7, up.live() == 0 && up.mismatches == 0);
    LGT_CHILD_CHECK(8, count_misuse::count == 1);
  });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("memory_resource misuse (returning handler): cross-family frees between resource, allocator and `new` are wrong_allocator") {
  auto r = lgt::run_in_child([] {
    count_misuse misuses;
    lgt::capture_reports captured;
    leakguard::memory_resource res;
    // A `new` block given to the resource: reported, not freed (then deleted properly).
    int* n = keep(new int(1));
    res.deallocate(n, sizeof(int), alignof(int));
    LGT_CHILD_CHECK(2, count_misuse::count == 1 && count_misuse::last == misuse_kind::wrong_allocator);
    delete n;
    LGT_CHILD_CHECK(3, count_misuse::count == 1);
    // An allocator block given to the resource.
    leakguard::allocator<int> alloc;
    int* q = alloc.allocate(4);
    res.deallocate(keep(q), 4 * sizeof(int), alignof(int));
    LGT_CHILD_CHECK(4, count_misuse::count == 2 && count_misuse::last == misuse_kind::wrong_allocator);
    alloc.deallocate(q, 4);
    LGT_CHILD_CHECK(5, count_misuse::count == 2);
    // A resource block given to the allocator: reported, left to the resource.
    void* p = res.allocate(4 * sizeof(int), alignof(int));
    alloc.deallocate(keep(static_cast<int*>(p)), 4);
    LGT_CHILD_CHECK(6, count_misuse::count == 3 && count_misuse::last == misuse_kind::wrong_allocator);
    LGT_CHILD_CHECK(7, res.outstanding().leaked_blocks() == 1);
    res.deallocate(p, 4 * sizeof(int), alignof(int));
    LGT_CHILD_CHECK(8, res.outstanding().empty());
    LGT_CHILD_CHECK(9, count_misuse::count == 3);
    // A malloc'd pointer: foreign.
    void* m = std::calloc(1, 64);
    res.deallocate(static_cast<char*>(m) + 32, 16, 16);
    LGT_CHILD_CHECK(10, count_misuse::count == 4 && count_misuse::last == misuse_kind::foreign_pointer);
    std::free(m);
    // Books: a later scope works.
    leakguard::scope_stats later{};
    {
      leakguard::scope s("later");
      res.deallocate(res.allocate(8), 8);
      later = s.stats();
    }
    LGT_CHILD_CHECK(11, later.allocations == 1 && later.live_blocks == 0);
    LGT_CHILD_CHECK(12, captured.reports.empty());
  });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("memory_resource misuse (default handler): B deallocating A's block aborts with a message naming the line") {
  const int line = __LINE__ + 5;
  auto r = lgt::run_in_child([] {
    leakguard::memory_resource a{"A"};
    leakguard::memory_resource b{"B"};
    void* p = a.allocate(24);
    b.deallocate(keep(p), 24);
    lgt::no_tail_call();
  });
  INFO(r.describe());
  CHECK(r.aborted());
  CHECK(lgt::contains(r.err, "leakguard: heap misuse"));
  CHECK(lgt::contains(r.err, "another leakguard::memory_resource"));
  CHECK(lgt::find_file_line(r.err, __FILE__, line) != std::string::npos);
}

TEST_CASE("memory_resource misuse (default handler): wrong size aborts naming both sizes") {
  auto r = lgt::run_in_child([] {
    leakguard::memory_resource a;
    void* p = a.allocate(1234);
    a.deallocate(keep(p), 4321);
    lgt::no_tail_call();
  });
  INFO(r.describe());
  CHECK(r.aborted());
  CHECK(lgt::contains(r.err, "leakguard: heap misuse"));
  CHECK(lgt::contains(r.err, "1234"));
  CHECK(lgt::contains(r.err, "4321"));
}

TEST_CASE("memory_resource misuse (default handler): `delete` of a resource block aborts") {
  auto r = lgt::run_in_child([] {
    leakguard::memory_resource a;
    void* p = a.allocate(sizeof(int));
    delete keep(static_cast<int*>(p));
    lgt::no_tail_call();
  });
  INFO(r.describe());
  CHECK(r.aborted());
  CHECK(lgt::contains(r.err, "leakguard: heap misuse"));
  CHECK(lgt::contains(r.err, "leakguard::memory_resource"));
}

TEST_CASE("memory_resource misuse (default handler): double deallocate aborts naming a double free" * doctest::skip(lgt::under_tsan)) {
  auto r = lgt::run_in_child([] {
    leakguard::memory_resource a;
    void* p = a.allocate(64);
    a.deallocate(p, 64);
    a.deallocate(keep(p), 64);
    lgt::no_tail_call();
  });
  INFO(r.describe());
  CHECK(r.aborted());
  CHECK(lgt::contains_nocase(r.err, "double free"));
}

}  // TEST_SUITE

TEST_SUITE("memory_resource") {

TEST_CASE("memory_resource::check_on_destruction reports what is still live when the resource dies") {
  lgt::capture_reports captured;
  void* kept = nullptr;
  int line = 0;
  {
    leakguard::memory_resource r{"checked"};
    r.check_on_destruction();
    line = __LINE__ + 1;
    kept = r.allocate(40);
    r.deallocate(r.allocate(8), 8);  // freed: not reported
  }
  REQUIRE(captured.reports.size() == 1);
  const leakguard::report& rep = captured.reports[0];
  CHECK(rep.label() == "checked");
  REQUIRE(rep.leaked_blocks() == 1);
  CHECK(rep.blocks()[0].address == kept);
  CHECK(rep.blocks()[0].size == 40);
  CHECK(lgt::site_is(rep.blocks()[0].site, __FILE__, line));
  // The block stays allocated: the resource that could free it is gone.
}

TEST_CASE("memory_resource without check_on_destruction dies quietly with blocks outstanding") {
  lgt::capture_reports captured;
  std::pmr::monotonic_buffer_resource arena;
  {
    leakguard::memory_resource r{"unchecked", &arena};
    (void)r.allocate(40);  // the arena frees wholesale
  }
  CHECK(captured.reports.empty());
}

}  // TEST_SUITE
