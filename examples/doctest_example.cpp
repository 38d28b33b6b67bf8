// doctest + leakguard: every test case is a leak scope.
//
// Two lines on top of a normal doctest program: <leakguard/doctest.hpp>
// (every test case is checked) and <leakguard/global_new.hpp> (every `new`
// is tracked; exactly one .cpp). One test below forgets a `delete`: doctest
// reports it as a failed check at the leaking line, under the test's name,
// and the program exits non-zero.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <leakguard/doctest.hpp>
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

// A lazily built singleton: it allocates once and lives for the program.
std::map<std::string, int>& price_list() {
  static auto* prices = new std::map<std::string, int>{{"tea", 3}, {"cake", 4}};
  return *prices;
}

}  // namespace

TEST_CASE("parses an order") {
  std::unique_ptr<order> o(parse_order("alice:123"));
  CHECK(o->customer == "alice");
  CHECK(o->items.size() == 3);
}

TEST_CASE("counts the items of an order") {
  order* o = parse_order("bob:4567");  // never deleted: this test fails
  CHECK(o->items.size() == 4);
}

// First-use initialisation, run outside the test's scope: not a leak.
TEST_CASE("looks up prices" * leakguard::warm_up([] { price_list(); })) {
  CHECK(price_list().at("tea") == 3);
}
