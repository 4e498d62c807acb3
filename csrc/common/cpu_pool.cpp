// See cpu_pool.h for why this exists.
#include "cpu_pool.h"

#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/EmptyTensor.h>
#include <ATen/ops/empty_strided.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/TensorOptions.h>

namespace fastsnn {
namespace {

constexpr size_t kMiB = size_t(1) << 20;
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kMinPooled = size_t(4) << 20;  // smaller requests stay with the CPU allocator
constexpr size_t kDefaultCapMiB = 256;

// A non-negative decimal integer from the environment, or `fallback` when unset or empty.
// Anything else (a sign, letters, overflow) throws, naming the variable: c10::Error reaches
// Python as a RuntimeError from the first op that allocates.
size_t env_size(const char* name, size_t fallback, size_t max_value) {
  const char* v = std::getenv(name);
  if (v == nullptr) return fallback;
  std::string s(v);
  const auto first = s.find_first_not_of(" \t\n");
  if (first == std::string::npos) return fallback;
  s = s.substr(first, s.find_last_not_of(" \t\n") - first + 1);
  bool digits = true;
  for (char c : s) digits = digits && c >= '0' && c <= '9';
  TORCH_CHECK(digits, "fastsnn: ", name, "='", v,
              "' is not valid: expected a non-negative integer");
  errno = 0;
  const unsigned long long x = std::strtoull(s.c_str(), nullptr, 10);
  TORCH_CHECK(errno != ERANGE && x <= max_value, "fastsnn: ", name, "='", v,
              "' is too large (at most ", max_value, ")");
  return static_cast<size_t>(x);
}

// Size classes: requests are rounded up to a quarter of their power of two (and to whole 2 MiB
// huge pages), so 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, ... MiB. Variable-length inputs
// then land in a few classes and reuse each other's blocks, wasting at most 25% (plus < 2 MiB).
size_t size_class(size_t need) {
  size_t pow2 = kHugePage;
  while (pow2 * 2 <= need) pow2 *= 2;
  const size_t step = std::max(pow2 / 4, kHugePage);
  return (need + step - 1) / step * step;
}

// MemAvailable / MemTotal from /proc/meminfo in bytes; false when unreadable.
bool read_meminfo(size_t* avail, size_t* total) {
  FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return false;
  char line[256];
  unsigned long long a = 0, t = 0;
  bool got_a = false, got_t = false;
  while (std::fgets(line, sizeof line, f) && !(got_a && got_t)) {
    if (std::sscanf(line, "MemAvailable: %llu kB", &a) == 1) got_a = true;
    if (std::sscanf(line, "MemTotal: %llu kB", &t) == 1) got_t = true;
  }
  std::fclose(f);
  if (!got_a || !got_t) return false;
  *avail = static_cast<size_t>(a) * 1024;
  *total = static_cast<size_t>(t) * 1024;
  return true;
}

void pool_free(void* p);

class Pool {
 public:
  Pool()
      : enabled_(env_size("FASTSNN_CPU_POOL", 1, 1) != 0),
        cap_(env_size("FASTSNN_CPU_POOL_MB", kDefaultCapMiB,
                      std::numeric_limits<int64_t>::max() / kMiB) *
             kMiB) {}

  bool enabled() const { return enabled_; }

  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = by_size_.find(bytes);
      if (it != by_size_.end() && !it->second.empty()) {
        auto blk = it->second.back();  // the most recently freed of its class
        it->second.pop_back();
        if (it->second.empty()) by_size_.erase(it);
        void* p = blk->p;
        lru_.erase(blk);
        cached_ -= bytes;
        live_[p] = bytes;
        return p;
      }
    }
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    TORCH_CHECK(p != MAP_FAILED, "fastsnn: out of memory allocating ", bytes, " bytes");
    madvise(p, bytes, MADV_HUGEPAGE);  // a hint; fine if THP is off
    std::lock_guard<std::mutex> lock(mu_);
    live_[p] = bytes;
    return p;
  }

