// write_metrics(): the Prometheus text exposition format, parsed back.
#include <doctest/doctest.h>
#include <leakguard.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support.hpp"

using lgt::keep;

namespace {

struct sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// What a scraper reads: the samples, and each family's HELP and TYPE.
// Fails the test on any line that is not in the format.
struct exposition {
  std::vector<sample> samples;
  std::map<std::string, std::string> types, helps;

  explicit exposition(const std::string& text) {
    std::istringstream in(text);
    std::string line;
    std::set<std::string> finished;  // a family's samples are contiguous
    std::string current;
    while (std::getline(in, line)) {
      INFO(line);
      REQUIRE(!line.empty());
      if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
        const std::size_t space = line.find(' ', 7);
        REQUIRE(space != std::string::npos);
        const std::string name = line.substr(7, space - 7);
        auto& into = line[2] == 'H' ? helps : types;
        CHECK(into.count(name) == 0);
        into[name] = line.substr(space + 1);
        if (line[2] == 'T') {
          CHECK((into[name] == "counter" || into[name] == "gauge"));
          if (into[name] == "counter") CHECK(name.ends_with("_total"));
        }
        continue;
      }
      REQUIRE(line[0] != '#');
      samples.push_back(parse_sample(line));
      const std::string& name = samples.back().name;
      CHECK(types.count(name) == 1);  // declared before its samples
      CHECK(helps.count(name) == 1);
      if (name != current) {
        CHECK(finished.insert(name).second);
        current = name;
      }
    }
  }

  static sample parse_sample(const std::string& line) {
    sample s;
    std::size_t at = 0;
    while (at < line.size() && (std::isalnum(static_cast<unsigned char>(line[at])) || line[at] == '_')) ++at;
    s.name = line.substr(0, at);
    REQUIRE(!s.name.empty());
    if (line[at] == '{') {
      ++at;
      while (line[at] != '}') {
        const std::size_t eq = line.find("=\"", at);
        REQUIRE(eq != std::string::npos);
        const std::string key = line.substr(at, eq - at);
        std::string value;
        for (at = eq + 2; line.at(at) != '"'; ++at) {
          if (line[at] == '\\') {
            const char e = line.at(++at);
            REQUIRE((e == '\\' || e == '"' || e == 'n'));
            value += e == 'n' ? '\n' : e;
          } else {
            value += line[at];
          }
        }
        s.labels[key] = value;
        ++at;
        if (line.at(at) == ',') ++at;
      }
      ++at;
    }
    REQUIRE(line.at(at) == ' ');
    std::size_t used = 0;
    s.value = std::stod(line.substr(at + 1), &used);
    CHECK(at + 1 + used == line.size());
    return s;
  }

  // The value of `name` whose scope label is `scope` (if given) and whose
  // site is file:line of this file.
  std::optional<double> at_site(const std::string& name, int line, std::optional<std::string> scope = {}) const {
    for (const sample& s : samples) {
      if (s.name != name) continue;
      if (scope && s.labels.at("scope") != *scope) continue;
      if (lgt::site_is(s.labels.at("site"), __FILE__, line)) return s.value;
    }
    return std::nullopt;
  }

  std::optional<double> value(const std::string& name) const {
    for (const sample& s : samples)
      if (s.name == name && s.labels.empty()) return s.value;
    return std::nullopt;
  }
};

exposition scrape() {
  std::ostringstream os;
  leakguard::write_metrics(os);
  return exposition(os.str());
}

std::vector<int*> kept_forever;

}  // namespace

TEST_CASE("write_metrics: leaks per scope label and site, with HELP and TYPE for every family") {
  leakguard::reset_leak_sites();
  lgt::capture_reports captured;
  std::vector<void*> blocks;
  blocks.reserve(16);  // no vector growth inside the scopes
  int line_a = 0, line_b = 0;
  for (int i = 0; i < 3; ++i) {
    leakguard::scope s("handler \"a\"\nsecond line\\");  // every character a label must escape
    line_a = __LINE__ + 1;
    blocks.push_back(keep(::operator new(100)));
    if (i == 0) {
      line_b = __LINE__ + 1;
      blocks.push_back(keep(::operator new(40)));
    }
  }
  {
    leakguard::scope s("other");
    blocks.push_back(keep(::operator new(100)));  // a third site, under another label
  }
  REQUIRE(captured.size() == 4);

  const exposition m = scrape();
  const std::string a = "handler \"a\"\nsecond line\\";
  CHECK(m.at_site("leakguard_leak_reports_total", line_a, a) == 3);
  CHECK(m.at_site("leakguard_leaked_blocks_total", line_a, a) == 3);
  CHECK(m.at_site("leakguard_leaked_bytes_total", line_a, a) == 300);
  CHECK(m.at_site("leakguard_leak_reports_total", line_b, a) == 1);
  CHECK(m.at_site("leakguard_leaked_bytes_total", line_b, a) == 40);
  CHECK_FALSE(m.at_site("leakguard_leak_reports_total", line_a, std::string("other")));
  std::size_t other = 0;
  for (const sample& s : m.samples)
    if (s.name == "leakguard_leaked_bytes_total" && s.labels.at("scope") == "other") other += s.value;
  CHECK(other == 100);

  for (const char* family :
       {"leakguard_leak_reports_total", "leakguard_leaked_blocks_total", "leakguard_leaked_bytes_total",
        "leakguard_budget_violations_total", "leakguard_retained_blocks", "leakguard_retained_bytes",
        "leakguard_retained_growing", "leakguard_heap_live_blocks", "leakguard_heap_live_bytes",
        "leakguard_heap_peak_bytes", "leakguard_heap_allocations_total", "leakguard_heap_deallocations_total"}) {
    INFO(family);
    CHECK(m.types.count(family) == 1);
  }

  // A counter reset: the families stay, their samples go.
  leakguard::reset_leak_sites();
  const exposition after = scrape();
  CHECK(after.types.count("leakguard_leak_reports_total") == 1);
  CHECK_FALSE(after.at_site("leakguard_leak_reports_total", line_a, a));
  for (void* p : blocks) ::operator delete(p);
}

