// Shared host-side helpers for the op entry points: checks, allocation, device dispatch.
// Python validates user input with friendly messages (fastsnn/_validate.py); these checks
// guard the raw ops against misuse and name the argument that is wrong.
#pragma once

#include <limits>

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/fill.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#ifdef FASTSNN_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "cpu_pool.h"
#include "launch.h"

namespace fastsnn {

inline IoType io_type_of(const at::Tensor& t, const char* op, const char* name) {
  switch (t.scalar_type()) {
    case at::kDouble: return IoType::F64;
    case at::kFloat: return IoType::F32;
    case at::kBFloat16: return IoType::BF16;
    case at::kHalf: return IoType::F16;
    default:
      TORCH_CHECK_TYPE(false, op, ": ", name, " must be float64, float32, bfloat16 or float16, got ",
                       t.scalar_type());
  }
}

inline at::ScalarType acc_dtype(IoType io) {
  return io == IoType::F64 ? at::kDouble : at::kFloat;
}

// A [B, T, N] tensor whose neuron stride is 1. The kernels read any batch and time strides, 0
// included, so such a tensor is used in place. Otherwise only what varies is copied: a batch or
// time dimension of stride 0 stays expanded, so the gradient of S.sum() (strides 0, 0, 0)
// becomes one row of N values read for every (b, t), not a [B, T, N] copy.
inline at::Tensor unit_neuron_stride(const at::Tensor& t) {
  if (t.size(2) <= 1 || t.stride(2) == 1) return t;
  at::Tensor c = t;
  for (int64_t d = 0; d < 2; ++d) {
    if (c.size(d) > 1 && c.stride(d) == 0) c = c.narrow(d, 0, 1);
  }
  return c.contiguous().expand(t.sizes());
}

inline void check_btn(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK_VALUE(t.dim() == 3, op, ": ", name, " must have shape [B, T, N], got ", t.sizes());
}

// Checks an accumulator-dtype tensor of the given shape on x's device; returns it contiguous.
inline at::Tensor acc_arg(const at::Tensor& t, const at::Tensor& x, at::ScalarType acc,
                          at::IntArrayRef shape, const char* op, const char* name) {
  TORCH_CHECK(t.device() == x.device(), op, ": ", name, " is on ", t.device(), " but x is on ",
              x.device());
  TORCH_CHECK_TYPE(t.scalar_type() == acc, op, ": ", name, " must be ", acc, ", got ",
                   t.scalar_type());
  TORCH_CHECK_VALUE(t.sizes() == shape, op, ": ", name, " must have shape ", shape, ", got ",
                    t.sizes());
  return t.contiguous();
}

// Allocation of outputs and saved tensors: pooled on the CPU (cpu_pool.h), plain on devices.
// With poisoning on (tests: torch.ops.fastsnn.set_poison(True)) every buffer starts as NaN, so
// an element a kernel never writes fails the comparison with the reference.
inline at::Tensor poisoned(at::Tensor t) {
  if (poison_enabled() && t.numel() > 0) t.fill_(std::numeric_limits<double>::quiet_NaN());
  return t;
}

inline at::Tensor alloc_like(const at::Tensor& x, at::ScalarType dtype) {
  return poisoned(x.device().is_cpu() ? cpu_empty_like(x, dtype)
                                      : at::empty_like(x, x.options().dtype(dtype)));
}

inline at::Tensor alloc(at::IntArrayRef shape, const at::TensorOptions& opt) {
  return poisoned(opt.device().is_cpu() ? cpu_empty(shape, opt) : at::empty(shape, opt));
}

inline at::Tensor maybe_empty(bool want, at::IntArrayRef shape, const at::TensorOptions& opt) {
  return alloc(want ? shape : at::IntArrayRef{0}, opt);
}

inline void* mptr(const at::Tensor& t) { return t.numel() ? t.data_ptr() : nullptr; }

// Runs the CPU or CUDA launcher for x's device.
template <typename CpuF, typename CudaF>
inline void launch_on(const at::Tensor& x, const char* op, CpuF&& cpu, CudaF&& cuda) {
  if (x.device().is_cpu()) {
    cpu();
    return;
  }
#ifdef FASTSNN_WITH_CUDA
  if (x.device().is_cuda()) {
    const c10::cuda::CUDAGuard guard(x.device());
    cuda(static_cast<void*>(c10::cuda::getCurrentCUDAStream(x.device().index()).stream()));
    return;
  }
#endif
  (void)cuda;
  TORCH_CHECK(false, op, ": no fastsnn kernel for device ", x.device());
}

}  // namespace fastsnn
