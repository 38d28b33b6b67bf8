// tests/options_test.cpp — runtime options: parse_options (LEAKGUARD_OPTIONS
// syntax), options()/set_options(), and what each setting does.
// (LEAKGUARD_OPTIONS from the environment at start-up is left to a ctest with
// ENVIRONMENT; here the parser and the code path are pinned.)
#include <doctest/doctest.h>
#include <leakguard.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "support.hpp"

using lgt::keep;
using leakguard::leak_action;
using leakguard::report_format;
using leakguard::runtime_options;

namespace {

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  if (!s.empty() && s.back() != '\n') ++n;
  return n;
}

bool same(const runtime_options& a, const runtime_options& b) {
  return a.stack_depth == b.stack_depth && a.on_leak == b.on_leak && a.report == b.report &&
         a.report_path == b.report_path && a.suppressions == b.suppressions && a.stack_root == b.stack_root &&
         a.report_frames == b.report_frames;
}

runtime_options non_default_base() {
  runtime_options o;
  o.stack_depth = 3;
  o.on_leak = leak_action::log;
  o.report = report_format::json;
  o.report_path = "/base/path";
  o.suppressions = "/base/leaks.supp";
  o.stack_root = leakguard::stack_root_mode::full;
  o.report_frames = 7;
  return o;
}

}  // namespace

