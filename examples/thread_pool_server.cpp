// thread_pool_server — per-request scopes in a multi-threaded server.
//
// Requests arrive on an acceptor thread and are handled by a small thread
// pool. Each request's scope opens on the worker that handles it; work the
// handler hands to a second pool (here: "render" jobs) adopts the request's
// context, so blocks allocated there count for the request too. One rare
// request type appends an audit entry to a global list that nothing ever
// prunes: not a leak of the request (a global reaches it: retained), but
// memory that keeps growing. In on_leak=log mode a line names the site when
// it is seen to grow, and retained_sites() gives the figures a metrics
// endpoint would export.
#include <leakguard.hpp>  // the runtime and operator new: runtime/global_new.cpp

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

// A minimal fixed-size thread pool.
class thread_pool {
 public:
  explicit thread_pool(int threads) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { run(); });
  }
  ~thread_pool() {
    {
      std::lock_guard<std::mutex> g(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (std::thread& t : workers_) t.join();
  }
  void submit(std::function<void()> job) {
    // The queue's storage belongs to the pool, not to the request that
    // happens to grow it: never charge it to the caller's scope.
    LEAKGUARD_IGNORE_SCOPE();
    {
      std::lock_guard<std::mutex> g(mutex_);
      jobs_.push_back(std::move(job));
    }
    ready_.notify_one();
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> g(mutex_);
        ready_.wait(g, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> workers_;
  bool stopping_ = false;
};

struct request {
  int id;
  std::string path;
};

struct audit_entry {
  int request_id;
  std::string note;
};

// The bug: audit entries for /export are meant to be queued for a writer
// that this build never starts; they pile up here.
std::vector<audit_entry*> forgotten;  // never pruned
std::mutex forgotten_mutex;

std::string render(const request& r) { return "<html>" + r.path + std::string(200, ' ') + "</html>"; }

void handle(const request& r, thread_pool& renderers) {
  LEAKGUARD_SCOPE("handle request");
  // Rendering runs on another pool; adopt makes its allocations the request's.
  // The job lives on this stack and the closure holds one pointer, so
  // std::function stores it inline: nothing of the request outlives it.
  struct render_job {
    leakguard::context ctx;
    const request* r;
    std::promise<std::string> page;
  } job{leakguard::current_context(), &r, {}};
  std::future<std::string> done = job.page.get_future();
  renderers.submit([&job] {
    leakguard::adopt a{job.ctx};
    job.page.set_value(render(*job.r));
  });
  std::string body = done.get();
  if (r.path == "/export") {
    auto* entry = new audit_entry{r.id, "exported " + std::to_string(body.size()) + " bytes"};
    std::lock_guard<std::mutex> g(forgotten_mutex);
    forgotten.push_back(entry);  // the vector lives outside the request: the entry is retained, and piles up
  }
}

int main() {
  {
    // Production settings from code (LEAKGUARD_OPTIONS does the same):
    leakguard::runtime_options o = leakguard::options();
    o.on_leak = leakguard::leak_action::log;
    o.log_interval = 1;  // after a site's first report, one summary line per second at most
    // o.sample_bytes = 1 << 20;  // stacks for a sample of allocations only; counts stay exact
    leakguard::set_options(o);
  }
  forgotten.reserve(1000);  // outside any request
  {
    thread_pool renderers(2);  // declared first: outlives the handlers that wait on it
    thread_pool handlers(2);
    for (int i = 0; i < 2000; ++i) {
      handlers.submit([i, &renderers] {
        const request r{i, i % 100 == 99 ? "/export" : "/index"};
        handle(r, renderers);
      });
    }
  }  // joins: every request handled
  leakguard::flush();  // on_leak=log: verdicts are given on leakguard's thread; all of them now

  // What a metrics endpoint would export: the audit entry and its string,
  // 20 of each (one per /export request), growing (one site or two: an
  // optimizer may give both allocations the same line).
  std::size_t growing = 0, blocks = 0;
  for (const leakguard::retained_site& s : leakguard::retained_sites()) {
    std::printf("metrics: retained at %s: %zu blocks, %zu bytes, added by %llu requests%s\n", s.site.c_str(),
                s.live_blocks, s.live_bytes, static_cast<unsigned long long>(s.scopes), s.growing ? ", growing" : "");
    growing += s.growing;
    blocks += s.live_blocks;
  }
  std::printf("thread_pool_server: 2000 requests on 2+2 threads, %zu blocks retained (40 expected), "
              "%zu growing sites, %zu leaks\n",
              blocks, growing, leakguard::leak_sites().size());
  const bool as_expected = blocks == 40 && growing >= 1 && leakguard::leak_sites().empty();
  for (audit_entry* e : forgotten) delete e;
  return as_expected ? 0 : 1;
}
