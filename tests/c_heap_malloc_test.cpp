// The C heap (<leakguard/global_malloc.hpp>): each replaced function against
// glibc's own, C leaks in scopes at the user's line and named by their
// function, realloc's identity, mismatches as misuse, and what the C library
// and the loader allocate for themselves.
#include <doctest/doctest.h>
#include <leakguard.hpp>
#include <leakguard/impl/c_heap.hpp>

#include <dlfcn.h>
#include <link.h>
#include <locale.h>
#include <malloc.h>
#include <pthread.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#if LEAKGUARD_TEST_ZLIB
#include <zlib.h>
#endif

#include "support.hpp"

// The misuse tests free wrongly on purpose; g++ sees some of it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wmismatched-dealloc"
#endif

namespace {

using leakguard::leaked_block;
using leakguard::report;

// What one scope around `body` reported.
template <class F>
std::vector<report> reports_of(F&& body, bool allow_retained = true) {
  lgt::report_sink sink;
  {
    leakguard::scope s(leakguard::scope_options{.label = "c heap", .handler = sink.handler(), .allow_retained = allow_retained});
    body();
  }
  return std::move(sink.reports);
}

// glibc's own entry point `name`, the next definition after the program's.
template <class F>
F glibc(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

// A pointer the compiler cannot follow: g++ turns realloc(nullptr, n) into
// malloc(n), and warns about writes past the size asked of malloc.
void* launder(void* p) {
  asm volatile("" : "+r"(p));
  return p;
}
void* opaque_null() { return launder(nullptr); }

template <class F>
const void* address_of(F* f) {
  return reinterpret_cast<const void*>(f);
}

struct outcome {
  bool null;
  int error;  // errno after the call; meaningful when null
};

template <class Call>
outcome run(Call call, void (*release)(void*)) {
  errno = 0;
  void* p = call();
  const outcome o{p == nullptr, errno};
  if (p) release(p);
  return o;
}

constexpr std::size_t huge = SIZE_MAX;
constexpr std::size_t half = SIZE_MAX / 2 + 1;

}  // namespace

TEST_CASE("malloc, calloc, realloc and reallocarray: glibc's results and errno at every edge") {
  auto own_free = [](void* p) { std::free(p); };
  auto* libc_free = glibc<void (*)(void*)>("free");
  auto* libc_malloc = glibc<void* (*)(std::size_t)>("malloc");
  auto* libc_calloc = glibc<void* (*)(std::size_t, std::size_t)>("calloc");
  auto* libc_realloc = glibc<void* (*)(void*, std::size_t)>("realloc");
  auto* libc_reallocarray = glibc<void* (*)(void*, std::size_t, std::size_t)>("reallocarray");
  REQUIRE(address_of(libc_free) != nullptr);
  REQUIRE(address_of(libc_malloc) != address_of(&::malloc));
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{24}, std::size_t{1} << 20, huge, huge - 64, half,
                        std::size_t{PTRDIFF_MAX}}) {
    CAPTURE(n);
    const outcome ours = run([&] { return std::malloc(n); }, own_free);
    const outcome theirs = run([&] { return libc_malloc(n); }, libc_free);
    CHECK(ours.null == theirs.null);
    if (ours.null) CHECK(ours.error == theirs.error);
    for (std::size_t m : {std::size_t{0}, std::size_t{1}, std::size_t{3}, half}) {
      CAPTURE(m);
      const outcome c_ours = run([&] { return std::calloc(n, m); }, own_free);
      const outcome c_theirs = run([&] { return libc_calloc(n, m); }, libc_free);
      CHECK(c_ours.null == c_theirs.null);
      if (c_ours.null) CHECK(c_ours.error == c_theirs.error);
      const outcome r_ours = run([&] { return reallocarray(nullptr, n, m); }, own_free);
      // glibc's reallocarray calls realloc, which is leakguard's here.
      const outcome r_theirs = run([&] { return libc_reallocarray(nullptr, n, m); }, own_free);
      CHECK(r_ours.null == r_theirs.null);
      if (r_ours.null) CHECK(r_ours.error == r_theirs.error);
    }
    // realloc of a live block: the same answer, and on failure the block is intact.
    char* mine = static_cast<char*>(std::malloc(8));
    char* libcs = static_cast<char*>(libc_malloc(8));
    std::memcpy(mine, "1234567", 8);
    errno = 0;
    void* grown = n == 0 ? nullptr : std::realloc(mine, n);
    const int mine_error = errno;
    errno = 0;
    void* libc_grown = n == 0 ? nullptr : libc_realloc(libcs, n);
    const int libc_error = errno;
    CHECK((grown == nullptr) == (libc_grown == nullptr));
    if (!grown && n != 0) {
      CHECK(mine_error == libc_error);
      CHECK(std::strcmp(mine, "1234567") == 0);
    }
    std::free(grown ? grown : mine);
    libc_free(libc_grown ? libc_grown : libcs);
  }
  // realloc(nullptr, n) is malloc; realloc(p, 0) frees p and returns null (glibc).
  const leakguard::heap_stats before = leakguard::global_stats();
  void* p = std::realloc(nullptr, 40);
  REQUIRE(p != nullptr);
  CHECK(leakguard::global_stats().live_blocks == before.live_blocks + 1);
  CHECK(std::realloc(p, 0) == nullptr);
  CHECK(leakguard::global_stats().live_blocks == before.live_blocks);
}