TEST_SUITE("options") {

// ---- parse_options ----------------------------------------------------------------

TEST_CASE("parse_options: defaults are stack_depth 16, abort, text, stderr") {
  const runtime_options d{};
  CHECK(d.stack_depth == 16);
  CHECK(d.on_leak == leak_action::abort);
  CHECK(d.report == report_format::text);
  CHECK(d.report_path.empty());
  CHECK(d.stack_root == leakguard::stack_root_mode::scope);
  CHECK(d.report_frames == 8);
}

TEST_CASE("parse_options: the empty string returns the base unchanged, without errors") {
  std::string errors;
  CHECK(same(leakguard::parse_options("", {}, &errors), runtime_options{}));
  CHECK(same(leakguard::parse_options("", non_default_base(), &errors), non_default_base()));
  CHECK(errors.empty());
}

TEST_CASE("parse_options: every known key") {
  std::string errors;
  const auto o = leakguard::parse_options(
      "stack_depth=8:on_leak=log:report=json:report_path=/tmp/leaks.log:suppressions='/etc/my app/leaks.supp'"
      ":stack_root=full:report_frames=1024",
      {}, &errors);
  CHECK(errors.empty());
  CHECK(o.stack_depth == 8);
  CHECK(o.on_leak == leak_action::log);
  CHECK(o.report == report_format::json);
  CHECK(o.report_path == "/tmp/leaks.log");
  CHECK(o.suppressions == "/etc/my app/leaks.supp");
  CHECK(o.stack_root == leakguard::stack_root_mode::full);
  CHECK(o.report_frames == 1024);
}

TEST_CASE("parse_options: each value back to the other choice") {
  std::string errors;
  const auto o = leakguard::parse_options("on_leak=abort:report=text:stack_depth=0:stack_root=scope:report_frames=0",
                                          non_default_base(), &errors);
  CHECK(errors.empty());
  CHECK(o.stack_root == leakguard::stack_root_mode::scope);
  CHECK(o.report_frames == 0);
  CHECK(o.on_leak == leak_action::abort);
  CHECK(o.report == report_format::text);
  CHECK(o.stack_depth == 0);
  CHECK(o.report_path == "/base/path");  // untouched keys keep the base's value
}

TEST_CASE("parse_options: stack_depth bounds 0 and 64 are accepted") {
  std::string errors;
  CHECK(leakguard::parse_options("stack_depth=0", {}, &errors).stack_depth == 0);
  CHECK(leakguard::parse_options("stack_depth=64", {}, &errors).stack_depth == 64);
  CHECK(errors.empty());
}

TEST_CASE("parse_options: an unknown key is named in one error line, the other keys still apply") {
  std::string errors;
  const auto o = leakguard::parse_options("bogus_key=1:stack_depth=4", {}, &errors);
  CHECK(o.stack_depth == 4);
  CHECK(lgt::contains(errors, "bogus_key"));
  CHECK(count_lines(errors) == 1);
}

TEST_CASE("parse_options: a bad stack_depth is named and the base value kept") {
  for (const char* text : {"stack_depth=abc", "stack_depth=8x", "stack_depth=", "stack_depth=-1",
                           "stack_depth=65", "stack_depth=99999999999999999999"}) {
    CAPTURE(text);
    std::string errors;
    const auto o = leakguard::parse_options(text, non_default_base(), &errors);
    CHECK(o.stack_depth == 3);
    CHECK(lgt::contains(errors, "stack_depth"));
    CHECK(count_lines(errors) == 1);
  }
}

TEST_CASE("parse_options: a bad on_leak or report value is named and the base value kept") {
  std::string errors;
  auto o = leakguard::parse_options("on_leak=maybe", {}, &errors);
  CHECK(o.on_leak == leak_action::abort);
  CHECK(lgt::contains(errors, "on_leak"));
  CHECK(count_lines(errors) == 1);

  errors.clear();
  o = leakguard::parse_options("report=xml", non_default_base(), &errors);
  CHECK(o.report == report_format::json);
  CHECK(lgt::contains(errors, "report"));
  CHECK(count_lines(errors) == 1);

  errors.clear();
  o = leakguard::parse_options("on_leak=", {}, &errors);
  CHECK(o.on_leak == leak_action::abort);
  CHECK(count_lines(errors) == 1);
}

TEST_CASE("parse_options: a bad stack_root or report_frames is named and the base value kept") {
  for (const char* text : {"stack_root=", "stack_root=Scope", "stack_root=top", "report_frames=", "report_frames=-1",
                           "report_frames=1025", "report_frames=8x", "report_frames=99999999999999999999"}) {
    CAPTURE(text);
    std::string errors;
    const auto o = leakguard::parse_options(text, non_default_base(), &errors);
    CHECK(same(o, non_default_base()));
    CHECK(lgt::contains(errors, std::string_view(text).substr(0, std::string_view(text).find('='))));
    CHECK(count_lines(errors) == 1);
  }
}

TEST_CASE("set_options keeps report_frames within 0..max_report_frames") {
  lgt::options_guard restore;
  runtime_options o;
  o.report_frames = -3;
  leakguard::set_options(o);
  CHECK(leakguard::options().report_frames == 0);  // no cap
  o.report_frames = 1'000'000;
  leakguard::set_options(o);
  CHECK(leakguard::options().report_frames == leakguard::max_report_frames);
}

TEST_CASE("parse_options: a key without '=' is an error naming it") {
  std::string errors;
  const auto o = leakguard::parse_options("stack_depth:on_leak=log", {}, &errors);
  CHECK(o.stack_depth == 16);
  CHECK(o.on_leak == leak_action::log);
  CHECK(lgt::contains(errors, "stack_depth"));
  CHECK(count_lines(errors) == 1);
}

TEST_CASE("parse_options: two bad items give two error lines") {
  std::string errors;
  const auto o = leakguard::parse_options("first_bad=1:stack_depth=7:second_bad=2", {}, &errors);
  CHECK(o.stack_depth == 7);
  CHECK(count_lines(errors) == 2);
  CHECK(lgt::contains(errors, "first_bad"));
  CHECK(lgt::contains(errors, "second_bad"));
  CHECK(errors.find("first_bad") < errors.find("second_bad"));
}

TEST_CASE("parse_options: errors are appended, not overwritten") {
  std::string errors = "earlier line\n";
  (void)leakguard::parse_options("nope=1", {}, &errors);
  CHECK(errors.rfind("earlier line\n", 0) == 0);
  CHECK(lgt::contains(errors, "nope"));
}

TEST_CASE("parse_options: a null errors pointer is allowed with bad input") {
  const auto o = leakguard::parse_options("nope=1:stack_depth=abc:stack_depth=5", {}, nullptr);
  CHECK(o.stack_depth == 5);
}

TEST_CASE("parse_options: a trailing, leading or doubled colon is harmless") {
  std::string errors;
  CHECK(leakguard::parse_options("stack_depth=8:", {}, &errors).stack_depth == 8);
  CHECK(leakguard::parse_options(":stack_depth=9", {}, &errors).stack_depth == 9);
  const auto o = leakguard::parse_options("stack_depth=10::on_leak=log", {}, &errors);
  CHECK(o.stack_depth == 10);
  CHECK(o.on_leak == leak_action::log);
  CHECK(leakguard::parse_options(":", {}, &errors).stack_depth == 16);
  CHECK(errors.empty());
}

TEST_CASE("parse_options: a repeated key takes the last value") {
  std::string errors;
  const auto o = leakguard::parse_options("stack_depth=8:on_leak=log:stack_depth=4:on_leak=abort", {}, &errors);
  CHECK(o.stack_depth == 4);
  CHECK(o.on_leak == leak_action::abort);
  CHECK(errors.empty());
}

TEST_CASE("parse_options: a repeated key whose last value is bad keeps the earlier good one") {
  std::string errors;
  const auto o = leakguard::parse_options("stack_depth=8:stack_depth=abc", {}, &errors);
  CHECK(o.stack_depth == 8);
  CHECK(count_lines(errors) == 1);
}

TEST_CASE("parse_options: report_path keeps everything after the first '='") {
  std::string errors;
  const auto o = leakguard::parse_options("report_path=/tmp/a=b.log:stack_depth=2", {}, &errors);
  CHECK(o.report_path == "/tmp/a=b.log");
  CHECK(o.stack_depth == 2);
  CHECK(errors.empty());
}

TEST_CASE("parse_options: keys are exact (no prefix or case folding)") {
  std::string errors;
  const auto o = leakguard::parse_options("Stack_Depth=4:stack=4:stack_depth_x=4", {}, &errors);
  CHECK(o.stack_depth == 16);
  CHECK(count_lines(errors) == 3);
}

TEST_CASE("parse_options: items may be separated by ',' or whitespace, as in ASAN_OPTIONS") {
  std::string errors;
  auto o = leakguard::parse_options("on_leak=log,stack_depth=4", {}, &errors);
  CHECK(o.on_leak == leak_action::log);
  CHECK(o.stack_depth == 4);
  o = leakguard::parse_options(" report=json \t stack_depth=5\nlog_interval=7 ,, :", {}, &errors);
  CHECK(o.report == report_format::json);
  CHECK(o.stack_depth == 5);
  CHECK(o.log_interval == 7);
  o = leakguard::parse_options("on_leak=log,stack_depth=3:report=json grace_ms=20", {}, &errors);
  CHECK(o.on_leak == leak_action::log);
  CHECK(o.stack_depth == 3);
  CHECK(o.report == report_format::json);
  CHECK(o.grace_ms == 20);
  CHECK(errors.empty());
}

TEST_CASE("parse_options: spaces around '=' are tolerated") {
  std::string errors;
  const auto o = leakguard::parse_options("on_leak = log : stack_depth= 6, report =json", {}, &errors);
  CHECK(o.on_leak == leak_action::log);
  CHECK(o.stack_depth == 6);
  CHECK(o.report == report_format::json);
  CHECK(errors.empty());
}

TEST_CASE("parse_options: a quoted value may contain separators, an unterminated quote is an error") {
  std::string errors;
  auto o = leakguard::parse_options("report_path='/tmp/a b,c:d.log':stack_depth=2", {}, &errors);
  CHECK(o.report_path == "/tmp/a b,c:d.log");
  CHECK(o.stack_depth == 2);
  o = leakguard::parse_options("report_path=\"/tmp/x y\" on_leak=log", {}, &errors);
  CHECK(o.report_path == "/tmp/x y");
  CHECK(o.on_leak == leak_action::log);
  CHECK(errors.empty());
  o = leakguard::parse_options("stack_depth=9:report_path='/tmp/open", {}, &errors);
  CHECK(o.stack_depth == 9);
  CHECK(o.report_path.empty());
  CHECK(count_lines(errors) == 1);
  CHECK(lgt::contains(errors, "missing closing quote in 'report_path='/tmp/open'"));
}

TEST_CASE("parse_options: a key followed by a separator before '=' is a key without a value") {
  std::string errors;
  const auto o = leakguard::parse_options("stack_depth 4,on_leak=log", {}, &errors);
  CHECK(o.stack_depth == 16);
  CHECK(o.on_leak == leak_action::log);
  CHECK(count_lines(errors) == 2);
  CHECK(lgt::contains(errors, "missing '=' in 'stack_depth'"));
  CHECK(lgt::contains(errors, "missing '=' in '4'"));
}

TEST_CASE("parse_options: thousands of bad items name the first 16 and count the rest, good items apply") {
  std::string text;
  for (int i = 0; i < 65000; ++i) text += "bad" + std::to_string(i) + "=1:";
  text += "stack_depth=5";
  std::string errors;
  const auto o = leakguard::parse_options(text, {}, &errors);
  CHECK(o.stack_depth == 5);
  CHECK(count_lines(errors) == 17);
  CHECK(lgt::contains(errors, "'bad0=1'"));
  CHECK(lgt::contains(errors, "'bad15=1'"));
  CHECK_FALSE(lgt::contains(errors, "'bad16=1'"));
  CHECK(lgt::contains(errors, "leakguard: LEAKGUARD_OPTIONS: 64984 more bad items ignored\n"));
}

TEST_CASE("parse_options: a huge bad item is named by its first 200 characters") {
  std::string errors;
  const std::string item = "k=" + std::string(100000, 'x');
  (void)leakguard::parse_options(item, {}, &errors);
  CHECK(count_lines(errors) == 1);
  CHECK(errors.size() < 300);
  CHECK(lgt::contains(errors, "'k=" + std::string(198, 'x') + "...' ignored"));
}

// ---- options() / set_options() ------------------------------------------------------

TEST_CASE("set_options replaces the settings in force and options() reads them back") {
  lgt::options_guard restore;
  runtime_options o;
  o.stack_depth = 5;
  o.on_leak = leak_action::log;
  o.report = report_format::json;
  o.report_path = "/tmp/never-written-by-this-test";
  leakguard::set_options(o);
  CHECK(same(leakguard::options(), o));
  leakguard::set_options(restore.saved());
  CHECK(same(leakguard::options(), restore.saved()));
}

TEST_CASE("set_options keeps stack_depth within 0..64") {
  lgt::options_guard restore;
  runtime_options o;
  o.stack_depth = 1000;
  leakguard::set_options(o);
  CHECK(leakguard::options().stack_depth >= 0);
  CHECK(leakguard::options().stack_depth <= 64);
  o.stack_depth = -5;
  leakguard::set_options(o);
  CHECK(leakguard::options().stack_depth >= 0);
  CHECK(leakguard::options().stack_depth <= 64);
}

// ---- what the settings do ---------------------------------------------------------

TEST_CASE("stack_depth=0: blocks are reported with the few frames that name their line") {
  lgt::options_guard restore;
  runtime_options o = leakguard::options();
  o.stack_depth = 0;
  leakguard::set_options(o);
  lgt::capture_reports captured;
  int* p = nullptr;
  int line = 0;
  {
    leakguard::scope s("no stacks");
    line = __LINE__ + 1;
    p = keep(new int(1));
  }
  REQUIRE(captured.reports.size() == 1);
  REQUIRE(captured.reports[0].blocks().size() == 1);
  const auto& b = captured.reports[0].blocks()[0];
  CHECK(b.address == p);
  CHECK(b.size == sizeof(int));
  CHECK(lgt::return_addresses(b.stack) <= 6);
  INFO("site: ", b.site);
  CHECK(lgt::site_is(b.site, __FILE__, line));
  delete p;
}

TEST_CASE("stack_depth=N caps the captured stack at N frames") {
  lgt::options_guard restore;
  runtime_options o = leakguard::options();
  o.stack_depth = 4;
  leakguard::set_options(o);
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::scope s;
    p = keep(new int(1));
  }
  REQUIRE(captured.reports.size() == 1);
  CHECK(captured.reports[0].blocks()[0].stack.size() <= 4);
  delete p;
}

