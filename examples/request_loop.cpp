// request_loop — why a per-request scope matters in a long-running server.
//
// A server handles millions of requests; one rare request type leaks a few
// bytes each time. Nothing fails: the process grows for weeks until the OOM
// killer ends it, and Valgrind or LeakSanitizer would only say so at exit.
// With LEAKGUARD_SCOPE around the handler, the first leaking request is
// reported, with the line that allocated, while the server keeps serving.
#include <leakguard.hpp>  // the runtime and operator new: runtime/global_new.cpp

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

enum class kind { get, put, subscribe };

struct request {
  kind type;
  std::string key;
  std::string body;
};

struct subscription {
  std::string topic;
  std::vector<std::string> filters;
};

class server {
 public:
  std::string handle(const request& r) {
    // One scope per request: did this request free what it allocated?
    LEAKGUARD_SCOPE("handle request");
    switch (r.type) {
      case kind::get: {
        auto it = store_.find(r.key);
        return it == store_.end() ? "404" : it->second;
      }
      case kind::put:
        store_[r.key] = r.body;  // owned by the store, but see below
        store_.erase(r.key);     // this demo keeps the store empty between requests
        return "201";
      case kind::subscribe: {
        // The bug: the subscription is meant to be handed to a registry,
        // which this code path forgets to do. 60-odd bytes per request.
        auto* s = new subscription{r.key, {r.body}};
        if (s->filters.size() > 1) delete s;
        return "200";
      }
    }
    return "400";
  }

 private:
  std::map<std::string, std::string> store_;
};

int main() {
  int leaking_requests = 0;
  // Production setting: log and keep serving (LEAKGUARD_OPTIONS=on_leak=log
  // does the same without code). Here we also count, as a metrics hook would.
  leakguard::set_leak_handler([&](const leakguard::report& r) {
    if (++leaking_requests == 1) leakguard::log_leak(r);  // the full report once
  });

  server s;
  for (int i = 0; i < 10000; ++i) {
    const kind type = i % 1000 == 999 ? kind::subscribe : (i % 2 ? kind::get : kind::put);
    s.handle(request{type, "key" + std::to_string(i % 10), std::string(40, 'x')});
  }
  std::printf("request_loop: 10000 requests served, %d leaking requests caught (first one reported above)\n",
              leaking_requests);
  return leaking_requests == 10 ? 0 : 1;
}
