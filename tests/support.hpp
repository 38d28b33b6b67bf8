// tests/support.hpp — helpers shared by leakguard's doctest suites.
//
// Rules the suites follow (see each helper):
//  - doctest allocates: never run a CHECK inside a measured scope; capture
//    plain values inside, end the scope, then CHECK.
//  - every test that expects a leak installs a `capture_reports` first (the
//    default handler aborts); every test that changes global state restores it.
//  - anything expected to abort (or that might corrupt the heap if the library
//    is wrong) runs in a forked child via `run_in_child`.
#pragma once

#include <doctest/doctest.h>
#include <leakguard.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lgt {

// ---- ThreadSanitizer ----------------------------------------------------------
// leakguard recognises a double free by reading the freed block's header;
// ThreadSanitizer reports that read as heap-use-after-free and exits first.
// Under TSan a double free is TSan's to report: tests of that diagnosis are
// skipped there (`* doctest::skip(lgt::under_tsan)`), and run everywhere else.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool under_tsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool under_tsan = true;
#else
inline constexpr bool under_tsan = false;
#endif
#else
inline constexpr bool under_tsan = false;
#endif

// AddressSanitizer: its allocator, under leakguard's, takes locks of its own.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool under_asan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool under_asan = true;
#else
inline constexpr bool under_asan = false;
#endif
#else
inline constexpr bool under_asan = false;
#endif

// ---- keeping the optimiser honest --------------------------------------------
// Since C++14 a compiler may elide a new/delete pair whose pointer never escapes
// (clang and g++ do, even with replaced operators). Passing the pointer through
// an opaque asm makes it escape, so the allocation really happens.
template <class T>
inline T* keep(T* p) noexcept {
  asm volatile("" : : "r"(p) : "memory");
  return p;
}

inline bool aligned(const void* p, std::size_t alignment) noexcept {
  return reinterpret_cast<std::uintptr_t>(p) % alignment == 0;
}

// Writes and reads back every byte: the memory is usable.
inline bool usable(void* p, std::size_t size) noexcept {
  auto* bytes = static_cast<unsigned char*>(keep(p));
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<unsigned char>(i * 7 + 1);
  asm volatile("" ::: "memory");
  for (std::size_t i = 0; i < size; ++i)
    if (bytes[i] != static_cast<unsigned char>(i * 7 + 1)) return false;
  return true;
}

// Placed after the last call of a function, keeps that call from becoming a
// tail call (which would drop the caller's frame from a captured stack).
inline void no_tail_call() noexcept { asm volatile("" ::: "memory"); }

