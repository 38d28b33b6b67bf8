// GoogleTest + leakguard: every test is a leak scope.
//
// Two lines on top of a normal GoogleTest program (here linked with
// gtest_main): <leakguard/gtest.hpp> registers leakguard's listener, and
// <leakguard/global_new.hpp> tracks every `new` (exactly one .cpp). One
// test below forgets a `delete`: it is reported FAILED, with the leaking
// line, and the program exits non-zero.
#include <gtest/gtest.h>

#include <leakguard/gtest.hpp>
#include <leakguard/global_new.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

struct order {
  std::string customer;
  std::vector<int> items;
};

order* parse_order(const std::string& line) {
  auto* o = new order{line.substr(0, line.find(':')), {}};
  for (char c : line.substr(line.find(':') + 1))
    if (c >= '0' && c <= '9') o->items.push_back(c - '0');
  return o;
}

std::map<std::string, int>& price_list() {
  static auto* prices = new std::map<std::string, int>{{"tea", 3}, {"cake", 4}};
  return *prices;
}

}  // namespace

TEST(Orders, Parses) {
  std::unique_ptr<order> o(parse_order("alice:123"));
  EXPECT_EQ(o->customer, "alice");
  EXPECT_EQ(o->items.size(), 3u);
}

TEST(Orders, CountsItems) {
  order* o = parse_order("bob:4567");  // never deleted: this test fails
  EXPECT_EQ(o->items.size(), 4u);
}

class Prices : public testing::Test {
 protected:
  // First-use initialisation, outside every test's scope: not a leak.
  static void SetUpTestSuite() { price_list(); }
};

TEST_F(Prices, LooksUpTea) { EXPECT_EQ(price_list().at("tea"), 3); }
