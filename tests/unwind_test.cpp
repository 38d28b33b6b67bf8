// Stacks through libraries built without frame pointers (impl/code_map.hpp):
// a block that libstdc++.so allocates for the user is named at the user's
// line, found with the unwind tables where the frame-pointer walk would skip it.
#include <doctest/doctest.h>
#include <leakguard.hpp>
#include <leakguard/impl/stacks.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "support.hpp"

TEST_CASE("a block allocated inside libstdc++.so for the user is named at the user's line") {
  lgt::report_sink sink;
  std::runtime_error* error = nullptr;
  int line = 0;
  {
    leakguard::scope s(leakguard::scope_options{.handler = sink.handler()});
    const std::string message(200, 'm');
    line = __LINE__ + 1;
    error = lgt::keep(new std::runtime_error(message));  // the message is copied inside libstdc++.so
    lgt::no_tail_call();
  }
  REQUIRE(sink.reports.size() == 1);
  const leakguard::report& r = sink.reports[0];
  REQUIRE(r.blocks().size() == 2);  // the exception object, and its message inside it
  for (const leakguard::leaked_block& b : r.blocks()) {
    CAPTURE(r.to_text());
    CHECK(lgt::site_is(b.site, __FILE__, line));
  }
  // The message's stack shows the library's frame, then the user's.
  const leakguard::leaked_block& message = r.blocks()[0].size == sizeof(std::runtime_error) ? r.blocks()[1] : r.blocks()[0];
  CHECK(lgt::frame_index(message.stack, "runtime_error") >= 0);
  delete error;
}

namespace lgt_unwind {
// One call site for every message: the test's loop may be unrolled.
[[gnu::noinline]] std::runtime_error* make_error(const std::string& message) {
  return lgt::keep(new std::runtime_error(message));  // the message is copied inside libstdc++.so
}
constexpr int make_error_line = __LINE__ - 2;
}  // namespace lgt_unwind

TEST_CASE("a call from libstdc++.so the unwinder walked once is walked again from what it learnt, to the same frames") {
  lgt::report_sink sink;
  std::runtime_error* errors[3] = {};
  {
    leakguard::scope s(leakguard::scope_options{.handler = sink.handler()});
    const std::string message(200, 'm');
    for (std::runtime_error*& e : errors) e = lgt_unwind::make_error(message);
    lgt::no_tail_call();
  }
  REQUIRE(sink.reports.size() == 1);
  const leakguard::report& r = sink.reports[0];
  REQUIRE(r.blocks().size() == 6);
  std::vector<const leakguard::leaked_block*> messages;
  for (const leakguard::leaked_block& b : r.blocks()) {
    CHECK(lgt::site_is(b.site, __FILE__, lgt_unwind::make_error_line));
    if (b.size != sizeof(std::runtime_error)) messages.push_back(&b);
  }
  REQUIRE(messages.size() == 3);
  const std::vector<leakguard::frame>& first = messages[0]->stack;
  const int in_library = lgt::frame_index(first, "runtime_error");
  const int in_maker = lgt::frame_index(first, "make_error");
  REQUIRE(in_library >= 0);
  REQUIRE(in_maker > in_library);
  for (const leakguard::leaked_block* m : messages) {  // the same frames, whichever walk made them
    REQUIRE(m->stack.size() > static_cast<std::size_t>(in_maker));
    for (std::size_t i = 0; i <= static_cast<std::size_t>(in_maker); ++i) CHECK(m->stack[i].pc == first[i].pc);
  }
#if defined(__x86_64__)
  leakguard::detail::library_frames::frame f;
  CHECK(leakguard::detail::known_library_frames.find(reinterpret_cast<std::uintptr_t>(first[in_library].pc), f));
  CHECK(f.size > 0);
#endif
  for (std::runtime_error* e : errors) delete e;
}

#if defined(__x86_64__)
TEST_CASE("a learnt library frame is one word: what does not fit is not learnt, a return address finds only its own") {
  static leakguard::detail::library_frames frames;  // large: not on the stack
  using frame = leakguard::detail::library_frames::frame;
  frame f;
  frames.learn(0x401234, {48, 16});
  REQUIRE(frames.find(0x401234, f));
  CHECK(f.size == 48);
  CHECK(f.saved_fp == 16);
  CHECK_FALSE(frames.find(0x401235, f));
  frames.learn(0x401234, {64, 0});  // learnt again: the newer answer
  REQUIRE(frames.find(0x401234, f));
  CHECK(f.size == 64);
  CHECK(f.saved_fp == 0);
  for (frame bad : {frame{0, 0}, frame{12, 0}, frame{8 * 512, 0}, frame{48, 4}, frame{48, 8 * 256}}) {
    frames.learn(0x502000, bad);
    CHECK_FALSE(frames.find(0x502000, f));
  }
  frames.learn(std::uintptr_t{1} << 47, {48, 0});  // beyond the 47 bits a word keeps
  CHECK_FALSE(frames.find(std::uintptr_t{1} << 47, f));
}

TEST_CASE("a library frame's saved frame pointer is learnt only from the one slot that holds it") {
  using leakguard::detail::no_single_slot;
  using leakguard::detail::saved_frame_pointer;
  std::uintptr_t frame[6] = {11, 22, 33, 44, 55, 66};  // [sp, cfa)
  const auto sp = reinterpret_cast<std::uintptr_t>(frame), cfa = sp + sizeof frame;
  CHECK(saved_frame_pointer(sp, cfa, 7, 7) == 0);                     // the register still holds it
  CHECK(saved_frame_pointer(sp, cfa, 7, 55) == cfa - (sp + 4 * 8));  // one slot
  CHECK(saved_frame_pointer(sp, cfa, 7, 99) == no_single_slot);      // none
  frame[1] = 55;
  CHECK(saved_frame_pointer(sp, cfa, 7, 55) == no_single_slot);  // two copies
}
#endif
