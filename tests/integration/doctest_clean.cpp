// A leak-free doctest suite doing what test programs normally do; with
// <leakguard/doctest.hpp> every test case must pass (driver: integration_test.cpp).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <leakguard/doctest.hpp>
#if !LEAKGUARD_TEST_SHARED_RUNTIME  // the sanitizer presets link it compiled once
#include <leakguard/global_new.hpp>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <iomanip>
#include <iostream>
#include <locale>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

TEST_CASE("iostreams: cout, cerr and formatting") {
  std::cout << "hello from a test " << 42 << ' ' << 3.25 << ' ' << std::boolalpha << true << std::endl;
  std::cerr << "to stderr " << std::hex << 255 << std::dec << std::endl;
  std::clog << std::setw(10) << std::left << "clog" << std::endl;
  CHECK(true);
}

TEST_CASE("locale first use") {
  std::locale loc;
  std::ostringstream os;
  os.imbue(std::locale::classic());
  os << 1234567.5;
  CHECK(std::isalpha('a', loc));
  CHECK(std::toupper('a', loc) == 'A');
  CHECK(!os.str().empty());
}

TEST_CASE("strings and containers inside assertions") {
  std::string long_text(200, 'x');
  std::vector<int> v(1000);
  std::iota(v.begin(), v.end(), 0);
  std::map<std::string, int> m{{"one", 1}, {"two", 2}, {std::string(50, 'k'), 3}};
  CHECK(long_text == std::string(200, 'x'));
  CHECK(v.size() == 1000);
  CHECK(m.at("two") == 2);
  CHECK(std::string("a long string that does not fit in SSO") != std::string("another long string, not in SSO"));
  CHECK_EQ(std::to_string(123456789), "123456789");
  CHECK_MESSAGE(v[10] == 10, "message with a long string: " << long_text);
  WARN(v.back() == 999);
}

TEST_CASE("INFO, CAPTURE and MESSAGE") {
  std::string who = "a string long enough to be on the heap, surely";
  INFO("who: " << who);
  CAPTURE(who);
  for (int i = 0; i < 10; ++i) {
    INFO("iteration " << i << " of a loop with a long message " << who);
    CHECK(i < 10);
  }
  MESSAGE("a message: " << who);
}

TEST_CASE("subcases re-enter the test case") {
  std::vector<std::string> shared{"a fairly long string to force allocation", "b"};
  SUBCASE("first subcase with a long name to defeat the small string buffer") {
    shared.push_back("pushed in the first subcase, long enough to allocate");
    CHECK(shared.size() == 3);
  }
  SUBCASE("second subcase with another long name that needs the heap as well") {
    SUBCASE("nested one with a long name that also needs to allocate memory") { CHECK(shared.size() == 2); }
    SUBCASE("nested two with a long name that also needs to allocate memory") { CHECK(shared.front().size() > 10); }
  }
}

thread_local std::string tls_name(100, 't');  // built on this thread's first use
thread_local std::vector<int> tls_values;

// A function-local thread_local is built where it is declared, like a
// function-local static: first-use initialisation of the worker threads only.
std::string& tls_cache() {
  thread_local std::string cache(80, 'c');
  return cache;
}

TEST_CASE("thread_local objects") {
  // First use on the main thread builds them; they live as long as the thread.
  CHECK(tls_name.size() == 100);
  // Used as scratch space, and left as found.
  tls_values.push_back(1);
  CHECK(tls_values.size() == 1);
  std::vector<int>().swap(tls_values);
  // A thread's thread_local objects are destroyed when it exits.
  std::thread([] {
    tls_values.assign(100, 7);
    tls_cache() += std::string(100, 'x');
  }).join();
}

TEST_CASE("std::thread start and join") {
  std::atomic<int> sum{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&sum, i] {
      std::vector<int> local(1000, i);
      tls_values.assign(50, i);  // this thread's thread_local, destroyed at its exit
      sum += std::accumulate(local.begin(), local.end(), 0);
    });
  for (auto& t : threads) t.join();
  CHECK(sum == 1000 * (0 + 1 + 2 + 3));
  auto f = std::async(std::launch::async, [] { return std::string(100, 'a'); });
  CHECK(f.get().size() == 100);
}

