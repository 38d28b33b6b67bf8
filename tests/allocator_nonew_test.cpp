// tests/allocator_nonew_test.cpp — leakguard::allocator and memory_resource
// in a program WITHOUT <leakguard/global_new.hpp> (leakguard_tests_nonew):
// `new` is not tracked, the allocators' blocks are, each counted once.
#include <doctest/doctest.h>
#include <leakguard.hpp>

#include <cstdint>
#include <cstdlib>
#include <deque>
#include <forward_list>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <memory_resource>
#include <optional>
#include <scoped_allocator>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "support.hpp"

using lgt::aligned;
using lgt::keep;
using lgt::usable;

namespace {

template <class T>
using lga = leakguard::allocator<T>;

struct alignas(256) align256 {
  unsigned char bytes[256];
};


std::string blocks_of(const leakguard::report& r) {
  std::string s;
  for (const auto& b : r.blocks()) s += "[" + b.site + " | " + b.origin + " | " + std::to_string(b.size) + "] ";
  return s;
}

struct nn_vector {
  using C = std::vector<int, lga<int>>;
  static int fill(C& c) { c.push_back(1); return __LINE__; }
};
struct nn_deque {
  using C = std::deque<int, lga<int>>;
  static int fill(C& c) { for (int i = 0; i < 1000; ++i) c.push_back(i); return __LINE__; }
};
struct nn_list {
  using C = std::list<int, lga<int>>;
  static int fill(C& c) { c.push_back(1); return __LINE__; }
};
struct nn_forward_list {
  using C = std::forward_list<int, lga<int>>;
  static int fill(C& c) { c.push_front(1); return __LINE__; }
};
struct nn_map {
  using C = std::map<int, int, std::less<int>, lga<std::pair<const int, int>>>;
  static int fill(C& c) { c.emplace(1, 2); return __LINE__; }
};
struct nn_set {
  using C = std::set<int, std::less<int>, lga<int>>;
  static int fill(C& c) { c.insert(3); return __LINE__; }
};
struct nn_unordered_map {
  using C = std::unordered_map<int, int, std::hash<int>, std::equal_to<int>, lga<std::pair<const int, int>>>;
  static int fill(C& c) { c.emplace(1, 2); return __LINE__; }
};
struct nn_unordered_set {
  using C = std::unordered_set<int, std::hash<int>, std::equal_to<int>, lga<int>>;
  static int fill(C& c) { c.insert(3); return __LINE__; }
};
struct nn_string {
  using C = std::basic_string<char, std::char_traits<char>, lga<char>>;
  static int fill(C& c) { c.assign(300, 's'); return __LINE__; }
};

// A misuse handler that allocates nothing.
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

TEST_SUITE("allocator_nonew") {

TEST_CASE("nonew: `new` is not tracked: global_stats and scope stats do not move for new/delete") {
  lgt::capture_reports captured;
  leakguard::scope_stats st{};
  leakguard::heap_stats g0{}, g1{};
  {
    leakguard::scope s("new untracked");
    g0 = leakguard::global_stats();
    int* p = keep(new int(1));
    delete p;
    std::string str(500, 'x');  // std::allocator -> operator new
    std::vector<int> v(100);
    keep(str.data());
    keep(v.data());
    g1 = leakguard::global_stats();
    st = s.stats();
  }
  CHECK(st.allocations == 0);
  CHECK(st.deallocations == 0);
  CHECK(g1.allocations == g0.allocations);
  CHECK(g1.deallocations == g0.deallocations);
  CHECK(captured.reports.empty());
}

TEST_CASE("nonew: scope stats and global_stats count exactly the allocator's blocks, once") {
  lgt::capture_reports captured;
  leakguard::scope_stats st{};
  leakguard::heap_stats g0{}, g1{}, g2{};
  {
    leakguard::scope s("exact");
    g0 = leakguard::global_stats();
    int* untracked = keep(new int(2));
    std::vector<int, lga<int>> v{lga<int>{"exact"}};
    v.reserve(10);                        // 1 allocator block of 40 bytes
    std::string other(400, 'y');          // std::allocator: untracked
    keep(other.data());
    g1 = leakguard::global_stats();
    st = s.stats();
    delete untracked;
    v = std::vector<int, lga<int>>{lga<int>{"exact"}};  // frees the buffer
    g2 = leakguard::global_stats();
  }
  CHECK(st.allocations == 1);
  CHECK(st.live_blocks == 1);
  CHECK(st.live_bytes == 10 * sizeof(int));
  CHECK(g1.allocations - g0.allocations == 1);
  CHECK(g1.live_blocks - g0.live_blocks == 1);
  CHECK(g1.live_bytes - g0.live_bytes == 10 * sizeof(int));
  CHECK(g2.deallocations - g0.deallocations == 1);
  CHECK(g2.live_blocks == g0.live_blocks);
  CHECK(captured.reports.empty());
}

TEST_CASE("nonew: a leaked std::vector<int, leakguard::allocator<int>> buffer is reported, a leaked `new int` is not") {
  lgt::capture_reports captured;
  std::optional<std::vector<int, lga<int>>> v;
  int* leaked_new = nullptr;
  const int ctor_line = __LINE__; const lga<int> a{"nonew vector"};
  int line = 0;
  {
    leakguard::scope s("nonew leak");
    leaked_new = keep(new int(7));
    v.emplace(a);
    v->push_back(1); line = __LINE__;
  }
  REQUIRE(captured.reports.size() == 1);
  const leakguard::report& r = captured.reports[0];
  INFO(blocks_of(r));
  REQUIRE(r.leaked_blocks() == 1);
  const leakguard::leaked_block& b = r.blocks()[0];
  CHECK(b.address == v->data());
  CHECK(b.size == sizeof(int));
  CHECK(lgt::site_is(b.site, __FILE__, line));
  const std::string head = "\"nonew vector\" (leakguard::allocator constructed at ";
  CHECK(b.origin.starts_with(head));
  CHECK(b.origin.ends_with(")"));
  CHECK(lgt::site_is(std::string_view(b.origin).substr(head.size(), b.origin.size() - head.size() - 1), __FILE__,
                     ctor_line));
  CHECK(lgt::find_block(r, leaked_new) == nullptr);
  delete leaked_new;
  v.reset();
}

TEST_CASE_TEMPLATE("nonew: every container with leakguard::allocator: leaked (new'd container) reports only allocator blocks, clean when destroyed",
                   K, nn_vector, nn_deque, nn_list, nn_forward_list, nn_map, nn_set, nn_unordered_map,
                   nn_unordered_set, nn_string) {
  using C = typename K::C;
  lgt::capture_reports captured;
  C* c = nullptr;
  int fill_line = 0;
  {
    leakguard::scope s("nonew container leak");
    c = keep(new C);  // the object itself: untracked here
    fill_line = K::fill(*c);
  }
  REQUIRE(captured.reports.size() == 1);
  const leakguard::report& r = captured.reports[0];
  INFO(blocks_of(r));
  CHECK(r.leaked_blocks() >= 1);
  CHECK(lgt::find_block(r, c) == nullptr);
  bool any_at_fill = false;
  for (const auto& b : r.blocks()) {
    CHECK(b.origin == "(leakguard::allocator)");
    any_at_fill |= lgt::site_is(b.site, __FILE__, fill_line);
  }
  CHECK(any_at_fill);
  delete c;

  leakguard::scope_stats st{};
  {
    leakguard::scope s("nonew container clean");
    C local{typename C::allocator_type{"clean"}};
    K::fill(local);
    C copy = local;
    st = s.stats();
  }
  CHECK(captured.reports.size() == 1);
  CHECK(st.allocations >= 2);
  CHECK(st.allocations - st.deallocations == st.live_blocks);  // each block counted once
}

TEST_CASE("nonew: allocate_shared and scoped_allocator_adaptor blocks are tracked") {
  using S = std::basic_string<char, std::char_traits<char>, lga<char>>;
  lgt::capture_reports captured;
  std::shared_ptr<align256> sp;
  std::optional<std::vector<S, std::scoped_allocator_adaptor<lga<S>>>> v;
  {
    leakguard::scope s("nonew shared + scoped");
    sp = std::allocate_shared<align256>(lga<align256>{"sp"});
    v.emplace(std::scoped_allocator_adaptor<lga<S>>{lga<S>{"scoped"}});
    v->reserve(1);
    v->emplace_back(100, 'z');
  }
  REQUIRE(captured.reports.size() == 1);
  const leakguard::report& r = captured.reports[0];
  INFO(blocks_of(r));
  CHECK(r.leaked_blocks() == 3);
  CHECK(aligned(sp.get(), 256));
  const auto* shared = lgt::find_block_containing(r, sp.get());
  REQUIRE(shared != nullptr);
  CHECK(shared->origin.starts_with("\"sp\" (leakguard::allocator constructed at "));
  const auto* str = lgt::find_block(r, (*v)[0].data());
  REQUIRE(str != nullptr);
  CHECK(str->origin.starts_with("\"scoped\" (leakguard::allocator constructed at "));
  sp.reset();
  v.reset();
}

TEST_CASE("nonew: over-aligned allocator blocks are aligned, counted once and reported with their alignment") {
  lgt::capture_reports captured;
  lga<align256> a{"aligned"};
  align256* leak = nullptr;
  bool ok = false;
  leakguard::scope_stats st{};
  {
    leakguard::scope s("nonew aligned");
    align256* p = a.allocate(3);
    ok = aligned(p, 256);
    a.deallocate(p, 3);
    leak = a.allocate(2);
    st = s.stats();
  }
  CHECK(ok);
  CHECK(aligned(leak, 256));
  CHECK(st.allocations == 2);
  CHECK(st.live_blocks == 1);
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].leaked_blocks() == 1);
  CHECK(captured.reports[0].blocks()[0].alignment == 256);
  CHECK(captured.reports[0].blocks()[0].size == 512);
  a.deallocate(leak, 2);
}

