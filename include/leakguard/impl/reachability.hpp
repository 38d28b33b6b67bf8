// leakguard/impl/reachability.hpp — which of a scope's surviving blocks the
// program still reaches, for the verdict (leak_kind):
//
//   retained  reachable from a root: a global, a function-local static, a
//             thread_local (a cache or registry kept on purpose);
//   indirect  reachable only from other survivors of the same verdict;
//   direct    reachable from nothing: the leak itself.
//
// Conservative, like LeakSanitizer: any word that holds the address of a
// live leakguard block (its start; for a survivor, any byte inside it) is a
// pointer. The roots are the writable segments of every loaded module, the
// static thread_local storage of every registered thread and the scanning
// thread's pthread_setspecific values; for a test's verdict also the live
// frames of the other threads blocked in the kernel (thread_stacks.hpp).
// Not the stack or registers of the thread that ended the scope: its own
// frames hold stale copies of what it leaked, and a pointer held by a
// caller's frame is an escape, which the grace period judges. Nor, for a
// scope's verdict, other threads' stacks: the contract's roots are globals,
// statics and thread_locals. From the roots the scan follows every
// leakguard block it reaches, tracked or not (its header gives its size), so
// a survivor stored in a global container whose storage predates the scope
// is retained.
// Pointers leakguard cannot see (in malloc'd memory that is not a leakguard
// block, in a file, XOR-ed) do not count: such a block is judged a leak.
// A stale copy of a pointer that a root still holds (unused capacity, bytes
// copied without being set) does count: such a leak looks retained.
//
// Other threads keep running, and may free (and unmap) a block while it is
// read: memory_reads.hpp says how it is read. Where the kernel does not
// allow those reads (some sandboxes), nothing is scanned and every survivor
// is direct.
#pragma once

#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "block.hpp"
#include "internal_memory.hpp"
#include "memory_reads.hpp"
#include "sort.hpp"
#include "stacks.hpp"
#include "thread_stacks.hpp"
#include "thread_state.hpp"

namespace leakguard::detail {

// A survivor's verdict; `leader` is, for an indirect block, the direct block
// it was first reached from (the report nests it there), else itself.
struct reach_result {
  std::uint8_t kind = 0;  // leak_kind
  std::uint32_t leader = 0;
};
inline constexpr std::uint8_t reach_direct = 0, reach_indirect = 1, reach_retained = 2;

// Scans of the roots made so far, and the bytes they read (roots and the
// blocks they reach): what verdicts cost, seen by tests.
inline constinit std::atomic<std::uint64_t> root_scans{0};
inline constinit std::atomic<std::uint64_t> bytes_scanned{0};

// ---- where pointers may point -------------------------------------------------------------

struct address_range {
  std::uintptr_t begin, end;
};

// The process's readable and writable mappings, from /proc/self/maps: a
// block lives in one of them, so a word outside them is no pointer to one.
class writable_memory {
 public:
  bool load() {
    const int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    internal_vector<char> text;
    char chunk[8192];
    for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      text.insert(text.end(), chunk, chunk + n);
    }
    ::close(fd);
    text.push_back('\0');
    for (const char* line = text.data(); *line;) {
      char* rest;
      const std::uintptr_t begin = std::strtoull(line, &rest, 16);
      const std::uintptr_t end = std::strtoull(rest + 1, &rest, 16);
      if (rest[0] == ' ' && rest[1] == 'r' && rest[2] == 'w') {
        if (!ranges_.empty() && ranges_.back().end == begin) ranges_.back().end = end;
        else ranges_.push_back({begin, end});
      }
      const char* eol = std::strchr(rest, '\n');
      if (!eol) break;
      line = eol + 1;
    }
    return !ranges_.empty();
  }

  // How many bytes from `p` on are all readable and writable, or all not
  // (as far as the next such mapping): the kernel fails a read that meets a
  // protected page whole, so reads stop at the edge. Unlimited if nothing
  // was loaded.
  std::size_t same_access(std::uintptr_t p) const noexcept {
    if (const std::uintptr_t end = end_of(p)) return end - p;
    const auto next = above(p);
    return next == ranges_.end() ? ~std::size_t{0} : next->begin - p;
  }

