// Builds nothing itself: runs the doctest and GoogleTest child programs of
// tests/integration/ (built with <leakguard/doctest.hpp> / <leakguard/gtest.hpp>)
// as separate processes and checks their output, summaries and exit codes.
// Paths come from the build system: LEAKGUARD_CHILD_DOCTEST_CLEAN, ..._LEAKY,
// LEAKGUARD_CHILD_GTEST_CLEAN, ..._LEAKY, LEAKGUARD_CHILD_CATCH2 (empty:
// GoogleTest or Catch2 not found, their checks are skipped) and
// LEAKGUARD_INTEGRATION_SOURCE_DIR.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

struct result {
  int status = -1;  // exit status, or 128 + signal
  std::string out;  // stdout and stderr together
};

std::string quote(std::string_view s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

result run(const std::string& program, const std::string& args = {}, const std::string& env = {}) {
  const std::string cmd = (env.empty() ? "" : "env " + env + " ") + quote(program) + " " + args + " 2>&1";
  result r;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  for (std::size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int raw = pclose(p);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + (WIFSIGNALED(raw) ? WTERMSIG(raw) : 0);
  return r;
}

bool contains(const std::string& text, std::string_view what) { return text.find(what) != std::string::npos; }

std::size_t count(const std::string& text, std::string_view what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The line of `marker` in tests/integration/<file>, as "file.cpp:LINE".
std::string site_of(const std::string& file, std::string_view marker) {
  std::ifstream in(std::string(LEAKGUARD_INTEGRATION_SOURCE_DIR) + "/" + file);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n)
    if (contains(line, marker)) return file + ":" + std::to_string(n);
  FAIL("marker not found: " << marker);
  return {};
}

// The block of doctest console output for one test case: from its
// "TEST CASE:  name" line to the next separator.
std::string doctest_section(const std::string& out, const std::string& name) {
  const std::size_t at = out.find("TEST CASE:  " + name + "\n");
  if (at == std::string::npos) return {};
  const std::size_t end = out.find("=====", at);
  return out.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

// GoogleTest: from "[ RUN      ] name" to its "[  FAILED  ]"/"[       OK ]" line.
std::string gtest_section(const std::string& out, const std::string& name) {
  const std::size_t at = out.find("[ RUN      ] " + name + "\n");
  if (at == std::string::npos) return {};
  std::size_t end = out.find("[  FAILED  ] " + name, at);
  if (end == std::string::npos) end = out.find("[       OK ] " + name, at);
  return out.substr(at, end == std::string::npos ? std::string::npos : end - at + 200);
}

// Catch2's console output for one test case: from its name between two
// dashed rules to the next rule or the totals.
std::string catch2_section(const std::string& out, const std::string& name) {
  const std::string rule(79, '-');
  const std::size_t at = out.find("-\n" + name + "\n-");
  if (at == std::string::npos) return {};
  const std::size_t body = out.find('\n', at + name.size() + 3);  // after the rule under the name
  std::size_t end = out.find(rule, body);
  if (end == std::string::npos) end = out.find("=====", body);
  return out.substr(at + 2, end == std::string::npos ? std::string::npos : end - at - 2);
}

const std::string doctest_clean = LEAKGUARD_CHILD_DOCTEST_CLEAN;
const std::string doctest_leaky = LEAKGUARD_CHILD_DOCTEST_LEAKY;
const std::string gtest_clean = LEAKGUARD_CHILD_GTEST_CLEAN;
const std::string gtest_leaky = LEAKGUARD_CHILD_GTEST_LEAKY;
const std::string catch2 = LEAKGUARD_CHILD_CATCH2;

}  // namespace

// ---- doctest ---------------------------------------------------------------

TEST_CASE("doctest: a clean suite stays green") {
  const result r = run(doctest_clean);
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK(contains(r.out, "test cases: 17 | 17 passed | 0 failed"));
  CHECK(contains(r.out, "Status: SUCCESS!"));
  CHECK(!contains(r.out, "leakguard:"));
}

TEST_CASE("doctest: a clean suite stays green with every reporter and order") {
  for (const char* args : {"-r=xml", "-r=junit", "-r=console,xml", "-ob=rand -rs=7", "-ob=name", "-s"}) {
    const result r = run(doctest_clean, args);
    INFO(std::string(args) << "\n" << r.out);
    CHECK(r.status == 0);
    CHECK(!contains(r.out, "leakguard:"));
    CHECK(!contains(r.out, "no leaks"));
  }
}

TEST_CASE("doctest: leaking test cases fail by name, with the report") {
  const result r = run(doctest_leaky);
  INFO(r.out);
  CHECK(r.status != 0);
  CHECK(contains(r.out, "test cases: 14 |  6 passed | 8 failed | 0 skipped"));
  CHECK(contains(r.out, "Status: FAILURE!"));

  const std::string widget = doctest_section(r.out, "leaks a widget");
  CHECK(contains(widget, site_of("doctest_leaky.cpp", "LEAK-SITE-WIDGET") + ": ERROR: CHECK( leakguard: no leaks ) is NOT correct!"));
  CHECK(contains(widget, "test \"leaks a widget\" leaked 40 bytes in 1 block"));
  CHECK(contains(widget, "40 bytes in 1 block allocated at "));
  CHECK(contains(widget, "#0 make_widget at "));
  CHECK(contains(widget, "test \"leaks a widget\" at "));
  // Short: no frames of doctest, leakguard, the runtime or main.
  CHECK(!contains(widget, "doctest::"));
  CHECK(!contains(widget, "leakguard::"));
  CHECK(!contains(widget, " main"));

  const std::string subcase = doctest_section(r.out, "leaks in one subcase only");
  CHECK(count(r.out, "TEST CASE:  leaks in one subcase only\n") == 1);  // only the leaky run
  CHECK(contains(subcase, "leaky subcase"));
  CHECK(contains(subcase, site_of("doctest_leaky.cpp", "LEAK-SITE-SUBCASE") + ": ERROR"));
  CHECK(contains(subcase, "leaked 100 bytes in 1 block"));

  const std::string first_use = doctest_section(r.out, "first use excused, real leak still caught");
  CHECK(contains(first_use, site_of("doctest_leaky.cpp", "LEAK-SITE-AFTER-FIRST-USE") + ": ERROR"));
  CHECK(contains(first_use, "leaked 133 bytes in 2 blocks (1 direct, 1 indirect)"));  // the string, not the registry
  // One leaked object: the string, its buffer nested under it.
  CHECK(contains(first_use, site_of("doctest_leaky.cpp", "LEAK-SITE-AFTER-FIRST-USE") +
                                ", plus 1 indirect block, 101 bytes\n"));
  CHECK(contains(first_use, "  32 bytes in 1 block allocated at "));
  CHECK(contains(first_use, "      indirect: 101 bytes in 1 block allocated at "));

  // Allocated in a header outside the test's file: the failure points at the
  // test's line, the block's site stays where it was allocated.
  const std::string vendored = doctest_section(r.out, "leaks what a vendored header allocated");
  CHECK(contains(vendored, site_of("doctest_leaky.cpp", "LEAK-SITE-CALLER") + ": ERROR: CHECK( leakguard: no leaks )"));
  CHECK(contains(vendored, site_of("vendored_parser.hpp", "LEAK-SITE-VENDORED") + ", plus 1 indirect block"));

  const std::string thread = doctest_section(r.out, "worker thread leaks");
  CHECK(contains(thread, "leaked 40 bytes in 1 block"));
  CHECK(contains(thread, "#0 make_widget at "));

  const std::string require = doctest_section(r.out, "REQUIRE fails after an allocation");
  CHECK(contains(require, "REQUIRE( s->empty() ) is NOT correct!"));
  CHECK(!contains(require, "leakguard:"));

  const std::string nested = doctest_section(r.out, "user scope inside the test leaks");
  CHECK(contains(nested, "scope \"inner\" at "));  // the user's own scope, through the global handler
  CHECK(contains(nested, "(in test \"user scope inside the test leaks\")"));
  // Reported once, by the user's scope: the test's scope does not report it again.
  CHECK(!contains(nested, "test \"user scope inside the test leaks\" leaked"));

  for (const char* clean : {"clean neighbour", "opted out with a decorator", "opted out from the body",
                            "suite member that leaks", "singleton warmed up by a decorator",
                            "singleton built inside the test"}) {
    INFO(clean);
    CHECK(doctest_section(r.out, clean).empty());
  }
}

TEST_CASE("doctest: filters keep working") {
  SUBCASE("-tc selects one leaky test") {
    const result r = run(doctest_leaky, "-tc='leaks a widget'");
    INFO(r.out);
    CHECK(r.status != 0);
    CHECK(contains(r.out, "test cases: 1 | 0 passed | 1 failed | 13 skipped"));
  }
  SUBCASE("-tce excludes the leaky tests") {
    const result r =
        run(doctest_leaky, "-tce='leaks*,singleton built*,first use*,worker*,a worker*,REQUIRE*,user scope*'");
    INFO(r.out);
    CHECK(r.status == 0);
    CHECK(contains(r.out, "test cases: 5 | 5 passed | 0 failed | 9 skipped"));
    CHECK(!contains(r.out, "leakguard:"));
  }
  SUBCASE("-sf and -ts") {
    const result r = run(doctest_leaky, "-ts='legacy suite'");
    INFO(r.out);
    CHECK(r.status == 0);
    CHECK(contains(r.out, "test cases: 1 | 1 passed | 0 failed | 13 skipped"));
  }
  SUBCASE("--count and --list-test-cases run nothing") {
    CHECK(run(doctest_leaky, "--count").status == 0);
    const result r = run(doctest_leaky, "-ltc");
    CHECK(r.status == 0);
    CHECK(contains(r.out, "leaks a widget"));
  }
}

TEST_CASE("doctest: xml and junit reporters see the leak as a failure") {
  const result xml = run(doctest_leaky, "-r=xml -tc='leaks a widget,clean neighbour'");
  INFO(xml.out);
  CHECK(xml.status != 0);
  CHECK(contains(xml.out, "<Original>\n          leakguard: no leaks"));
  CHECK(contains(xml.out, "leaked 40 bytes in 1 block"));
  CHECK(contains(xml.out, "<OverallResultsTestCases successes=\"1\" failures=\"1\""));

  const result junit = run(doctest_leaky, "-r=junit -tc='leaks a widget,clean neighbour'");
  INFO(junit.out);
  CHECK(junit.status != 0);
  CHECK(contains(junit.out, "failures=\"1\""));
  CHECK(contains(junit.out, "name=\"leaks a widget\""));
  CHECK(contains(junit.out, "<failure message=\"test &quot;leaks a widget&quot; leaked 40 bytes in 1 block\""));
  // The clean test's element closes at once (no <failure>); its time varies.
  const std::size_t clean = junit.out.find("name=\"clean neighbour\"");
  REQUIRE(clean != std::string::npos);
  const std::string element = junit.out.substr(clean, junit.out.find('>', clean) + 1 - clean);
  CHECK(contains(element, "status=\"run\"/>"));
}

TEST_CASE("doctest: all_threads can be turned off") {
  const result r = run(doctest_leaky, "", "LEAKGUARD_CHILD_THIS_THREAD_ONLY=1");
  INFO(r.out);
  CHECK(r.status != 0);
  CHECK(contains(r.out, "test cases: 14 |  7 passed | 7 failed"));
  CHECK(doctest_section(r.out, "worker thread leaks").empty());
}

TEST_CASE("doctest: a grace period lets other threads free what a test leaves") {
  const std::string late = "a worker frees the test's block after the test";
  const result r = run(doctest_leaky, "");
  CHECK(contains(doctest_section(r.out, late), "test \"" + late + "\" leaked "));
  const result graced = run(doctest_leaky, "", "LEAKGUARD_CHILD_TEST_GRACE=1");
  INFO(graced.out);
  CHECK(graced.status != 0);
  CHECK(contains(graced.out, "test cases: 14 |  7 passed | 7 failed"));
  CHECK(doctest_section(graced.out, late).empty());
  CHECK(!doctest_section(graced.out, "leaks a widget").empty());  // a real leak still fails, after the wait
}

// ---- GoogleTest -------------------------------------------------------------

TEST_CASE("gtest: a clean suite stays green (gtest_main, no setup)") {
  if (gtest_clean.empty()) return;  // GoogleTest not found at configure time
  const result r = run(gtest_clean);
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK(contains(r.out, "[  PASSED  ] 21 tests."));
  CHECK(!contains(r.out, "FAILED"));
  CHECK(!contains(r.out, "leakguard:"));
  const result shuffled = run(gtest_clean, "--gtest_shuffle --gtest_random_seed=3 --gtest_repeat=2");
  INFO(shuffled.out);
  CHECK(shuffled.status == 0);
  CHECK(!contains(shuffled.out, "leakguard:"));
  // gMock's first use an InSequence in a test's body: what it makes is kept
  // in thread-specific data only.
  const result in_sequence = run(gtest_clean, "--gtest_filter=Mocks.InSequence*");
  INFO(in_sequence.out);
  CHECK(in_sequence.status == 0);
  CHECK(contains(in_sequence.out, "[  PASSED  ] 2 tests."));
  CHECK(!contains(in_sequence.out, "leakguard:"));
}

TEST_CASE("gtest: leaking tests are FAILED by name, with the report") {
  if (gtest_leaky.empty()) return;
  const result r = run(gtest_leaky);
  INFO(r.out);
  CHECK(r.status != 0);
  CHECK(contains(r.out, "[  PASSED  ] 4 tests."));
  CHECK(contains(r.out, "[  FAILED  ] 6 tests, listed below:"));
  for (const char* name : {"Leaky.LeaksAWidget", "Leaky.FirstUseExcusedRealLeakStillCaught", "Leaky.WorkerThreadLeaks",
                           "Leaky.AssertFailsAfterAnAllocation", "LeakyFixture.SetUpLeaks",
                           "Numbers/LeakyParam.LeaksOnOdd/0"}) {
    INFO(name);
    const bool listed = contains(r.out, std::string("[  FAILED  ] ") + name + "\n") ||
                        contains(r.out, std::string("[  FAILED  ] ") + name + ",");
    CHECK(listed);
  }
  const std::string widget = gtest_section(r.out, "Leaky.LeaksAWidget");
  CHECK(contains(widget, site_of("gtest_leaky.cpp", "LEAK-SITE-WIDGET") + ": Failure"));
  CHECK(contains(widget, "leakguard: test \"Leaky.LeaksAWidget\" leaked 40 bytes in 1 block"));
  CHECK(contains(widget, "#0 make_widget at "));
  CHECK(contains(widget, "test \"Leaky.LeaksAWidget\" at "));
  CHECK(!contains(widget, "testing::"));
  CHECK(!contains(widget, " main"));

  const std::string first_use = gtest_section(r.out, "Leaky.FirstUseExcusedRealLeakStillCaught");
  CHECK(contains(first_use, site_of("gtest_leaky.cpp", "LEAK-SITE-AFTER-FIRST-USE") + ": Failure"));
  CHECK(contains(first_use, "leaked 133 bytes in 2 blocks"));

  const std::string setup = gtest_section(r.out, "LeakyFixture.SetUpLeaks");
  CHECK(contains(setup, site_of("gtest_leaky.cpp", "LEAK-SITE-SETUP") + ": Failure"));

  const std::string assert_early = gtest_section(r.out, "Leaky.AssertFailsAfterAnAllocation");
  CHECK(!contains(assert_early, "leakguard:"));

  for (const char* clean : {"Leaky.CleanNeighbour", "Leaky.OptedOutFromTheBody",
                            "WarmFixture.SingletonBuiltInSetUpTestSuite", "Numbers/LeakyParam.LeaksOnOdd/1"}) {
    INFO(clean);
    CHECK(contains(r.out, std::string("[       OK ] ") + clean + " ("));
  }
}

TEST_CASE("gtest: filters, xml output and all_threads") {
  if (gtest_leaky.empty()) return;
  const result filtered = run(gtest_leaky, "--gtest_filter='-Leaky.LeaksAWidget:Leaky.First*:Leaky.Worker*:Leaky.Assert*:LeakyFixture.*:Numbers/*'");
  INFO(filtered.out);
  CHECK(filtered.status == 0);
  CHECK(contains(filtered.out, "[  PASSED  ] 3 tests."));

  const std::string xml_path = std::string(LEAKGUARD_INTEGRATION_BINARY_DIR) + "/gtest_leaky.xml";
  std::remove(xml_path.c_str());
  const result xml = run(gtest_leaky, "--gtest_filter=Leaky.LeaksAWidget:Leaky.CleanNeighbour --gtest_output=xml:" + quote(xml_path));
  CHECK(xml.status != 0);
  std::ifstream in(xml_path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  INFO(text);
  CHECK(contains(text, "tests=\"2\" failures=\"1\""));
  CHECK(contains(text, "leakguard: test &quot;Leaky.LeaksAWidget&quot; leaked 40 bytes in 1 block"));

  const result this_thread = run(gtest_leaky, "", "LEAKGUARD_CHILD_THIS_THREAD_ONLY=1");
  INFO(this_thread.out);
  CHECK(contains(this_thread.out, "[  FAILED  ] 5 tests, listed below:"));
  CHECK(contains(this_thread.out, "[       OK ] Leaky.WorkerThreadLeaks ("));
}

// ---- Catch2 -------------------------------------------------------------------

TEST_CASE("catch2: a clean suite stays green, in any order and with every reporter") {
  if (catch2.empty()) return;  // Catch2 not found at configure time
  for (const char* args : {"[clean]", "[clean] --order rand --rng-seed 7", "[clean] --order rand --rng-seed 11",
                           "[clean] -r xml", "[clean] -r junit", "[clean] -r compact"}) {
    const result r = run(catch2, args);
    INFO(args << "\n" << r.out);
    CHECK(r.status == 0);
    CHECK(!contains(r.out, "leakguard:"));
    CHECK(!contains(r.out, "no leaks"));
  }
  const result r = run(catch2, "[clean]");
  INFO(r.out);
  CHECK(contains(r.out, "All tests passed (11 assertions in 5 test cases)"));
}

TEST_CASE("catch2: leaking test cases fail by name, at the leaking line, with the report") {
  if (catch2.empty()) return;
  const result r = run(catch2, "[leaky]");
  INFO(r.out);
  CHECK(r.status == 6);  // Catch2 exits with the number of failed assertions
  CHECK(contains(r.out, "test cases:  8 | 2 passed | 6 failed"));

  const std::string widget = catch2_section(r.out, "leaks a widget");
  CHECK(contains(widget, site_of("catch2_suite.cpp", "LEAK-SITE-WIDGET") + ": FAILED:\n  LEAKGUARD( no leaks )"));
  CHECK(contains(widget, "leakguard: test \"leaks a widget\" leaked 40 bytes in 1 block"));
  CHECK(contains(widget, "#0 make_widget at "));
  CHECK(contains(widget, "test \"leaks a widget\" at "));
  CHECK(!contains(widget, "Catch::"));
  CHECK(!contains(widget, "catch.hpp"));
  CHECK(!contains(widget, " main"));

  // Only the run through the leaky section fails.
  const std::string section = catch2_section(r.out, "leaks in one section only");
  CHECK(contains(section, "leaked 100 bytes in 1 block, in section \"leaky section\""));
  CHECK(!contains(section, "clean section"));
  CHECK(contains(section, site_of("catch2_suite.cpp", "LEAK-SITE-SECTION") + ": FAILED:"));

  const std::string fixture = catch2_section(r.out, "fixture test leaks");
  CHECK(contains(fixture, site_of("catch2_suite.cpp", "LEAK-SITE-FIXTURE") + ": FAILED:"));
  CHECK(contains(fixture, "leaked 133 bytes in 2 blocks (1 direct, 1 indirect)"));
  CHECK(contains(fixture, site_of("catch2_suite.cpp", "LEAK-SITE-FIXTURE") + ", plus 1 indirect block, 101 bytes"));
  CHECK(!contains(fixture, "catch.hpp"));

  const std::string thread = catch2_section(r.out, "worker thread leaks");
  CHECK(contains(thread, "leaked 40 bytes in 1 block"));

  const std::string require = catch2_section(r.out, "REQUIRE fails after an allocation");
  CHECK(contains(require, "REQUIRE( s->empty() )"));
  CHECK(!contains(require, "leakguard:"));

  const std::string nested = catch2_section(r.out, "user scope inside the test leaks");
  CHECK(contains(nested, "scope \"inner\" at "));
  CHECK(contains(nested, "(in test \"user scope inside the test leaks\")"));
  CHECK(!contains(nested, "test \"user scope inside the test leaks\" leaked"));

  for (const char* clean : {"opted out with a tag", "opted out from the body"}) {
    INFO(clean);
    CHECK(catch2_section(r.out, clean).empty());
  }
}

TEST_CASE("catch2: the tag opts out, and xml and junit see the leak as a failure") {
  if (catch2.empty()) return;
  const result opted_out = run(catch2, "[mayleak]");
  INFO(opted_out.out);
  CHECK(opted_out.status == 0);

  const result xml = run(catch2, "-r xml \"leaks a widget\",\"containers come and go\"");
  INFO(xml.out);
  CHECK(xml.status != 0);
  CHECK(contains(xml.out, "<Expression success=\"false\" type=\"LEAKGUARD\" filename="));
  CHECK(contains(xml.out, "leakguard: test \"leaks a widget\" leaked 40 bytes in 1 block"));
  CHECK(contains(xml.out, "<OverallResultsCases successes=\"1\" failures=\"1\""));

  const result junit = run(catch2, "-r junit \"leaks a widget\",\"containers come and go\"");
  INFO(junit.out);
  CHECK(junit.status != 0);
  CHECK(contains(junit.out, "failures=\"1\""));
  CHECK(contains(junit.out, "name=\"leaks a widget\""));
  CHECK(contains(junit.out, "leakguard: test \"leaks a widget\" leaked 40 bytes in 1 block"));
  CHECK(contains(junit.out, "name=\"containers come and go\" time="));
}

// ---- LEAKGUARD_OPTIONS in the frameworks' setups --------------------------------

TEST_CASE("LEAKGUARD_OPTIONS is read with only a framework header and global_new.hpp (no <leakguard.hpp>)") {
  std::vector<std::pair<std::string, std::string>> children = {{doctest_clean, ""}};
  if (!gtest_clean.empty()) children.emplace_back(gtest_clean, "");
  if (!catch2.empty()) children.emplace_back(catch2, "[clean]");
  for (const auto& [child, args] : children) {
    const result r = run(child, args, "LEAKGUARD_OPTIONS='bogus_key=1 on_leak=abort'");
    INFO(child << "\n" << r.out);
    CHECK(r.status == 0);
    CHECK(count(r.out, "leakguard: LEAKGUARD_OPTIONS: unknown key in 'bogus_key=1' ignored") == 1);
  }
}
