// fuzz/options_fuzz.cpp — leakguard::parse_options on arbitrary bytes.
//
// Invariants (options.hpp, API.md "Runtime options"):
//  - no crash, no sanitizer report;
//  - every field of the result is within its documented range;
//  - items are independent: parsing the whole text equals parsing its items
//    (split as the parser splits them) one on top of the other, errors
//    included up to the cap; each item is a piece of the input, in order; an
//    item that produces an error changes nothing ("reported ... and otherwise
//    ignored"); every error line names its item;
//  - at most 16 error lines name items, then one line counts the rest;
//  - the result round-trips: written back as LEAKGUARD_OPTIONS text (the
//    path quoted) and parsed from the defaults, it comes back equal, without
//    errors;
//  - set_options() keeps a valid result as it is (without its suppressions
//    file: the fuzzer does not read files the input names).
#include <leakguard/implementation.hpp>
#include <leakguard/options.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

bool same(const leakguard::runtime_options& a, const leakguard::runtime_options& b) {
  return a.stack_depth == b.stack_depth && a.on_leak == b.on_leak && a.report == b.report &&
         a.report_path == b.report_path && a.sample_bytes == b.sample_bytes && a.log_interval == b.log_interval &&
         a.grace_ms == b.grace_ms && a.suppressions == b.suppressions && a.stack_root == b.stack_root &&
         a.report_frames == b.report_frames;
}

[[noreturn]] void fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "options_fuzz: %s; input (%zu bytes): '%.*s'\n", what, input.size(),
               static_cast<int>(input.size()), input.data());
  std::abort();
}

// A parsed path is plain (no separator, no leading quote) or lacks one of the quotes.
std::string path_item(const char* key, const std::string& path) {
  if (path.empty()) return {};
  const bool plain = std::none_of(path.begin(), path.end(), leakguard::detail::option_separator) &&
                     path[0] != '\'' && path[0] != '"';
  const char quote = path.find('\'') == std::string::npos ? '\'' : '"';
  return std::string(":") + key + "=" + (plain ? path : quote + path + quote);
}

std::string to_text(const leakguard::runtime_options& o) {
  std::string s = "stack_depth=" + std::to_string(o.stack_depth);
  s += o.on_leak == leakguard::leak_action::abort ? ":on_leak=abort" : ":on_leak=log";
  s += o.report == leakguard::report_format::text ? ":report=text" : ":report=json";
  s += ":sample_bytes=" + std::to_string(o.sample_bytes);
  s += ":log_interval=" + std::to_string(o.log_interval);
  s += ":grace_ms=" + std::to_string(o.grace_ms);
  s += o.stack_root == leakguard::stack_root_mode::scope ? ":stack_root=scope" : ":stack_root=full";
  s += ":report_frames=" + std::to_string(o.report_frames);
  s += path_item("report_path", o.report_path);
  s += path_item("suppressions", o.suppressions);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const leakguard::runtime_options defaults{};
  std::string errors;
  const leakguard::runtime_options o = leakguard::parse_options(text, defaults, &errors);

  if (o.stack_depth < 0 || o.stack_depth > leakguard::max_stack_depth) fail("stack_depth out of 0..64", text);
  if (o.log_interval < 0 || o.log_interval > 86400) fail("log_interval out of 0..86400", text);
  if (o.on_leak != leakguard::leak_action::abort && o.on_leak != leakguard::leak_action::log)
    fail("on_leak not abort or log", text);
  if (o.report != leakguard::report_format::text && o.report != leakguard::report_format::json)
    fail("report not text or json", text);
  if (o.stack_root != leakguard::stack_root_mode::scope && o.stack_root != leakguard::stack_root_mode::full)
    fail("stack_root not scope or full", text);
  if (o.report_frames < 0 || o.report_frames > leakguard::max_report_frames) fail("report_frames out of 0..1024", text);
  if (!same(o, leakguard::parse_options(text, defaults))) fail("result depends on whether errors are collected", text);

  // Item by item: the same result and the same errors, in order.
  leakguard::runtime_options step = defaults;
  std::string step_errors;
  int bad_items = 0;
  const char* previous_end = text.data();
  leakguard::detail::option_item item;
  for (std::string_view rest = text; leakguard::detail::next_option_item(rest, item);) {
    if (item.text.empty() || item.text.data() < previous_end || item.text.data() + item.text.size() > rest.data() ||
        rest.data() > text.data() + text.size())
      fail("items are not consecutive pieces of the input", text);
    previous_end = item.text.data() + item.text.size();
    std::string e;
    const leakguard::runtime_options next = leakguard::parse_options(item.text, step, &e);
    if (!e.empty()) {
      if (!same(next, step)) fail("an item with an error changed the options", item.text);
      // Exactly one line: "leakguard: LEAKGUARD_OPTIONS: <why> '<item>' ignored\n" (long items cut).
      const std::string named = std::string(item.text.substr(0, 200)) + (item.text.size() > 200 ? "..." : "");
      const std::string tail = "'" + named + "' ignored\n";
      if (e.rfind("leakguard: LEAKGUARD_OPTIONS: ", 0) != 0 || e.size() < tail.size() ||
          e.compare(e.size() - tail.size(), tail.size(), tail) != 0)
        fail("an error is not one line naming its item", item.text);
      if (++bad_items <= 16) step_errors += e;
    }
    step = next;
  }
  if (bad_items > 16)
    step_errors += "leakguard: LEAKGUARD_OPTIONS: " + std::to_string(bad_items - 16) + " more bad items ignored\n";
  if (!same(step, o) || step_errors != errors) fail("items are not independent", text);
  // Round trip through the text form.
  std::string again_errors;
  const leakguard::runtime_options again = leakguard::parse_options(to_text(o), defaults, &again_errors);
  if (!same(again, o) || !again_errors.empty()) fail("the result does not round-trip", text);

  leakguard::runtime_options applied = o;
  applied.suppressions.clear();
  leakguard::set_options(applied);
  if (!same(leakguard::options(), applied)) fail("set_options changed a valid result", text);
  return 0;
}