  // The end of the mapping holding `p`, or 0.
  LEAKGUARD_NO_COVERAGE std::uintptr_t end_of(std::uintptr_t p) const noexcept {
    auto it = above(p);
    if (it == ranges_.begin()) return 0;
    --it;
    return p < it->end ? it->end : 0;
  }

 private:
  // The first mapping that starts above `p`.
  internal_vector<address_range>::const_iterator above(std::uintptr_t p) const noexcept {
    return std::upper_bound(ranges_.begin(), ranges_.end(), p,
                            [](std::uintptr_t v, const address_range& r) { return v < r.begin; });
  }

  internal_vector<address_range> ranges_;
};

// An open-addressing set of block addresses (never 0): what the scan has
// queued already.
class address_set {
 public:
  LEAKGUARD_NO_COVERAGE bool insert(std::uintptr_t a) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    for (std::size_t i = hash(a);; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i] == a) return false;
      if (slots_[i] == 0) {
        slots_[i] = a;
        ++count_;
        return true;
      }
    }
  }

 private:
  std::size_t hash(std::uintptr_t a) const noexcept {
    return static_cast<std::size_t>((a >> 3) * 0x9e3779b97f4a7c15ull >> 20) & (slots_.size() - 1);
  }
  void grow() {
    internal_vector<std::uintptr_t> old(slots_.empty() ? 1024 : slots_.size() * 2, 0);
    old.swap(slots_);
    count_ = 0;
    for (std::uintptr_t a : old)
      if (a) insert(a);
  }
  internal_vector<std::uintptr_t> slots_;
  std::size_t count_ = 0;
};

// ---- the roots --------------------------------------------------------------------------------

struct root_set {
  internal_vector<address_range> segments;  // modules' writable segments
  internal_vector<std::intptr_t> tls_offsets;  // static TLS block - thread pointer, per module
  internal_vector<std::size_t> tls_sizes;
};

inline int collect_module_roots(dl_phdr_info* info, std::size_t, void* data) {
  auto& roots = *static_cast<root_set*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_W) && ph.p_memsz) {
      const std::uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
      roots.segments.push_back({begin, begin + ph.p_memsz});
    } else if (ph.p_type == PT_TLS && ph.p_memsz && info->dlpi_tls_data) {
      // Modules in static TLS sit at a fixed offset from every thread's
      // thread pointer; dlopen()ed ones in dynamic TLS do not (not scanned).
      const std::intptr_t offset =
          reinterpret_cast<std::intptr_t>(info->dlpi_tls_data) - static_cast<std::intptr_t>(thread_pointer());
      constexpr std::intptr_t static_tls_span = std::intptr_t{64} << 20;
      if (offset > -static_tls_span && offset < static_tls_span) {
        roots.tls_offsets.push_back(offset);
        roots.tls_sizes.push_back(ph.p_memsz);
      }
    }
  }
  return 0;
}

// ---- the scan ---------------------------------------------------------------------------------

// Classifies `n` survivors, given by start address and size, in serial order.
// Several verdicts may share one scan (the roots are the same for all): then
// `groups` gives each survivor's verdict, and a block is indirect only
// through blocks of its own verdict. `wanted`, where given, names the
// survivors whose verdict matters (a suppressed one's does not): the scan
// of the roots stops once each of them is reached.
class reachability {
 public:
  reachability(const std::uintptr_t* begins, const std::size_t* sizes, std::size_t n,
               const std::uint32_t* groups = nullptr, const char* wanted = nullptr)
      : results_(n), reached_(n, 0), groups_(groups), wanted_(wanted) {
    unreached_wanted_ = wanted ? static_cast<std::size_t>(std::count(wanted, wanted + n, 1)) : n;
    for (std::size_t i = 0; i < n; ++i) {
      results_[i].leader = static_cast<std::uint32_t>(i);
      // A block of 0 bytes (`new char[0]`) is reached by its address.
      const std::uintptr_t end = begins[i] + std::max<std::size_t>(sizes[i], 1);
      by_address_.push_back({begins[i], end, static_cast<std::uint32_t>(i)});
    }
    sort_by(by_address_, [](const survivor& s) { return s.begin; });
  }