TEST_CASE("the aligned forms follow glibc: alignment, EINVAL, ENOMEM, errno left alone by posix_memalign") {
  auto* libc_free = glibc<void (*)(void*)>("free");
  auto* libc_posix_memalign = glibc<int (*)(void**, std::size_t, std::size_t)>("posix_memalign");
  auto* libc_aligned_alloc = glibc<void* (*)(std::size_t, std::size_t)>("aligned_alloc");
  auto* libc_memalign = glibc<void* (*)(std::size_t, std::size_t)>("memalign");
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  for (std::size_t a : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{4}, std::size_t{8},
                        std::size_t{16}, std::size_t{24}, std::size_t{32}, std::size_t{48}, std::size_t{64},
                        std::size_t{4096}, std::size_t{1} << 20, half, half + 8}) {
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{100}, huge - 4096}) {
      CAPTURE(a);
      CAPTURE(n);
      void* mine = reinterpret_cast<void*>(1);
      void* libcs = reinterpret_cast<void*>(1);
      errno = 77;
      const int r_mine = posix_memalign(&mine, a, n);
      const int e_mine = errno;
      errno = 77;
      const int r_libc = libc_posix_memalign(&libcs, a, n);
      CHECK(r_mine == r_libc);
      CHECK(e_mine == 77);  // posix_memalign reports by its result
      if (r_mine == 0) {
        CHECK(lgt::aligned(mine, a));
        CHECK(lgt::usable(mine, n < 4096 ? n : 0));
        std::free(mine);
      } else {
        CHECK(mine == reinterpret_cast<void*>(1));  // untouched on failure
      }
      if (r_libc == 0) libc_free(libcs);

      using aligned_fn = void* (*)(std::size_t, std::size_t);
      for (auto [ours, theirs] : {std::pair<aligned_fn, aligned_fn>{&aligned_alloc, libc_aligned_alloc},
                                  std::pair<aligned_fn, aligned_fn>{&memalign, libc_memalign}}) {
        errno = 0;
        void* p = ours(a, n);
        const int e = errno;
        errno = 0;
        void* q = theirs(a, n);
        CHECK((p == nullptr) == (q == nullptr));
        if (!p) CHECK(e == errno);
        if (p) {
          // glibc: up to 16 is malloc's alignment; above, rounded up to a power of two.
          CHECK(lgt::aligned(p, a <= 16 ? 16 : std::bit_ceil(a)));
          CHECK(lgt::usable(p, n < 4096 ? n : 0));
        }
        std::free(p);
        libc_free(q);
      }
    }
  }
  void* v = valloc(10);
  CHECK(lgt::aligned(v, page));
  CHECK(lgt::usable(v, 10));
  std::free(v);
  void* pv = pvalloc(1);
  REQUIRE(pv != nullptr);
  CHECK(lgt::aligned(pv, page));
  CHECK(malloc_usable_size(pv) >= page);  // pvalloc rounds the size up to whole pages
  CHECK(lgt::usable(pv, page));
  std::free(pv);
  errno = 0;
  CHECK(pvalloc(huge) == nullptr);
  CHECK(errno == ENOMEM);
}

TEST_CASE("malloc_usable_size: 0 for null, at least the size asked, and all of it writable") {
  CHECK(malloc_usable_size(nullptr) == 0);
  for (std::size_t n : {1, 7, 8, 24, 100, 1000, 100000}) {
    CAPTURE(n);
    void* p = launder(std::malloc(n));  // writing past n is allowed; g++ would warn
    const std::size_t usable = malloc_usable_size(p);
    CHECK(usable >= n);
    if (!std::getenv("LEAKGUARD_TEST_EXPECT_HEAP")) CHECK(usable < n + 64);  // glibc's size classes
    CHECK(lgt::usable(p, usable));
    std::free(p);
  }
  std::vector<report> reports = reports_of([] {
    void* p = launder(std::malloc(100));  // a tracked block: its record is not usable space
    const std::size_t usable = malloc_usable_size(p);
    if (usable < 100 || !lgt::usable(p, usable)) std::abort();
    std::free(p);
  });
  CHECK(reports.empty());
}

