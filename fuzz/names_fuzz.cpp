// fuzz/names_fuzz.cpp — the frame rules (frame_kind.hpp) on arbitrary
// demangled names: what reports show, and which frames a suppression
// decision passes over without their debug info.
//
// Invariants:
//  - no crash, no sanitizer report (the rules scan brackets, parentheses and
//    "::" in any text a symbol table may hold);
//  - qualified_name() is a part of its input;
//  - a name that names only the standard library's types is a library frame
//    (as a clone's is its function's), and a clone's suffix
//    (" [clone .isra.0]") does not change that answer;
//  - a name that names only the library's types does not once a name of the
//    user's joins its template arguments.
#include <leakguard/implementation.hpp>
#include <leakguard/impl/frame_kind.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "names_fuzz: %s; input (%zu bytes): '%.*s'\n", what, input.size(),
               static_cast<int>(input.size()), input.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace d = leakguard::detail;
  const std::string_view name(reinterpret_cast<const char*>(data), size);
  const std::string_view q = d::qualified_name(name);
  if (!q.empty() && (q.data() < name.data() || q.data() + q.size() > name.data() + name.size()))
    fail("qualified_name is not a part of its input", name);
  (void)d::is_internal_frame(name, {});
  if (!d::names_only_the_library(name)) return 0;
  // The rules read a clone as its function (a name without one here).
  const std::string_view unsuffixed = name.substr(0, name.find(" [clone "));
  if (!d::is_library_frame(unsuffixed, {})) fail("a library-only name is not a library frame", name);
  if (!d::names_only_the_library(std::string(name) + " [clone .isra.0]")) fail("a clone's suffix changed the answer", name);
  const std::size_t open = unsuffixed.find('<');
  if (open != std::string_view::npos) {
    const std::string with_user = std::string(name.substr(0, open + 1)) + "user_type, " + std::string(name.substr(open + 1));
    if (d::names_only_the_library(with_user)) fail("a user's type in the template arguments went unnoticed", name);
  }
  return 0;
}