  // The survivors that survivor `first` reaches through the others,
  // `first` included (for leakguard::release).
  internal_vector<std::uint32_t> reachable_from(std::uint32_t first) {
    internal_vector<std::uint32_t> out{first};
    internal_vector<const survivor*> at_index(results_.size(), nullptr);
    for (const survivor& s : by_address_) at_index[s.index] = &s;
    reached_[first] = 1;
    if (!safe_reads_work()) return out;
    const sole_thread alone;
    in_place_ = alone.alone() && memory_.load();
    for (std::size_t k = 0; k < out.size(); ++k) {
      if (!at_index[out[k]]) continue;
      const survivor* s = at_index[out[k]];
      each_target({&s, 1}, [&](const survivor&, const survivor& t) {
        if (!reached_[t.index]) {
          reached_[t.index] = 1;
          out.push_back(t.index);
        }
      });
    }
    return out;
  }

  // `other_threads_frames`: the live frames of the other threads, for a
  // test's verdict given on the thread that ends it (a pool's workers hold
  // their work there); not for a scope's.
  // REQUIRES: no leakguard lock held (it takes the registry's).
  std::span<const reach_result> classify(bool other_threads_frames = false) {
    if (by_address_.empty() || !safe_reads_work() || !memory_.load()) return results_;
    root_scans.fetch_add(1, std::memory_order_relaxed);
    const sole_thread alone;
    in_place_ = alone.alone();
    scan_roots();
    // Other threads' frames cost a file read per thread: only for what the
    // rest of the roots left unreached. A thread alone has no others.
    if (other_threads_frames && !alone.alone() && unreached_wanted_ > 0) {
      scan_thread_stacks();
      drain();
    }
    for (std::size_t i = 0; i < results_.size(); ++i)
      if (reached_[i]) results_[i].kind = reach_retained;
    find_indirect();
    bytes_scanned.fetch_add(scanned_, std::memory_order_relaxed);
    return results_;
  }

 private:
  struct survivor {
    std::uintptr_t begin, end;
    std::uint32_t index;
  };
  struct region {
    std::uintptr_t begin;
    std::size_t size;
    bool mapped;  // known to stay mapped while this thread is alone (memory_reads.hpp)
  };
  static constexpr std::size_t chunk_bytes = 256 * 1024;  // read at a time

  // The survivor holding byte `p`, or null.
  LEAKGUARD_NO_COVERAGE const survivor* survivor_at(std::uintptr_t p) const noexcept {
    auto it = std::upper_bound(by_address_.begin(), by_address_.end(), p,
                               [](std::uintptr_t v, const survivor& s) { return v < s.begin; });
    if (it == by_address_.begin()) return nullptr;
    --it;
    return p < it->end ? &*it : nullptr;
  }

