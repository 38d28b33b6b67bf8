// One leakguard per process: a shared library and a dlopen()ed plugin that
// include <leakguard.hpp> use this program's runtime (the TU below). Exit code
// 0 when every check passes; otherwise the number of failed checks.
#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
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

// What dlopen(path) writes on stderr.
std::string stderr_of_dlopen(const char* path, void** handle) {
  std::fflush(stderr);
  FILE* capture = std::tmpfile();
  const int saved = dup(2);
  dup2(fileno(capture), 2);
  *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::string text;
  std::rewind(capture);
  for (int c; (c = std::fgetc(capture)) != EOF;) text += static_cast<char>(c);
  std::fclose(capture);
  return text;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

bool unloaded(const char* path) {
  void* again = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  if (again) dlclose(again);
  return again == nullptr;
}

struct seen {
  std::string label;
  std::size_t blocks;
  std::size_t bytes;
  std::vector<std::string> origins;
  std::vector<std::string> sites;
};
std::vector<seen> reports;
std::vector<leakguard::report> kept;  // read after the plugin is gone

}  // namespace

int main() {
  leakguard::set_leak_handler([](const leakguard::report& r) {
    seen s{std::string(r.label()), r.leaked_blocks(), r.leaked_bytes(), {}, {}};
    for (const leakguard::leaked_block& b : r.blocks()) {
      s.origins.push_back(b.origin);
      s.sites.push_back(b.site);
    }
    reports.push_back(s);
    kept.push_back(r);
  });

  // A shared library linked at start-up.
  int* from_lib = layout_lib_leak();
  CHECK_LAYOUT(reports.size() == 1);
  CHECK_LAYOUT(!reports.empty() && reports[0].label == "library scope" && reports[0].blocks == 1 &&
               reports[0].bytes == 4 * sizeof(int));
  delete[] from_lib;

  // A plugin: it uses this program's runtime, silently.
  void* plugin = nullptr;
  const std::string plugin_said = stderr_of_dlopen(LEAKGUARD_LAYOUT_PLUGIN, &plugin);
  CHECK_LAYOUT(plugin_said.empty());
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

  // dlclose(): a report the program kept, a verdict still due, and a block of
  // the plugin's allocator must not read the plugin's unmapped strings.
  auto leak_later = reinterpret_cast<void* (*)()>(dlsym(plugin, "layout_plugin_leak_later"));
  auto keep_buffer = reinterpret_cast<void* (*)()>(dlsym(plugin, "layout_plugin_keep_buffer"));
  CHECK_LAYOUT(leak_later && keep_buffer);
  if (!leak_later || !keep_buffer) return failures;
  kept.clear();
  delete static_cast<long*>(plugin_leak());  // a report kept from the plugin's scope
  auto* later = static_cast<short*>(leak_later());  // its verdict waits
  char* buffer = nullptr;
  reports.clear();
  {
    leakguard::scope s("scope around a plugin's allocator");
    buffer = static_cast<char*>(keep_buffer());
    dlclose(plugin);
    CHECK_LAYOUT(unloaded(LEAKGUARD_LAYOUT_PLUGIN));
  }
  CHECK_LAYOUT(reports.size() == 1 && reports[0].origins.size() == 1 &&
               reports[0].origins[0].find("\"plugin kept buffer\" (leakguard::allocator constructed at ") == 0 &&
               reports[0].origins[0].find("plugin.cpp:") != std::string::npos);
  CHECK_LAYOUT(!kept.empty() && std::string(kept[0].where().file_name()).ends_with("plugin.cpp") &&
               std::string(kept[0].where().function_name()).find("layout_plugin_leak") != std::string::npos);
  leakguard::flush();
  CHECK_LAYOUT(reports.size() == 2 && reports[1].label == "plugin grace scope" && reports[1].blocks == 1);
  CHECK_LAYOUT(kept.size() == 3 && std::string(kept[2].where().file_name()).ends_with("plugin.cpp") &&
               kept[2].where().line() > 0);
  CHECK_LAYOUT(!kept.empty() && !kept.back().to_text().empty());
  delete later;
  leakguard::allocator<char>{}.deallocate(buffer, 48);

  // A plugin with a runtime of its own is named at load, once.
  void* second = nullptr;
  const std::string second_said = stderr_of_dlopen(LEAKGUARD_LAYOUT_SECOND_COPY_PLUGIN, &second);
  CHECK_LAYOUT(second != nullptr);
  CHECK_LAYOUT(count(second_said, "holds a second copy of leakguard's runtime") == 1);
  CHECK_LAYOUT(count(second_said, "second_copy_plugin") == 1);
  CHECK_LAYOUT(second_said.find("layout_program") != std::string::npos);
  if (second) dlclose(second);

  if (failures == 0) std::fputs("layout_program: all checks passed\n", stderr);
  return failures;
}
