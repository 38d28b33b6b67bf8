// A GoogleTest suite with deliberate leaks next to clean and opted-out
// tests, with a main of its own; the driver (integration_test.cpp) checks
// which tests fail, by name, and what the output says.
#include <gtest/gtest.h>

#include <leakguard/gtest.hpp>
#if !LEAKGUARD_TEST_SHARED_RUNTIME  // the sanitizer presets link it compiled once
#include <leakguard/global_new.hpp>
#endif

#include <cstdlib>
#include <map>
#include <memory>
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
  std::map<std::string, int> entries{{"first", 1}, {"second", 2}};
  static registry& instance() {
    static registry* r = new registry;  // never freed, on purpose
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

TEST(Leaky, LeaksAWidget) {
  widget* w = make_widget("gadget");
  EXPECT_EQ(w->size, 1);
}

TEST(Leaky, CleanNeighbour) {
  std::unique_ptr<widget> w(make_widget("freed"));
  EXPECT_EQ(w->name, "freed");
}

TEST(Leaky, OptedOutFromTheBody) {
  LEAKGUARD_ALLOW_LEAKS();
  (void)make_widget("kept on purpose");
}

class WarmFixture : public testing::Test {
 protected:
  static void SetUpTestSuite() { registry::instance(); }  // outside every test's scope
};

TEST_F(WarmFixture, SingletonBuiltInSetUpTestSuite) { EXPECT_EQ(registry::instance().entries.size(), 2u); }

TEST(Leaky, FirstUseExcusedRealLeakStillCaught) {
  LEAKGUARD_FIRST_USE(third_registry::instance());
  EXPECT_EQ(third_registry::instance().ids.size(), 16u);
  std::string* s = new std::string(100, 'r');  // LEAK-SITE-AFTER-FIRST-USE
  asm volatile("" : : "r"(s) : "memory");
}

TEST(Leaky, WorkerThreadLeaks) {
  // Kept in a local: a block a global points to is retained, not leaked.
  std::thread([] { (void)make_widget("from a thread"); }).join();
  SUCCEED();
}

TEST(Leaky, AssertFailsAfterAnAllocation) {
  std::string* s = new std::string(100, 'q');
  ASSERT_TRUE(s->empty());  // fails and leaves the test: not reported as a leak
  delete s;
}

class LeakyFixture : public testing::Test {
 protected:
  void SetUp() override { buffer = new char[64]; }  // LEAK-SITE-SETUP (no TearDown frees it)
  char* buffer = nullptr;
};

TEST_F(LeakyFixture, SetUpLeaks) { buffer[0] = 'x'; }

class LeakyParam : public testing::TestWithParam<int> {};
TEST_P(LeakyParam, LeaksOnOdd) {
  if (GetParam() % 2) (void)make_widget("odd");
}
INSTANTIATE_TEST_SUITE_P(Numbers, LeakyParam, testing::Values(1, 2));

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (std::getenv("LEAKGUARD_CHILD_THIS_THREAD_ONLY")) leakguard::test::configure({.all_threads = false});
  leakguard::gtest::install();  // already registered by the include: moves it last (harmless)
  return RUN_ALL_TESTS();
}
