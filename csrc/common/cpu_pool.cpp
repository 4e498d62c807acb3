// See cpu_pool.h for why this exists.
#include "cpu_pool.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_strided.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/TensorOptions.h>

namespace fastsnn {
namespace {

constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kMinPooled = size_t(4) << 20;  // smaller requests stay with at::empty

size_t env_size(const char* name, size_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return static_cast<size_t>(std::strtoull(v, nullptr, 10));
}

class Pool {
 public:
  Pool()
      : enabled_(env_size("FASTSNN_CPU_POOL", 1) != 0),
        cap_(env_size("FASTSNN_CPU_POOL_MB", 1024) << 20) {}

  bool enabled() const { return enabled_; }

  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= bytes;
        return p;
      }
    }
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    TORCH_CHECK(p != MAP_FAILED, "fastsnn: out of memory allocating ", bytes, " bytes");
    madvise(p, bytes, MADV_HUGEPAGE);  // a hint; fine if THP is off
    return p;
  }

  void give(void* p, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + bytes <= cap_) {
        free_[bytes].push_back(p);
        cached_ += bytes;
        return;
      }
    }
    munmap(p, bytes);
  }

  int64_t cached() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int64_t>(cached_);
  }

  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& kv : free_)
      for (void* p : kv.second) munmap(p, kv.first);
    free_.clear();
    cached_ = 0;
  }

 private:
  const bool enabled_;
  const size_t cap_;
  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
};

// Never destroyed: tensors may be freed after static destructors have run.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

at::Tensor pooled(at::IntArrayRef sizes, at::IntArrayRef strides, at::ScalarType dtype) {
  int64_t span = 1;  // elements covered by the strided layout
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 0) return at::empty_strided(sizes, strides, at::TensorOptions(dtype));
    span += (sizes[d] - 1) * strides[d];
  }
  const size_t need = static_cast<size_t>(span) * c10::elementSize(dtype);
  if (!pool().enabled() || need < kMinPooled) {
    return at::empty_strided(sizes, strides, at::TensorOptions(dtype));
  }
  const size_t bytes = (need + kHugePage - 1) / kHugePage * kHugePage;
  void* p = pool().take(bytes);
  return at::from_blob(
      p, sizes, strides, [bytes](void* q) { pool().give(q, bytes); },
      at::TensorOptions(dtype).device(at::kCPU));
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
