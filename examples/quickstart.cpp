// quickstart — the smallest useful leakguard program.
//
// A function that forgets to free one of its blocks, checked by a scope.
// Build with -g (file:line) and -fno-omit-frame-pointer (full stacks).
#include <leakguard.hpp>
#include <leakguard/global_new.hpp>  // in exactly one .cpp: every `new` is tracked

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

struct order {
  std::string customer;
  std::vector<int> items;
};

// Leaks: `draft` is never deleted when the order has no items.
order* parse_order(const std::string& line) {
  auto* draft = new order{line, {}};
  if (line.size() > 8) draft->items.push_back(42);
  if (draft->items.empty()) return nullptr;  // forgot `delete draft`
  return draft;
}

int main() {
  // The default handler prints the report and aborts; this demo continues.
  leakguard::set_leak_handler(leakguard::log_leak);

  {
    LEAKGUARD_SCOPE("clean orders");
    std::unique_ptr<order> o(parse_order("alice: 3 apples"));
  }  // everything freed: silent

  {
    LEAKGUARD_SCOPE("short orders");
    std::unique_ptr<order> o(parse_order("bob"));
  }  // `draft` leaked: the report names parse_order's `new` line

  std::puts("quickstart: done (the report above is the leak in parse_order)");
}
