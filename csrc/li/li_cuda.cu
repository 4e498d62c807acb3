// Fused leaky-integrator scans on CUDA: the LIF scan skeleton (lif/lif_cuda_skeleton.cuh) with
// Neuron::Li, on the Li blocks in lif layout (lif_params_of, common/params.h).
#include "../lif/lif_cuda_skeleton.cuh"

namespace fastsnn {

void li_fwd_cuda(const LiFwdParams& p, IoType io, void* stream) {
  scan_fwd_cuda<Neuron::Li>(lif_params_of(p), io, stream, "fastsnn::li_fwd (CUDA)");
}

void li_bwd_cuda(const LiBwdParams& p, IoType io, void* stream) {
  scan_bwd_cuda<Neuron::Li>(lif_params_of(p), io, stream, "fastsnn::li_bwd (CUDA)");
}

}  // namespace fastsnn
