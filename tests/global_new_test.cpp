// tests/global_new_test.cpp — every replaceable global operator new/delete form,
// failure paths, and heap misuse (double delete, mismatches, foreign pointers).
#include <doctest/doctest.h>
#include <leakguard.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "support.hpp"

// The misuse tests free wrongly on purpose; g++ sees some of it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

using lgt::aligned;
using lgt::keep;
using lgt::usable;

namespace {

constexpr std::size_t default_alignment = __STDCPP_DEFAULT_NEW_ALIGNMENT__;
constexpr std::size_t big_alignments[] = {64, 256, 4096};

// One allocate/free pairing of the global operators.
struct form {
  const char* name;
  std::size_t alignment;  // 0: default
  void* (*allocate)(std::size_t size, std::size_t alignment);
  void (*free)(void* p, std::size_t size, std::size_t alignment);
};

using std::align_val_t;
#define LGT_ALIGN(a) static_cast<align_val_t>(a)

// Every (allocation form, matching deallocation form) pair.
const std::vector<form>& all_forms() {
  static const std::vector<form> forms = {
      {"new / delete", 0, [](std::size_t n, std::size_t) { return ::operator new(n); },
       [](void* p, std::size_t, std::size_t) { ::operator delete(p); }},
      {"new / sized delete", 0, [](std::size_t n, std::size_t) { return ::operator new(n); },
       [](void* p, std::size_t n, std::size_t) { ::operator delete(p, n); }},
      {"new[] / delete[]", 0, [](std::size_t n, std::size_t) { return ::operator new[](n); },
       [](void* p, std::size_t, std::size_t) { ::operator delete[](p); }},
      {"new[] / sized delete[]", 0, [](std::size_t n, std::size_t) { return ::operator new[](n); },
       [](void* p, std::size_t n, std::size_t) { ::operator delete[](p, n); }},
      {"nothrow new / delete", 0,
       [](std::size_t n, std::size_t) { return ::operator new(n, std::nothrow); },
       [](void* p, std::size_t, std::size_t) { ::operator delete(p); }},
      {"nothrow new / nothrow delete", 0,
       [](std::size_t n, std::size_t) { return ::operator new(n, std::nothrow); },
       [](void* p, std::size_t, std::size_t) { ::operator delete(p, std::nothrow); }},
      {"nothrow new[] / delete[]", 0,
       [](std::size_t n, std::size_t) { return ::operator new[](n, std::nothrow); },
       [](void* p, std::size_t, std::size_t) { ::operator delete[](p); }},
      {"nothrow new[] / nothrow delete[]", 0,
       [](std::size_t n, std::size_t) { return ::operator new[](n, std::nothrow); },
       [](void* p, std::size_t, std::size_t) { ::operator delete[](p, std::nothrow); }},
  };
  return forms;
}

const std::vector<form>& aligned_forms() {
  static const std::vector<form> forms = {
      {"aligned new / aligned delete", 1,
       [](std::size_t n, std::size_t a) { return ::operator new(n, LGT_ALIGN(a)); },
       [](void* p, std::size_t, std::size_t a) { ::operator delete(p, LGT_ALIGN(a)); }},
      {"aligned new / sized aligned delete", 1,
       [](std::size_t n, std::size_t a) { return ::operator new(n, LGT_ALIGN(a)); },
       [](void* p, std::size_t n, std::size_t a) { ::operator delete(p, n, LGT_ALIGN(a)); }},
      {"aligned new[] / aligned delete[]", 1,
       [](std::size_t n, std::size_t a) { return ::operator new[](n, LGT_ALIGN(a)); },
       [](void* p, std::size_t, std::size_t a) { ::operator delete[](p, LGT_ALIGN(a)); }},
      {"aligned new[] / sized aligned delete[]", 1,
       [](std::size_t n, std::size_t a) { return ::operator new[](n, LGT_ALIGN(a)); },
       [](void* p, std::size_t n, std::size_t a) { ::operator delete[](p, n, LGT_ALIGN(a)); }},
      {"aligned nothrow new / aligned delete", 1,
       [](std::size_t n, std::size_t a) { return ::operator new(n, LGT_ALIGN(a), std::nothrow); },
       [](void* p, std::size_t, std::size_t a) { ::operator delete(p, LGT_ALIGN(a)); }},
      {"aligned nothrow new / aligned nothrow delete", 1,
       [](std::size_t n, std::size_t a) { return ::operator new(n, LGT_ALIGN(a), std::nothrow); },
       [](void* p, std::size_t, std::size_t a) { ::operator delete(p, LGT_ALIGN(a), std::nothrow); }},
      {"aligned nothrow new[] / aligned delete[]", 1,
       [](std::size_t n, std::size_t a) { return ::operator new[](n, LGT_ALIGN(a), std::nothrow); },
       [](void* p, std::size_t, std::size_t a) { ::operator delete[](p, LGT_ALIGN(a)); }},
      {"aligned nothrow new[] / aligned nothrow delete[]", 1,
       [](std::size_t n, std::size_t a) { return ::operator new[](n, LGT_ALIGN(a), std::nothrow); },
       [](void* p, std::size_t, std::size_t a) {
         ::operator delete[](p, LGT_ALIGN(a), std::nothrow);
       }},
  };
  return forms;
}

struct alignas(128) over_aligned {
  unsigned char bytes[128];
};

}  // namespace