TEST_CASE("a call that succeeds leaves errno alone, in and out of scopes") {
  auto all_calls = [] {
    void* p = std::malloc(10);
    p = std::realloc(p, 100000);
    std::free(p);
    std::free(std::calloc(3, 5));
    std::free(aligned_alloc(64, 64));
    std::free(memalign(128, 10));
    std::free(nullptr);
  };
  errno = 1234;
  all_calls();
  CHECK(errno == 1234);
  int inside = 0;
  std::vector<report> reports = reports_of([&] {
    errno = 4321;
    all_calls();
    inside = errno;
  });
  CHECK(inside == 4321);
  CHECK(reports.empty());
}

TEST_CASE("calloc memory is zero even where the heap below reuses dirty memory") {
  for (int round = 0; round < 2; ++round) {
    std::vector<report> reports = reports_of([&] {
      for (std::size_t n : {std::size_t{24}, std::size_t{4000}, std::size_t{1} << 18}) {
        auto* dirty = static_cast<unsigned char*>(std::malloc(n));
        std::memset(lgt::keep(dirty), 0xab, n);
        std::free(dirty);
        auto* clean = static_cast<unsigned char*>(std::calloc(n, 1));
        for (std::size_t i = 0; i < n; ++i)
          if (clean[i] != 0) std::abort();
        std::free(clean);
      }
    });
    CHECK(reports.empty());
  }
}

TEST_CASE("a leak of each allocation function is reported at the user's line, named by the function") {
  struct expected {
    const char* function;
    int line;
  };
  std::vector<void*> blocks;
  std::vector<expected> want;
  blocks.reserve(16);  // the test's own vectors must not grow inside the scope
  want.reserve(16);
  std::vector<report> reports = reports_of([&] {
    // clang-format off
    want.push_back({"malloc", __LINE__ + 1});
    blocks.push_back(lgt::keep(std::malloc(11)));
    want.push_back({"calloc", __LINE__ + 1});
    blocks.push_back(lgt::keep(std::calloc(3, 4)));
    want.push_back({"realloc", __LINE__ + 1});
    blocks.push_back(lgt::keep(std::realloc(opaque_null(), 13)));
    want.push_back({"aligned_alloc", __LINE__ + 1});
    blocks.push_back(lgt::keep(aligned_alloc(64, 14)));
    void* aligned = nullptr;
    want.push_back({"posix_memalign", __LINE__ + 1});
    if (posix_memalign(&aligned, 128, 15) == 0) blocks.push_back(lgt::keep(aligned));
    want.push_back({"memalign", __LINE__ + 1});
    blocks.push_back(lgt::keep(memalign(256, 16)));
    want.push_back({"valloc", __LINE__ + 1});
    blocks.push_back(lgt::keep(valloc(17)));
    want.push_back({"pvalloc", __LINE__ + 1});
    blocks.push_back(lgt::keep(pvalloc(18)));
    want.push_back({"realloc", __LINE__ + 1});
    blocks.push_back(lgt::keep(reallocarray(opaque_null(), 19, 1)));
    // clang-format on
    lgt::no_tail_call();
  });
  REQUIRE(reports.size() == 1);
  REQUIRE(reports[0].blocks().size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    const leaked_block* b = lgt::find_block(reports[0], blocks[i]);
    REQUIRE(b != nullptr);
    CHECK(b->allocated_by == std::string(want[i].function));
    CHECK(lgt::site_is(b->site, __FILE__, want[i].line));
  }
  const std::string text = reports[0].to_text();
  CHECK(lgt::contains(text, "allocated with posix_memalign at "));
  CHECK(lgt::contains(reports[0].to_json(), "\"allocated_by\":\"calloc\""));
  for (void* p : blocks) std::free(p);
}

TEST_CASE("strdup, strndup, asprintf, getline and open_memstream leaks name the user's line through the C library") {
  char* dup = nullptr;
  char* ndup = nullptr;
  char* printed = nullptr;
  char* line = nullptr;
  char* stream_buffer = nullptr;
  int dup_line = 0, ndup_line = 0, printed_line = 0, getline_line = 0, stream_line = 0;
  std::FILE* input = std::fopen("/proc/self/cmdline", "r");
  REQUIRE(input != nullptr);
  std::vector<report> reports = reports_of([&] {
    dup_line = __LINE__ + 1;
    dup = strdup("a string the caller must free");
    ndup_line = __LINE__ + 1;
    ndup = strndup("another string", 7);
    printed_line = __LINE__ + 1;
    if (asprintf(&printed, "%d and %s", 42, "text") < 0) printed = nullptr;
    std::size_t capacity = 0;
    getline_line = __LINE__ + 1;
    if (getline(&line, &capacity, input) < 0) std::abort();
    std::size_t size = 0;
    stream_line = __LINE__ + 1;
    std::FILE* stream = open_memstream(&stream_buffer, &size);
    std::fputs("written through a memory stream, long enough to grow its buffer more than once .......", stream);
    std::fclose(stream);
    lgt::no_tail_call();
  });
  std::fclose(input);
  REQUIRE(reports.size() == 1);
  const report& r = reports[0];
  struct expected {
    char* block;
    int line;
    const char* by;
  };
  for (const expected& e : {expected{dup, dup_line, "strdup"}, expected{ndup, ndup_line, "strndup"},
                            expected{printed, printed_line, "asprintf"}, expected{line, getline_line, "getdelim"},
                            expected{stream_buffer, stream_line, "open_memstream"}}) {
    CAPTURE(e.line);
    const leaked_block* b = lgt::find_block(r, e.block);
    REQUIRE(b != nullptr);
    CHECK(lgt::site_is(b->site, __FILE__, e.line));
    CHECK(b->allocated_by == std::string(e.by));
  }
  CHECK(r.blocks().size() == 5);  // the FILE of the memory stream was closed: nothing else
  for (char* p : {dup, ndup, printed, line, stream_buffer}) std::free(p);
}

