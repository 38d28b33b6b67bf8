// http_server — the server pattern: a scope around each handler's body,
// with a grace period, in a small in-process HTTP-like server.
//
// Like a real framework, this one owns what outlives a handler: the
// response object it frees after the handler returns, a writer thread that
// frees the log buffers handlers hand it, a request queue that grows when it
// must, an exception it catches to answer 500. A handler builds a MIME table
// once (a function-local static) and keeps a scratch buffer per worker (a
// thread_local). None of that is a leak. Two routes have bugs:
//
//   /upload   leaks its upload state once in 25 of its requests (a real
//             leak: the state directly, its buffer indirectly);
//   /session  appends one session in 50 to a global list nobody prunes (it
//             grows: retained memory, named by the growth line).
//
// Run with the settings the README shows for servers:
//
//   LEAKGUARD_OPTIONS=on_leak=log:grace_ms=1000 ./build/gcc/examples/http_server
//
// (the program sets them itself when the variable is not set). It checks
// what leakguard found and exits 0 when that is exactly the two bugs. The
// /metrics route serves leakguard::write_metrics() (Prometheus text format).
#include <leakguard.hpp>  // the runtime and operator new: runtime/global_new.cpp

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// ---- the framework ----------------------------------------------------------------------

struct request {
  int id;
  std::string path;
};

struct response {
  int status = 200;
  std::map<std::string, std::string> headers;
  std::string body;
};

// Frees the buffers handlers hand it, a moment later, on its own thread.
class log_writer {
 public:
  log_writer() : thread_([this] { run(); }) {}
  ~log_writer() {
    {
      std::lock_guard g(mutex_);
      stopping_ = true;
    }
    ready_.notify_one();
    thread_.join();
  }
  void write(std::unique_ptr<std::string> line) {
    {
      std::lock_guard g(mutex_);
      queue_.push_back(std::move(line));  // may grow the queue: the queue's memory, kept on purpose
    }
    ready_.notify_one();
  }