TEST_CASE("write_metrics: retained sites and the heap's figures") {
  leakguard::reset_leak_sites();
  lgt::capture_reports captured;
  kept_forever.reserve(8);
  int line = 0;
  for (int i = 0; i < 5; ++i) {
    LEAKGUARD_SCOPE("request");
    line = __LINE__ + 1;
    kept_forever.push_back(new int(i));  // reachable from a global: retained, not leaked
  }
  CHECK(captured.size() == 0);

  const leakguard::heap_stats before = leakguard::global_stats();
  const exposition m = scrape();
  const leakguard::heap_stats after = leakguard::global_stats();
  CHECK(m.at_site("leakguard_retained_blocks", line) == 5);
  CHECK(m.at_site("leakguard_retained_bytes", line) == 5 * sizeof(int));
  CHECK(m.at_site("leakguard_retained_growing", line) == 0);
  CHECK(m.samples.end() == std::find_if(m.samples.begin(), m.samples.end(), [](const sample& s) {
          return s.name == "leakguard_leak_reports_total";
        }));

  // Between two global_stats() calls around the scrape.
  const double allocations = m.value("leakguard_heap_allocations_total").value_or(-1);
  CHECK(allocations >= static_cast<double>(before.allocations));
  CHECK(allocations <= static_cast<double>(after.allocations));
  CHECK(m.value("leakguard_heap_deallocations_total").value_or(-1) >= static_cast<double>(before.deallocations));
  CHECK(m.value("leakguard_heap_live_blocks").value_or(-1) > 0);
  CHECK(m.value("leakguard_heap_peak_bytes").value_or(-1) >= m.value("leakguard_heap_live_bytes").value_or(-1));

  for (int* p : kept_forever) delete p;
  std::vector<int*>().swap(kept_forever);
}

TEST_CASE("write_metrics: what each suppression pattern dropped, 0 for one that never matched") {
  leakguard::suppress("lgt_metrics_never::");
  const exposition m = scrape();
  CHECK(m.types.at("leakguard_suppressed_blocks_total") == "counter");
  bool listed = false;
  for (const sample& s : m.samples) {
    if (s.name != "leakguard_suppressed_blocks_total") continue;
    CHECK(s.labels.count("pattern") == 1);
    if (s.labels.at("pattern") != "lgt_metrics_never::") continue;
    listed = true;
    CHECK(s.value == 0);
  }
  CHECK(listed);
  CHECK(leakguard::unsuppress("lgt_metrics_never::"));
}

TEST_CASE("write_metrics: budget violations have a family of their own") {
  leakguard::reset_leak_sites();
  lgt::capture_reports captured;
  int line = 0;
  {
    leakguard::scope_options o;
    o.label = "budgeted";
    o.max_bytes = 64;
    leakguard::scope s(o);
    line = __LINE__ + 1;
    delete[] keep(new char[1000]);  // over the budget, freed: a violation, no leak
  }
  REQUIRE(captured.size() == 1);
  const exposition m = scrape();
  CHECK(m.at_site("leakguard_budget_violations_total", line, std::string("budgeted")) == 1);
  CHECK_FALSE(m.at_site("leakguard_leak_reports_total", line, std::string("budgeted")));
  leakguard::reset_leak_sites();
}

TEST_CASE("write_metrics: a scope around a metrics endpoint sees no leak") {
  lgt::capture_reports captured;
  bool served = false;
  {
    leakguard::scope s("metrics endpoint");
    std::ostringstream os;
    leakguard::write_metrics(os);
    served = os.str().find("# TYPE leakguard_heap_live_bytes gauge\n") != std::string::npos;
  }
  CHECK(served);
  CHECK(captured.size() == 0);
}