TEST_CASE("realloc keeps one block: its first site and serial, its latest size") {
  void* p = nullptr;
  int made_at = 0;
  std::vector<report> reports = reports_of([&] {
    made_at = __LINE__ + 1;
    p = std::malloc(16);
    std::memcpy(p, "identity", 9);
    for (std::size_t n : {64, 4096, 100000, 32})  // moves, grows, shrinks
      p = std::realloc(p, n);
    lgt::no_tail_call();
  });
  REQUIRE(reports.size() == 1);
  REQUIRE(reports[0].blocks().size() == 1);
  const leaked_block& b = reports[0].blocks()[0];
  CHECK(b.address == p);
  CHECK(b.size == 32);
  CHECK(b.allocated_by == "malloc");
  CHECK(lgt::site_is(b.site, __FILE__, made_at));
  CHECK(std::strcmp(static_cast<char*>(p), "identity") == 0);
  std::free(p);

  // The scope's own figures follow the resizes.
  leakguard::scope_stats stats{};
  {
    lgt::report_sink sink;
    leakguard::scope s(leakguard::scope_options{.handler = sink.handler()});
    void* q = std::malloc(100);
    q = std::realloc(q, 1000);
    stats = s.stats();
    std::free(q);
  }
  CHECK(stats.allocations == 1);
  CHECK(stats.live_blocks == 1);
  CHECK(stats.live_bytes == 1000);
  CHECK(stats.peak_bytes == 1000);
}

TEST_CASE("realloc leaves a block with the scope that made it: before a scope, or in an outer one") {
  void* before = std::malloc(8);
  std::vector<report> reports = reports_of([&] { before = std::realloc(before, 200000); });
  CHECK(reports.empty());  // made before the scope: not its block
  std::free(before);

  void* outer_block = nullptr;
  lgt::report_sink outer_sink, inner_sink;
  {
    leakguard::scope outer(leakguard::scope_options{.label = "outer", .handler = outer_sink.handler()});
    outer_block = std::malloc(10);
    {
      leakguard::scope inner(leakguard::scope_options{.label = "inner", .handler = inner_sink.handler()});
      outer_block = std::realloc(outer_block, 50000);
    }
  }
  CHECK(inner_sink.reports.empty());
  REQUIRE(outer_sink.reports.size() == 1);
  REQUIRE(outer_sink.reports[0].blocks().size() == 1);
  CHECK(outer_sink.reports[0].blocks()[0].address == outer_block);
  CHECK(outer_sink.reports[0].blocks()[0].size == 50000);
  std::free(outer_block);
}

TEST_CASE("the budget of a scope counts what realloc adds") {
  lgt::report_sink sink;
  {
    leakguard::scope s(leakguard::scope_options{.max_bytes = 1000, .handler = sink.handler()});
    void* p = std::malloc(100);
    p = std::realloc(p, 5000);
    std::free(p);
  }
  REQUIRE(sink.reports.size() == 1);
  REQUIRE(sink.reports[0].violations().size() == 1);
  CHECK(sink.reports[0].violations()[0].kind == leakguard::violation_kind::byte_budget);
}

TEST_CASE("free of a new block, delete of a malloc block and realloc of a new[] block are misuse, with both sites") {
  lgt::capture_misuse misuses;
  const leakguard::heap_stats before = leakguard::global_stats();
  int made[3] = {}, freed[3] = {};
  {
    lgt::report_sink sink;
    leakguard::scope s(leakguard::scope_options{.handler = sink.handler()});
    made[0] = __LINE__ + 1;
    int* one = lgt::keep(new int(1));
    made[1] = __LINE__ + 1;
    void* raw = lgt::keep(std::malloc(12));
    made[2] = __LINE__ + 1;
    int* many = lgt::keep(new int[4]);
    freed[0] = __LINE__ + 1;
    std::free(one);
    freed[1] = __LINE__ + 1;
    delete static_cast<int*>(raw);
    freed[2] = __LINE__ + 1;
    void* grown = std::realloc(many, 4000);
    std::free(grown);
    lgt::no_tail_call();
  }
  const leakguard::heap_stats after = leakguard::global_stats();  // before doctest's own allocations
  REQUIRE(misuses.events.size() == 3);
  const char* says[3] = {"free of ", "delete of ", "realloc of "};
  const char* by[3] = {"allocated by new", "allocated by malloc", "allocated by new[]"};
  for (int i = 0; i < 3; ++i) {
    const leakguard::misuse& m = misuses.events[static_cast<std::size_t>(i)];
    CAPTURE(m.message);
    CHECK(m.kind == leakguard::misuse_kind::wrong_allocator);
    CHECK(lgt::contains(m.message, says[i]));
    CHECK(lgt::contains(m.message, by[i]));
    CHECK(lgt::site_is(m.site, __FILE__, freed[i]));
    CHECK(lgt::site_is(m.allocation_site, __FILE__, made[i]));
  }
  // Each block was still freed as it was made: the books balance.
  CHECK(after.live_blocks == before.live_blocks);
}