TEST_SUITE("global_new") {

// ---- every form: usable, aligned, freed by its matching delete ------------------------

TEST_CASE("every unaligned new form gives usable, default-aligned memory, freed by each matching delete without misuse") {
  lgt::capture_misuse misuses;
  lgt::capture_reports captured;
  for (const form& f : all_forms()) {
    for (std::size_t size : {std::size_t{1}, std::size_t{16}, std::size_t{1000}, std::size_t{1} << 16}) {
      CAPTURE(f.name);
      CAPTURE(size);
      bool ok_usable = false, ok_aligned = false, ok_nonnull = false;
      {
        leakguard::scope s("forms");  // tracked path
        void* p = f.allocate(size, 0);
        ok_nonnull = p != nullptr;
        ok_aligned = aligned(p, default_alignment);
        ok_usable = p && usable(p, size);
        f.free(p, size, 0);
      }
      void* q = f.allocate(size, 0);  // untracked path
      const bool q_ok = q && aligned(q, default_alignment) && usable(q, size);
      f.free(q, size, 0);
      CHECK(ok_nonnull);
      CHECK(ok_aligned);
      CHECK(ok_usable);
      CHECK(q_ok);
    }
  }
  CHECK(misuses.events.empty());
  CHECK(captured.reports.empty());
}

TEST_CASE("every align_val_t form gives usable memory at 64, 256 and 4096, freed by each matching delete without misuse") {
  lgt::capture_misuse misuses;
  lgt::capture_reports captured;
  for (const form& f : aligned_forms()) {
    for (std::size_t alignment : big_alignments) {
      for (std::size_t size : {std::size_t{1}, alignment, alignment * 3 + 5}) {
        CAPTURE(f.name);
        CAPTURE(alignment);
        CAPTURE(size);
        bool ok = false;
        {
          leakguard::scope s("aligned forms");
          void* p = f.allocate(size, alignment);
          ok = p && aligned(p, alignment) && usable(p, size);
          f.free(p, size, alignment);
        }
        void* q = f.allocate(size, alignment);
        const bool q_ok = q && aligned(q, alignment) && usable(q, size);
        f.free(q, size, alignment);
        CHECK(ok);
        CHECK(q_ok);
      }
    }
  }
  CHECK(misuses.events.empty());
  CHECK(captured.reports.empty());
}

TEST_CASE("new-expressions of an over-aligned type use the aligned forms and are settled") {
  lgt::capture_misuse misuses;
  lgt::capture_reports captured;
  bool single_ok = false, array_ok = false;
  {
    leakguard::scope s;
    auto* one = keep(new over_aligned);
    auto* many = keep(new over_aligned[3]);
    single_ok = aligned(one, 128);
    array_ok = aligned(many, 128);
    delete one;
    delete[] many;
  }
  CHECK(single_ok);
  CHECK(array_ok);
  CHECK(misuses.events.empty());
  CHECK(captured.reports.empty());
}

TEST_CASE("a leak through each unaligned form is reported with its size") {
  lgt::capture_reports captured;
  std::vector<void*> pointers(all_forms().size());
  {
    leakguard::scope s("leak every form");
    for (std::size_t i = 0; i < all_forms().size(); ++i)
      pointers[i] = keep(all_forms()[i].allocate(100 + i, 0));
  }
  REQUIRE(captured.reports.size() == 1);
  const auto& r = captured.reports[0];
  CHECK(r.leaked_blocks() == all_forms().size());
  for (std::size_t i = 0; i < all_forms().size(); ++i) {
    CAPTURE(all_forms()[i].name);
    const auto* b = lgt::find_block(r, pointers[i]);
    REQUIRE(b != nullptr);
    CHECK(b->size == 100 + i);
    CHECK(b->alignment >= alignof(std::max_align_t) / 2);
    CHECK(b->alignment <= default_alignment);
  }
  for (std::size_t i = 0; i < all_forms().size(); ++i) all_forms()[i].free(pointers[i], 100 + i, 0);
}

TEST_CASE("a leak through each align_val_t form is reported with its size and alignment") {
  lgt::capture_reports captured;
  struct made {
    std::size_t form, alignment, size;
    void* p;
  };
  std::vector<made> blocks;
  blocks.reserve(aligned_forms().size() * 3);
  {
    leakguard::scope s("leak aligned forms");
    std::size_t size = 200;
    for (std::size_t i = 0; i < aligned_forms().size(); ++i)
      for (std::size_t a : big_alignments) {
        blocks.push_back({i, a, size, keep(aligned_forms()[i].allocate(size, a))});
        ++size;
      }
  }
  REQUIRE(captured.reports.size() == 1);
  const auto& r = captured.reports[0];
  CHECK(r.leaked_blocks() == blocks.size());
  for (const made& m : blocks) {
    CAPTURE(aligned_forms()[m.form].name);
    CAPTURE(m.alignment);
    const auto* b = lgt::find_block(r, m.p);
    REQUIRE(b != nullptr);
    CHECK(b->size == m.size);
    CHECK(b->alignment == m.alignment);
  }
  for (const made& m : blocks) aligned_forms()[m.form].free(m.p, m.size, m.alignment);
}

TEST_CASE("a leaked over-aligned object reports alignment 128") {
  lgt::capture_reports captured;
  over_aligned* p = nullptr;
  int line = 0;
  {
    leakguard::scope s;
    line = __LINE__ + 1;
    p = keep(new over_aligned);
  }
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].blocks().size() == 1);
  const auto& b = captured.reports[0].blocks()[0];
  CHECK(b.alignment == 128);
  CHECK(b.size == sizeof(over_aligned));
  CHECK(lgt::site_is(b.site, __FILE__, line));
  delete p;
}

