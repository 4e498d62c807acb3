// Fused recurrent LIF scans on CUDA: one persistent launch walks the whole time axis forward,
// with R_t = S_{t-1} @ V inside the loop; one walks it backward with gI_{t+1} @ Vᵀ inside the
// loop. dV is not computed here: the host entry takes it as one product S_prevᵀ @ gI after the
// backward (from grad_x, or from gi_acc when the I/O dtype is narrower). Kernels, their design
// and the launch plan: rlif_cuda_kernels.cuh. No torch headers: the launchers take the Params
// blocks of common/params.h.
#include <stdexcept>
#include <string>
#include <type_traits>

#include "rlif_cuda_kernels.cuh"

namespace fastsnn {
namespace {

struct RlifDevice {
  int sms;
  int64_t smem_max;  // opt-in dynamic shared memory per block
};

RlifDevice rlif_device(const char* op) {
  int dev = 0, sms = 0, smem = 0;
  check_cuda(cudaGetDevice(&dev), op, "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), op,
             "cudaDeviceGetAttribute(MultiProcessorCount)");
  check_cuda(cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), op,
             "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
  return {sms, smem};
}

template <typename Kernel, typename... Args>
void launch_rlif(Kernel kernel, const RlifPlan& pl, void* stream, const char* op,
                 const Args&... args) {
  if (pl.blocks > 0x7fffffff) {
    throw std::runtime_error(std::string(op) + ": " + std::to_string(pl.blocks) +
                             " blocks are too many for one launch");
  }
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(pl.smem_bytes)),
             op, "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
  FASTSNN_LAUNCH(kernel, static_cast<unsigned>(pl.blocks), pl.threads,
                 static_cast<size_t>(pl.smem_bytes), static_cast<cudaStream_t>(stream))(args...);
  check_cuda(cudaGetLastError(), op, "kernel launch failed");
}

// As in lif_cuda.cu: Reset::None only has the detached variant.
template <Reset R, typename F>
void switch_detach_rlif(bool detach, F&& f) {
  if constexpr (R == Reset::None) {
    (void)detach;
    return f(std::true_type{});
  } else {
    return dispatch_bool(detach, f);
  }
}

// Per (row, neuron) state arrays of the backward and whether the reset carry gS is one of them;
// must match rlif_bwd_kernel (kCarryS = !kDetach, kParams = galpha != nullptr).
struct BwdState {
  int nstate;
  bool carry_s;
};

BwdState bwd_state(const LifBwdParams& p) {
  const bool carry_s = !p.detach_reset && static_cast<Reset>(p.reset) != Reset::None;
  const bool params = p.galpha != nullptr;
  return {2 + (carry_s ? 1 : 0) + (params ? 3 : 0), carry_s};
}

RlifPlan rlif_bwd_plan(const RlifBwdParams& rp, IoType io, const char* op) {
  const LifBwdParams& p = rp.lif;
  const int64_t acc_bytes = io == IoType::F64 ? 8 : 4;
  const RlifDevice d = rlif_device(op);
  const BwdState st = bwd_state(p);
  return plan_bwd(p.B, p.N, acc_bytes, st.nstate, st.carry_s, d.sms, d.smem_max);
}

}  // namespace

void rlif_fwd_cuda(const RlifFwdParams& rp, IoType io, void* stream) {
  constexpr const char* op = "fastsnn::rlif_fwd (CUDA)";
  const LifFwdParams& p = rp.lif;
  if (p.B * p.N == 0) return;
  switch_io(io, [&](auto io_tag, auto acc_tag) {
    using io_t = typename decltype(io_tag)::type;
    using acc_t = typename decltype(acc_tag)::type;
    const RlifDevice d = rlif_device(op);
    const RlifPlan pl = plan_fwd(p.B, p.N, sizeof(acc_t), d.sms, d.smem_max);
    const acc_t* w = static_cast<const acc_t*>(rp.w);
    dispatch_reset(p.reset, [&](auto r) {
      constexpr Reset R = decltype(r)::value;
      launch_rlif(rlif_fwd_kernel<io_t, acc_t, R>, pl, stream, op, p, w, rp.w_finite,
                  rp.dense_product, pl);
    });
  });
}

int64_t rlif_bwd_cuda_workspace(const RlifBwdParams& rp, IoType io) {
  constexpr const char* op = "fastsnn::rlif_bwd (CUDA)";
  if (rp.lif.B * rp.lif.N == 0) return 0;
  return rlif_bwd_plan(rp, io, op).ws_bytes;
}

void rlif_bwd_cuda(const RlifBwdParams& rp, IoType io, void* stream) {
  constexpr const char* op = "fastsnn::rlif_bwd (CUDA)";
  const LifBwdParams& p = rp.lif;
  if (p.B * p.N == 0) return;
  dispatch_surrogate(p.surrogate, [](auto) {});  // rejects unknown codes before the launch
  const RlifPlan pl = rlif_bwd_plan(rp, io, op);
  if (pl.ws_bytes > 0 && rp.workspace == nullptr) {
    throw std::invalid_argument(std::string(op) + ": needs " + std::to_string(pl.ws_bytes) +
                                " bytes of workspace (rlif_bwd_cuda_workspace), got none");
  }
  switch_io(io, [&](auto io_tag, auto acc_tag) {
    using io_t = typename decltype(io_tag)::type;
    using acc_t = typename decltype(acc_tag)::type;
    dispatch_reset(p.reset, [&](auto r) {
      constexpr Reset R = decltype(r)::value;
      switch_detach_rlif<R>(p.detach_reset, [&](auto kd) {
        dispatch_bool(p.galpha != nullptr, [&](auto kp) {
          constexpr bool KD = decltype(kd)::value, KP = decltype(kp)::value;
          launch_rlif(rlif_bwd_kernel<io_t, acc_t, R, KD, KP>, pl, stream, op, rp, pl);
        });
      });
    });
  });
}

}  // namespace fastsnn