TEST_CASE("nonew: memory_resource blocks are tracked and counted once, a pool as its upstream adds nothing") {
  lgt::capture_reports captured;
  std::pmr::unsynchronized_pool_resource pool;
  leakguard::memory_resource over_pool{"over pool", &pool};
  leakguard::memory_resource plain{"plain"};
  leakguard::scope_stats st{};
  leakguard::heap_stats g0{}, g1{};
  void* leak = nullptr;
  {
    leakguard::scope s("nonew resource");
    g0 = leakguard::global_stats();
    void* p = over_pool.allocate(100, 64);
    over_pool.deallocate(p, 100, 64);
    leak = plain.allocate(33);
    std::pmr::vector<int> v{&over_pool};
    v.assign(10, 1);
    g1 = leakguard::global_stats();
    st = s.stats();
  }
  CHECK(st.allocations == 3);
  CHECK(st.live_blocks == 2);
  CHECK(g1.allocations - g0.allocations == 3);
  CHECK(g1.live_blocks - g0.live_blocks == 2);
  CHECK(g1.live_bytes - g0.live_bytes == 33 + 10 * sizeof(int));
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].leaked_blocks() == 1);
  CHECK(captured.reports[0].blocks()[0].address == leak);
  CHECK(captured.reports[0].blocks()[0].origin.starts_with("\"plain\" (leakguard::memory_resource constructed at "));
  CHECK(plain.outstanding().leaked_blocks() == 1);
  plain.deallocate(leak, 33);
  CHECK(plain.outstanding().empty());
  CHECK(over_pool.outstanding().empty());
}