TEST_CASE("delete of nullptr through every form is a no-op") {
  lgt::capture_misuse misuses;
  const auto& plain = all_forms();  // build the tables before measuring
  const auto& with_alignment = aligned_forms();
  const auto before = leakguard::global_stats();
  for (const form& f : plain) f.free(nullptr, 0, 0);
  for (const form& f : with_alignment) f.free(nullptr, 0, 64);
  const auto after = leakguard::global_stats();
  CHECK(misuses.events.empty());
  CHECK(after.deallocations == before.deallocations);
  CHECK(after.live_blocks == before.live_blocks);
}

TEST_CASE("operator new(0) returns distinct, freeable pointers") {
  lgt::capture_misuse misuses;
  void* a = keep(::operator new(0));
  void* b = keep(::operator new(0));
  void* c = keep(::operator new[](0));
  void* d = keep(::operator new(0, std::align_val_t{64}));
  CHECK(a != nullptr);
  CHECK(b != nullptr);
  CHECK(a != b);
  CHECK(c != nullptr);
  CHECK(aligned(d, 64));
  ::operator delete(a);
  ::operator delete(b, std::size_t{0});
  ::operator delete[](c);
  ::operator delete(d, std::align_val_t{64});
  CHECK(misuses.events.empty());
}

// ---- failure paths ----------------------------------------------------------------

