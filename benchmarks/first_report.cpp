// benchmarks/first_report.cpp — what reporting costs a server: the latency a
// leaking request's scope end adds, the first report included, and the
// memory the reports (symbols, debug info) add to the process.
//
//   first_report [--requests=N]   (default 20000, on 2 threads)
//
// Requests are a small handler (a map of 16 strings) in LEAKGUARD_SCOPE; one
// in 4 leaks a block, at one of two lines. on_leak=log writes to /dev/null.
// Prints the scope end's latency (the first leaking request's, then p50, p99
// and max over the others) and the process's RSS before the first report,
// after it, and after all of them (flush() waits for every report).
#include <leakguard/global_new.hpp>
#include <leakguard.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

long rss_kib() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  std::fclose(f);
  return kib;
}

__attribute__((noinline)) void leak_here(int kind) {
  // volatile: the optimizer may not drop the allocation; nothing keeps it.
  if (kind == 0) {
    char* volatile lost = new char[48];
    (void)lost;
  } else {
    std::string* volatile lost = new std::string(80, 'x');
    (void)lost;
  }
}

// One request; returns how long its scope's end took, in microseconds.
double request(int id) {
  clock_type::time_point end_started;
  {
    LEAKGUARD_SCOPE("request");
    std::map<std::string, std::string> fields;
    for (int i = 0; i < 16; ++i) fields.emplace("header-" + std::to_string(i), std::string(40, 'v'));
    if (id % 4 == 1) leak_here(id % 8 == 1 ? 0 : 1);
    end_started = clock_type::now();
  }
  return std::chrono::duration<double, std::micro>(clock_type::now() - end_started).count();
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const std::size_t k = std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  int requests = 20000;
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--requests=", 11) == 0) requests = std::atoi(argv[i] + 11);
  leakguard::runtime_options o = leakguard::options();
  o.on_leak = leakguard::leak_action::log;
  o.report_path = "/dev/null";
  leakguard::set_options(o);

  for (int i = 0; i < 1000; ++i) request(4 * i);  // warm up: no leak
  const long rss_before = rss_kib();
  const double first = request(1);
  leakguard::flush();
  const long rss_after_first = rss_kib();

  std::vector<double> leaking[2], clean[2];
  auto worker = [&](int t) {
    for (int id = t; id < requests; id += 2) (id % 4 == 1 ? leaking[t] : clean[t]).push_back(request(id));
  };
  const clock_type::time_point start = clock_type::now();
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  leakguard::flush();
  const long rss_end = rss_kib();

  std::vector<double> leaks = leaking[0], clean_ends = clean[0];
  leaks.insert(leaks.end(), leaking[1].begin(), leaking[1].end());
  clean_ends.insert(clean_ends.end(), clean[1].begin(), clean[1].end());
  std::printf("first leaking request: scope end %.1f us\n", first);
  std::printf("later leaking requests (%zu): scope end p50 %.1f us, p99 %.1f us, max %.1f us\n", leaks.size(),
              percentile(leaks, 0.5), percentile(leaks, 0.99), *std::max_element(leaks.begin(), leaks.end()));
  std::printf("requests without a leak (%zu): scope end p50 %.1f us, p99 %.1f us\n", clean_ends.size(),
              percentile(clean_ends, 0.5), percentile(clean_ends, 0.99));
  std::printf("%d requests on 2 threads in %.2f s\n", requests, seconds);
  std::printf("RSS: %.1f MiB before the first report, %.1f MiB after it, %.1f MiB after all\n", rss_before / 1024.0,
              rss_after_first / 1024.0, rss_end / 1024.0);
  const std::vector<leakguard::site_totals> sites = leakguard::leak_sites();
  std::printf("leak sites: %zu\n", sites.size());
  return sites.size() == 2 ? 0 : 1;
}