TEST_CASE("nonew: memory_resource as the upstream of a pool: chunks held by the pool at scope end are reported") {
  lgt::capture_reports captured;
  leakguard::memory_resource lg{"upstream"};
  std::pmr::unsynchronized_pool_resource pool{&lg};
  {
    leakguard::scope s("nonew pool upstream");
    pool.deallocate(pool.allocate(64), 64);
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].leaked_blocks() >= 1);
  pool.release();
  CHECK(lg.outstanding().empty());
}

TEST_CASE("nonew misuse (returning handler): wrong size, double free, wrong resource, books stay consistent" * doctest::skip(lgt::under_tsan)) {
  auto r = lgt::run_in_child([] {
    count_misuse misuses;
    lgt::capture_reports captured;
    const leakguard::heap_stats g0 = leakguard::global_stats();
    lga<int> a;
    int* p = a.allocate(10);
    a.deallocate(keep(p), 9);
    LGT_CHILD_CHECK(2, count_misuse::count == 1 && count_misuse::last == leakguard::misuse_kind::size_mismatch);
    int* q = a.allocate(2);
    a.deallocate(q, 2);
    a.deallocate(keep(q), 2);
    LGT_CHILD_CHECK(3, count_misuse::count == 2 && count_misuse::last == leakguard::misuse_kind::double_free);
    leakguard::memory_resource ra{"A"}, rb{"B"};
    void* x = ra.allocate(16);
    rb.deallocate(keep(x), 16);
    LGT_CHILD_CHECK(4, count_misuse::count == 3 && count_misuse::last == leakguard::misuse_kind::wrong_allocator);
    ra.deallocate(x, 16);
    LGT_CHILD_CHECK(5, count_misuse::count == 3);
    lga<align256> big;
    align256* y = big.allocate(1);
    lga<char>{}.deallocate(keep(reinterpret_cast<char*>(y)), sizeof(align256));
    LGT_CHILD_CHECK(6, count_misuse::count == 4 && count_misuse::last == leakguard::misuse_kind::alignment_mismatch);
    void* z = ra.allocate(8);
    a.deallocate(keep(static_cast<int*>(z)), 2);
    LGT_CHILD_CHECK(7, count_misuse::count == 5 && count_misuse::last == leakguard::misuse_kind::wrong_allocator);
    ra.deallocate(z, 8);
    const leakguard::heap_stats g1 = leakguard::global_stats();
    LGT_CHILD_CHECK(8, g1.live_blocks == g0.live_blocks);
    LGT_CHILD_CHECK(9, g1.live_bytes == g0.live_bytes);
    LGT_CHILD_CHECK(10, ra.outstanding().empty() && rb.outstanding().empty());
    int* leak = nullptr;
    {
      leakguard::scope s("later");
      leak = a.allocate(1);
    }
    LGT_CHILD_CHECK(11, captured.reports.size() == 1 && captured.reports[0].leaked_blocks() == 1 &&
                            captured.reports[0].blocks()[0].address == leak);
    a.deallocate(leak, 1);
  });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("nonew misuse (default handler): deallocate with the wrong size aborts with a message") {
  auto r = lgt::run_in_child([] {
    lga<long> a;
    long* p = a.allocate(4);
    a.deallocate(keep(p), 5);
    lgt::no_tail_call();
  });
  INFO(r.describe());
  CHECK(r.aborted());
  CHECK(lgt::contains(r.err, "leakguard: heap misuse"));
  CHECK(lgt::contains(r.err, "size"));
}

TEST_CASE("nonew misuse (default handler): resource A's block freed by B aborts with a message") {
  auto r = lgt::run_in_child([] {
    leakguard::memory_resource ra, rb;
    void* p = ra.allocate(16);
    rb.deallocate(keep(p), 16);
    lgt::no_tail_call();
  });
  INFO(r.describe());
  CHECK(r.aborted());
  CHECK(lgt::contains(r.err, "another leakguard::memory_resource"));
}

}  // TEST_SUITE