TEST_CASE("a huge request throws bad_alloc instead of overflowing the header arithmetic") {
  constexpr std::size_t max = static_cast<std::size_t>(-1);
  const std::size_t sizes[] = {max, max - 8, max - 64, max / 2};
  auto throws_bad_alloc = [](auto allocate) {
    try {
      (void)keep(allocate());
      return false;  // returned memory for an impossible size
    } catch (const std::bad_alloc&) {
      return true;
    }
  };
  // results are gathered first: doctest's macros allocate, and global_stats is measured
  bool ok[4][6] = {};
  const auto before = leakguard::global_stats();
  for (int i = 0; i < 4; ++i) {
    const std::size_t size = sizes[i];
    ok[i][0] = throws_bad_alloc([&] { return ::operator new(size); });
    ok[i][1] = throws_bad_alloc([&] { return ::operator new[](size); });
    ok[i][2] = throws_bad_alloc([&] { return ::operator new(size, std::align_val_t{4096}); });
    ok[i][3] = keep(::operator new(size, std::nothrow)) == nullptr;
    ok[i][4] = keep(::operator new[](size, std::nothrow)) == nullptr;
    ok[i][5] = keep(::operator new(size, std::align_val_t{64}, std::nothrow)) == nullptr;
  }
  const auto after = leakguard::global_stats();
  for (int i = 0; i < 4; ++i)
    for (int form = 0; form < 6; ++form) {
      CAPTURE(sizes[i]);
      CAPTURE(form);
      CHECK(ok[i][form]);
    }
  CHECK(after.live_blocks == before.live_blocks);
  CHECK(after.live_bytes == before.live_bytes);
}