  // Takes back a block from take(). Keeps it unless it alone exceeds the cap; older idle
  // blocks are unmapped to make room (least recently freed first), and all of them when the
  // system runs short of memory.
  void give(void* p) {
    std::vector<std::pair<void*, size_t>> unmap;
    size_t bytes = 0;
    const bool pressure = under_pressure();
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto live = live_.find(p);
      if (live == live_.end()) return;  // cannot happen: the deleter is only on our blocks
      bytes = live->second;
      live_.erase(live);
      if (pressure || bytes > cap_) {
        unmap.emplace_back(p, bytes);
        if (pressure) drain_locked(&unmap);
      } else {
        while (cached_ + bytes > cap_) evict_oldest_locked(&unmap);
        lru_.push_back(Blk{p, bytes});
        by_size_[bytes].push_back(std::prev(lru_.end()));
        cached_ += bytes;
      }
    }
    for (auto& b : unmap) munmap(b.first, b.second);
  }

  int64_t cached() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int64_t>(cached_);
  }

  void release() {
    std::vector<std::pair<void*, size_t>> unmap;
    {
      std::lock_guard<std::mutex> lock(mu_);
      drain_locked(&unmap);
    }
    for (auto& b : unmap) munmap(b.first, b.second);
  }

 private:
  struct Blk {
    void* p;
    size_t bytes;
  };
  using BlkIt = std::list<Blk>::iterator;

  void evict_oldest_locked(std::vector<std::pair<void*, size_t>>* unmap) {
    const Blk b = lru_.front();
    auto& same = by_size_[b.bytes];  // its oldest entry is the globally oldest block
    same.erase(same.begin());
    if (same.empty()) by_size_.erase(b.bytes);
    lru_.pop_front();
    cached_ -= b.bytes;
    unmap->emplace_back(b.p, b.bytes);
  }

  void drain_locked(std::vector<std::pair<void*, size_t>>* unmap) {
    for (const Blk& b : lru_) unmap->emplace_back(b.p, b.bytes);
    lru_.clear();
    by_size_.clear();
    cached_ = 0;
  }

  // True when MemAvailable is under 1/16 of MemTotal; /proc/meminfo is read at most once a
  // second, the answer reused in between.
  bool under_pressure() {
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    int64_t last = last_check_ms_.load(std::memory_order_relaxed);
    if (now - last >= 1000 &&
        last_check_ms_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
      size_t avail = 0, total = 0;
      pressure_.store(read_meminfo(&avail, &total) && avail < total / 16,
                      std::memory_order_relaxed);
    }
    return pressure_.load(std::memory_order_relaxed);
  }

  const bool enabled_;
  const size_t cap_;
  std::mutex mu_;
  std::list<Blk> lru_;                           // idle blocks, least recently freed first
  std::map<size_t, std::vector<BlkIt>> by_size_;  // idle blocks by class, oldest first
  std::unordered_map<void*, size_t> live_;        // blocks handed out, with their class
  size_t cached_ = 0;
  std::atomic<int64_t> last_check_ms_{std::numeric_limits<int64_t>::min() / 2};
  std::atomic<bool> pressure_{false};
};

// Never destroyed: tensors may be freed after static destructors have run. A malformed
// setting throws from the constructor; the next call tries (and throws) again.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

void pool_free(void* p) { pool().give(p); }

// The allocator of pooled storages. Large requests come from the pool as plain DataPtrs
// (context == data, deleter returns the block), small ones from the CPU allocator. Storages
// made with it are resizable like at::empty's: resize_ / set_ / untyped_storage().resize_()
// allocate the new memory here and the old block goes back to the pool when released.
struct PoolAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t n) override {
    if (n < kMinPooled || !pool().enabled()) return c10::GetDefaultCPUAllocator()->allocate(n);
    void* p = pool().take(size_class(n));
    return {p, p, &pool_free, c10::Device(c10::kCPU)};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

c10::Allocator* pool_allocator() {
  static PoolAllocator* a = new PoolAllocator();
  return a;
}

at::Tensor pooled(at::IntArrayRef sizes, at::IntArrayRef strides, at::ScalarType dtype) {
  Pool& P = pool();  // first use: a malformed setting throws here, whatever the size
  int64_t span = 1;  // elements covered by the strided layout
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 0) return at::empty_strided(sizes, strides, at::TensorOptions(dtype));
    span += (sizes[d] - 1) * strides[d];
  }
  const size_t need = static_cast<size_t>(span) * c10::elementSize(dtype);
  if (!P.enabled() || need < kMinPooled) {
    return at::empty_strided(sizes, strides, at::TensorOptions(dtype));
  }
  // An ordinary CPU tensor (resizable storage of exactly the bytes at::empty_strided would
  // hold) whose memory comes from the pool.
  return at::detail::empty_strided_generic(sizes, strides, pool_allocator(),
                                           c10::DispatchKeySet(c10::DispatchKey::CPU), dtype);
}

}  // namespace

at::Tensor cpu_empty_like(const at::Tensor& x, at::ScalarType dtype) {
  if (x.is_non_overlapping_and_dense()) return pooled(x.sizes(), x.strides(), dtype);
  return cpu_empty(x.sizes(), x.options().dtype(dtype));
}

at::Tensor cpu_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  std::vector<int64_t> strides(sizes.size());
  int64_t s = 1;
  for (int64_t d = static_cast<int64_t>(sizes.size()) - 1; d >= 0; --d) {
    strides[d] = s;
    s *= std::max<int64_t>(sizes[d], 1);
  }
  return pooled(sizes, strides, options.dtype().toScalarType());
}

namespace {
std::atomic<bool> g_poison{false};
}  // namespace

bool poison_enabled() { return g_poison.load(std::memory_order_relaxed); }
void set_poison(bool on) { g_poison.store(on, std::memory_order_relaxed); }

int64_t cpu_pool_cached_bytes() { return pool().cached(); }
void cpu_pool_empty_cache() { pool().release(); }

}  // namespace fastsnn
