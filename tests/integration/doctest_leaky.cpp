// A doctest suite with deliberate leaks next to clean tests, opted-out tests
// and first-use initialisation; the driver (integration_test.cpp) checks
// which tests fail, by name, and what the output says.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <leakguard.hpp>
#include <leakguard/doctest.hpp>
#if !LEAKGUARD_TEST_SHARED_RUNTIME  // the sanitizer presets link it compiled once
#include <leakguard/global_new.hpp>
#endif

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "vendored_parser.hpp"

namespace {

struct widget {
  std::string name;
  int size = 0;
};

// Not inlined, so that the report's stack shows it above the test.
[[gnu::noinline]] widget* make_widget(const char* name) {
  widget* w = new widget{name, 1};  // LEAK-SITE-WIDGET
  asm volatile("" : : "r"(w) : "memory");
  return w;
}

// A lazily built singleton: allocates on first use, lives for the program.
struct registry {
  std::map<std::string, int> entries{{"first", 1}, {"second", 2}};
  static registry& instance() {
    static registry* r = new registry;  // never freed, on purpose
    return *r;
  }
};

struct other_registry {
  std::vector<std::string> names{std::string(40, 'n')};
  static other_registry& instance() {
    static auto* r = new other_registry;
    return *r;
  }
};

struct third_registry {
  std::vector<int> ids = std::vector<int>(16, 3);
  static third_registry& instance() {
    static auto* r = new third_registry;
    return *r;
  }
};


}  // namespace

TEST_CASE("leaks a widget") {
  widget* w = make_widget("gadget");
  CHECK(w->size == 1);
}

TEST_CASE("clean neighbour") {
  std::unique_ptr<widget> w(make_widget("freed"));
  CHECK(w->name == "freed");
}

TEST_CASE("leaks in one subcase only") {
  std::vector<int> kept(10);
  SUBCASE("clean subcase") { CHECK(kept.size() == 10); }
  SUBCASE("leaky subcase") {
    int* p = new int[25];  // LEAK-SITE-SUBCASE
    asm volatile("" : : "r"(p) : "memory");
    CHECK(kept.size() == 10);
  }
}

TEST_CASE("opted out with a decorator" * leakguard::may_leak()) {
  (void)make_widget("kept on purpose");
  CHECK(true);
}

TEST_CASE("opted out from the body") {
  LEAKGUARD_ALLOW_LEAKS();
  (void)make_widget("also kept on purpose");
  CHECK(true);
}

TEST_SUITE("legacy suite" * leakguard::may_leak()) {
  TEST_CASE("suite member that leaks") { (void)make_widget("legacy"); }
}

TEST_CASE("singleton warmed up by a decorator" * leakguard::warm_up([] { registry::instance(); })) {
  CHECK(registry::instance().entries.size() == 2);
}

TEST_CASE("singleton built inside the test") {
  // First use inside the test: the singleton's blocks are retained (a
  // function-local static reaches them), not leaks.
  CHECK(other_registry::instance().names.size() == 1);
}

TEST_CASE("first use excused, real leak still caught") {
  LEAKGUARD_FIRST_USE(third_registry::instance());
  CHECK(third_registry::instance().ids.size() == 16);
  std::string* s = new std::string(100, 'r');  // LEAK-SITE-AFTER-FIRST-USE
  asm volatile("" : : "r"(s) : "memory");
}

TEST_CASE("worker thread leaks") {
  // Kept in a local: a block a global points to is retained, not leaked.
  std::thread([] { (void)make_widget("from a thread"); }).join();
  CHECK(true);
}

TEST_CASE("leaks what a vendored header allocated") {
  const vendored::document* d = vendored::parse("a document longer than the small string buffer");  // LEAK-SITE-CALLER
  CHECK(!d->text.empty());
}

TEST_CASE("REQUIRE fails after an allocation") {
  std::string* s = new std::string(100, 'q');
  REQUIRE(s->empty());  // fails and leaves the test: not reported as a leak
  delete s;
}

TEST_CASE("user scope inside the test leaks") {
  {
    LEAKGUARD_SCOPE("inner");
    (void)make_widget("inner");
  }
  CHECK(true);
}

TEST_CASE("a worker frees the test's block after the test") {
  // Freed 50 ms after the test returns: a leak without a grace period, none
  // with one (LEAKGUARD_CHILD_TEST_GRACE). Until then the worker holds the
  // address only complemented: no root reaches the block (its frames, read
  // while it sleeps, would).
  const std::uintptr_t hidden = ~reinterpret_cast<std::uintptr_t>(new std::string(100, 'g'));
  std::thread([hidden] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    delete reinterpret_cast<std::string*>(~hidden);
  }).detach();
}

int main(int argc, char** argv) {
  if (std::getenv("LEAKGUARD_CHILD_THIS_THREAD_ONLY")) leakguard::test::configure({.all_threads = false});
  if (std::getenv("LEAKGUARD_CHILD_TEST_GRACE")) leakguard::test::configure({.grace = std::chrono::seconds(5)});
  doctest::Context context(argc, argv);
  return context.run();
}