TEST_CASE("a failed allocation inside a scope is not counted and not reported") {
  lgt::capture_reports captured;
  leakguard::scope_stats st{};
  bool threw = false;
  {
    leakguard::scope s;
    try {
      (void)keep(::operator new(static_cast<std::size_t>(-1) / 2));
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    st = s.stats();
  }
  CHECK(threw);
  CHECK(st.live_blocks == 0);
  CHECK(st.live_bytes == 0);
  CHECK(captured.reports.empty());
}

namespace {
int new_handler_calls = 0;
void counting_new_handler() {
  ++new_handler_calls;
  std::set_new_handler(nullptr);  // next failure throws
}
}  // namespace

TEST_CASE("a failing operator new calls the installed new_handler before throwing") {
  new_handler_calls = 0;
  std::new_handler previous = std::set_new_handler(counting_new_handler);
  bool threw = false;
  try {
    (void)keep(::operator new(static_cast<std::size_t>(-1) / 2));
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  std::set_new_handler(previous);
  CHECK(threw);
  CHECK(new_handler_calls == 1);
}

// ---- misuse ---------------------------------------------------------------------
// Each case runs in a child: if leakguard lets the bad free reach glibc, glibc
// aborts (or the heap is corrupted), which must not take the test runner down.

TEST_CASE("double delete with the default misuse handler aborts and names the offending line" * doctest::skip(lgt::under_tsan)) {
  const int line = __LINE__ + 4;
  auto result = lgt::run_in_child([] {
    int* p = keep(new int(1));
    delete p;
    delete keep(p);
    lgt::no_tail_call();
  });
  INFO(result.describe());
  CHECK(result.aborted());
  CHECK(lgt::contains_nocase(result.err, "double"));
  CHECK(lgt::find_file_line(result.err, __FILE__, line) != std::string::npos);
}

TEST_CASE("delete of a pointer leakguard did not allocate aborts with the default handler") {
  auto result = lgt::run_in_child([] {
    alignas(64) static unsigned char storage[256] = {};
    ::operator delete(keep(storage + 64));
    lgt::no_tail_call();
  });
  INFO(result.describe());
  CHECK(result.aborted());
  CHECK_FALSE(result.err.empty());
}

TEST_CASE("array mismatch with the default handler aborts") {
  auto result = lgt::run_in_child([] {
    void* p = keep(::operator new[](16));
    ::operator delete(p);
    lgt::no_tail_call();
  });
  INFO(result.describe());
  CHECK(result.aborted());
  CHECK_FALSE(result.err.empty());
}

}  // TEST_SUITE

namespace {

// Runs, in a child with a capturing (returning) misuse handler: `setup` makes a
// pointer, `bad` misuses it. The child then checks the recorded misuse and that
// the books are intact: global_stats did not grow or wrap, a clean scope is
// clean, a leaking scope reports exactly its leak. Exit 0 = all good; any other
// code names the failed check (printed on the child's stderr).
// A misuse handler that records without allocating: the checks below compare
// global_stats() before and after the misuse, and a handler that copied the
// misuse (strings, a vector) would show up in them.
struct misuse_probe {
  int count = 0;
  leakguard::misuse_kind kind{};
  const void* address = nullptr;
  bool has_message = false;
  bool stack_names_this_file = false;
};

template <class Setup, class Bad>
lgt::child_result misuse_with_returning_handler(leakguard::misuse_kind expected, bool block_was_live,
                                                Setup setup, Bad bad) {
  return lgt::run_in_child([=] {
    static misuse_probe probe;
    leakguard::set_misuse_handler([](const leakguard::misuse& m) {
      if (probe.count++ == 0) {
        probe.kind = m.kind;
        probe.address = m.address;
        probe.has_message = !m.message.empty();
        probe.stack_names_this_file = lgt::frame_index(m.stack, "global_new_test.cpp") >= 0;
      }
    });
    lgt::capture_reports captured;
    captured.reports.reserve(4);
    void* p = setup();
    const auto before = leakguard::global_stats();
    bad(p);
    const auto after = leakguard::global_stats();
    if (probe.count >= 1 && probe.kind != expected)
      std::fprintf(stderr, "misuse kind reported: %d, expected %d\n", static_cast<int>(probe.kind),
                   static_cast<int>(expected));
    std::fprintf(stderr, "global_stats live_blocks %zu -> %zu, deallocations %llu -> %llu\n",
                 before.live_blocks, after.live_blocks,
                 static_cast<unsigned long long>(before.deallocations),
                 static_cast<unsigned long long>(after.deallocations));
    LGT_CHILD_CHECK(2, probe.count == 1);
    LGT_CHILD_CHECK(3, probe.kind == expected);
    LGT_CHILD_CHECK(4, probe.address == p);
    LGT_CHILD_CHECK(5, probe.has_message);
    LGT_CHILD_CHECK(6, probe.stack_names_this_file);
    // A static holding p would retain a later block at the same address.
    probe.address = nullptr;
    LGT_CHILD_CHECK(7, after.live_blocks <= before.live_blocks);  // no growth, no wrap-around
    LGT_CHILD_CHECK(8, after.live_bytes <= before.live_bytes);
    if (block_was_live) {
      LGT_CHILD_CHECK(9, before.live_blocks - after.live_blocks <= 1);
    } else {  // nothing to free: nothing may change
      LGT_CHILD_CHECK(10, after.live_blocks == before.live_blocks);
      LGT_CHILD_CHECK(11, after.live_bytes == before.live_bytes);
    }
    {
      leakguard::scope s("after misuse, clean");
      for (int i = 0; i < 100; ++i) delete keep(new int(i));
    }
    LGT_CHILD_CHECK(12, captured.reports.empty());
    int* leak = nullptr;
    {
      leakguard::scope s("after misuse, leaky");
      leak = keep(new int(5));
    }
    LGT_CHILD_CHECK(13, captured.reports.size() == 1);
    LGT_CHILD_CHECK(14, captured.reports[0].leaked_blocks() == 1);
    LGT_CHILD_CHECK(15, captured.reports[0].blocks()[0].address == leak);
    delete leak;
    LGT_CHILD_CHECK(16, probe.count == 1);
  });
}

alignas(64) unsigned char foreign_storage[256];

}  // namespace

TEST_SUITE("global_new") {

using leakguard::misuse_kind;

TEST_CASE("misuse with a returning handler: double delete of an untracked block" * doctest::skip(lgt::under_tsan)) {
  auto r = misuse_with_returning_handler(
      misuse_kind::double_free, false,
      [] {
        int* p = keep(new int(1));
        delete p;
        return static_cast<void*>(p);
      },
      [](void* p) {
        delete keep(static_cast<int*>(p));
        lgt::no_tail_call();
      });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("misuse with a returning handler: double delete of a block tracked by a scope" * doctest::skip(lgt::under_tsan)) {
  auto r = lgt::run_in_child([] {
    lgt::capture_misuse misuses;
    lgt::capture_reports captured;
    leakguard::scope_stats st{};
    {
      leakguard::scope s("double delete inside");
      int* p = keep(new int(1));
      delete p;
      delete keep(p);
      st = s.stats();
    }
    LGT_CHILD_CHECK(2, misuses.events.size() == 1);
    LGT_CHILD_CHECK(3, misuses.events[0].kind == misuse_kind::double_free);
    LGT_CHILD_CHECK(4, st.allocations == 1);
    LGT_CHILD_CHECK(5, st.deallocations == 1);
    LGT_CHILD_CHECK(6, st.live_blocks == 0);
    LGT_CHILD_CHECK(7, st.live_bytes == 0);
    LGT_CHILD_CHECK(8, captured.reports.empty());
  });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("misuse with a returning handler: delete of a static buffer is foreign_pointer") {
  auto r = misuse_with_returning_handler(
      misuse_kind::foreign_pointer, false, [] { return static_cast<void*>(foreign_storage + 64); },
      [](void* p) {
        ::operator delete(keep(p));
        lgt::no_tail_call();
      });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("misuse with a returning handler: delete of a malloc'd block is foreign_pointer") {
  auto r = misuse_with_returning_handler(
      misuse_kind::foreign_pointer, false, [] { return std::malloc(64); },
      [](void* p) {
        ::operator delete(keep(p));
        lgt::no_tail_call();
      });
  INFO(r.describe());
  CHECK(r.ok());
}

// A malloc'd block may start where readable memory starts (a sanitizer
// allocator's fresh size-class region, an mmap'd chunk): leakguard must not
// read a header in front of it. Every size here is a first allocation of its
// size class in this child.
TEST_CASE("ignore and delete of malloc'd blocks of many sizes: foreign_pointer each time, never a crash") {
  auto r = lgt::run_in_child([] {
    static int reports = 0;
    leakguard::set_misuse_handler([](const leakguard::misuse& m) {
      if (m.kind == misuse_kind::foreign_pointer) ++reports;
    });
    int tries = 0;
    for (std::size_t size = 24; size <= (std::size_t{1} << 22); size = size * 3 / 2 + 8, ++tries) {
      void* p = std::malloc(size);
      LGT_CHILD_CHECK(2, p != nullptr);
      std::memset(p, 0, size);  // no stale freed marker: a used block, as in real code
      leakguard::ignore(p);  // not leakguard's: a no-op
      ::operator delete(keep(p));
      lgt::no_tail_call();
      std::free(p);
    }
    LGT_CHILD_CHECK(3, reports == tries);
  });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("misuse with a returning handler: new[] freed by delete is array_mismatch") {
  auto r = misuse_with_returning_handler(
      misuse_kind::array_mismatch, true, [] { return keep(::operator new[](16)); },
      [](void* p) {
        ::operator delete(p);
        lgt::no_tail_call();
      });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("misuse with a returning handler: new freed by delete[] is array_mismatch") {
  auto r = misuse_with_returning_handler(
      misuse_kind::array_mismatch, true, [] { return keep(::operator new(16)); },
      [](void* p) {
        ::operator delete[](p);
        lgt::no_tail_call();
      });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("misuse with a returning handler: sized delete with the wrong size is size_mismatch") {
  auto r = misuse_with_returning_handler(
      misuse_kind::size_mismatch, true, [] { return keep(::operator new(16)); },
      [](void* p) {
        ::operator delete(p, std::size_t{24});
        lgt::no_tail_call();
      });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("misuse with a returning handler: sized delete[] with the wrong size is size_mismatch") {
  auto r = misuse_with_returning_handler(
      misuse_kind::size_mismatch, true, [] { return keep(::operator new[](40)); },
      [](void* p) {
        ::operator delete[](p, std::size_t{8});
        lgt::no_tail_call();
      });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("misuse with a returning handler: aligned delete with another alignment is alignment_mismatch") {
  auto r = misuse_with_returning_handler(
      misuse_kind::alignment_mismatch, true, [] { return keep(::operator new(64, std::align_val_t{64})); },
      [](void* p) {
        ::operator delete(p, std::align_val_t{256});
        lgt::no_tail_call();
      });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("misuse with a returning handler: an aligned block freed by plain delete is alignment_mismatch") {
  auto r = misuse_with_returning_handler(
      misuse_kind::alignment_mismatch, true, [] { return keep(::operator new(64, std::align_val_t{256})); },
      [](void* p) {
        ::operator delete(p);
        lgt::no_tail_call();
      });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("misuse with a returning handler: a plain block freed by aligned delete is alignment_mismatch") {
  auto r = misuse_with_returning_handler(
      misuse_kind::alignment_mismatch, true, [] { return keep(::operator new(64)); },
      [](void* p) {
        ::operator delete(p, std::align_val_t{64});
        lgt::no_tail_call();
      });
  INFO(r.describe());
  CHECK(r.ok());
}

TEST_CASE("set_misuse_handler returns the previous handler") {
  int calls = 0;
  leakguard::misuse_handler original = leakguard::set_misuse_handler([&](const leakguard::misuse&) { ++calls; });
  leakguard::misuse_handler mine = leakguard::set_misuse_handler(std::move(original));
  REQUIRE(static_cast<bool>(mine));
  leakguard::misuse m;
  m.kind = misuse_kind::double_free;
  m.message = "test";
  mine(m);
  CHECK(calls == 1);
}

}  // TEST_SUITE
