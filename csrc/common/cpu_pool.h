// A caching pool for the large CPU buffers of the fused ops (outputs and saved state).
//
// Why: glibc serves allocations above 32 MB with a fresh mmap each time, and the kernel then
// zero-fills every 4 KB page on first touch. For a (32, 500, 1024) float32 sequence that is
// 20+ ms per 64 MB buffer on these machines, more than the scan itself. Like the CUDA
// caching allocator, the pool keeps freed blocks (in 2 MB transparent huge pages) and hands
// them out again, so a training loop stops paying the page faults after its first step.
// FASTSNN_CPU_POOL=0 turns it off; FASTSNN_CPU_POOL_MB caps the cached bytes (default 1024);
// fastsnn.empty_cache() returns cached blocks to the system.
#pragma once

#include <ATen/core/Tensor.h>

namespace fastsnn {

// Like at::empty_like(x, dtype) (same strides when x is dense and non-overlapping, else
// contiguous) for CPU tensors, pooled when large enough.
at::Tensor cpu_empty_like(const at::Tensor& x, at::ScalarType dtype);
at::Tensor cpu_empty(at::IntArrayRef sizes, const at::TensorOptions& options);

// Bytes now cached (idle) in the pool, and a release of all of them.
int64_t cpu_pool_cached_bytes();
void cpu_pool_empty_cache();

// Test switch: fill every buffer the ops allocate with NaN before a kernel writes it.
bool poison_enabled();
void set_poison(bool on);

}  // namespace fastsnn
