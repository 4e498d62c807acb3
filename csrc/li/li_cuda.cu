// Fused leaky-integrator scans on CUDA: the LIF scan skeleton (lif/lif_cuda_skeleton.cuh) with
// Neuron::Li (how li fills the lif Params blocks: common/params.h).
#include "../lif/lif_cuda_skeleton.cuh"

FASTSNN_SCAN_CUDA_ENTRY_POINTS(li, Neuron::Li)