TEST_CASE("a double free and a foreign pointer given to free or realloc are misuse, nothing is freed") {
  lgt::capture_misuse misuses;
  const leakguard::heap_stats before = leakguard::global_stats();
  {
    lgt::report_sink sink;
    leakguard::scope s(leakguard::scope_options{.handler = sink.handler()});
    void* p = lgt::keep(std::malloc(64));
    std::free(p);
    std::free(p);
  }
  alignas(16) char on_stack[64] = {};
  std::free(lgt::keep(on_stack + 32));
  errno = 0;
  void* resized = std::realloc(lgt::keep(on_stack + 32), 10);
  const leakguard::heap_stats after = leakguard::global_stats();
  CHECK(resized == nullptr);
  REQUIRE(misuses.events.size() == 3);
  CHECK(misuses.events[0].kind == leakguard::misuse_kind::double_free);
  CHECK(misuses.events[1].kind == leakguard::misuse_kind::foreign_pointer);
  CHECK(lgt::contains(misuses.events[1].message, "free of "));
  CHECK(misuses.events[2].kind == leakguard::misuse_kind::foreign_pointer);
  CHECK(lgt::contains(misuses.events[2].message, "realloc of "));
  CHECK(after.live_blocks == before.live_blocks);
}

TEST_CASE("threads created and joined inside a scope leave nothing, not even retained blocks") {
  std::vector<report> reports = reports_of(
      [] {
        for (int round = 0; round < 3; ++round) {
          std::vector<std::thread> threads;
          for (int i = 0; i < 4; ++i) threads.emplace_back([] { std::free(lgt::keep(std::malloc(100))); });
          for (std::thread& t : threads) t.join();
          pthread_t raw;
          if (pthread_create(&raw, nullptr, [](void*) -> void* { return nullptr; }, nullptr) == 0)
            pthread_join(raw, nullptr);
        }
      },
      /*allow_retained=*/false);
  for (const report& r : reports) MESSAGE(r.to_text());
  CHECK(reports.empty());
}

TEST_CASE("what glibc keeps for itself, filled inside a scope, is not reported: stdio, locale, NSS, time zone, dlerror, strerror_l") {
  std::FILE* file = std::fopen("/dev/null", "w");  // its buffer comes with the first write
  REQUIRE(file != nullptr);
  const char* old_tz = std::getenv("TZ");
  const std::string saved_tz = old_tz ? old_tz : "";
  std::vector<report> reports = reports_of([&] {
    std::fputs("stdio allocates its buffer now", file);
    std::setlocale(LC_ALL, "C.UTF-8");
    if (passwd* pw = getpwnam("root")) lgt::keep(pw);
    setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
    tzset();
    std::time_t now = std::time(nullptr);
    std::tm parts{};
    localtime_r(&now, &parts);
    if (dlopen("libleakguard-no-such-library.so", RTLD_NOW)) std::abort();
    lgt::keep(dlerror());
    locale_t c = newlocale(LC_ALL_MASK, "C.UTF-8", nullptr);
    if (c) {
      lgt::keep(strerror_l(12345, c));
      freelocale(c);
    }
  });
  for (const report& r : reports) MESSAGE(r.to_text());
  CHECK(reports.empty());
  std::fclose(file);
  std::setlocale(LC_ALL, "C");
  if (old_tz) setenv("TZ", saved_tz.c_str(), 1);
  else unsetenv("TZ");
  tzset();
}

