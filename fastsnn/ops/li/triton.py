"""Triton kernels of the fused leaky-integrator scans: the "triton" backend of ``fastsnn.li``.

``li_fwd_triton`` / ``li_bwd_triton`` have the schemas and semantics of
``torch.ops.fastsnn.li_fwd`` / ``li_bwd`` (schemas and host code in csrc/li/li.cpp) and repeat the
per-step arithmetic of csrc/li/li_math.h op for op. Same decomposition, dtypes, custom-op
registration and host helpers as fastsnn/ops/lif/triton.py, whose kernels it launches with the
constexpr LI=True: the LIF scan without threshold, reset or spikes (RESET = 2, none), writing
U_t in place of S_t, and in the backward taking dL/dU_t in place of dL/dS_t (no surrogate).
The arithmetic is li_math.h's, op for op, so results are unchanged bit for bit.

Bytes per neuron-step (io = I/O element size, acc = 4, or 8 for float64 x):
  forward  moves  x read (io) + U written (io) [+ I_t and U_t written (2 acc) only when alpha or
                  beta learn (save_state)]
           keeps  nothing, or I_t and U_t (2 acc) when alpha or beta learn.
  backward moves  grad_u read (io) + grad_x written (io) [+ I_{t-1}, U_{t-1} read (2 acc) for
                  the parameter partials; I_t is carried in registers]
           keeps  nothing.
"""

import itertools

import torch

from ..._enums import RESETS
from ..._validate import IO_DTYPES, acc_dtype
from .. import registry
from .._triton_common import (BOOLS, acc_args, alloc, alloc_like, check_btn, distinct_sizes,
                              outputs, record_launches, unique, unit_neuron_stride)
from ..lif import triton as lif_triton
from ..lif.triton import launch, lif_bwd_kernel, lif_fwd_kernel, tile_config


NO_RESET = RESETS["none"]  # U_t = H_t

_FWD_SCHEMA = (
    "(Tensor x, Tensor alpha, Tensor beta, Tensor i0, Tensor u0, bool normalize_input, "
    "bool save_state) -> (Tensor u, Tensor i_T, Tensor u_T, Tensor i_saved, Tensor u_saved)")
_BWD_SCHEMA = (
    "(Tensor grad_u, Tensor grad_iT, Tensor grad_uT, Tensor i_saved, Tensor u_saved, Tensor i0, "
    "Tensor u0, Tensor alpha, Tensor beta, bool normalize_input, bool param_grads) "
    "-> (Tensor grad_x, Tensor grad_i0, Tensor grad_u0, Tensor grad_alpha, Tensor grad_beta)")


def _fwd_outputs(x, save_state):
    # x [B, T, N] with unit neuron stride; this module's alloc (tests poison it)
    return outputs(x, alloc, alloc_like, seq=(save_state,) * 2)


def _bwd_outputs(gu, param_grads):
    return outputs(gu, alloc, alloc_like, part=(param_grads,) * 2)


@torch.library.custom_op("fastsnn::li_fwd_triton", mutates_args=(), schema=_FWD_SCHEMA)
def li_fwd_triton(x, alpha, beta, i0, u0, normalize_input, save_state):
    """torch.ops.fastsnn.li_fwd on the Triton kernels: U, I_T, U_T, i_saved, u_saved."""
    op = "fastsnn::li_fwd_triton"
    check_btn(x, op, "x")
    x = unit_neuron_stride(x)
    B, T, N = x.shape
    acc = acc_dtype(x.dtype)
    a, b = acc_args(x, acc, (N,), op, alpha=alpha, beta=beta)
    i0, u0 = acc_args(x, acc, (B, N), op, i0=i0, u0=u0)
    u, iT, uT, i_saved, u_saved = out = _fwd_outputs(x, save_state)
    # the LIF kernel as the leaky integrator (LI: no threshold, reset or spikes; it writes U_t);
    # absent tensors (the threshold, saved tensors not asked for) get a stand-in pointer that
    # the constexpr flags never touch
    launch(lif_fwd_kernel, x,
           x, u, a, b, a, i0, u0, iT, uT, u_saved if save_state else uT,
           i_saved if save_state else iT, T, N, x.stride(0), x.stride(1), u.stride(0),
           u.stride(1), RESET=NO_RESET, NORMALIZE=normalize_input, SAVE_U=save_state,
           SAVE_I=save_state, LI=True)
    return out


