// Stands in for a third-party header a test uses: the allocation that leaks
// happens here, but the failure must point at the test's own line.
#pragma once

#include <string>

namespace vendored {

struct document {
  std::string text;
};

[[gnu::noinline]] inline document* parse(const char* text) {
  auto* d = new document{text};  // LEAK-SITE-VENDORED
  asm volatile("" : : "r"(d) : "memory");
  return d;
}

}  // namespace vendored
