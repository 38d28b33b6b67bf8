// A leak-free GoogleTest suite doing what test programs normally do, linked
// with gtest_main and gMock: including <leakguard/gtest.hpp> is the whole
// setup. Every test must pass, in any order (driver: integration_test.cpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <leakguard/gtest.hpp>
#if !LEAKGUARD_TEST_SHARED_RUNTIME  // the sanitizer presets link it compiled once
#include <leakguard/global_new.hpp>
#endif

#include <atomic>
#include <functional>
#include <future>
#include <iomanip>
#include <iostream>
#include <locale>
#include <map>
#include <memory>
#include <numeric>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

TEST(Streams, CoutCerrAndFormatting) {
  std::cout << "hello from a test " << 42 << ' ' << 3.25 << ' ' << std::boolalpha << true << std::endl;
  std::cerr << "to stderr " << std::hex << 255 << std::dec << std::endl;
  std::clog << std::setw(10) << std::left << "clog" << std::endl;
  SUCCEED();
}

TEST(Streams, LocaleFirstUse) {
  std::locale loc;
  std::ostringstream os;
  os.imbue(std::locale::classic());
  os << 1234567.5;
  EXPECT_TRUE(std::isalpha('a', loc));
  EXPECT_EQ(std::toupper('a', loc), 'A');
  EXPECT_FALSE(os.str().empty());
}

TEST(Assertions, StringsAndContainers) {
  std::string long_text(200, 'x');
  std::vector<int> v(1000);
  std::iota(v.begin(), v.end(), 0);
  std::map<std::string, int> m{{"one", 1}, {"two", 2}, {std::string(50, 'k'), 3}};
  EXPECT_EQ(long_text, std::string(200, 'x'));
  EXPECT_EQ(v.size(), 1000u);
  EXPECT_EQ(m.at("two"), 2);
  EXPECT_NE(std::string("a long string that does not fit in SSO"), std::string("another long string, not in SSO"));
  EXPECT_EQ(std::to_string(123456789), "123456789");
  EXPECT_TRUE(v[10] == 10) << "message with a long string: " << long_text;
  EXPECT_STREQ("abc", std::string("abc").c_str());
}

TEST(Assertions, ScopedTraceAndRecordProperty) {
  std::string who = "a string long enough to be on the heap, surely";
  SCOPED_TRACE("who: " + who);
  for (int i = 0; i < 10; ++i) {
    SCOPED_TRACE(testing::Message() << "iteration " << i << " of a loop with a long message " << who);
    EXPECT_LT(i, 10);
  }
  RecordProperty("who", who);
}

thread_local std::string tls_name(100, 't');
thread_local std::vector<int> tls_values;

TEST(Threads, ThreadLocalObjects) {
  EXPECT_EQ(tls_name.size(), 100u);
  tls_values.push_back(1);
  std::vector<int>().swap(tls_values);
  std::thread([] { tls_values.assign(100, 7); }).join();
}

