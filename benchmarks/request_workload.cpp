// benchmarks/request_workload.cpp — a container-heavy request handler loop.
//
// Built twice from this one file:
//   request_workload          with <leakguard/global_new.hpp>; each request
//                             runs inside its own leakguard::scope
//   request_workload_native   with LEAKGUARD_BENCH_NATIVE: no leakguard at all
//                             (also the binary run under Valgrind, heaptrack,
//                             and, built by compare.py, AddressSanitizer)
//
// Each request parses a raw HTTP-like request into maps of strings
// (headers, query, form fields), tokenizes a body into a vector of strings
// and a word-count hash map, builds orders as shared_ptr objects held by
// several views (map by id, filtered vector, sorted copy: reference-count
// churn), and renders a response string. Everything it allocates is freed
// before it returns, so the scope never reports anything. The handler runs
// under a few levels of "framework" calls, as in a real server, so stacks are
// about as deep as there.
//
//   request_workload --requests=20000 [--no-scope]   fixed work, prints a summary
//   request_workload --benchmark_...                 Google Benchmark mode
//
// --no-scope (leakguard build): replaced new/delete, but no scope is opened.
// Stack depth and sampling come from LEAKGUARD_OPTIONS (stack_depth=N,
// sample_bytes=N).
#if !defined(LEAKGUARD_BENCH_NATIVE)
#include <leakguard/global_new.hpp>
#include <leakguard.hpp>
#endif

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

// ---- input: a fixed pool of raw requests, built before any scope ----------------