// ---- file names, sites, stacks -----------------------------------------------
constexpr std::string_view base_name(std::string_view path) noexcept {
  const std::size_t slash = path.find_last_of('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// True when `site` is "<some path>/<base name of file>:<line>". Allocation-free,
// so it may be called inside a measured scope.
inline bool site_is(std::string_view site, std::string_view file, int line) noexcept {
  char buf[24];
  const int n = std::snprintf(buf, sizeof buf, ":%d", line);
  const std::string_view suffix(buf, static_cast<std::size_t>(n));
  if (site.size() <= suffix.size() || site.substr(site.size() - suffix.size()) != suffix) return false;
  return base_name(site.substr(0, site.size() - suffix.size())) == base_name(file);
}

// "scope_test.cpp:42" for use in messages and text searches.
inline std::string file_line(std::string_view file, int line) {
  return std::string(base_name(file)) + ":" + std::to_string(line);
}

// Finds "<base name>:<line>" in `text` not followed by another digit (so that
// line 12 does not match "x.cpp:123"). Returns npos when absent.
inline std::size_t find_file_line(std::string_view text, std::string_view file, int line) {
  const std::string needle = file_line(file, line);
  for (std::size_t pos = text.find(needle); pos != std::string_view::npos;
       pos = text.find(needle, pos + 1)) {
    const std::size_t end = pos + needle.size();
    if (end == text.size() || !std::isdigit(static_cast<unsigned char>(text[end]))) return pos;
  }
  return std::string_view::npos;
}

inline bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

inline bool contains_nocase(std::string_view haystack, std::string_view needle) {
  return contains(lower(haystack), lower(needle));
}

// Index of the first frame whose function name contains `needle` or whose
// file's base name equals it; -1 when none does.
inline int frame_index(const std::vector<leakguard::frame>& stack, std::string_view needle) {
  for (std::size_t i = 0; i < stack.size(); ++i) {
    if (contains(stack[i].function, needle) || base_name(stack[i].file) == needle)
      return static_cast<int>(i);
  }
  return -1;
}

inline const leakguard::leaked_block* find_block(const leakguard::report& r, const void* address) {
  for (const leakguard::leaked_block& b : r.blocks())
    if (b.address == address) return &b;
  return nullptr;
}

// The block whose [address, address + size) contains p (for new T[n] with a
// cookie, and for make_shared's combined control block).
inline const leakguard::leaked_block* find_block_containing(const leakguard::report& r,
                                                           const void* p) {
  const auto* c = static_cast<const char*>(p);
  for (const leakguard::leaked_block& b : r.blocks()) {
    const auto* a = static_cast<const char*>(b.address);
    if (a <= c && c < a + b.size) return &b;
  }
  return nullptr;
}

// ---- capturing handlers (RAII, restore the previous one) ------------------------
// Collects every report handed to the leak handler. Thread-safe: handlers run
// on whichever thread ends the scope.
class report_sink {
 public:
  report_sink() = default;
  report_sink(const report_sink&) = delete;
  report_sink& operator=(const report_sink&) = delete;

  // A handler that appends to this sink (for scope_options::handler).
  leakguard::leak_handler handler() {
    return [this](const leakguard::report& r) {
      std::lock_guard<std::mutex> g(mutex_);
      reports.push_back(r);  // never attributed to a scope, by contract
    };
  }
  std::size_t size() {
    std::lock_guard<std::mutex> g(mutex_);
    return reports.size();
  }

  std::vector<leakguard::report> reports;

 private:
  std::mutex mutex_;
};

// Installs a capturing global leak handler for its lifetime.
class capture_reports : public report_sink {
 public:
  capture_reports() : previous_(leakguard::set_leak_handler(handler())) {}
  ~capture_reports() { leakguard::set_leak_handler(std::move(previous_)); }

 private:
  leakguard::leak_handler previous_;
};

// Installs a global leak handler for its lifetime.
class leak_handler_guard {
 public:
  explicit leak_handler_guard(leakguard::leak_handler h)
      : previous_(leakguard::set_leak_handler(std::move(h))) {}
  ~leak_handler_guard() { leakguard::set_leak_handler(std::move(previous_)); }
  leak_handler_guard(const leak_handler_guard&) = delete;
  leak_handler_guard& operator=(const leak_handler_guard&) = delete;

 private:
  leakguard::leak_handler previous_;
};

// Installs a misuse handler that records (and returns) for its lifetime.
class capture_misuse {
 public:
  capture_misuse()
      : previous_(leakguard::set_misuse_handler([this](const leakguard::misuse& m) {
          std::lock_guard<std::mutex> g(mutex_);
          events.push_back(m);
        })) {}
  ~capture_misuse() { leakguard::set_misuse_handler(std::move(previous_)); }
  capture_misuse(const capture_misuse&) = delete;
  capture_misuse& operator=(const capture_misuse&) = delete;

  std::vector<leakguard::misuse> events;

 private:
  std::mutex mutex_;
  leakguard::misuse_handler previous_;
};

// Restores the runtime options in force at construction.
class options_guard {
 public:
  options_guard() : saved_(leakguard::options()) {}
  ~options_guard() { leakguard::set_options(saved_); }
  options_guard(const options_guard&) = delete;
  options_guard& operator=(const options_guard&) = delete;
  const leakguard::runtime_options& saved() const { return saved_; }

 private:
  leakguard::runtime_options saved_;
};

// ---- child processes --------------------------------------------------------------
struct child_result {
  bool exited = false;  // true: normal exit with exit_code; false: killed by signal
  int exit_code = -1;
  int signal = 0;
  std::string err;  // everything the child wrote to stderr

  bool aborted() const { return !exited && signal == SIGABRT; }
  bool ok() const { return exited && exit_code == 0; }
  std::string describe() const {
    std::string s = exited ? "exit code " + std::to_string(exit_code)
                           : "signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
    return s + "; stderr:\n" + err;
  }
};

// How many times `part` occurs in `s`.
inline std::size_t count_of(const std::string& s, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = s.find(part); at != std::string::npos; at = s.find(part, at + 1)) ++n;
  return n;
}

// Return addresses in a symbolized stack (inlined frames share theirs).
inline std::size_t return_addresses(const std::vector<leakguard::frame>& stack) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < stack.size(); ++i) n += i == 0 || stack[i].pc != stack[i - 1].pc;
  return n;
}