TEST_CASE("stack_depth=1 still names the allocating line as the site") {
  lgt::options_guard restore;
  runtime_options o = leakguard::options();
  o.stack_depth = 1;
  leakguard::set_options(o);
  lgt::capture_reports captured;
  int* p = nullptr;
  int line = 0;
  {
    leakguard::scope s;
    line = __LINE__ + 1;
    p = keep(new int(1));
  }
  REQUIRE(captured.reports.size() == 1);
  const auto& b = captured.reports[0].blocks()[0];
  INFO("site: ", b.site);
  CHECK(b.stack.size() <= 1);
  CHECK(lgt::site_is(b.site, __FILE__, line));
  delete p;
}

TEST_CASE("stack_depth=64 works and captures deep stacks") {
  lgt::options_guard restore;
  runtime_options o = leakguard::options();
  o.stack_depth = 64;
  leakguard::set_options(o);
  lgt::capture_reports captured;
  int* p = nullptr;
  {
    leakguard::scope s;
    p = keep(new int(1));
  }
  REQUIRE(captured.reports.size() == 1);
  const auto& stack = captured.reports[0].blocks()[0].stack;
  CHECK_FALSE(stack.empty());
  CHECK(stack.size() <= 64);
  CHECK(lgt::frame_index(stack, "main") >= 0);  // deep enough to reach main
  delete p;
}