@li_fwd_triton.register_fake
def _(x, alpha, beta, i0, u0, normalize_input, save_state):
    return _fwd_outputs(unit_neuron_stride(x), save_state)


@torch.library.custom_op("fastsnn::li_bwd_triton", mutates_args=(), schema=_BWD_SCHEMA)
def li_bwd_triton(grad_u, grad_iT, grad_uT, i_saved, u_saved, i0, u0, alpha, beta,
                  normalize_input, param_grads):
    """torch.ops.fastsnn.li_bwd on the Triton kernels: grads of x, i0, u0 and the (B, N)
    partials of alpha and beta (empty (0,) tensors unless param_grads)."""
    op = "fastsnn::li_bwd_triton"
    check_btn(grad_u, op, "grad_u")
    gu_seq = unit_neuron_stride(grad_u)
    B, T, N = gu_seq.shape
    acc = acc_dtype(gu_seq.dtype)
    if param_grads:
        i_saved, u_saved = acc_args(gu_seq, acc, (B, T, N), op, i_saved=i_saved,
                                    u_saved=u_saved)
    gi, gu, i0, u0 = acc_args(gu_seq, acc, (B, N), op, grad_iT=grad_iT, grad_uT=grad_uT, i0=i0,
                              u0=u0)
    a, b = acc_args(gu_seq, acc, (N,), op, alpha=alpha, beta=beta)
    gx, gi0, gu0, ga, gb = out = _bwd_outputs(gu_seq, param_grads)
    # the LIF backward as the leaky integrator's (LI: grad_u is dL/dU_t, no surrogate); the
    # threshold, scale and threshold partial get stand-ins that LI never touches
    launch(lif_bwd_kernel, gu_seq,
           gu_seq, gx, gi, gu, u_saved if param_grads else u0, i_saved if param_grads else i0,
           i0, u0, a, b, a, a, gi0, gu0, ga if param_grads else gi0,
           gb if param_grads else gi0, gi0,
           T, N, gu_seq.stride(0), gu_seq.stride(1), gx.stride(0), gx.stride(1),
           RESET=NO_RESET, SURROGATE=0, DETACH=True, NORMALIZE=normalize_input,
           PARAMS=param_grads, HAS_I=param_grads, HAS_U=param_grads, LI=True)
    return out


@li_bwd_triton.register_fake
def _(grad_u, grad_iT, grad_uT, i_saved, u_saved, i0, u0, alpha, beta, normalize_input,
      param_grads):
    return _bwd_outputs(unit_neuron_stride(grad_u), param_grads)


def kernel_variants():
    """Every KernelVariant (fastsnn/ops/_triton_common.py) that li_fwd_triton and li_bwd_triton can
    launch: their whole argument space run through them with the launches recorded."""
    sizes = distinct_sizes(tile_config, lif_triton.MAX_BLOCK_N)
    with record_launches() as rec:
        for dtype, N in itertools.product(IO_DTYPES, sizes):
            acc = acc_dtype(dtype)
            x = torch.zeros(1, 1, N, dtype=dtype)
            p, st, seq = (torch.zeros(shape, dtype=acc) for shape in ((N,), (1, N), (1, 1, N)))
            for normalize, save in itertools.product(BOOLS, BOOLS):
                li_fwd_triton(x, p, p, st, st, normalize, save)
            for normalize, params in itertools.product(BOOLS, BOOLS):
                li_bwd_triton(x, st, st, seq, seq, st, st, p, p, normalize, params)
    return unique(rec)


# the kernels it launches: the LIF kernels with LI=True
__all__ = ["li_fwd_triton", "li_bwd_triton", "lif_fwd_kernel", "lif_bwd_kernel"]

registry.TRITON_KERNELS["li"] = (li_fwd_triton, li_bwd_triton)
