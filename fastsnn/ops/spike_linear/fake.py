"""Fake (meta) implementations of fastsnn::spike_linear_fwd / _bwd (csrc/linear), so
torch.compile can trace them."""

import torch


@torch.library.register_fake("fastsnn::spike_linear_fwd")
def _spike_linear_fwd_fake(x, weight):
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


@torch.library.register_fake("fastsnn::spike_linear_bwd")
def _spike_linear_bwd_fake(grad_y, x, weight, input_grad, weight_grad):
    return (x.new_empty(x.shape if input_grad else (0,)),
            x.new_empty(weight.shape if weight_grad else (0,)))