  void scan_roots() {
    root_set roots;
    {
      lock_guard g(loader_lock());
      dl_iterate_phdr(collect_module_roots, &roots);
    }
    // The stack depot is a large table of pointers to leakguard's own
    // records, none to a block: not a root, or each such word is a candidate.
    const auto own_begin = reinterpret_cast<std::uintptr_t>(&depot), own_end = own_begin + sizeof depot;
    // Queued in reverse, as the queue is read from its end: the program's
    // own data (listed first) holds most of what its code keeps, and once
    // each wanted survivor is reached the scan stops.
    for (auto it = roots.segments.rbegin(); it != roots.segments.rend(); ++it) {
      const address_range& s = *it;
      if (own_end <= s.begin || s.end <= own_begin) {
        queue_.push_back({s.begin, s.end - s.begin, true});
        continue;
      }
      if (s.begin < own_begin) queue_.push_back({s.begin, own_begin - s.begin, true});
      if (own_end < s.end) queue_.push_back({own_end, s.end - own_end, true});
    }
    internal_vector<std::uintptr_t> pointers;
    {
      lock_guard g(registry.lock);
      for (thread_state* t = registry.head; t; t = t->next)
        if (t->thread_pointer) pointers.push_back(t->thread_pointer);
    }
    // Under ThreadSanitizer each thread's state, allocator cache included,
    // is a thread_local: its arrays keep stale copies of pointers to blocks
    // handed out since, which would make leaks look retained.
    if (!LEAKGUARD_TSAN)
      for (std::uintptr_t tp : pointers)
        for (std::size_t m = 0; m < roots.tls_offsets.size(); ++m)
          queue_.push_back(
              {tp + static_cast<std::uintptr_t>(roots.tls_offsets[m]), roots.tls_sizes[m], tp == thread_pointer()});
    // The survivors' own start addresses must not be queued as plain blocks.
    for (const survivor& s : by_address_) seen_.insert(s.begin);
    // This thread's thread-specific data (pthread_setspecific: a
    // framework's per-thread state) lives in its descriptor, not in its
    // static TLS. Each key's value is asked for by key: the descriptor
    // itself also holds stale copies of freed pointers.
    internal_vector<std::uintptr_t> specific;
    for (pthread_key_t key = 0; key < PTHREAD_KEYS_MAX; ++key)
      if (void* value = pthread_getspecific(key)) specific.push_back(reinterpret_cast<std::uintptr_t>(value));
    scan_words(reinterpret_cast<const char*>(specific.data()), specific.size() * sizeof(std::uintptr_t));
    drain();
  }

  // Blocked threads' live frames (thread_stacks.hpp), read through the
  // kernel: the thread may wake, return and exit meanwhile. A stack pointer
  // outside its thread's stack mapping (a fiber, a signal stack) is passed
  // over. The 128 bytes under it are a leaf function's red zone.
  void scan_thread_stacks() {
    constexpr std::uintptr_t red_zone = 128;
    for (const live_frames& f : blocked_threads_frames()) {
      const std::uintptr_t end = memory_.end_of(f.sp);
      if (end == 0) continue;
      const std::uintptr_t top = f.top ? f.top : unseen_thread_pointer(f.sp, end);
      if (top <= f.sp || end != memory_.end_of(top - 1)) continue;
      const std::uintptr_t from = memory_.end_of(f.sp - red_zone) == end ? f.sp - red_zone : f.sp;
      queue_.push_back({from, top - from, false});
    }
  }

  // How much of region `r`, from its start, is read in place: while this
  // thread is alone, of a region that stays mapped, the part that was
  // readable and writable when the scan began (a segment starts with its
  // read-only relocations; a program may protect a guard page inside its
  // data or inside a block). The rest goes through the kernel.
  std::size_t in_place(const region& r) const noexcept {
    if (!in_place_ || !r.mapped) return 0;
    const std::uintptr_t end = memory_.end_of(r.begin);
    return end == 0 ? 0 : std::min<std::size_t>(r.size, end - r.begin);
  }

  // Scans the queued regions: in place where it can, else in batches read
  // through the kernel (one system call reads many small ones).
  void drain() {
    internal_vector<read_request> reads;
    for (;;) {
      if (unreached_wanted_ == 0) {  // nothing more to learn
        queue_.clear();
        candidates_.clear();
        return;
      }
      if (queue_.empty()) {
        if (candidates_.empty()) return;
        resolve_candidates();
        continue;
      }
      if (const std::size_t n = in_place(queue_.back())) {
        const region r = queue_.back();
        if (n == r.size) queue_.pop_back();
        else queue_.back() = {r.begin + n, r.size - n, r.mapped};
        scan_words(reinterpret_cast<const char*>(r.begin), n);
        continue;
      }
      reads.clear();
      std::size_t used = 0;
      while (!queue_.empty() && reads.size() < 1024 && !in_place(queue_.back())) {
        region& r = queue_.back();
        const std::size_t take = std::min({r.size, chunk_bytes, memory_.same_access(r.begin)});
        if (used + take > chunk_bytes && !reads.empty()) break;
        reads.push_back({r.begin, take, buffer_.data() + used, false});
        used += take;
        if (take == r.size) queue_.pop_back();
        else r = {r.begin + take, r.size - take, r.mapped};
      }
      read_all(reads);
      for (const read_request& r : reads)
        if (r.ok) scan_words(static_cast<const char*>(r.into), r.size);
      resolve_candidates();
    }
  }

