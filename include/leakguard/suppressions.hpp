// leakguard/suppressions.hpp — leaked blocks that are somebody else's
// bookkeeping, recognised by who allocated them.
//
//   leakguard::suppress("mylib::detail::cache::");  // never report what this code keeps
//   LEAKGUARD_OPTIONS=suppressions=/etc/myapp/leaks.supp  // `leak:pattern` lines, as LeakSanitizer's
//
// When a report is built, each leaked block's stack is examined from the
// allocation down to the first frame of the user's own code (the first
// frame that is neither leakguard's nor the standard library's), that frame
// included; frames below it are not even looked up. If one of those frames'
// function names contains a suppression pattern, starting at a name
// boundary (the start of the name, after "(anonymous namespace)::", or after
// a character that is not a letter, digit, '_' or ':'), the block
// is dropped from the report and from leakguard's books: it is not judged
// (never retained, never in retained_sites()), and a scope whose survivors
// are all suppressed ends without the reachability scan. A report left with
// nothing is no report: the leak handler is not called.
//
// Each return address is named by the symbol table first: the function its
// code belongs to, the outermost of the frames inlined there. A pattern that
// names that function decides at once, before the debug info is read for
// the frames inlined into it; so a framework function that a pattern names
// keeps what it allocates, even through user code inlined into it.
//
// Where the symbol table's name does not decide and no report has read the
// debug info of the code's compilation unit yet, the decision waits for the
// reachability scan: a block the scan finds retained needs none (it is not
// reported either way), and a suppression that would have named it is not
// counted in suppression_uses() for it; retained_sites() never lists it.
// Most such blocks are statics that the user's own code builds once, whose
// compilation unit would otherwise be read for nothing.
//
// A pattern containing '/' is matched against the frame's source file
// instead (a substring of its path): "/doctest/doctest.h" names doctest's
// inlined frames, whose debug-info names are unqualified.
//
// So "doctest::" drops what doctest's Subcase bookkeeping keeps when a test
// body is the caller, but a block leaked by the test body itself (its frame
// is the first user frame) or by a helper it calls is still reported; and
// "mydoctest::" or "foo::doctest::" are not matched by "doctest::".
//
// Suppression needs symbols: without them (stripped binaries) nothing
// matches. Frames of code built without frame pointers may be missing from
// stacks; that is why first-use initialisation inside the standard library
// (locale, iostreams) is handled by warming it up, not by suppression.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"

namespace leakguard {

// Adds a pattern (see the file comment). Adding one already present does
// nothing. Thread-safe; takes effect for reports built from now on.
LEAKGUARD_API void suppress(std::string_view function_pattern);

// Removes a pattern, the defaults included. Returns whether it was there.
LEAKGUARD_API bool unsuppress(std::string_view function_pattern);

// The patterns in force, the defaults first.
LEAKGUARD_API std::vector<std::string> suppressions();

// What a pattern dropped from reports since it was added: the leaked
// blocks whose own stack it matched (a block's indirect blocks go with it
// uncounted). A pattern at 0 never matched anything in this run: a stale or
// misspelled suppression, as LeakSanitizer's "Suppressions used" shows.
struct suppression_use {
  std::string pattern;
  std::uint64_t blocks = 0;
  std::uint64_t bytes = 0;
};

// Every pattern in force with what it matched, the defaults first.
LEAKGUARD_API std::vector<suppression_use> suppression_uses();

}  // namespace leakguard
