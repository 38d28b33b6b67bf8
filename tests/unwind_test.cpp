// Stacks through libraries built without frame pointers (impl/code_map.hpp):
// a block that libstdc++.so allocates for the user is named at the user's
// line, found with the unwind tables where the frame-pointer walk would skip it.
#include <doctest/doctest.h>
#include <leakguard.hpp>

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