  LEAKGUARD_NO_COVERAGE void scan_words(const char* bytes, std::size_t size) {
    scanned_ += size;
    for (std::size_t off = 0; off + sizeof(std::uintptr_t) <= size; off += sizeof(std::uintptr_t)) {
      std::uintptr_t w;
      std::memcpy(&w, bytes + off, sizeof w);
      if (w < 4096) continue;
      if (const survivor* s = survivor_at(w)) {  // any byte of a survivor
        if (!reached_[s->index]) {
          reached_[s->index] = 1;
          if (!wanted_ || wanted_[s->index]) --unreached_wanted_;
          queue_.push_back({s->begin, s->end - s->begin, true});
        }
        continue;
      }
      if ((w & 7) || memory_.end_of(w) == 0) continue;
      // A block's start (blocks are 16-aligned); or, 8 bytes in, the array
      // cookie of `new T[n]`.
      const std::uintptr_t start = w & ~std::uintptr_t{15};
      if (seen_.insert(start)) candidates_.push_back(start);
    }
    if (candidates_.size() >= 4096) resolve_candidates();
  }

  // Reads the header in front of each candidate; queues the real blocks.
  // Headers are read a page at a time: a read's cost is per page touched,
  // and the candidates of a scan crowd into few pages. Candidates are
  // 16-aligned, so no header straddles two pages.
  void resolve_candidates() {
    if (candidates_.empty()) return;
    sort_words(candidates_.data(), candidates_.data() + candidates_.size());
    internal_vector<read_request> reads;
    for (std::size_t next = 0; next < candidates_.size();) {
      const std::size_t first = next;  // candidates [first, next), on up to max_pages pages
      reads.clear();
      for (; next < candidates_.size(); ++next) {
        const std::uintptr_t page = page_of(candidates_[next] - sizeof(block_header));
        if (!reads.empty() && reads.back().address == page) continue;
        if (reads.size() == max_pages) break;
        reads.push_back({page, read_page, pages_.data() + reads.size() * read_page, false});
      }
      read_all(reads);
      const read_request* r = reads.data();
      for (std::size_t k = first; k < next; ++k) {
        const std::uintptr_t user = candidates_[k], at = user - sizeof(block_header);
        while (r->address != page_of(at)) ++r;
        if (!r->ok) continue;
        block_header h;
        std::memcpy(&h, static_cast<const char*>(r->into) + (at - r->address), sizeof h);
        if (is_block(user, h)) queue_.push_back({user, h.size, true});
      }
    }
    candidates_.clear();
  }

  // Whether `h`, read in front of `user`, is the header of a live block there.
  bool is_block(std::uintptr_t user, const block_header& h) const noexcept {
    const std::uint8_t kind = static_cast<std::uint8_t>(h.kind());
    if (h.magic() != header_magic || kind < 1 || kind > static_cast<std::uint8_t>(alloc_kind::c_pvalloc) ||
        h.align_log2() > 40)
      return false;
    if (h.flags() & (flag_freed | flag_internal | 0xc0)) return false;
    if (h.alignment() > default_alignment && (user & (h.alignment() - 1))) return false;
    return h.size <= memory_.end_of(user) - user;
  }

  // Reads of candidates' headers go in units this size and alignment: any
  // system's page holds them whole.
  static constexpr std::size_t read_page = 4096, max_pages = 64;
  static std::uintptr_t page_of(std::uintptr_t p) noexcept { return p & ~std::uintptr_t{read_page - 1}; }

