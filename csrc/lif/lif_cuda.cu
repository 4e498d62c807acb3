// Fused LIF scans on CUDA: the scan skeleton of lif_cuda_skeleton.cuh with Neuron::Lif.
#include "lif_cuda_skeleton.cuh"

namespace fastsnn {

void lif_fwd_cuda(const LifFwdParams& p, IoType io, void* stream) {
  scan_fwd_cuda<Neuron::Lif>(p, io, stream, "fastsnn::lif_fwd (CUDA)");
}

void lif_bwd_cuda(const LifBwdParams& p, IoType io, void* stream) {
  scan_bwd_cuda<Neuron::Lif>(p, io, stream, "fastsnn::lif_bwd (CUDA)");
}

}  // namespace fastsnn
