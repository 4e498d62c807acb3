// Kernel launchers, declared without torch headers so kernel translation units stay light.
// Host entry points (csrc/lif/lif.cpp, csrc/li/li.cpp) validate, allocate, fill the Params
// block and call one of these.
#pragma once

#include "params.h"

namespace fastsnn {

// I/O dtype of x / s / grads; state and constants are float32, or float64 for F64.
enum class IoType : int { F64 = 0, F32 = 1, BF16 = 2, F16 = 3 };

void lif_fwd_cpu(const LifFwdParams& p, IoType io);
void lif_bwd_cpu(const LifBwdParams& p, IoType io);
void li_fwd_cpu(const LifFwdParams& p, IoType io);
void li_bwd_cpu(const LifBwdParams& p, IoType io);
void rlif_fwd_cpu(const RlifFwdParams& p, IoType io);
void rlif_bwd_cpu(const RlifBwdParams& p, IoType io);
// io: F32 or F64 only. The backward computes dL/dx (p.gx) itself only for M <= this; the
// host hands larger products to BLAS.
constexpr int64_t kSpikeLinearSmallM = 32;
void spike_linear_fwd_cpu(const SpikeLinearParams& p, IoType io);
void spike_linear_bwd_cpu(const SpikeLinearParams& p, IoType io);

#ifdef FASTSNN_WITH_CUDA
// stream is a cudaStream_t; the caller holds a device guard for the tensors' device.
void lif_fwd_cuda(const LifFwdParams& p, IoType io, void* stream);
void lif_bwd_cuda(const LifBwdParams& p, IoType io, void* stream);
void li_fwd_cuda(const LifFwdParams& p, IoType io, void* stream);
void li_bwd_cuda(const LifBwdParams& p, IoType io, void* stream);
void rlif_fwd_cuda(const RlifFwdParams& p, IoType io, void* stream);
// Bytes of device scratch rlif_bwd_cuda needs in p.workspace (0 if none).
int64_t rlif_bwd_cuda_workspace(const RlifBwdParams& p, IoType io);
void rlif_bwd_cuda(const RlifBwdParams& p, IoType io, void* stream);
#endif

}  // namespace fastsnn