// Forks; the child sends its stderr into a pipe, runs `body`, gives the
// verdicts and reports still pending as exit would (leakguard::flush()), and
// _exit(0)s (an escaping exception exits 99). The parent collects stderr and
// waits.
// The child gets no core dump and a 60 s alarm so a deadlock cannot hang the suite.
inline child_result run_in_child(const std::function<void()>& body) {
  std::fflush(stdout);
  std::fflush(stderr);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[1]);
    // doctest catches fatal signals to report a crashed test case: in the
    // child, an abort must be an abort.
    for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTERM, SIGALRM})
      std::signal(sig, SIG_DFL);
    struct rlimit no_core = {0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::alarm(60);
    try {
      body();
      leakguard::flush();
    } catch (...) {
      std::fflush(stderr);
      ::_exit(99);
    }
    std::fflush(stderr);
    ::_exit(0);
  }
  ::close(fds[1]);
  child_result result;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      result.err.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    result.exited = true;
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

// In a child: fail with a message on stderr and a distinct exit code.
[[noreturn]] inline void child_fail(int code, const char* what) {
  std::fprintf(stderr, "child check failed: %s\n", what);
  std::fflush(stderr);
  ::_exit(code);
}
#define LGT_CHILD_CHECK(code, cond) \
  do {                              \
    if (!(cond)) ::lgt::child_fail((code), #cond); \
  } while (0)

// ---- temporary files ------------------------------------------------------------
class temp_file {
 public:
  temp_file() {
    char name[] = "/tmp/leakguard_test_XXXXXX";
    const int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    ::close(fd);
    path_ = name;
  }
  ~temp_file() { ::unlink(path_.c_str()); }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;

  const std::string& path() const { return path_; }
  void write(std::string_view text) const {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << text;
  }
  std::string read() const {
    std::ifstream in(path_, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::string path_;
};

// ---- a small, strict JSON parser (RFC 8259) ---------------------------------------
struct json_value {
  enum class kind { null, boolean, number, string, array, object };
  kind type = kind::null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<json_value> items;                              // array
  // object members, in order: keys[i] names values[i] (two vectors, because a
  // std::pair of the incomplete json_value is not allowed in a vector)
  std::vector<std::string> keys;
  std::vector<json_value> values;

  const json_value* get(std::string_view key) const {
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return &values[i];
    return nullptr;
  }
};

class json_parser {
 public:
  explicit json_parser(std::string_view text) : text_(text) {}

  // Parses exactly one value followed only by whitespace.
  std::optional<json_value> parse_document() {
    skip_ws();
    auto v = parse_value(0);
    if (!v) return std::nullopt;
    skip_ws();
    if (pos_ != text_.size()) return fail("trailing characters after the JSON value");
    return v;
  }

  // Parses one or more values separated by whitespace (JSON Lines / appended
  // reports). Empty input is an error.
  std::optional<std::vector<json_value>> parse_sequence() {
    std::vector<json_value> values;
    skip_ws();
    while (pos_ < text_.size()) {
      auto v = parse_value(0);
      if (!v) return std::nullopt;
      values.push_back(std::move(*v));
      skip_ws();
    }
    if (values.empty()) {
      fail("no JSON value");
      return std::nullopt;
    }
    return values;
  }

  const std::string& error() const { return error_; }

 private:
  std::nullopt_t fail(const std::string& what) {
    if (error_.empty()) error_ = what + " at offset " + std::to_string(pos_);
    return std::nullopt;
  }
  void skip_ws() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  std::optional<json_value> parse_value(int depth) {
    if (depth > 200) return fail("nesting too deep");
    if (pos_ >= text_.size()) return fail("unexpected end");
    json_value v;
    const char c = text_[pos_];
    if (c == '{') return parse_object(depth);
    if (c == '[') return parse_array(depth);
    if (c == '"') {
      auto s = parse_string();
      if (!s) return std::nullopt;
      v.type = json_value::kind::string;
      v.string = std::move(*s);
      return v;
    }
    if (literal("true")) {
      v.type = json_value::kind::boolean;
      v.boolean = true;
      return v;
    }
    if (literal("false")) {
      v.type = json_value::kind::boolean;
      return v;
    }
    if (literal("null")) return v;
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
    return fail(std::string("unexpected character '") + c + "'");
  }
  std::optional<json_value> parse_number() {
    const std::size_t start = pos_;
    auto digit = [&] { return pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9'; };
    if (text_[pos_] == '-') ++pos_;
    if (!digit()) return fail("bad number");
    if (text_[pos_] == '0') {
      ++pos_;
      if (digit()) return fail("leading zero in number");
    } else {
      while (digit()) ++pos_;
    }
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      if (!digit()) return fail("bad fraction");
      while (digit()) ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (!digit()) return fail("bad exponent");
      while (digit()) ++pos_;
    }
    json_value v;
    v.type = json_value::kind::number;
    v.number = std::strtod(std::string(text_.substr(start, pos_ - start)).c_str(), nullptr);
    return v;
  }
  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  std::optional<unsigned> hex4() {
    if (pos_ + 4 > text_.size()) return std::nullopt;
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = text_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
      else return std::nullopt;
    }
    return v;
  }
  std::optional<std::string> parse_string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) {
        fail("unterminated string");
        return std::nullopt;
      }
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) {
        fail("raw control character in string");
        return std::nullopt;
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) {
        fail("unterminated escape");
        return std::nullopt;
      }
      const char e = text_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          auto cp = hex4();
          if (!cp) {
            fail("bad \\u escape");
            return std::nullopt;
          }
          unsigned code = *cp;
          if (code >= 0xD800 && code <= 0xDBFF) {
            if (!literal("\\u")) {
              fail("lone high surrogate");
              return std::nullopt;
            }
            auto low = hex4();
            if (!low || *low < 0xDC00 || *low > 0xDFFF) {
              fail("bad low surrogate");
              return std::nullopt;
            }
            code = 0x10000 + ((code - 0xD800) << 10) + (*low - 0xDC00);
          } else if (code >= 0xDC00 && code <= 0xDFFF) {
            fail("lone low surrogate");
            return std::nullopt;
          }
          append_utf8(out, code);
          break;
        }
        default:
          fail(std::string("bad escape \\") + e);
          return std::nullopt;
      }
    }
  }
  std::optional<json_value> parse_array(int depth) {
    ++pos_;
    json_value v;
    v.type = json_value::kind::array;
    skip_ws();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      return v;
    }
    while (true) {
      skip_ws();
      auto item = parse_value(depth + 1);
      if (!item) return std::nullopt;
      v.items.push_back(std::move(*item));
      skip_ws();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
        return v;
      }
      return fail("expected ',' or ']'");
    }
  }
  std::optional<json_value> parse_object(int depth) {
    ++pos_;
    json_value v;
    v.type = json_value::kind::object;
    skip_ws();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      return v;
    }
    while (true) {
      skip_ws();
      if (pos_ >= text_.size() || text_[pos_] != '"') return fail("expected a key");
      auto key = parse_string();
      if (!key) return std::nullopt;
      skip_ws();
      if (pos_ >= text_.size() || text_[pos_] != ':') return fail("expected ':'");
      ++pos_;
      skip_ws();
      auto value = parse_value(depth + 1);
      if (!value) return std::nullopt;
      v.keys.push_back(std::move(*key));
      v.values.push_back(std::move(*value));
      skip_ws();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
        return v;
      }
      return fail("expected ',' or '}'");
    }
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::string error_;
};

// Is there a string anywhere in `v` (value or key) for which pred holds?
template <class Pred>
bool json_any_string(const json_value& v, const Pred& pred) {
  switch (v.type) {
    case json_value::kind::string:
      return pred(v.string);
    case json_value::kind::array:
      for (const auto& i : v.items)
        if (json_any_string(i, pred)) return true;
      return false;
    case json_value::kind::object:
      for (std::size_t i = 0; i < v.keys.size(); ++i)
        if (pred(v.keys[i]) || json_any_string(v.values[i], pred)) return true;
      return false;
    default:
      return false;
  }
}

inline bool json_has_string(const json_value& v, std::string_view s) {
  return json_any_string(v, [&](const std::string& x) { return x == s; });
}

inline bool json_has_number(const json_value& v, double n) {
  switch (v.type) {
    case json_value::kind::number:
      return v.number == n;
    case json_value::kind::array:
      for (const auto& i : v.items)
        if (json_has_number(i, n)) return true;
      return false;
    case json_value::kind::object:
      for (const auto& m : v.values)
        if (json_has_number(m, n)) return true;
      return false;
    default:
      return false;
  }
}

}  // namespace lgt