 private:
  void run() {
    std::unique_lock g(mutex_);
    for (;;) {
      ready_.wait(g, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      std::unique_ptr<std::string> line = std::move(queue_.front());
      queue_.pop_front();
      g.unlock();
      written_ += line->size();  // "writes" it, then frees it: after the handler's scope ended
      line.reset();
      g.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::unique_ptr<std::string>> queue_;
  bool stopping_ = false;
  std::size_t written_ = 0;
  std::thread thread_;
};

using handler = std::function<void(const request&, response&)>;

class server {
 public:
  server(int workers, std::map<std::string, handler> routes) : routes_(std::move(routes)) {
    for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { work(); });
  }
  ~server() {
    {
      std::lock_guard g(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (std::thread& t : workers_) t.join();
  }
  void submit(request r) {
    {
      std::lock_guard g(mutex_);
      queue_.push_back(std::move(r));
    }
    ready_.notify_one();
  }
  log_writer& log() { return log_; }

 private:
  void work() {
    for (;;) {
      request r;
      {
        std::unique_lock g(mutex_);
        ready_.wait(g, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        r = std::move(queue_.front());
        queue_.pop_front();
      }
      auto res = std::make_unique<response>();  // the framework's: it frees it after the handler
      try {
        routes_.at(r.path)(r, *res);
      } catch (const std::exception& e) {
        res->status = 500;
        res->body = e.what();
      }
      send(*res);
    }
  }
  void send(const response& res) { sent_ += res.body.size() + res.headers.size(); }

  std::map<std::string, handler> routes_;
  log_writer log_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<request> queue_;
  std::vector<std::thread> workers_;
  bool stopping_ = false;
  std::atomic<std::size_t> sent_{0};
};

// ---- the application ----------------------------------------------------------------------

struct upload_state {
  int request_id;
  std::vector<char> chunk;
};

struct session {
  int id;
  std::string user;
};

std::vector<session*> sessions;  // the bug: nothing ever removes a session
std::mutex sessions_mutex;

const std::string& mime_type(const std::string& path) {
  // Built on first use, inside whichever request comes first: kept on purpose.
  static const std::map<std::string, std::string> types = {
      {"/index", "text/html; charset=utf-8"}, {"/upload", "application/json"}, {"/session", "application/json"}};
  static const std::string fallback = "application/octet-stream";
  auto it = types.find(path);
  return it == types.end() ? fallback : it->second;
}

std::string& scratch() {
  thread_local std::string buffer;  // per worker, grows to the largest page: kept on purpose
  return buffer;
}

server* the_server = nullptr;

void page(const request& r, response& res, const std::string& text) {
  LEAKGUARD_SCOPE("handler");  // the natural pattern: around the handler's body
  std::string& buf = scratch();
  buf.assign(text);
  buf.append(static_cast<std::size_t>(r.id % 97) * 8, ' ');
  res.headers["content-type"] = mime_type(r.path);
  res.headers["x-request-id"] = "request-" + std::to_string(r.id);  // outlives the scope: the framework frees it
  res.body = buf;
  the_server->log().write(std::make_unique<std::string>("GET " + r.path + " " + std::to_string(r.id) +
                                                        " served by a handler that logs a long line"));
  if (r.path == "/upload" && r.id % 100 == 1) {
    // LEAK: never freed. (volatile: the optimizer may not drop the allocation.)
    upload_state* volatile state = new upload_state{r.id, std::vector<char>(512)};
    (void)state;
  }
  if (r.path == "/session" && r.id % 200 == 2) {
    std::lock_guard g(sessions_mutex);
    sessions.push_back(new session{r.id, "user-" + std::to_string(r.id) + "-with-a-long-name"});  // GROWS
  }
  if (r.id % 1000 == 999) throw std::runtime_error("the backend timed out while this request waited for it");
}

// A metrics endpoint: what a Prometheus server scrapes. The program keeps
// the last page it served, to print and check it.
std::string served_metrics;
std::mutex served_metrics_mutex;

void metrics(const request&, response& res) {
  std::ostringstream os;
  leakguard::write_metrics(os);
  res.headers["content-type"] = "text/plain; version=0.0.4";
  res.body = os.str();
  std::lock_guard g(served_metrics_mutex);
  served_metrics = res.body;
}

// Records every leak the handler reports (and logs it, as on_leak=log does).
struct tally {
  std::mutex mutex;
  std::size_t direct = 0, indirect = 0, other = 0;
  std::vector<std::string> direct_sites;
};
tally found;

int main() {
  if (!std::getenv("LEAKGUARD_OPTIONS")) {
    leakguard::runtime_options o = leakguard::options();
    o.on_leak = leakguard::leak_action::log;
    o.grace_ms = 1000;  // well above what the framework and the writer take, even on a loaded machine
    leakguard::set_options(o);
  }
  leakguard::set_leak_handler([](const leakguard::report& r) {
    leakguard::log_leak(r);
    std::lock_guard g(found.mutex);
    for (const leakguard::leaked_block& b : r.blocks()) {
      if (b.kind == leakguard::leak_kind::direct) {
        ++found.direct;
        if (found.direct_sites.empty() || found.direct_sites.back() != b.site) found.direct_sites.push_back(b.site);
      } else if (b.kind == leakguard::leak_kind::indirect) {
        ++found.indirect;
      } else {
        ++found.other;
      }
    }
  });
  sessions.reserve(1000);

  constexpr int requests = 20000;
  {
    server s(4, {{"/index", [](const request& r, response& res) { page(r, res, "<html>index</html>"); }},
                 {"/upload", [](const request& r, response& res) { page(r, res, "{\"uploaded\":true}"); }},
                 {"/session", [](const request& r, response& res) { page(r, res, "{\"session\":\"new\"}"); }}});
    the_server = &s;
    const char* paths[] = {"/index", "/upload", "/session", "/index"};
    for (int i = 0; i < requests; ++i) s.submit({i, paths[i % 4]});
  }  // drains the queue and joins the workers and the writer
  leakguard::flush();  // verdicts still within their grace period

  std::size_t expected_leaks = 0;  // /upload requests (ids 4k + 1) with id % 100 == 1
  for (int i = 0; i < requests; ++i) expected_leaks += (i % 4 == 1 && i % 100 == 1);

  {
    server admin(1, {{"/metrics", metrics}});
    admin.submit({requests, "/metrics"});
  }
  // The leak counters: one line per scope label and site.
  bool metrics_as_expected = false;
  std::istringstream page_lines(served_metrics);
  for (std::string line; std::getline(page_lines, line);) {
    if (!line.starts_with("leakguard_leak_reports_total{")) continue;
    std::printf("metrics: %s\n", line.c_str());
    metrics_as_expected = line.starts_with("leakguard_leak_reports_total{scope=\"handler\",site=\"") &&
                          line.ends_with("\"} " + std::to_string(expected_leaks));
  }
  std::size_t growing_sessions = 0;
  for (const leakguard::retained_site& site : leakguard::retained_sites()) {
    std::printf("retained: %s: %zu blocks, %zu bytes, added by %llu scopes%s\n", site.site.c_str(), site.live_blocks,
                site.live_bytes, static_cast<unsigned long long>(site.scopes), site.growing ? ", growing" : "");
    if (site.growing) ++growing_sessions;
  }
  std::printf("http_server: %d requests: %zu direct leaks (%zu expected), %zu indirect, %zu other; %zu growing retained sites\n",
              requests, found.direct, expected_leaks, found.indirect, found.other, growing_sessions);
  for (session* s : sessions) delete s;
  const bool as_expected = found.direct == expected_leaks && found.indirect == expected_leaks && found.other == 0 &&
                           found.direct_sites.size() == 1 && growing_sessions >= 1 && metrics_as_expected;
  return as_expected ? 0 : 1;
}
