// A caching pool for the large CPU buffers of the fused ops (outputs and saved state).
//
// Why: glibc serves allocations above 32 MB with a fresh mmap each time, and the kernel then
// zero-fills every 4 KB page on first touch. For a (32, 500, 1024) float32 sequence that is
// 20+ ms per 64 MB buffer on these machines, more than the scan itself. Like the CUDA
// caching allocator, the pool keeps freed blocks (in 2 MB transparent huge pages) and hands
// them out again, so a training loop stops paying the page faults after its first step.
//
// What: buffers of 4 MiB or more come from the pool, rounded up to a size class (quarter
// steps of a power of two, whole 2 MiB pages: 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40 MiB,
// ...), so inputs of varying length reuse each other's blocks. Each output is an ordinary CPU
// tensor: its storage is resizable (resize_, set_, untyped_storage().resize_() take new memory
// from the pool or the CPU allocator; the old block returns to the pool once nothing holds
// it), shareable and serializable like at::empty's.
// Idle memory is bounded: FASTSNN_CPU_POOL_MB caps the idle (cached) bytes, default 256; when
// a freed block does not fit, the least recently freed idle blocks are unmapped first, and
// all idle blocks when MemAvailable falls under 1/16 of MemTotal (checked at most once a
// second). FASTSNN_CPU_POOL=0 turns the pool off (1, the default, on). Malformed settings
// (negative, non-numeric, out of range) raise a RuntimeError naming the variable at the first
// CPU op. fastsnn.empty_cache() (torch.ops.fastsnn.empty_cache()) returns the idle blocks to
// the system; torch.ops.fastsnn.cpu_pool_cached_bytes() says how many bytes are idle.
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
