"""Triton kernels of the fused leaky-integrator scans: the "triton" backend of ``fastsnn.li``.

``li_fwd_triton`` / ``li_bwd_triton`` have the schemas and semantics of
``torch.ops.fastsnn.li_fwd`` / ``li_bwd`` (csrc/ops.cpp, host code csrc/li/li.cpp) and repeat the
per-step arithmetic of csrc/li/li_math.h op for op. Same decomposition, dtypes, custom-op
registration and host helpers as fastsnn/ops/lif/triton.py.

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
import triton
import triton.language as tl

from ..._validate import IO_DTYPES
from .. import registry
from ..lif import triton as lif_triton
from .._triton_common import (BOOLS, acc_args, acc_dtype, alloc, alloc_like, check_btn,
                              distinct_sizes, outputs, record_launches, unique,
                              unit_neuron_stride)
from ..lif.triton import launch, tile_config


@triton.jit(do_not_specialize=["T"])
def li_fwd_kernel(
    p_x, p_u, p_alpha, p_beta, p_i0, p_u0, p_iT, p_uT, p_i_saved, p_u_saved,
    T, N, x_sb, x_st, u_sb, u_st,
    NORMALIZE: tl.constexpr, SAVE: tl.constexpr, ACC: tl.constexpr, BLOCK_N: tl.constexpr,
):
    nblk = tl.cdiv(N, BLOCK_N)
    pid = tl.program_id(0)
    i_b = (pid // nblk).to(tl.int64)  # 64-bit from here on: B*T*N may pass 2^31
    o_n = (pid % nblk) * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    m_n = o_n < N
    o_bn = i_b * N + o_n  # [BLOCK_N] into [B, N]

    b_a = tl.load(p_alpha + o_n, mask=m_n, other=0.0)  # [BLOCK_N] acc
    b_be = tl.load(p_beta + o_n, mask=m_n, other=0.0)
    if NORMALIZE:
        b_g = 1.0 - b_be
    else:
        b_g = tl.full([BLOCK_N], 1.0, ACC)
    b_i = tl.load(p_i0 + o_bn, mask=m_n, other=0.0)
    b_u = tl.load(p_u0 + o_bn, mask=m_n, other=0.0)

    p_xt = p_x + i_b * x_sb + o_n  # [BLOCK_N] pointers, advanced one step per iteration
    p_ot = p_u + i_b * u_sb + o_n
    p_it = p_i_saved + i_b * T * N + o_n  # saved tensors are contiguous [B, T, N]
    p_ut = p_u_saved + i_b * T * N + o_n
    for _ in range(T):
        b_x = tl.load(p_xt, mask=m_n, other=0.0).to(ACC)
        b_i = b_a * b_i + b_x
        b_u = b_be * b_u + b_g * b_i
        tl.store(p_ot, b_u.to(p_u.dtype.element_ty), mask=m_n)
        if SAVE:
            tl.store(p_it, b_i, mask=m_n)
            tl.store(p_ut, b_u, mask=m_n)
        p_xt += x_st
        p_ot += u_st
        p_it += N
        p_ut += N
    tl.store(p_iT + o_bn, b_i, mask=m_n)
    tl.store(p_uT + o_bn, b_u, mask=m_n)


@triton.jit(do_not_specialize=["T"])
def li_bwd_kernel(
    p_gu, p_gx, p_giT, p_guT, p_i_saved, p_u_saved, p_i0, p_u0, p_alpha, p_beta,
    p_gi0, p_gu0, p_galpha, p_gbeta,
    T, N, gu_sb, gu_st, gx_sb, gx_st,
    NORMALIZE: tl.constexpr, PARAMS: tl.constexpr, ACC: tl.constexpr, BLOCK_N: tl.constexpr,
):
    nblk = tl.cdiv(N, BLOCK_N)
    pid = tl.program_id(0)
    i_b = (pid // nblk).to(tl.int64)
    o_n = (pid % nblk) * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    m_n = o_n < N
    o_bn = i_b * N + o_n  # [BLOCK_N] into [B, N]

    b_a = tl.load(p_alpha + o_n, mask=m_n, other=0.0)  # [BLOCK_N] acc
    b_be = tl.load(p_beta + o_n, mask=m_n, other=0.0)
    if NORMALIZE:
        b_g = 1.0 - b_be
    else:
        b_g = tl.full([BLOCK_N], 1.0, ACC)
    c_gu = tl.load(p_guT + o_bn, mask=m_n, other=0.0)  # dL/dU_t, dL/dI_t from step t+1
    c_gi = tl.load(p_giT + o_bn, mask=m_n, other=0.0)
    b_ga = tl.zeros([BLOCK_N], dtype=ACC)  # per-(batch, neuron) parameter partials
    b_gb = tl.zeros([BLOCK_N], dtype=ACC)

    t_last = (T - 1).to(tl.int64)  # -1 when T == 0: the pointers below are then never used
    p_gt = p_gu + i_b * gu_sb + t_last * gu_st + o_n  # [BLOCK_N], walked backwards
    p_gxt = p_gx + i_b * gx_sb + t_last * gx_st + o_n
    p_it = p_i_saved + (i_b * T + t_last) * N + o_n
    p_ut = p_u_saved + (i_b * T + t_last) * N + o_n
    if PARAMS:
        b_u0 = tl.load(p_u0 + o_bn, mask=m_n, other=0.0)
        b_i0 = tl.load(p_i0 + o_bn, mask=m_n, other=0.0)
        b_i = tl.load(p_it, mask=m_n & (T > 0), other=0.0)  # I_t, carried down the loop
    for r in range(T):
        # li_step_bwd
        b_go = tl.load(p_gt, mask=m_n, other=0.0).to(ACC)
        b_gut = b_go + c_gu  # total dL/dU_t
        b_gx = b_g * b_gut + c_gi
        c_gi = b_a * b_gx
        c_gu = b_be * b_gut
        tl.store(p_gxt, b_gx.to(p_gx.dtype.element_ty), mask=m_n)
        if PARAMS:  # li_param_grads
            has_prev = r < T - 1  # t > 0: step t-1 was saved; else the initial state
            b_up = tl.where(has_prev, tl.load(p_ut - N, mask=m_n & has_prev, other=0.0), b_u0)
            b_ip = tl.where(has_prev, tl.load(p_it - N, mask=m_n & has_prev, other=0.0), b_i0)
            b_ga += b_gx * b_ip
            if NORMALIZE:
                b_gb += b_gut * (b_up - b_i)
            else:  # 0 * I_t as in the C++ kernel: an infinite I_t still makes NaN
                b_gb += b_gut * (b_up - 0.0 * b_i)
            b_i = b_ip
        p_gt -= gu_st
        p_gxt -= gx_st
        p_it -= N
        p_ut -= N
    tl.store(p_gi0 + o_bn, c_gi, mask=m_n)
    tl.store(p_gu0 + o_bn, c_gu, mask=m_n)
    if PARAMS:
        tl.store(p_galpha + o_bn, b_ga, mask=m_n)
        tl.store(p_gbeta + o_bn, b_gb, mask=m_n)


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
    # absent saved tensors get a stand-in pointer that the SAVE flag never touches
    launch(li_fwd_kernel, x,
           x, u, a, b, i0, u0, iT, uT, i_saved if save_state else iT,
           u_saved if save_state else uT, T, N, x.stride(0), x.stride(1), u.stride(0),
           u.stride(1), NORMALIZE=normalize_input, SAVE=save_state)
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
    launch(li_bwd_kernel, gu_seq,
           gu_seq, gx, gi, gu, i_saved if param_grads else i0, u_saved if param_grads else u0,
           i0, u0, a, b, gi0, gu0, ga if param_grads else gi0, gb if param_grads else gi0,
           T, N, gu_seq.stride(0), gu_seq.stride(1), gx.stride(0), gx.stride(1),
           NORMALIZE=normalize_input, PARAMS=param_grads)
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


__all__ = ["li_fwd_triton", "li_bwd_triton", "li_fwd_kernel", "li_bwd_kernel"]

registry.TRITON_KERNELS["li"] = (li_fwd_triton, li_bwd_triton)