TEST_CASE("exceptions thrown and caught") {
  try {
    throw std::runtime_error(std::string(100, 'e'));
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()).size() == 100);
  }
  CHECK_THROWS_AS(throw std::logic_error("logic error with a long message text"), std::logic_error);
  CHECK_THROWS_WITH(throw std::runtime_error("expected message"), "expected message");
  CHECK_NOTHROW(std::string(10, 'x'));
  auto throws = [] { std::vector<int> v; return v.at(5); };
  CHECK_THROWS_AS(throws(), std::out_of_range);
}

TEST_CASE("std::function") {
  std::string captured(100, 'c');
  std::function<std::size_t(int)> f = [captured](int n) { return captured.size() + n; };
  std::function<std::size_t(int)> g = f;
  CHECK(g(1) == 101);
  std::vector<std::function<void()>> callbacks;
  for (int i = 0; i < 10; ++i) callbacks.push_back([captured, i] { (void)captured; (void)i; });
  for (auto& cb : callbacks) cb();
}

TEST_CASE("std::regex") {
  std::regex re(R"((\w+)@(\w+)\.com)");
  std::smatch m;
  const std::string text = "write to someone@example.com today";
  REQUIRE(std::regex_search(text, m, re));
  CHECK(m[1] == "someone");
  CHECK(std::regex_replace(text, re, "$2") == "write to example today");
  std::regex icase("HELLO", std::regex::icase);
  CHECK(std::regex_match("hello", icase));
}

TEST_CASE("smart pointers and containers") {
  auto p = std::make_shared<std::vector<int>>(100);
  std::weak_ptr<std::vector<int>> w = p;
  auto u = std::make_unique<std::unordered_map<int, std::string>>();
  for (int i = 0; i < 100; ++i) (*u)[i] = std::to_string(i) + std::string(20, 'v');
  std::set<std::string> s(u->size() > 0 ? std::set<std::string>{"x", "y"} : std::set<std::string>{});
  CHECK(w.lock()->size() == 100);
  CHECK(u->size() == 100);
  CHECK(s.count("x") == 1);
}

struct fixture {
  std::vector<std::string> items{std::string(64, 'f'), std::string(64, 'g')};
};

TEST_CASE_FIXTURE(fixture, "fixture members are freed with the fixture") {
  items.emplace_back(100, 'h');
  CHECK(items.size() == 3);
}

TEST_CASE_TEMPLATE("template test cases", T, int, double, std::string) {
  std::vector<T> v(10);
  CHECK(v.size() == 10);
}

// A pool that a static starts on first use, as a logging library's: its
// worker holds its std::thread state and the task it ran last (a
// std::function whose captures live on the heap) in its own frames while it
// waits for the next. Neither is the test's leak.
class task_pool {
 public:
  static task_pool& instance() {
    static task_pool pool;
    return pool;
  }
  void post(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    wake_.notify_one();
  }
  // Returns once every task posted has run.
  void drain() {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [this] { return tasks_.empty() && !busy_; });
  }
  ~task_pool() {
    post({});
    worker_.join();
  }

 private:
  void run() {
    std::function<void()> current;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        busy_ = false;
        idle_.notify_all();
        wake_.wait(lock, [this] { return !tasks_.empty(); });
        current = std::move(tasks_.front());
        tasks_.pop_front();
        busy_ = true;
      }
      if (!current) return;
      current();
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_, idle_;
  std::deque<std::function<void()>> tasks_;
  bool busy_ = true;
  std::thread worker_{[this] { run(); }};
};

TEST_CASE("a pool a static starts holds its last task while it waits") {
  std::array<char, 64> record{};  // too large for std::function's own storage
  task_pool::instance().post([record, text = std::string(100, 't')] {
    std::string line = text + "!";  // the worker allocates
    line += record.data();
  });
  task_pool::instance().drain();
}

TEST_CASE("REQUIRE that passes") {
  std::unique_ptr<int> p(new int(5));
  REQUIRE(p != nullptr);
  REQUIRE_EQ(*p, 5);
}
