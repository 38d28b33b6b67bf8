// One leakguard per process: a shared library and a dlopen()ed plugin that
// include <leakguard.hpp> use this program's runtime (the TU below). Exit code
// 0 when every check passes; otherwise the number of failed checks.
#include <dlfcn.h>

#include <cstdio>
#include <string>
#include <vector>

#include <leakguard.hpp>
#include <leakguard/global_new.hpp>

int* layout_lib_leak();

namespace {

int failures = 0;
void check(bool ok, const char* what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "layout_program: FAILED: %s\n", what);
  }
}
#define CHECK_LAYOUT(cond) check((cond), #cond)

struct seen {
  std::string label;
  std::size_t blocks;
  std::size_t bytes;
  std::vector<std::string> origins;
  std::vector<std::string> sites;
};
std::vector<seen> reports;

}  // namespace

int main() {
  leakguard::set_leak_handler([](const leakguard::report& r) {
    seen s{std::string(r.label()), r.leaked_blocks(), r.leaked_bytes(), {}, {}};
    for (const leakguard::leaked_block& b : r.blocks()) {
      s.origins.push_back(b.origin);
      s.sites.push_back(b.site);
    }
    reports.push_back(s);
  });

  // A shared library linked at start-up.
  int* from_lib = layout_lib_leak();
  CHECK_LAYOUT(reports.size() == 1);
  CHECK_LAYOUT(!reports.empty() && reports[0].label == "library scope" && reports[0].blocks == 1 &&
               reports[0].bytes == 4 * sizeof(int));
  delete[] from_lib;

  // A plugin.
  void* plugin = dlopen(LEAKGUARD_LAYOUT_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  if (!plugin) {
    std::fprintf(stderr, "layout_program: dlopen: %s\n", dlerror());
    return 100;
  }
  auto plugin_leak = reinterpret_cast<void* (*)()>(dlsym(plugin, "layout_plugin_leak"));
  auto plugin_allocate = reinterpret_cast<void* (*)()>(dlsym(plugin, "layout_plugin_allocate"));
  CHECK_LAYOUT(plugin_leak && plugin_allocate);
  if (!plugin_leak || !plugin_allocate) return failures;
  reports.clear();
  long* from_plugin = static_cast<long*>(plugin_leak());
  CHECK_LAYOUT(reports.size() == 1);
  CHECK_LAYOUT(!reports.empty() && reports[0].label == "plugin scope" && reports[0].blocks == 2 &&
               reports[0].bytes == 100 + sizeof(long));
  CHECK_LAYOUT(!reports.empty() && reports[0].origins.size() == 2 &&
               reports[0].origins[0].find("\"plugin buffer\"") != std::string::npos);
#if LEAKGUARD_HAVE_LIBDW
  // The plugin was loaded after the first report: the symbolizer must have
  // read its debug info all the same.
  for (const std::string& site : reports.empty() ? std::vector<std::string>{} : reports[0].sites)
    CHECK_LAYOUT(site.find("plugin.cpp:") != std::string::npos);
#endif
  delete from_plugin;

  // The program's scope sees what the plugin allocates inside it.
  reports.clear();
  int* in_scope = nullptr;
  {
    leakguard::scope s("program scope");
    in_scope = static_cast<int*>(plugin_allocate());
    CHECK_LAYOUT(s.stats().allocations == 2 && s.stats().live_blocks == 1);
  }
  CHECK_LAYOUT(reports.size() == 1 && reports[0].label == "program scope" && reports[0].blocks == 1);
  delete[] in_scope;

  if (failures == 0) std::fputs("layout_program: all checks passed\n", stderr);
  return failures;
}
