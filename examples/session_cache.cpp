// session_cache — track only the containers you choose, without replacing
// global operator new (no <leakguard/global_new.hpp> in this program, so
// <leakguard/implementation.hpp> brings leakguard's runtime instead).
//
// A session cache keeps its entries in an unordered_map whose allocator is
// leakguard::allocator. One code path copies an entry's payload into a
// buffer from the same allocator and forgets to give it back; the scope
// around the request names the line, and the allocator's label.
#include <leakguard.hpp>
#include <leakguard/implementation.hpp>  // in one .cpp of the program

#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>

using payload_allocator = leakguard::allocator<char>;
using entry = std::pair<const int, std::string>;
using session_map = std::unordered_map<int, std::string, std::hash<int>, std::equal_to<int>,
                                       leakguard::allocator<entry>>;

class session_cache {
 public:
  session_cache() : sessions_(session_map::allocator_type{"session cache"}) {
    // The hash table's bucket array is built on first insert and kept: do
    // that now, outside any request, or the first request is charged with it.
    sessions_.reserve(64);
  }

  void put(int id, std::string data) { sessions_[id] = std::move(data); }

  // Returns a copy of the payload in a buffer the caller must release()...
  char* snapshot(int id) {
    const std::string& data = sessions_.at(id);
    char* copy = payload_allocator{"snapshots"}.allocate(data.size() + 1);
    std::memcpy(copy, data.c_str(), data.size() + 1);
    return copy;
  }
  void release(char* copy, int id) { payload_allocator{}.deallocate(copy, sessions_.at(id).size() + 1); }

  void erase(int id) { sessions_.erase(id); }

 private:
  session_map sessions_;
};

void handle(session_cache& cache, int id, bool forget) {
  LEAKGUARD_SCOPE("request");
  cache.put(id, std::string(64, 'p'));
  char* copy = cache.snapshot(id);
  std::printf("session %d: %zu bytes\n", id, std::strlen(copy));
  if (!forget) cache.release(copy, id);  // the forgotten path leaks `copy`
  cache.erase(id);
}

int main() {
  leakguard::set_leak_handler(leakguard::log_leak);
  session_cache cache;
  handle(cache, 1, false);  // clean
  handle(cache, 2, true);   // leaks the snapshot: reported with line and label
  return 0;
}