  // Calls `f(s, t)` for each survivor `t` that a survivor `s` of `from`
  // points to (not itself). They are read many at a time: one system call
  // for a buffer's worth, not one per survivor. A block smaller than a
  // pointer points nowhere.
  template <class F>
  void each_target(std::span<const survivor* const> from, F f) {
    internal_vector<read_request> reads;
    internal_vector<const survivor*> whose;
    std::size_t used = 0;
    auto targets = [&](const survivor& s, const void* at, std::size_t size) {
      const auto* bytes = static_cast<const unsigned char*>(at);
      for (std::size_t off = 0; off + sizeof(std::uintptr_t) <= size; off += sizeof(std::uintptr_t)) {
        std::uintptr_t w;
        std::memcpy(&w, bytes + off, sizeof w);
        const survivor* t = survivor_at(w);
        if (t && t != &s) f(s, *t);
      }
    };
    auto read_batch = [&] {
      read_all(reads);
      for (std::size_t k = 0; k < reads.size(); ++k)
        if (reads[k].ok) targets(*whose[k], reads[k].into, reads[k].size);
      reads.clear();
      whose.clear();
      used = 0;
    };
    for (const survivor* s : from) {
      if (s->end - s->begin < sizeof(std::uintptr_t)) continue;
      if (in_place({s->begin, s->end - s->begin, true}) == s->end - s->begin) {  // a survivor is a live block
        targets(*s, reinterpret_cast<const void*>(s->begin), s->end - s->begin);
        continue;
      }
      for (std::uintptr_t at = s->begin, take; at < s->end; at += take) {
        take = std::min<std::size_t>({chunk_bytes, s->end - at, memory_.same_access(at)});
        if (used + take > chunk_bytes) read_batch();
        reads.push_back({at, take, buffer_.data() + used, false});
        whose.push_back(s);
        used += take;
      }
    }
    read_batch();
  }

  // Among the unreached survivors: pointed to by another one = indirect,
  // nested under the first direct block (in serial order) that reaches it.
  // A cycle that nothing else points to gets its first block as direct.
  void find_indirect() {
    const std::size_t n = results_.size();
    internal_vector<std::uint32_t> from, to;  // edges between unreached survivors
    internal_vector<const survivor*> unreached;
    for (const survivor& s : by_address_)
      if (!reached_[s.index]) unreached.push_back(&s);
    each_target(unreached, [&](const survivor& s, const survivor& t) {
      if (reached_[t.index] || (groups_ && groups_[t.index] != groups_[s.index])) return;
      from.push_back(s.index);
      to.push_back(t.index);
    });
    internal_vector<std::uint32_t> in_degree(n, 0);
    for (std::uint32_t j : to) ++in_degree[j];
    // Adjacency in CSR form, by source.
    internal_vector<std::uint32_t> start(n + 1, 0), edges(to.size());
    for (std::uint32_t i : from) ++start[i + 1];
    for (std::size_t i = 0; i < n; ++i) start[i + 1] += start[i];
    {
      internal_vector<std::uint32_t> fill(start.begin(), start.end() - 1);
      for (std::size_t e = 0; e < from.size(); ++e) edges[fill[from[e]]++] = to[e];
    }
    internal_vector<char> done(reached_.begin(), reached_.end());
    internal_vector<std::uint32_t> stack;
    auto flood = [&](std::uint32_t leader) {
      done[leader] = 1;
      stack.push_back(leader);
      while (!stack.empty()) {
        const std::uint32_t i = stack.back();
        stack.pop_back();
        for (std::uint32_t e = start[i]; e < start[i + 1]; ++e) {
          const std::uint32_t j = edges[e];
          if (done[j]) continue;
          done[j] = 1;
          results_[j] = {reach_indirect, leader};
          stack.push_back(j);
        }
      }
    };
    for (std::uint32_t i = 0; i < n; ++i)
      if (!done[i] && in_degree[i] == 0) flood(i);
    for (std::uint32_t i = 0; i < n; ++i)
      if (!done[i]) flood(i);  // a cycle: its first block leads it
  }

  internal_vector<reach_result> results_;
  internal_vector<char> reached_;
  const std::uint32_t* groups_;
  const char* wanted_;
  std::size_t unreached_wanted_;
  std::uint64_t scanned_ = 0;
  internal_vector<survivor> by_address_;
  internal_vector<region> queue_;
  bool in_place_ = false;  // this thread is alone: mapped regions are read in place
  internal_vector<std::uintptr_t> candidates_;
  internal_buffer buffer_{chunk_bytes};
  internal_buffer pages_{max_pages * read_page};
  writable_memory memory_;
  address_set seen_;
};

}  // namespace leakguard::detail