TEST(Threads, StartAndJoin) {
  std::atomic<int> sum{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&sum, i] {
      std::vector<int> local(1000, i);
      tls_values.assign(50, i);
      sum += std::accumulate(local.begin(), local.end(), 0);
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(sum, 1000 * (0 + 1 + 2 + 3));
  auto f = std::async(std::launch::async, [] { return std::string(100, 'a'); });
  EXPECT_EQ(f.get().size(), 100u);
}

TEST(Exceptions, ThrownAndCaught) {
  try {
    throw std::runtime_error(std::string(100, 'e'));
  } catch (const std::exception& e) {
    EXPECT_EQ(std::string(e.what()).size(), 100u);
  }
  EXPECT_THROW(throw std::logic_error("logic error with a long message text"), std::logic_error);
  EXPECT_ANY_THROW(throw std::runtime_error("expected message"));
  EXPECT_NO_THROW(std::string(10, 'x'));
  auto throws = [] { std::vector<int> v; return v.at(5); };
  EXPECT_THROW(throws(), std::out_of_range);
}

TEST(Library, Function) {
  std::string captured(100, 'c');
  std::function<std::size_t(int)> f = [captured](int n) { return captured.size() + n; };
  std::function<std::size_t(int)> g = f;
  EXPECT_EQ(g(1), 101u);
}

TEST(Library, Regex) {
  std::regex re(R"((\w+)@(\w+)\.com)");
  std::smatch m;
  const std::string text = "write to someone@example.com today";
  ASSERT_TRUE(std::regex_search(text, m, re));
  EXPECT_EQ(m[1], "someone");
  EXPECT_EQ(std::regex_replace(text, re, "$2"), "write to example today");
  EXPECT_TRUE(std::regex_match("hello", std::regex("HELLO", std::regex::icase)));
}

TEST(Library, SmartPointersAndContainers) {
  auto p = std::make_shared<std::vector<int>>(100);
  std::weak_ptr<std::vector<int>> w = p;
  auto u = std::make_unique<std::unordered_map<int, std::string>>();
  for (int i = 0; i < 100; ++i) (*u)[i] = std::to_string(i) + std::string(20, 'v');
  EXPECT_EQ(w.lock()->size(), 100u);
  EXPECT_EQ(u->size(), 100u);
}

class Fixture : public testing::Test {
 protected:
  void SetUp() override { items.emplace_back(100, 'h'); }
  void TearDown() override { items.clear(); }
  std::vector<std::string> items{std::string(64, 'f'), std::string(64, 'g')};
};

TEST_F(Fixture, MembersAreFreedWithTheFixture) {
  items.emplace_back(100, 'i');
  EXPECT_EQ(items.size(), 4u);
}

class Param : public testing::TestWithParam<std::string> {};
TEST_P(Param, Lengths) { EXPECT_GE(GetParam().size(), 1u); }
INSTANTIATE_TEST_SUITE_P(Words, Param, testing::Values(std::string(40, 'a'), "b", std::string(80, 'c')));

template <class T>
class Typed : public testing::Test {};
using types = testing::Types<int, double, std::string>;
TYPED_TEST_SUITE(Typed, types);
TYPED_TEST(Typed, Vector) {
  std::vector<TypeParam> v(10);
  EXPECT_EQ(v.size(), 10u);
}

// gMock keeps state of its own from a test's first use on: the per-thread
// implicit sequence InSequence makes (thread-specific data), the registry of
// live mocks, the reactions NiceMock and StrictMock register.
class Store {
 public:
  virtual ~Store() = default;
  virtual std::string get(const std::string& key) = 0;
  virtual void put(const std::string& key, const std::string& value) = 0;
};

class MockStore : public Store {
 public:
  MOCK_METHOD(std::string, get, (const std::string& key), (override));
  MOCK_METHOD(void, put, (const std::string& key, const std::string& value), (override));
};

TEST(Mocks, StrictMockExpectations) {
  testing::StrictMock<MockStore> store;
  EXPECT_CALL(store, put("k", std::string(40, 'v'))).Times(1);
  EXPECT_CALL(store, get("k")).WillOnce(testing::Return(std::string(40, 'v')));
  store.put("k", std::string(40, 'v'));
  EXPECT_EQ(store.get("k").size(), 40u);
}

TEST(Mocks, NiceMockDefaults) {
  testing::NiceMock<MockStore> store;
  ON_CALL(store, get(testing::_)).WillByDefault(testing::Return(std::string(50, 'd')));
  EXPECT_EQ(store.get("x").size(), 50u);
  store.put("a", "b");  // uninteresting, and allowed
}

// Each of these may be the first InSequence of the run, which makes it (in
// the test's body, as users write it: its stack then shows no gMock frame
// below InSequence's own).
TEST(Mocks, InSequence) { testing::InSequence in_order; }
TEST(Mocks, InSequenceWithCalls) {
  MockStore store;
  testing::InSequence in_order;
  EXPECT_CALL(store, put("a", "1"));
  EXPECT_CALL(store, put("b", "2"));
  store.put("a", "1");
  store.put("b", "2");
}