TEST_CASE("a stack_depth change applies to allocations made after it") {
  lgt::options_guard restore;
  lgt::capture_reports captured;
  int* with_stack = nullptr;
  int* without_stack = nullptr;
  {
    leakguard::scope s;
    with_stack = keep(new int(1));
    runtime_options o = leakguard::options();
    o.stack_depth = 1;
    leakguard::set_options(o);
    without_stack = keep(new int(2));
  }
  REQUIRE(captured.reports.size() == 1);
  const auto* a = lgt::find_block(captured.reports[0], with_stack);
  const auto* b = lgt::find_block(captured.reports[0], without_stack);
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(lgt::return_addresses(a->stack) > 1);
  CHECK(lgt::return_addresses(b->stack) == 1);
  delete with_stack;
  delete without_stack;
}

TEST_CASE("report_path: log_leak appends reports to the file") {
  lgt::temp_file file;
  file.write("preexisting line\n");
  lgt::options_guard restore;
  runtime_options o = leakguard::options();
  o.on_leak = leak_action::log;
  o.report = report_format::text;
  o.report_path = file.path();
  leakguard::set_options(o);
  lgt::leak_handler_guard handler(leakguard::log_leak);
  int* a = nullptr;
  int* b = nullptr;
  int line_a = 0, line_b = 0;
  {
    leakguard::scope s("first to file");
    line_a = __LINE__ + 1;
    a = keep(new int(1));
  }
  {
    leakguard::scope s("second to file");
    line_b = __LINE__ + 1;
    b = keep(new int(2));
  }
  leakguard::flush();  // on_leak=log: reports are written on leakguard's thread
  const std::string text = file.read();
  INFO("file:\n", text);
  CHECK(text.rfind("preexisting line\n", 0) == 0);
  CHECK(lgt::contains(text, "first to file"));
  CHECK(lgt::contains(text, "second to file"));
  CHECK(text.find("first to file") < text.find("second to file"));
  CHECK(lgt::find_file_line(text, __FILE__, line_a) != std::string::npos);
  CHECK(lgt::find_file_line(text, __FILE__, line_b) != std::string::npos);
  delete a;
  delete b;
}

