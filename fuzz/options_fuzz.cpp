// fuzz/options_fuzz.cpp — leakguard::parse_options on arbitrary bytes.
//
// Invariants (options.hpp, API.md "Runtime options"):
//  - no crash, no sanitizer report;
//  - every field of the result is within its documented range;
//  - items are independent: parsing "A:B" equals parsing B on top of A's
//    result, errors included; an item that produces an error changes nothing
//    ("reported ... and otherwise ignored"); every error line names its item;
//  - the result round-trips: written back as LEAKGUARD_OPTIONS text and
//    parsed from the defaults, it comes back equal, without errors;
//  - set_options() keeps a valid result as it is.
#include <leakguard/implementation.hpp>
#include <leakguard/options.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

bool same(const leakguard::runtime_options& a, const leakguard::runtime_options& b) {
  return a.stack_depth == b.stack_depth && a.on_leak == b.on_leak && a.report == b.report &&
         a.report_path == b.report_path && a.sample_bytes == b.sample_bytes && a.log_interval == b.log_interval;
}

[[noreturn]] void fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "options_fuzz: %s; input (%zu bytes): '%.*s'\n", what, input.size(),
               static_cast<int>(input.size()), input.data());
  std::abort();
}

std::string to_text(const leakguard::runtime_options& o) {
  std::string s = "stack_depth=" + std::to_string(o.stack_depth);
  s += o.on_leak == leakguard::leak_action::abort ? ":on_leak=abort" : ":on_leak=log";
  s += o.report == leakguard::report_format::text ? ":report=text" : ":report=json";
  s += ":sample_bytes=" + std::to_string(o.sample_bytes);
  s += ":log_interval=" + std::to_string(o.log_interval);
  if (!o.report_path.empty()) s += ":report_path=" + o.report_path;
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
  if (o.report_path.find(':') != std::string::npos) fail("report_path holds the separator", text);
  if (!same(o, leakguard::parse_options(text, defaults))) fail("result depends on whether errors are collected", text);

  // Item by item: the same result and the same errors, in order.
  leakguard::runtime_options step = defaults;
  std::string step_errors;
  for (std::string_view rest = text; !rest.empty();) {
    const std::size_t colon = rest.find(':');
    const std::string_view item = rest.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
    std::string e;
    const leakguard::runtime_options next = leakguard::parse_options(item, step, &e);
    if (!e.empty()) {
      if (!same(next, step)) fail("an item with an error changed the options", item);
      // Exactly one line: "leakguard: LEAKGUARD_OPTIONS: <why> '<item>' ignored\n".
      const std::string tail = "'" + std::string(item) + "' ignored\n";
      if (e.rfind("leakguard: LEAKGUARD_OPTIONS: ", 0) != 0 || e.size() < tail.size() ||
          e.compare(e.size() - tail.size(), tail.size(), tail) != 0)
        fail("an error is not one line naming its item", item);
    }
    step = next;
    step_errors += e;
  }
  if (!same(step, o) || step_errors != errors) fail("items are not independent", text);

  // Round trip through the text form.
  std::string again_errors;
  const leakguard::runtime_options again = leakguard::parse_options(to_text(o), defaults, &again_errors);
  if (!same(again, o) || !again_errors.empty()) fail("the result does not round-trip", text);

  leakguard::set_options(o);
  if (!same(leakguard::options(), o)) fail("set_options changed a valid result", text);
  return 0;
}
