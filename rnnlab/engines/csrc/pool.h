// The compiled engine's sequences come from a cache of the blocks its earlier calls freed.
//
// A training step's sequences (the gates, the states, layer norm's y: what its backward reads)
// are freed when its backward is done, and the next step asks for the same sizes again. glibc
// hands blocks this large back to the system when they are freed, and the next step's first
// write to each 4 KiB page of a new block is then a page fault (the kernel maps a fresh page and
// zeroes it): for an evaluation forward of a layer-normalised LSTM, a third of its time. Blocks
// freed here are kept for the next request of their size class instead, up to ``limit`` bytes in
// all (an eighth of the memory, at most 512 MiB); empty_cache() hands them all back. With the limit
// 0 and nothing kept, torch's allocator serves (set_pool_limit, for comparisons).
#pragma once

#include <ATen/ATen.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace rnnlab_pool {

constexpr size_t ALIGN = 64, HEADER = 64;  // a block: its size in the header, the data after it
// a request whose class has no block takes one up to UP classes larger: batches of different
// lengths (T a little shorter than the last batch's) reuse the longer batch's blocks
constexpr int UP = 2;

// the size classes 2^k (1 + q/4), q = 0..3: a block is less than a quarter larger than asked
inline size_t size_class(size_t n) {
  if (n <= 4096) return 4096;
  const int k = 63 - __builtin_clzll(n - 1);  // 2^k < n <= 2^(k+1)
  const size_t q = size_t(1) << (k - 2);
  return (n + q - 1) / q * q;
}

struct Pool {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;  // size class -> blocks
  size_t cached = 0, limit = default_limit();
  static size_t default_limit() {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    const size_t most = size_t(512) << 20;
    return pages > 0 && page > 0 ? std::min(most, static_cast<size_t>(pages) * page / 8) : most;
  }
};
inline Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: a tensor may be freed after static destruction
  return *p;
}

inline void give_back(void* data) {
  void* base = static_cast<char*>(data) - HEADER;
  const size_t n = *static_cast<size_t*>(base);
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mu);
    if (p.cached + n <= p.limit) {
      p.free[n].push_back(base);
      p.cached += n;
      return;
    }
  }
  std::free(base);
}

// an uninitialised contiguous tensor of ``shape`` whose memory returns to the pool when freed
inline at::Tensor empty(at::IntArrayRef shape, const at::TensorOptions& opts) {
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  const size_t n = size_class(HEADER + static_cast<size_t>(numel) * opts.dtype().itemsize());
  void* base = nullptr;
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mu);
    if (p.limit == 0 && p.cached == 0) return at::empty(shape, opts);  // no pool: torch's allocator
    size_t c = n;  // its own class first, then up to UP larger ones (a block keeps its size)
    for (int up = 0; up <= UP && !base; ++up, c = size_class(c + 1)) {
      auto it = p.free.find(c);
      if (it != p.free.end() && !it->second.empty()) {
        base = it->second.back();
        it->second.pop_back();
        p.cached -= c;
      }
    }
  }
  if (!base) {
    base = std::aligned_alloc(ALIGN, n);
    TORCH_CHECK(base, "rnnlab compiled: out of memory allocating ", n, " bytes");
    *static_cast<size_t*>(base) = n;
  }
  return at::from_blob(static_cast<char*>(base) + HEADER, shape, give_back, opts);
}

// hand every cached block back to the system; the bytes handed back
inline size_t empty_cache() {
  Pool& p = pool();
  std::vector<void*> blocks;
  size_t n;
  {
    std::lock_guard<std::mutex> lock(p.mu);
    for (auto& kv : p.free) blocks.insert(blocks.end(), kv.second.begin(), kv.second.end());
    p.free.clear();
    n = p.cached, p.cached = 0;
  }
  for (void* b : blocks) std::free(b);
  return n;
}

}  // namespace rnnlab_pool