TEST_CASE("after fork, the child's C heap works and its scopes report") {
  const lgt::child_result child = lgt::run_in_child([] {
    lgt::report_sink sink;
    char* leak = nullptr;
    {
      leakguard::scope s(leakguard::scope_options{.handler = sink.handler()});
      leak = strdup("the child's leak");
      std::free(std::malloc(100));
    }
    if (sink.reports.size() != 1 || sink.reports[0].blocks().size() != 1 ||
        sink.reports[0].blocks()[0].address != leak)
      std::_Exit(3);
    std::free(leak);
  });
  CHECK_MESSAGE(child.ok(), child.describe());
  // A scope open across the fork: the parent's books are as before.
  std::vector<report> reports = reports_of([] {
    const pid_t pid = fork();
    if (pid == 0) {
      std::free(std::malloc(10));
      std::_Exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
  });
  CHECK(reports.empty());
}

TEST_CASE("a dlopen()ed plugin's malloc is leakguard's: its leak is reported with the user's line below it") {
  void* plugin = dlopen(LEAKGUARD_TEST_MALLOC_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  REQUIRE_MESSAGE(plugin != nullptr, dlerror());
  auto* copy = reinterpret_cast<char* (*)(const char*)>(dlsym(plugin, "plugin_copy"));
  REQUIRE(address_of(copy) != nullptr);
  char* kept = nullptr;
  int line = 0;
  std::vector<report> reports = reports_of([&] {
    line = __LINE__ + 1;
    kept = copy("made by the plugin");
    lgt::no_tail_call();
  });
  REQUIRE(reports.size() == 1);
  REQUIRE(reports[0].blocks().size() == 1);
  const leaked_block& b = reports[0].blocks()[0];
  CHECK(b.address == kept);
  CHECK(b.allocated_by == "malloc");
  CHECK(lgt::frame_index(b.stack, "plugin_copy") >= 0);
  CHECK(lgt::find_file_line(reports[0].to_text(), __FILE__, line) != std::string::npos);
  std::free(kept);
  dlclose(plugin);
}

TEST_CASE("a system library dlopen()ed after start-up: its allocations name the user's line, on every thread") {
  // libcrypt: a system library (built without frame pointers) that this
  // program does not link, so it is loaded after leakguard mapped the code.
  const char* name = "libcrypt.so.1";
  if (dlopen(name, RTLD_NOW | RTLD_NOLOAD) != nullptr) {
    MESSAGE("skipped: ", name, " is loaded at start-up");
    return;
  }
  void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
  REQUIRE_MESSAGE(lib != nullptr, dlerror());
  using crypt_ra_fn = char* (*)(const char*, const char*, void**, int*);
  auto* crypt_ra = reinterpret_cast<crypt_ra_fn>(dlsym(lib, "crypt_ra"));
  REQUIRE(address_of(crypt_ra) != nullptr);
  // crypt_ra mallocs its work area for the caller, which leaks it.
  struct outcome {
    void* data = nullptr;
    int line = 0;
    std::vector<report> reports;
  };
  auto leak = [&](outcome& o) {
    int size = 0;
    o.reports = reports_of([&] {
      o.line = __LINE__ + 1;
      lgt::keep(crypt_ra("secret", "$5$saltstring", &o.data, &size));
      lgt::no_tail_call();
    });
  };
  // The library's first allocation while another thread is mapping code
  // (as if): this one does not wait, it takes the unwinder.
  outcome first;
  REQUIRE_FALSE(leakguard::detail::code.busy.exchange(true));
  leak(first);
  leakguard::detail::code.busy.store(false);
  // Then four threads at once: one maps the library's code.
  std::vector<outcome> outcomes(4);
  std::atomic<int> waiting{static_cast<int>(outcomes.size())};
  std::vector<std::thread> workers;
  for (outcome& o : outcomes) {
    workers.emplace_back([&] {
      waiting.fetch_sub(1);
      while (waiting.load() > 0) std::this_thread::yield();
      leak(o);
    });
  }
  for (std::thread& w : workers) w.join();
  outcomes.push_back(std::move(first));
  for (outcome& o : outcomes) {
    REQUIRE(o.data != nullptr);
    REQUIRE(o.reports.size() == 1);
    const leaked_block* b = lgt::find_block(o.reports[0], o.data);
    REQUIRE(b != nullptr);
    CAPTURE(o.reports[0].to_text());
    CHECK(lgt::site_is(b->site, __FILE__, o.line));
    CHECK(lgt::frame_index(b->stack, "crypt_ra") >= 0);
    std::free(o.data);
  }
  dlclose(lib);
}

#if defined(__x86_64__)
TEST_CASE("an allocation from generated code never waits for the loader's lock, and names the user's line") {
  // Generated code, in no loaded object: push %rbp; mov %rsp,%rbp;
  // movabs $malloc,%rax; mov $40,%edi; call *%rax; pop %rbp; ret.
  void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(page != MAP_FAILED);
  auto* code = static_cast<unsigned char*>(page);
  const unsigned char head[] = {0x55, 0x48, 0x89, 0xe5, 0x48, 0xb8};
  const unsigned char tail[] = {0xbf, 40, 0, 0, 0, 0xff, 0xd0, 0x5d, 0xc3};
  void* (*libc_malloc)(std::size_t) = &std::malloc;
  std::memcpy(code, head, sizeof head);
  std::memcpy(code + sizeof head, &libc_malloc, sizeof libc_malloc);
  std::memcpy(code + sizeof head + sizeof libc_malloc, tail, sizeof tail);
  REQUIRE(mprotect(page, 4096, PROT_READ | PROT_EXEC) == 0);
  auto* generated = reinterpret_cast<void* (*)()>(page);

  // Another thread holds the loader's lock (inside dl_iterate_phdr) while
  // this one allocates from the generated code in a scope.
  std::atomic<int> loader{0};  // 1: held, 2: let go
  std::thread holder([&] {
    dl_iterate_phdr(
        [](dl_phdr_info*, std::size_t, void* state) -> int {
          auto& s = *static_cast<std::atomic<int>*>(state);
          s.store(1);
          while (s.load() != 2) std::this_thread::yield();
          return 1;
        },
        &loader);
  });
  while (loader.load() != 1) std::this_thread::yield();
  std::atomic<bool> allocated{false};
  void* block = nullptr;
  int line = 0;
  std::vector<report> reports;
  std::thread allocating([&] {
    reports = reports_of([&] {
      line = __LINE__ + 1;
      block = lgt::keep(generated());
      allocated.store(true);
      // The scope's end reads the loader's list of objects: not before the lock is let go.
      while (loader.load() != 2) std::this_thread::yield();
      lgt::no_tail_call();
    });
  });
  for (int i = 0; i < 500 && !allocated.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const bool waited = !allocated.load();
  loader.store(2);
  holder.join();
  allocating.join();
  CHECK_FALSE(waited);
  REQUIRE(reports.size() == 1);
  const leaked_block* b = lgt::find_block(reports[0], block);
  REQUIRE(b != nullptr);
  CAPTURE(reports[0].to_text());
  CHECK(lgt::site_is(b->site, __FILE__, line));
  std::free(block);
  munmap(page, 4096);
}
#endif

#if LEAKGUARD_TEST_ZLIB
TEST_CASE("a zlib stream never ended is reported at the user's deflateInit line") {
  z_stream stream{};
  int line = 0;
  std::vector<report> reports = reports_of([&] {
    line = __LINE__ + 1;
    if (deflateInit(&stream, Z_DEFAULT_COMPRESSION) != Z_OK) std::abort();
    lgt::no_tail_call();
  });
  REQUIRE(reports.size() == 1);
  const report& r = reports[0];
  CHECK(r.blocks().size() >= 4);  // the state, the window, the hash tables, the pending buffer
  bool direct_at_line = false;
  for (const leaked_block& b : r.blocks())
    direct_at_line |= b.kind == leakguard::leak_kind::direct && lgt::site_is(b.site, __FILE__, line);
  CHECK_MESSAGE(direct_at_line, r.to_text());
  deflateEnd(&stream);
}
#endif

TEST_CASE("the classic daemon leak: malloc in a request loop gets a report per request at the malloc line") {
  lgt::report_sink sink;
  std::vector<void*> lost;
  lost.reserve(5);
  int line = 0;
  for (int request = 0; request < 5; ++request) {
    leakguard::scope s(leakguard::scope_options{.label = "request", .handler = sink.handler()});
    line = __LINE__ + 1;
    char* buffer = static_cast<char*>(std::malloc(512));
    std::snprintf(buffer, 512, "request %d", request);
    lost.push_back(buffer);  // "forgotten": the vector lives on the test's stack, not in a root
  }
  REQUIRE(sink.reports.size() == 5);
  for (const report& r : sink.reports) {
    REQUIRE(r.blocks().size() == 1);
    CHECK(r.blocks()[0].size == 512);
    CHECK(lgt::site_is(r.blocks()[0].site, __FILE__, line));
  }
  for (void* p : lost) std::free(p);
}

TEST_CASE("global_stats counts C blocks like new blocks") {
  const leakguard::heap_stats before = leakguard::global_stats();
  void* a = lgt::keep(std::malloc(1000));
  void* b = lgt::keep(std::calloc(10, 10));
  const leakguard::heap_stats during = leakguard::global_stats();
  CHECK(during.live_blocks == before.live_blocks + 2);
  CHECK(during.live_bytes == before.live_bytes + 1100);
  CHECK(during.allocations == before.allocations + 2);
  std::free(a);
  std::free(b);
  CHECK(leakguard::global_stats().live_blocks == before.live_blocks);
}

TEST_CASE("the heap below is the allocator the program would have used") {
  Dl_info info{};
  REQUIRE(dladdr(reinterpret_cast<void*>(leakguard::detail::next.malloc), &info) != 0);
  const std::string module = info.dli_fname ? info.dli_fname : "";
  const char* expected = std::getenv("LEAKGUARD_TEST_EXPECT_HEAP");
  CAPTURE(module);
  CHECK(lgt::contains(module, expected && *expected ? expected : "libc.so"));
  // The same module serves every entry point, never this program's own.
  for (void* f : {reinterpret_cast<void*>(leakguard::detail::next.free),
                  reinterpret_cast<void*>(leakguard::detail::next.realloc),
                  reinterpret_cast<void*>(leakguard::detail::next.memalign)}) {
    Dl_info other{};
    REQUIRE(dladdr(f, &other) != 0);
    CHECK(other.dli_fbase == info.dli_fbase);
  }
  CHECK(reinterpret_cast<void*>(leakguard::detail::next.malloc) != reinterpret_cast<void*>(&::malloc));
}

// ---- the model: random C heap traffic against what the books must say ----------

namespace {

struct slot {
  void* p = nullptr;
  std::size_t size = 0;
  bool in_scope = false;  // allocated inside the current scope
};

// One scope of random malloc/calloc/aligned_alloc/realloc/free over `slots`,
// some of which hold blocks from before the scope. Returns false (with a
// reason) when the scope's figures or its report disagree with the model.
bool one_scope_round(std::vector<slot>& slots, std::uint64_t& seed, std::string& why) {
  auto next = [&seed](std::uint64_t bound) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed % bound;
  };
  lgt::report_sink sink;
  std::size_t model_blocks = 0, model_bytes = 0;
  leakguard::scope_stats stats{};
  {
    leakguard::scope s(leakguard::scope_options{.label = "model", .handler = sink.handler(), .allow_retained = false});
    for (int op = 0; op < 200; ++op) {
      slot& x = slots[next(slots.size())];
      const std::size_t n = 1 + next(next(4) == 0 ? 70000 : 300);
      if (!x.p) {
        switch (next(4)) {
          case 0: x.p = std::malloc(n); break;
          case 1: x.p = std::calloc(n, 1); break;
          case 2: x.p = aligned_alloc(64, n); break;
          default: x.p = std::realloc(opaque_null(), n); break;
        }
        if (!x.p) {
          why = "allocation failed";
          return false;
        }
        static_cast<unsigned char*>(x.p)[n - 1] = 0x5a;
        x.size = n;
        x.in_scope = true;
        ++model_blocks;
        model_bytes += n;
      } else if (next(2) == 0) {
        const std::size_t keep = std::min(n, x.size);
        const unsigned char last = static_cast<unsigned char*>(x.p)[keep - 1];
        void* q = std::realloc(x.p, n);
        if (!q || static_cast<unsigned char*>(q)[keep - 1] != last) {
          why = "realloc lost the bytes";
          return false;
        }
        if (x.in_scope) model_bytes += n - x.size;
        x.p = q;
        x.size = n;
        static_cast<unsigned char*>(x.p)[n - 1] = 0x5a;
      } else {
        std::free(x.p);
        if (x.in_scope) {
          --model_blocks;
          model_bytes -= x.size;
        }
        x = {};
      }
    }
    stats = s.stats();
  }
  if (stats.live_blocks != model_blocks || stats.live_bytes != model_bytes) {
    why = "scope figures " + std::to_string(stats.live_blocks) + "/" + std::to_string(stats.live_bytes) +
          ", model " + std::to_string(model_blocks) + "/" + std::to_string(model_bytes);
    return false;
  }
  const std::size_t reported = sink.reports.empty() ? 0 : sink.reports[0].blocks().size();
  if (reported != model_blocks) {
    why = "reported " + std::to_string(reported) + " blocks, model " + std::to_string(model_blocks);
    return false;
  }
  for (slot& x : slots) {
    if (x.in_scope && !lgt::find_block(sink.reports[0], x.p)) {
      why = "a surviving block is missing from the report";
      return false;
    }
    x.in_scope = false;  // from now on, a block from before the next scope
  }
  return true;
}

}  // namespace

TEST_CASE("the model: random C heap traffic in scopes, the books and the reports agree") {
  std::vector<slot> slots(48);
  std::uint64_t seed = 0x9e3779b97f4a7c15ull;
  std::string why;
  for (int round = 0; round < 40 && why.empty(); ++round) {
    if (!one_scope_round(slots, seed, why)) FAIL_CHECK("round " << round << ": " << why);
  }
  for (slot& x : slots) std::free(x.p);
}

TEST_CASE("the model on four threads at once, with an all_threads scope around them") {
  lgt::report_sink outer_sink;
  std::vector<std::string> failures(4);
  {
    leakguard::scope outer(leakguard::scope_options{.label = "all", .all_threads = true, .handler = outer_sink.handler()});
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([i, &failures] {
        std::vector<slot> slots(32);
        std::uint64_t seed = 0x51ed270b1b7d9a5bull + static_cast<std::uint64_t>(i);
        for (int round = 0; round < 15 && failures[i].empty(); ++round) one_scope_round(slots, seed, failures[i]);
        for (slot& x : slots) std::free(x.p);
      });
    }
    for (std::thread& t : threads) t.join();
  }
  for (const std::string& f : failures) CHECK_MESSAGE(f.empty(), f);
  // Every block was freed before the outer scope ended (on the threads that
  // made them): it has nothing to report.
  CHECK(outer_sink.reports.empty());
}