TEST_CASE("report_path: nothing goes to stderr when a path is set") {
  lgt::temp_file file;
  const std::string path = file.path();
  auto result = lgt::run_in_child([path] {
    runtime_options o;
    o.on_leak = leak_action::log;
    o.report_path = path;
    leakguard::set_options(o);
    leakguard::set_leak_handler(leakguard::log_leak);
    leakguard::scope s("quiet on stderr");
    (void)keep(new char[4242]);
  });
  INFO(result.describe());
  CHECK(result.ok());
  CHECK_FALSE(lgt::contains(result.err, "quiet on stderr"));
  CHECK(lgt::contains(file.read(), "quiet on stderr"));
}

TEST_CASE("report_path that cannot be opened: the report still reaches stderr and nothing crashes") {
  auto result = lgt::run_in_child([] {
    runtime_options o;
    o.on_leak = leak_action::log;
    o.report_path = "/nonexistent-directory-for-leakguard/x.log";
    leakguard::set_options(o);
    leakguard::set_leak_handler(leakguard::log_leak);
    { leakguard::scope s("unwritable path"); (void)keep(new char[17]); }
  });
  INFO(result.describe());
  CHECK(result.ok());
  CHECK(lgt::contains(result.err, "unwritable path"));
}

namespace {

// In a child: sets report_path to `path` with on_leak=log and leaks twice.
lgt::child_result leak_twice_to(const std::string& path) {
  return lgt::run_in_child([path] {
    runtime_options o;
    o.on_leak = leak_action::log;
    o.log_interval = 0;
    o.report_path = path;
    leakguard::set_options(o);
    leakguard::set_leak_handler(leakguard::log_leak);
    { leakguard::scope s("first leak"); (void)keep(new char[17]); }
    { leakguard::scope s("second leak"); (void)keep(new char[18]); }
  });
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int count(const std::string& text, std::string_view what) {
  int n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("report_path on a full device: reports reach stderr, and the failure is said once") {
  const auto result = leak_twice_to("/dev/full");
  INFO(result.describe());
  CHECK(result.ok());
  CHECK(lgt::contains(result.err, "first leak"));
  CHECK(lgt::contains(result.err, "second leak"));
  CHECK(count(result.err, "leakguard: cannot write report_path '/dev/full' (No space left on device)") == 1);
}

TEST_CASE("report_path: a new report file is created with mode 0600, whatever the umask") {
  lgt::temp_file dir_marker;
  const std::string path = dir_marker.path() + ".new";
  const mode_t old_mask = ::umask(0);
  const auto result = leak_twice_to(path);
  ::umask(old_mask);
  INFO(result.describe());
  CHECK(result.ok());
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(count(read_file(path), "leak") >= 2);
  ::unlink(path.c_str());
}

TEST_CASE("report_path: a symbolic link is never followed, to an existing file or to create one") {
  lgt::temp_file target;
  target.write("untouched\n");
  const std::string link = target.path() + ".link";
  const std::string missing = target.path() + ".missing";
  const std::string dangling = target.path() + ".dangling";
  REQUIRE(::symlink(target.path().c_str(), link.c_str()) == 0);
  REQUIRE(::symlink(missing.c_str(), dangling.c_str()) == 0);
  for (const std::string& path : {link, dangling}) {
    const auto result = leak_twice_to(path);
    INFO(path, "\n", result.describe());
    CHECK(result.ok());
    CHECK(lgt::contains(result.err, "second leak"));
    CHECK(count(result.err, "leakguard: cannot write report_path '" + path + "'") == 1);
  }
  CHECK(target.read() == "untouched\n");
  struct stat st {};
  CHECK(::lstat(missing.c_str(), &st) != 0);
  ::unlink(link.c_str());
  ::unlink(dangling.c_str());
}

TEST_CASE("report=json makes log_leak print a valid JSON report") {
  auto result = lgt::run_in_child([] {
    runtime_options o;
    o.on_leak = leak_action::log;
    o.report = report_format::json;
    leakguard::set_options(o);
    leakguard::set_leak_handler(leakguard::log_leak);
    { leakguard::scope s("json \"quoted\" label"); (void)keep(new char[2468]); }
  });
  INFO(result.describe());
  REQUIRE(result.ok());
  lgt::json_parser parser(result.err);
  const auto docs = parser.parse_sequence();
  INFO("parse error: ", parser.error());
  REQUIRE(docs.has_value());
  REQUIRE(docs->size() == 1);
  CHECK(lgt::json_has_string((*docs)[0], "json \"quoted\" label"));
  CHECK(lgt::json_has_number((*docs)[0], 2468));
}

TEST_CASE("report=json with report_path appends one valid JSON document per report") {
  lgt::temp_file file;
  lgt::options_guard restore;
  runtime_options o = leakguard::options();
  o.report = report_format::json;
  o.report_path = file.path();
  leakguard::set_options(o);
  lgt::leak_handler_guard handler(leakguard::log_leak);
  int* a = nullptr;
  int* b = nullptr;
  { leakguard::scope s("json one"); a = keep(new int(1)); }
  { leakguard::scope s("json two"); b = keep(new int(2)); }
  leakguard::flush();  // on_leak=log: reports are written on leakguard's thread
  const std::string text = file.read();
  INFO("file:\n", text);
  lgt::json_parser parser(text);
  const auto docs = parser.parse_sequence();
  INFO("parse error: ", parser.error());
  REQUIRE(docs.has_value());
  REQUIRE(docs->size() == 2);
  CHECK(lgt::json_has_string((*docs)[0], "json one"));
  CHECK(lgt::json_has_string((*docs)[1], "json two"));
  // JSON Lines: one record per line, each with its time, pid and sequence number.
  CHECK(count_lines(text) == 2);
  double previous_seq = 0;
  for (const lgt::json_value& d : *docs) {
    REQUIRE(d.type == lgt::json_value::kind::object);
    REQUIRE(d.keys.size() > 3);
    CHECK(d.keys[0] == "time");
    const std::string& time = d.values[0].string;  // 2026-12-05T07:12:30.123456Z
    CHECK(time.size() == 27);
    CHECK(time[4] == '-');
    CHECK(time[10] == 'T');
    CHECK(time[19] == '.');
    CHECK(time.back() == 'Z');
    CHECK(time.substr(0, 2) == "20");
    REQUIRE(d.get("pid") != nullptr);
    CHECK(d.get("pid")->number == static_cast<double>(::getpid()));
    REQUIRE(d.get("seq") != nullptr);
    CHECK(d.get("seq")->number > previous_seq);
    previous_seq = d.get("seq")->number;
    CHECK(d.get("label") != nullptr);
    REQUIRE(d.get("thread") != nullptr);  // the thread that ended the scope: this one
    CHECK(d.get("thread")->number == static_cast<double>(::gettid()));
  }
  delete a;
  delete b;
}

TEST_CASE("on_leak=log makes the default handler report and continue") {
  auto result = lgt::run_in_child([] {
    runtime_options o;
    o.on_leak = leak_action::log;
    leakguard::set_options(o);
    // the handler is left as it was at start-up: the default
    { leakguard::scope s("default handler, log"); (void)keep(new char[3579]); }
    std::fputs("continued\n", stderr);
  });
  INFO(result.describe());
  CHECK(result.ok());
  CHECK(lgt::contains(result.err, "3579"));
  CHECK(lgt::contains(result.err, "continued"));
}

TEST_CASE("on_leak=abort (the default) makes the default handler abort") {
  auto result = lgt::run_in_child([] {
    leakguard::set_options(runtime_options{});
    { leakguard::scope s("default handler, abort"); (void)keep(new char[3580]); }
    std::fputs("continued\n", stderr);
  });
  INFO(result.describe());
  CHECK(result.aborted());
  CHECK(lgt::contains(result.err, "3580"));
  CHECK_FALSE(lgt::contains(result.err, "continued"));
}

}  // TEST_SUITE

// ---- suppressions=FILE --------------------------------------------------------------

namespace {

// Each leaks one block from a function of its own name (noinline: a frame).
[[gnu::noinline]] void* lgt_supp_cache_fill() { return keep(new char[24]); }
[[gnu::noinline]] void* lgt_supp_registry_add() { return keep(new char[25]); }
[[gnu::noinline]] void* lgt_supp_not_listed() { return keep(new char[26]); }

}  // namespace

TEST_CASE("suppressions=FILE: leak: lines are added, comments and blanks skipped, bad lines named with their line") {
  lgt::temp_file file;
  file.write(
      "# suppressions for this test\n"
      "\n"
      "leak:lgt_supp_cache_fill\n"
      "  leak:*lgt_supp_registry_add*  \r\n"
      "race:lgt_supp_not_listed\n"
      "leak:\n"
      "leak:lgt_*_listed\n"
      "leak:/third_party/vendored/");  // last line without '\n'
  const auto result = lgt::run_in_child([&] {
    runtime_options o;
    o.suppressions = file.path();
    leakguard::set_options(o);
    const std::vector<std::string> all = leakguard::suppressions();
    auto has = [&](const char* p) { return std::find(all.begin(), all.end(), p) != all.end(); };
    LGT_CHILD_CHECK(11, has("lgt_supp_cache_fill"));
    LGT_CHILD_CHECK(12, has("lgt_supp_registry_add"));
    LGT_CHILD_CHECK(13, has("/third_party/vendored/"));
    LGT_CHILD_CHECK(14, !has("lgt_supp_not_listed") && !has("lgt_*_listed"));

    lgt::capture_reports captured;
    std::vector<void*> blocks;
    blocks.reserve(4);
    {
      // Retained counts too: this test is about suppressions, and a stale
      // copy of an address somewhere in memory can make a leak look retained.
      leakguard::scope s(leakguard::scope_options{.label = "suppressed", .allow_retained = false});
      blocks.push_back(lgt_supp_cache_fill());
      blocks.push_back(lgt_supp_registry_add());
      blocks.push_back(lgt_supp_not_listed());
    }
    LGT_CHILD_CHECK(15, captured.size() == 1);
    // Only the block no pattern names.
    LGT_CHILD_CHECK(16, captured.reports[0].blocks().size() == 1 && captured.reports[0].blocks()[0].size == 26);
    for (void* p : blocks) delete[] static_cast<char*>(p);
  });
  INFO(result.describe());
  CHECK(result.ok());
  CHECK(count_lines(result.err) == 3);
  CHECK(lgt::contains(result.err, ":5: not a leak:PATTERN line: 'race:lgt_supp_not_listed' ignored"));
  CHECK(lgt::contains(result.err, ":6: empty pattern"));
  CHECK(lgt::contains(result.err, ":7: '*' inside a pattern"));
}

TEST_CASE("suppressions=FILE that cannot be read, or is not a regular file: one line on stderr, nothing else changes") {
  for (const char* path : {"/nonexistent-directory-for-leakguard/leaks.supp", "/dev/zero", "/tmp"}) {
    const std::string p = path;
    const auto result = lgt::run_in_child([p] {
      const std::size_t before = leakguard::suppressions().size();
      runtime_options o;
      o.suppressions = p;
      leakguard::set_options(o);
      LGT_CHILD_CHECK(11, leakguard::suppressions().size() == before);
      LGT_CHILD_CHECK(12, leakguard::options().suppressions == p);
    });
    INFO(path << ": " << result.describe());
    CHECK(result.ok());
    CHECK(count_lines(result.err) == 1);
    CHECK(lgt::contains(result.err, "leakguard: suppressions=" + p + ": cannot read it: "));
  }
}

TEST_CASE("suppressions=FILE: a file of bad lines names the first 16 and counts the rest") {
  lgt::temp_file file;
  std::string text;
  for (int i = 0; i < 40; ++i) text += "interceptor_via_fun:f" + std::to_string(i) + "\n";
  text += "leak:lgt_supp_after_many_bad_lines\n";
  file.write(text);
  const auto result = lgt::run_in_child([&] {
    runtime_options o;
    o.suppressions = file.path();
    leakguard::set_options(o);
    const std::vector<std::string> all = leakguard::suppressions();
    LGT_CHILD_CHECK(11, std::find(all.begin(), all.end(), "lgt_supp_after_many_bad_lines") != all.end());
  });
  INFO(result.describe());
  CHECK(result.ok());
  CHECK(count_lines(result.err) == 17);
  CHECK(lgt::contains(result.err, ": 24 more bad lines ignored"));
}