std::uint64_t rng_state = 0x9e3779b97f4a7c15ull;
std::uint64_t next_random() {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

std::string random_word(std::size_t min_len, std::size_t max_len) {
  static constexpr char letters[] = "abcdefghijklmnopqrstuvwxyz";
  const std::size_t n = min_len + next_random() % (max_len - min_len + 1);
  std::string w;
  for (std::size_t i = 0; i < n; ++i) w += letters[next_random() % 26];
  return w;
}

std::vector<std::string> make_request_pool(std::size_t count) {
  static const char* header_names[] = {"Host", "User-Agent", "Accept", "Accept-Language", "Accept-Encoding",
                                       "Content-Type", "Cookie", "Authorization", "X-Request-Id",
                                       "X-Forwarded-For", "Cache-Control", "Connection", "Referer",
                                       "X-Trace-Context"};
  std::vector<std::string> pool;
  for (std::size_t r = 0; r < count; ++r) {
    // One append per statement: the order of next_random() calls must not
    // depend on the compiler's order of evaluating operands.
    std::string text = "POST /api/v1/";
    text += random_word(4, 10);
    text += '/';
    text += std::to_string(next_random() % 100000);
    text += "/orders?limit=";
    text += std::to_string(10 + next_random() % 40);
    text += "&sort=";
    text += random_word(3, 8);
    text += "&filter=";
    text += random_word(5, 20);
    text += " HTTP/1.1\r\n";
    for (const char* h : header_names) {
      text += h;
      text += ": ";
      text += random_word(6, 48);
      text += "\r\n";
    }
    text += "\r\n";
    const std::size_t fields = 30 + next_random() % 20;
    for (std::size_t i = 0; i < fields; ++i) {
      if (i) text += '&';
      text += random_word(3, 12);
      text += '=';
      text += random_word(2, 30);
      for (int w = 0; w < 3; ++w) {
        text += '+';
        text += random_word(2, 9);
      }
    }
    pool.push_back(std::move(text));
  }
  return pool;
}

// ---- the handler -------------------------------------------------------------------

struct order {
  int id = 0;
  std::string customer;
  std::string item;
  std::vector<int> quantities;
  double price = 0;
};

struct request {
  std::string method, path, version;
  std::vector<std::string> path_parts;
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;
  std::unordered_map<std::string, std::string> form;
};

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  for (std::size_t start = 0;;) {
    const std::size_t end = s.find(sep, start);
    out.emplace_back(s.substr(start, end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

__attribute__((noinline)) request parse(std::string_view text) {
  request r;
  const std::size_t line_end = text.find("\r\n");
  const std::vector<std::string> line = split(text.substr(0, line_end), ' ');
  r.method = line.at(0);
  const std::string& target = line.at(1);
  r.version = line.at(2);
  const std::size_t q = target.find('?');
  r.path = target.substr(0, q);
  r.path_parts = split(r.path, '/');
  if (q != std::string::npos) {
    for (const std::string& kv : split(std::string_view(target).substr(q + 1), '&')) {
      const std::size_t eq = kv.find('=');
      r.query.emplace(kv.substr(0, eq), eq == std::string::npos ? std::string() : kv.substr(eq + 1));
    }
  }
  std::size_t pos = line_end + 2;
  for (;;) {
    const std::size_t end = text.find("\r\n", pos);
    if (end == pos || end == std::string_view::npos) {
      pos = end == std::string_view::npos ? text.size() : end + 2;
      break;
    }
    const std::string_view h = text.substr(pos, end - pos);
    const std::size_t colon = h.find(':');
    r.headers[lower(h.substr(0, colon))] = std::string(h.substr(colon + 2));
    pos = end + 2;
  }
  for (const std::string& kv : split(text.substr(pos), '&')) {
    const std::size_t eq = kv.find('=');
    r.form[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return r;
}

__attribute__((noinline)) std::vector<std::shared_ptr<order>> load_orders(const request& r) {
  const int limit = std::atoi(r.query.count("limit") ? r.query.at("limit").c_str() : "10");
  std::vector<std::shared_ptr<order>> orders;
  int i = 0;
  for (const auto& [key, value] : r.form) {
    if (i >= limit) break;
    auto o = std::make_shared<order>();
    o->id = i * 7919 % 1000;
    o->customer = key + "@" + r.headers.at("host");
    o->item = value;
    for (std::size_t k = 0; k < value.size() % 9 + 1; ++k) o->quantities.push_back(static_cast<int>(k * value.size()));
    o->price = static_cast<double>(value.size()) * 1.25 + i;
    orders.push_back(std::move(o));
    ++i;
  }
  return orders;
}

__attribute__((noinline)) std::string render(const request& r, const std::vector<std::shared_ptr<order>>& orders) {
  // Views sharing the orders: reference-count churn, map and vector nodes.
  std::map<int, std::shared_ptr<order>> by_id;
  for (const auto& o : orders) by_id.emplace(o->id, o);
  std::vector<std::shared_ptr<order>> expensive;
  for (const auto& o : orders)
    if (o->price > 20) expensive.push_back(o);
  std::vector<std::shared_ptr<order>> sorted = orders;
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a->price < b->price; });

  // Word counts of the form's values.
  std::unordered_map<std::string, int> words;
  for (const auto& [key, value] : r.form)
    for (const std::string& w : split(value, '+')) ++words[w];

  std::vector<std::string> lines;
  lines.push_back(r.version + " 200 OK");
  lines.push_back("content-type: application/json");
  lines.push_back("x-request-id: " + (r.headers.count("x-request-id") ? r.headers.at("x-request-id") : std::string()));
  std::string body = "{\"path\":\"" + r.path + "\",\"orders\":[";
  for (const auto& o : sorted) {
    body += "{\"id\":" + std::to_string(o->id) + ",\"customer\":\"" + o->customer + "\",\"item\":\"" + o->item +
            "\",\"qty\":" + std::to_string(o->quantities.size()) + "}";
  }
  body += "],\"expensive\":" + std::to_string(expensive.size()) + ",\"distinct_words\":" +
          std::to_string(words.size()) + ",\"first_id\":" + std::to_string(by_id.empty() ? -1 : by_id.begin()->first) +
          "}";
  lines.push_back("content-length: " + std::to_string(body.size()));
  std::string response;
  for (const std::string& l : lines) response += l + "\r\n";
  response += "\r\n";
  response += body;
  return response;
}

__attribute__((noinline)) std::uint64_t handle(std::string_view raw) {
  const request r = parse(raw);
  const std::vector<std::shared_ptr<order>> orders = load_orders(r);
  const std::string response = render(r, orders);
  return std::hash<std::string>{}(response) ^ response.size();
}

// A server's layers between the accept loop and the handler (router,
// middleware, ...), so that allocation stacks are as deep as in real code.
__attribute__((noinline)) std::uint64_t dispatch(int layer, std::string_view raw) {
  if (layer == 0) return handle(raw);
  const std::uint64_t h = dispatch(layer - 1, raw);
  benchmark::ClobberMemory();
  return h + static_cast<std::uint64_t>(layer);
}
constexpr int framework_layers = 6;

bool with_scope = true;

std::uint64_t serve(std::string_view raw) {
#if !defined(LEAKGUARD_BENCH_NATIVE)
  if (with_scope) {
    leakguard::scope s("request");
    return dispatch(framework_layers, raw);
  }
#endif
  return dispatch(framework_layers, raw);
}

const std::vector<std::string>& request_pool() {
  static const std::vector<std::string> pool = make_request_pool(256);
  return pool;
}

void BM_request(benchmark::State& state) {
  const auto& pool = request_pool();
  with_scope = state.range(0) != 0;
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(serve(pool[i++ % pool.size()]));
  state.SetItemsProcessed(state.iterations());
  with_scope = true;
}
#if defined(LEAKGUARD_BENCH_NATIVE)
BENCHMARK(BM_request)->ArgName("scope")->Arg(0);
#else
BENCHMARK(BM_request)->ArgName("scope")->Arg(0)->Arg(1);
#endif

}  // namespace

int main(int argc, char** argv) {
  long requests = -1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--requests=", 11) == 0) requests = std::atol(argv[i] + 11);
    else if (std::strcmp(argv[i], "--no-scope") == 0) with_scope = false;
  }
  if (requests < 0) {  // Google Benchmark mode
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
  }
  const auto& pool = request_pool();
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t checksum = 0;
  for (long i = 0; i < requests; ++i) checksum += serve(pool[static_cast<std::size_t>(i) % pool.size()]);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("requests=%ld seconds=%.6f us_per_request=%.3f checksum=%llx", requests, seconds,
              requests ? seconds * 1e6 / static_cast<double>(requests) : 0.0,
              static_cast<unsigned long long>(checksum));
#if !defined(LEAKGUARD_BENCH_NATIVE)
  const leakguard::heap_stats st = leakguard::global_stats();
  std::printf(" allocations=%llu", static_cast<unsigned long long>(st.allocations));
#endif
  std::printf("\n");
  return 0;
}
