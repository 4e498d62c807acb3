// Plain parameter blocks handed by value from the host entry points to the kernels.
// Host code validates; kernels trust. Tensors are (B, T, N) with unit neuron stride and the
// batch/time strides given (in elements); (B, N) state and (N,) constants are contiguous.
// Saved tensors and parameter partials are contiguous, nullptr when absent.
#pragma once

#include <cstdint>

namespace fastsnn {

// The leaky integrator (li) fills the same blocks and runs the same scan skeleton with
// Neuron::Li: s holds its output U_t and gs the incoming dL/dU_t; thr, gthr are nullptr and
// reset is Reset::None (2), surrogate, detach_reset and scale are not read. Its I_t and U_t are
// saved together, and only when alpha/beta learn.
struct LifFwdParams {
  int64_t B, T, N;
  const void* x;  int64_t x_sb, x_st;   // [B, T, N] io dtype
  void* s;        int64_t s_sb, s_st;   // [B, T, N] io dtype
  const void* alpha; const void* beta; const void* thr;  // [N] acc dtype
  const void* i0; const void* u0;       // [B, N] acc dtype
  void* iT; void* uT;                   // [B, N] acc dtype
  void* u_saved; void* i_saved;         // [B, T, N] acc dtype or nullptr
  int reset;
  bool normalize_input;
};

struct LifBwdParams {
  int64_t B, T, N;
  const void* gs; int64_t gs_sb, gs_st;  // [B, T, N] io dtype, dL/dS
  void* gx;       int64_t gx_sb, gx_st;  // [B, T, N] io dtype, dL/dX
  const void* giT; const void* guT;      // [B, N] acc dtype
  const void* u_saved; const void* i_saved;  // [B, T, N] acc dtype; i_saved may be nullptr
  const void* i0; const void* u0;        // [B, N] acc dtype
  const void* alpha; const void* beta; const void* thr;  // [N] acc dtype
  void* gi0; void* gu0;                  // [B, N] acc dtype
  void* galpha; void* gbeta; void* gthr; // [B, N] acc dtype partials, or nullptr
  int reset, surrogate;
  bool detach_reset, normalize_input;
  double scale;
};

// rlif: the lif blocks plus the recurrent weight. w is V [N, N] (acc dtype, contiguous, row j =
// the weights out of neuron j, R_t = S_{t-1} @ V); wt is its transpose Vᵀ [N, N] contiguous
// (wt[k * N + j] = V[j, k]), used by the backward's gI_{t+1} @ Vᵀ.
struct RlifFwdParams {
  LifFwdParams lif;
  const void* w;
  // Form R_t over every neuron, 0 * V[j, :] included for the neurons j that did not spike, as
  // the dense product S_{t-1} @ V does: exact when V holds inf/NaN (0 * inf = NaN), where the
  // gather over the spiking neurons is not. CPU: the dense tile product, set by the host entry
  // when V is not finite (or forced, torch.ops.fastsnn.set_rlif_dense, to test and time it).
  // CUDA: the gather over a list of all neurons (see w_finite).
  bool dense_product;
  // CUDA: nullptr, or a device flag (one bool) that the host entry computed as all(isfinite(V))
  // on the stream, so no sync: the kernel reads it and runs the dense gather where it is false.
  const bool* w_finite;
};

struct RlifBwdParams {
  LifBwdParams lif;
  const void* wt;
  bool detach_recurrent;  // S_{t-1} gets no gradient through R_t
  // dL/dV [N, N] acc dtype, or nullptr. CPU kernels accumulate it inside the scan; the CUDA
  // host entry computes it after the scan as one product S_prevᵀ @ gI (gi_acc below).
  void* gw;
  // [B, T, N] acc dtype copy of dL/dI_t, or nullptr. CUDA only: written by the kernel when the
  // host needs dV and the I/O dtype is narrower than the accumulation dtype.
  void* gi_acc;
  // Device scratch the host allocated for the CUDA kernel (rlif_bwd_cuda_workspace bytes).
  void* workspace;
};

// spike_linear: y = x @ wᵀ over the rows of x, skipping its zero entries (CPU). Rows are
// [R, K] with unit column stride; float32 or float64 throughout (io decides which).
struct SpikeLinearParams {
  int64_t R, K, M;   // rows, in features, out features
  const void* x;     // [R, K], row stride x_sr
  int64_t x_sr;
  const void* wt;    // [K, M] contiguous: wᵀ (forward)
  const void* w;     // [M, K] contiguous (input gradient)
  void* y;           // [R, M] contiguous (forward output)
  const void* gy;    // [R, M] contiguous (backward)
  void* gx;          // [R, K] contiguous, or nullptr: dL/dx = gy @ w
  void* gw;          // [M, K] contiguous, or nullptr: dL/dw = gyᵀ @ x
};

}  // namespace fastsnn
