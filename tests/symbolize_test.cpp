// The symbolizer (impl/symbolize.hpp): return addresses to frames, with
// file:line and inlined calls from libdw, each address looked up only once.
#include <doctest/doctest.h>
#include <leakguard/impl/frame_kind.hpp>
#include <leakguard/impl/symbolize.hpp>
#include <leakguard/impl/thread_state.hpp>

#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {

namespace lg = leakguard::detail;

// The address its call returns to: a point in the caller, at the call's line.
__attribute__((noinline)) const void* return_address() {
  const void* r = __builtin_return_address(0);
  asm volatile("" ::: "memory");  // no tail call
  return r;
}

int inlined_line = 0;
__attribute__((always_inline)) inline const void* inlined_call() {
  inlined_line = __LINE__ + 1;
  return return_address();
}

std::vector<leakguard::frame> frames_of(const void* pc) {
  lg::internal_guard guard;
  lg::symbolizer& s = lg::the_symbolizer();
  lg::lock_guard serialised(s.lock);
  s.follow_loader();
  std::vector<leakguard::frame> out;
  s.frames_of(pc, out);
  return out;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The read system calls this process has made (/proc/self/io), or -1.
long long read_calls() {
  std::FILE* f = std::fopen("/proc/self/io", "r");
  if (!f) return -1;
  char line[128];
  long long n = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "syscr: %lld", &n) == 1) break;
  std::fclose(f);
  return n;
}

}  // namespace

TEST_SUITE("symbolize") {

TEST_CASE("a return address names its function, file and line") {
  const int line = __LINE__ + 1;
  const void* pc = return_address();
  const std::vector<leakguard::frame> frames = frames_of(pc);
  REQUIRE(!frames.empty());
  const leakguard::frame& f = frames.back();
  CHECK(f.pc == pc);
  CHECK(f.function.find("DOCTEST_ANON_FUNC") != std::string::npos);
#if LEAKGUARD_HAVE_LIBDW
  CHECK(ends_with(f.file, "symbolize_test.cpp"));
  CHECK(f.line == line);
#else
  (void)line;
#endif
}

#if LEAKGUARD_HAVE_LIBDW
TEST_CASE("an inlined call is a frame of its own, at the line it was inlined from") {
  const int line = __LINE__ + 1;
  const void* pc = inlined_call();
  const std::vector<leakguard::frame> frames = frames_of(pc);
  std::string shown;
  for (const leakguard::frame& f : frames) shown += f.function + " at " + f.file + ":" + std::to_string(f.line) + "\n";
  INFO(shown);
  REQUIRE(frames.size() == 2);
  // Qualified, even without a linkage name (internal linkage).
  CHECK(leakguard::detail::qualified_name(frames[0].function) == "(anonymous namespace)::inlined_call");
  CHECK(ends_with(frames[0].file, "symbolize_test.cpp"));
  CHECK(frames[0].line == inlined_line);
  CHECK(frames[1].function.find("DOCTEST_ANON_FUNC") != std::string::npos);
  CHECK(frames[1].line == line);
  CHECK((frames[0].pc == pc && frames[1].pc == pc));
}
#endif

TEST_CASE("an address seen before is looked up again without a system call") {
  // A return address in the C library, whose frames libdw cannot name (no
  // symbol table, and system debug files are not read): the names come from
  // reading the file's symbols, which takes system calls.
  void* stack[64];
  const int depth = ::backtrace(stack, 64);
  const void* pc = nullptr;
  for (int i = 0; i < depth && !pc; ++i) {
    Dl_info info;
    if (dladdr(stack[i], &info) && info.dli_fname && std::string(info.dli_fname).find("libc.so") != std::string::npos)
      pc = stack[i];
  }
  REQUIRE(pc != nullptr);
  const long long calibrate = read_calls();
  if (calibrate < 0) {
    MESSAGE("/proc/self/io is not readable here: nothing to count");
    return;
  }
  const long long reading_costs = read_calls() - calibrate;  // the count's own read
  {  // the count sees one read more
    const int fd = ::open("/dev/zero", O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    char byte;
    const long long before = read_calls();
    CHECK(::read(fd, &byte, 1) == 1);
    CHECK(read_calls() - before == reading_costs + 1);
    ::close(fd);
  }
  const long long before_first = read_calls();
  const std::vector<leakguard::frame> first = frames_of(pc);
  const long long after_first = read_calls();
  // In a process of its own (as CTest and Meson run each case), the first
  // lookup reads; in a longer run an earlier report may have looked it up.
  if (after_first - before_first == reading_costs) MESSAGE("the address was looked up before this case");
  const std::vector<leakguard::frame> again = frames_of(pc);
  CHECK(read_calls() - after_first == reading_costs);
  REQUIRE(again.size() == first.size());
  for (std::size_t i = 0; i < first.size(); ++i) {
    CHECK(again[i].function == first[i].function);
    CHECK(again[i].file == first[i].file);
    CHECK(again[i].line == first[i].line);
  }
}

TEST_CASE("an address in no module gets an empty frame, not a crash") {
  const void* nowhere = reinterpret_cast<const void*>(0x10);
  const std::vector<leakguard::frame> frames = frames_of(nowhere);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].pc == nowhere);
  CHECK(frames[0].function.empty());
  CHECK(frames[0].file.empty());
}

}  // TEST_SUITE
