// A Catch2 v2 suite: clean test cases tagged [clean], deliberate leaks and
// opted-out tests tagged [leaky]. The driver (integration_test.cpp) runs it
// with a tag filter and checks which tests fail, by name, and what the
// output says.
#define CATCH_CONFIG_MAIN
#define CATCH_CONFIG_CONSOLE_WIDTH 400  // no wrapping: the driver matches whole phrases
#include <catch2/catch.hpp>

#include <leakguard.hpp>  // LEAKGUARD_SCOPE
#include <leakguard/catch2.hpp>
#if !LEAKGUARD_TEST_SHARED_RUNTIME  // the sanitizer presets link it compiled once
#include <leakguard/global_new.hpp>
#endif

#include <map>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct widget {
  std::string name;
  int size = 0;
};

[[gnu::noinline]] widget* make_widget(const char* name) {
  widget* w = new widget{name, 1};  // LEAK-SITE-WIDGET
  asm volatile("" : : "r"(w) : "memory");
  return w;
}

struct registry {
  std::map<std::string, int> entries{{"first entry of the registry", 1}, {"second entry of the registry", 2}};
  static registry& instance() {
    static registry r;  // built on first use, kept on purpose
    return r;
  }
};

}  // namespace

// ---- [clean] ------------------------------------------------------------------

TEST_CASE("containers come and go", "[clean]") {
  std::vector<std::string> v(100, std::string(50, 'x'));
  std::map<int, std::string> m;
  for (int i = 0; i < 100; ++i) m[i] = std::string(40, 'm');
  CHECK(v.size() == 100);
  REQUIRE(m.size() == 100);
}

TEST_CASE("sections run one path at a time", "[clean]") {
  std::vector<int> v(10, 1);
  SECTION("grow") {
    v.resize(1000);
    CHECK(v.size() == 1000);
  }
  SECTION("nested") {
    SECTION("first") { CHECK(v.size() == 10); }
    SECTION("second") {
      auto p = std::make_unique<std::string>(200, 's');
      CHECK(p->size() == 200);
    }
  }
}

TEST_CASE("messages, captures and long expressions", "[clean]") {
  const std::string long_text(5000, 'l');
  INFO("some context " << long_text.size());
  CAPTURE(long_text.size());
  CHECK(long_text == std::string(5000, 'l'));
  CHECK_THAT(long_text, Catch::Matchers::StartsWith("lll"));
  CHECK_THROWS_AS(throw std::runtime_error(std::string(300, 'e')), std::runtime_error);
}

TEST_CASE("a function-local static built on first use", "[clean]") {
  // Reachable from a static: retained, not a leak, whatever the order.
  CHECK(registry::instance().entries.size() == 2);
  static const std::regex words(R"(\w+)");
  CHECK(std::regex_search("hello", words));
}

TEST_CASE("threads started and joined", "[clean]") {
  std::thread([] { std::vector<int> v(1000, 7); }).join();
  CHECK(true);
}

// ---- [leaky] ------------------------------------------------------------------

TEST_CASE("leaks a widget", "[leaky]") {
  widget* w = make_widget("gadget");
  CHECK(w->size == 1);
}

TEST_CASE("leaks in one section only", "[leaky]") {
  std::vector<int> kept(10, 1);
  SECTION("clean section") { CHECK(kept.size() == 10); }
  SECTION("leaky section") {
    int* p = new int[25];  // LEAK-SITE-SECTION
    asm volatile("" : : "r"(p) : "memory");
    CHECK(kept.size() == 10);
  }
}

TEST_CASE("opted out with a tag", "[leaky][mayleak]") { (void)make_widget("kept on purpose"); }

TEST_CASE("opted out from the body", "[leaky]") {
  LEAKGUARD_ALLOW_LEAKS();
  (void)make_widget("kept on purpose");
}

TEST_CASE("REQUIRE fails after an allocation", "[leaky]") {
  std::string* s = new std::string(100, 'q');
  REQUIRE(s->empty());  // fails and leaves the test: not reported as a leak
  delete s;
}

TEST_CASE("worker thread leaks", "[leaky]") {
  std::thread([] { (void)make_widget("from a thread"); }).join();
  CHECK(true);
}

struct fixture {
  std::vector<int> data = std::vector<int>(64, 2);
};

TEST_CASE_METHOD(fixture, "fixture test leaks", "[leaky]") {
  std::string* s = new std::string(100, 'f');  // LEAK-SITE-FIXTURE
  asm volatile("" : : "r"(s) : "memory");
  CHECK(data.size() == 64);
}

TEST_CASE("user scope inside the test leaks", "[leaky]") {
  {
    LEAKGUARD_SCOPE("inner");
    (void)make_widget("inner");
  }
  CHECK(true);
}
