// Fused LIF scans on CUDA: the scan skeleton of lif_cuda_skeleton.cuh with Neuron::Lif.
#include "lif_cuda_skeleton.cuh"

FASTSNN_SCAN_CUDA_ENTRY_POINTS(lif, Neuron::Lif)
