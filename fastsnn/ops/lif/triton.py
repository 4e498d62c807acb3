"""Triton kernels of the fused LIF scans: the "triton" backend of ``fastsnn.lif``.

``lif_fwd_triton`` / ``lif_bwd_triton`` have the schemas and semantics of
``torch.ops.fastsnn.lif_fwd`` / ``lif_bwd`` (schemas and host code in csrc/lif/lif.cpp) and repeat
the per-step arithmetic of csrc/lif/lif_math.h op for op, so the forward agrees with the C++
kernels bit for bit (the backward too, up to exp(), and in float32 on a GPU up to Triton's
approximate division and exp). They are custom ops (``fastsnn::lif_fwd_triton``,
``fastsnn::lif_bwd_triton``) with fake implementations that share the allocation code, so
``torch.compile(fullgraph=True)`` traces LIFFunction through them. The same kernels with the
constexpr LI=True are the leaky integrator's (ops/li/triton.py); the host helpers they share
with li and rlif are ops/_triton_common.py.

Decomposition: a 1-D grid of B * cdiv(N, BLOCK_N) programs; program p owns batch row
p // cdiv(N, BLOCK_N) and a block of BLOCK_N neurons, and walks the whole time axis (forward
kernel t = 0..T-1, backward kernel t = T-1..0). T is a runtime argument, never specialised on.
State and arithmetic are float32 (float64 for float64 x); x, s, grad_s, grad_x are loaded and
stored in the I/O dtype. Floating-point contraction is switched off (enable_fp_fusion=False)
because the C++ kernels are built with -ffp-contract=off: no fused multiply-add anywhere.

Bytes per neuron-step (io = I/O element size: 2 for bf16/fp16, 4 for fp32, 8 for fp64;
acc = 4, or 8 for float64 x):
  forward  moves  x read (io) + s written (io)
                  + U_t written (acc) when training (save_u)
                  + I_t written (acc) only when alpha/beta/threshold learn or the zero reset is
                    not detached (save_i)
           keeps  U_t (acc) [+ I_t (acc)] for the backward; nothing in inference.
  backward moves  grad_s read (io) + grad_x written (io) + U_{t-1} read (acc)
                  [+ I_{t-1} read (acc) when I was saved]; U_t and I_t are carried in registers
                  from the previous (later) step; spikes are recomputed from U exactly.
           keeps  nothing.
Per (batch, neuron) pair, once: the initial and final states, and in the backward the
alpha/beta/threshold partials (B, N), which the autograd Function sums (no atomics, so runs
repeat bit for bit).
"""

import itertools

import torch
import triton
import triton.language as tl
from triton.runtime.jit import JITFunction

from ..._validate import IO_DTYPES, acc_dtype
from .. import registry
from .._triton_common import (BOOLS, RESET_CODES, SURROGATE_CODES,
                              acc_arg, acc_args, alloc, alloc_like, check_btn, check_code,
                              distinct_sizes, outputs, record_launches, start, tl_acc, unique,
                              unit_neuron_stride)

MAX_BLOCK_N = 128  # neurons per program (tests lower it to exercise several blocks per row)


@triton.jit
def heaviside(v, thr, ACC: tl.constexpr):
    # Theta(v - thr), Theta(0) = 0, written as a difference like csrc/common/surrogate.h
    return ((v - thr) > 0).to(ACC)


@triton.jit
def surrogate_grad(x, k, k_atan, SURROGATE: tl.constexpr):
    # sigma'(x) with scale k (csrc/common/surrogate.h); k_atan = (pi/2) * k in the acc dtype
    if SURROGATE == 0:  # superspike
        d = k * tl.abs(x) + 1.0
        g = 1.0 / (d * d)
    elif SURROGATE == 1:  # superspike_asymptotic
        d = k * tl.abs(x) + 1.0
        g = k / (d * d)
    elif SURROGATE == 2:  # sigmoid
        s = 1.0 / (1.0 + tl.exp(-k * x))
        g = s * (1.0 - s)
    elif SURROGATE == 3:  # esser: NaN propagates (NaN < 0 is false)
        v = 1.0 - k * tl.abs(x)
        g = tl.where(v < 0, 0.0, v)
    elif SURROGATE == 4:  # atan
        z = k_atan * x
        g = (k / 2.0) / (1.0 + z * z)
    else:  # exponential
        g = tl.exp(-k * tl.abs(x))
    return g


@triton.jit(do_not_specialize=["T"])
def lif_fwd_kernel(
    p_x, p_s, p_alpha, p_beta, p_thr, p_i0, p_u0, p_iT, p_uT, p_u_saved, p_i_saved,
    T, N, x_sb, x_st, s_sb, s_st,
    RESET: tl.constexpr, NORMALIZE: tl.constexpr, SAVE_U: tl.constexpr, SAVE_I: tl.constexpr,
    LI: tl.constexpr, ACC: tl.constexpr, BLOCK_N: tl.constexpr,
):
    # LI: the leaky integrator (fastsnn.li): no threshold or reset (RESET = 2), p_s gets U_t
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
    if not LI:
        b_th = tl.load(p_thr + o_n, mask=m_n, other=0.0)
        b_sp = heaviside(b_u, b_th, ACC)  # S_{t-1}

    p_xt = p_x + i_b * x_sb + o_n  # [BLOCK_N] pointers, advanced one step per iteration
    p_st = p_s + i_b * s_sb + o_n
    p_ut = p_u_saved + i_b * T * N + o_n  # saved tensors are contiguous [B, T, N]
    p_it = p_i_saved + i_b * T * N + o_n
    for _ in range(T):
        b_x = tl.load(p_xt, mask=m_n, other=0.0).to(ACC)
        b_i = b_a * b_i + b_x
        b_h = b_be * b_u + b_g * b_i
        if RESET == 0:  # zero
            b_u = b_h * (1.0 - b_sp)
        elif RESET == 1:  # subtract
            b_u = b_h - b_th * b_sp
        else:
            b_u = b_h
        if LI:
            tl.store(p_st, b_u.to(p_s.dtype.element_ty), mask=m_n)
        else:
            b_sp = heaviside(b_u, b_th, ACC)
            tl.store(p_st, b_sp.to(p_s.dtype.element_ty), mask=m_n)
        if SAVE_U:
            tl.store(p_ut, b_u, mask=m_n)
        if SAVE_I:
            tl.store(p_it, b_i, mask=m_n)
        p_xt += x_st
        p_st += s_st
        p_ut += N
        p_it += N
    tl.store(p_iT + o_bn, b_i, mask=m_n)
    tl.store(p_uT + o_bn, b_u, mask=m_n)


@triton.jit(do_not_specialize=["T"])
def lif_bwd_kernel(
    p_gs, p_gx, p_giT, p_guT, p_u_saved, p_i_saved, p_i0, p_u0, p_alpha, p_beta, p_thr, p_scale,
    p_gi0, p_gu0, p_galpha, p_gbeta, p_gthr,
    T, N, gs_sb, gs_st, gx_sb, gx_st,
    RESET: tl.constexpr, SURROGATE: tl.constexpr, DETACH: tl.constexpr,
    NORMALIZE: tl.constexpr, PARAMS: tl.constexpr, HAS_I: tl.constexpr, HAS_U: tl.constexpr,
    LI: tl.constexpr, ACC: tl.constexpr, BLOCK_N: tl.constexpr,
):
    # LI: the leaky integrator (fastsnn.li): no threshold, surrogate or reset (RESET = 2), p_gs
    # is dL/dU_t; U_t and I_t are read (HAS_U, HAS_I) only for the parameter partials
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
    if not LI:
        b_th = tl.load(p_thr + o_n, mask=m_n, other=0.0)
        k = tl.load(p_scale)  # scalar acc: a float argument would arrive as float32
        k_atan = tl.full([BLOCK_N], 1.5707963267948966, ACC) * k  # [BLOCK_N] (pi/2) k, as C++
    b_u0 = tl.load(p_u0 + o_bn, mask=m_n, other=0.0)
    b_i0 = tl.load(p_i0 + o_bn, mask=m_n, other=0.0)

    # gradient carries of step t as seen from step t+1 (LifGradCarry)
    c_gu = tl.load(p_guT + o_bn, mask=m_n, other=0.0)
    c_gi = tl.load(p_giT + o_bn, mask=m_n, other=0.0)
    c_gs = tl.zeros([BLOCK_N], dtype=ACC)
    b_ga = tl.zeros([BLOCK_N], dtype=ACC)  # per-(batch, neuron) parameter partials
    b_gb = tl.zeros([BLOCK_N], dtype=ACC)
    b_gt = tl.zeros([BLOCK_N], dtype=ACC)

    t_last = (T - 1).to(tl.int64)  # -1 when T == 0: the pointers below are then never used
    p_gst = p_gs + i_b * gs_sb + t_last * gs_st + o_n  # [BLOCK_N], walked backwards
    p_gxt = p_gx + i_b * gx_sb + t_last * gx_st + o_n
    p_ut = p_u_saved + (i_b * T + t_last) * N + o_n
    p_it = p_i_saved + (i_b * T + t_last) * N + o_n
    m_any = m_n & (T > 0)
    if HAS_U:
        b_u = tl.load(p_ut, mask=m_any, other=0.0)  # U_t, carried down the loop
    b_i = tl.zeros([BLOCK_N], dtype=ACC)  # I_t (0 when not saved, as in the C++ kernel)
    b_ip = b_i
    if HAS_I:
        b_i = tl.load(p_it, mask=m_any, other=0.0)
    for r in range(T):
        has_prev = r < T - 1  # t = T-1-r > 0: U_{t-1} is saved; else the initial state
        if HAS_U:
            b_up = tl.load(p_ut - N, mask=m_n & has_prev, other=0.0)
            b_up = tl.where(has_prev, b_up, b_u0)  # U_{t-1}
        if HAS_I:
            b_ip = tl.load(p_it - N, mask=m_n & has_prev, other=0.0)
            b_ip = tl.where(has_prev, b_ip, b_i0)  # I_{t-1}

        # lif_step_bwd
        b_gso = tl.load(p_gst, mask=m_n, other=0.0).to(ACC)
        if LI:  # li_step_bwd: the incoming gradient is dL/dU_t itself
            b_gu = b_gso + c_gu
        else:
            b_gs = b_gso + c_gs
            b_sg_gs = surrogate_grad(b_u - b_th, k, k_atan, SURROGATE) * b_gs
            b_gu = b_sg_gs + c_gu
            b_sp = heaviside(b_up, b_th, ACC)  # S_{t-1}
        if RESET == 0:  # zero
            b_gh = b_gu * (1.0 - b_sp)
            if DETACH:
                c_gs = tl.zeros([BLOCK_N], dtype=ACC)
            else:
                b_h = b_be * b_up + b_g * b_i
                c_gs = -(b_gu * b_h)
        elif RESET == 1:  # subtract
            b_gh = b_gu
            if DETACH:
                c_gs = tl.zeros([BLOCK_N], dtype=ACC)
            else:
                c_gs = -(b_gu * b_th)
        else:
            b_gh = b_gu
        b_gx = b_g * b_gh + c_gi
        c_gi = b_a * b_gx
        c_gu = b_be * b_gh
        tl.store(p_gxt, b_gx.to(p_gx.dtype.element_ty), mask=m_n)

        if PARAMS:  # lif_param_grads
            b_ga += b_gx * b_ip
            if NORMALIZE:
                b_gb += b_gh * (b_up - b_i)
            else:  # 0 * I_t as in the C++ kernel: an infinite I_t still makes NaN
                b_gb += b_gh * (b_up - 0.0 * b_i)
            if not LI:
                b_gt -= b_sg_gs
            if RESET == 1:
                b_gt -= b_sp * b_gu

        if HAS_U:
            b_u = b_up
        if HAS_I:
            b_i = b_ip
        p_gst -= gs_st
        p_gxt -= gx_st
        p_ut -= N
        p_it -= N

    tl.store(p_gi0 + o_bn, c_gi, mask=m_n)
    if LI:
        tl.store(p_gu0 + o_bn, c_gu, mask=m_n)
    else:
        # lif_initial_state_grads: S_{-1} fed step 0's reset
        b_sg0 = surrogate_grad(b_u0 - b_th, k, k_atan, SURROGATE) * c_gs
        tl.store(p_gu0 + o_bn, c_gu + b_sg0, mask=m_n)
    if PARAMS:
        tl.store(p_galpha + o_bn, b_ga, mask=m_n)
        tl.store(p_gbeta + o_bn, b_gb, mask=m_n)
        if not LI:
            b_gt -= b_sg0
            tl.store(p_gthr + o_bn, b_gt, mask=m_n)


# False when TRITON_INTERPRET=1 was set before this module was imported.
COMPILED = isinstance(lif_fwd_kernel, JITFunction)


def tile_config(N):
    """(BLOCK_N, num_warps) of the LIF / LI kernels for N neurons."""
    block_n = min(max(triton.next_power_of_2(N), 16), MAX_BLOCK_N)
    return block_n, max(1, min(4, block_n // 32))


def launch(kernel, x, *args, **constexprs):
    """kernel on the 1-D grid of B * cdiv(N, BLOCK_N) programs for x [B, T, N], on x's device,
    with ACC, BLOCK_N and num_warps filled in and no contraction (as the C++ kernels); no launch
    when B*N == 0."""
    B, _, N = x.shape
    if B * N == 0:
        return
    block_n, num_warps = tile_config(N)
    start(kernel, (B * triton.cdiv(N, block_n),), x, args,
          dict(constexprs, ACC=tl_acc(acc_dtype(x.dtype)), BLOCK_N=block_n), num_warps)


_FWD_SCHEMA = (
    "(Tensor x, Tensor alpha, Tensor beta, Tensor threshold, Tensor i0, Tensor u0, int reset, "
    "bool normalize_input, bool save_u, bool save_i) "
    "-> (Tensor s, Tensor i_T, Tensor u_T, Tensor u_saved, Tensor i_saved)")
_BWD_SCHEMA = (
    "(Tensor grad_s, Tensor grad_iT, Tensor grad_uT, Tensor u_saved, Tensor i_saved, Tensor i0, "
    "Tensor u0, Tensor alpha, Tensor beta, Tensor threshold, int reset, bool detach_reset, "
    "int surrogate, float scale, bool normalize_input, bool param_grads) "
    "-> (Tensor grad_x, Tensor grad_i0, Tensor grad_u0, Tensor grad_alpha, Tensor grad_beta, "
    "Tensor grad_threshold)")


def check_fwd_args(op, x, alpha, beta, threshold, i0, u0, reset):
    """The lif_fwd argument checks (shared with rlif): x with unit neuron stride, the accumulation
    dtype, and alpha, beta, threshold [N], i0, u0 [B, N] in it, contiguous."""
    check_btn(x, op, "x")
    check_code(reset, 2, op, "reset")
    x = unit_neuron_stride(x)
    B, T, N = x.shape
    acc = acc_dtype(x.dtype)
    a, b, th = acc_args(x, acc, (N,), op, alpha=alpha, beta=beta, threshold=threshold)
    i0, u0 = acc_args(x, acc, (B, N), op, i0=i0, u0=u0)
    return x, acc, a, b, th, i0, u0


def check_bwd_args(op, grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, alpha, beta,
                   threshold, reset, detach_reset, surrogate, param_grads):
    """The lif_bwd argument checks (shared with rlif): grad_s with unit neuron stride, the
    accumulation dtype, the saved tensors and states in it, and whether I_t is read."""
    check_btn(grad_s, op, "grad_s")
    check_code(reset, 2, op, "reset")
    check_code(surrogate, 5, op, "surrogate")
    gs = unit_neuron_stride(grad_s)
    B, T, N = gs.shape
    acc = acc_dtype(gs.dtype)
    us = acc_arg(u_saved, gs, acc, (B, T, N), op, "u_saved")
    has_i = i_saved.dim() == 3  # absent tensors are passed as empty (0,)
    if reset == 0 and not detach_reset and not has_i:
        raise ValueError(f"{op}: i_saved is required for the undetached zero reset")
    # read when given: the undetached zero reset needs it, and so do the alpha / beta partials
    # (without it only the threshold partials of param_grads are meaningful)
    need_i = has_i and (param_grads or (reset == 0 and not detach_reset))
    is_ = acc_arg(i_saved, gs, acc, (B, T, N), op, "i_saved") if has_i else i_saved
    gi, gu, i0, u0 = acc_args(gs, acc, (B, N), op, grad_iT=grad_iT, grad_uT=grad_uT, i0=i0,
                              u0=u0)
    a, b, th = acc_args(gs, acc, (N,), op, alpha=alpha, beta=beta, threshold=threshold)
    return gs, acc, us, is_, need_i, gi, gu, i0, u0, a, b, th


def _fwd_outputs(x, save_u, save_i):
    # x [B, T, N] with unit neuron stride; this module's alloc (tests poison it)
    return outputs(x, alloc, alloc_like, seq=(save_u, save_i))


def _bwd_outputs(gs, param_grads):
    return outputs(gs, alloc, alloc_like, part=(param_grads,) * 3)


@torch.library.custom_op("fastsnn::lif_fwd_triton", mutates_args=(), schema=_FWD_SCHEMA)
def lif_fwd_triton(x, alpha, beta, threshold, i0, u0, reset, normalize_input, save_u, save_i):
    """torch.ops.fastsnn.lif_fwd on the Triton kernels: S, I_T, U_T, u_saved, i_saved."""
    x, _, a, b, th, i0, u0 = check_fwd_args("fastsnn::lif_fwd_triton", x, alpha, beta,
                                            threshold, i0, u0, reset)
    T, N = x.shape[1:]
    s, iT, uT, u_saved, i_saved = out = _fwd_outputs(x, save_u, save_i)
    # absent saved tensors get a stand-in pointer that the constexpr flags never touch
    launch(lif_fwd_kernel, x,
           x, s, a, b, th, i0, u0, iT, uT, u_saved if save_u else uT,
           i_saved if save_i else iT, T, N, x.stride(0), x.stride(1), s.stride(0), s.stride(1),
           RESET=reset, NORMALIZE=normalize_input, SAVE_U=save_u, SAVE_I=save_i, LI=False)
    return out


@lif_fwd_triton.register_fake
def _(x, alpha, beta, threshold, i0, u0, reset, normalize_input, save_u, save_i):
    return _fwd_outputs(unit_neuron_stride(x), save_u, save_i)


@torch.library.custom_op("fastsnn::lif_bwd_triton", mutates_args=(), schema=_BWD_SCHEMA)
def lif_bwd_triton(grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, alpha, beta, threshold,
                   reset, detach_reset, surrogate, scale, normalize_input, param_grads):
    """torch.ops.fastsnn.lif_bwd on the Triton kernels: grads of x, i0, u0 and the
    (B, N) partials of alpha, beta, threshold (empty (0,) tensors unless param_grads)."""
    gs, acc, us, is_, need_i, gi, gu, i0, u0, a, b, th = check_bwd_args(
        "fastsnn::lif_bwd_triton", grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, alpha,
        beta, threshold, reset, detach_reset, surrogate, param_grads)
    T, N = gs.shape[1:]
    gx, gi0, gu0, ga, gb, gt = out = _bwd_outputs(gs, param_grads)
    # the scale in the acc dtype: a Python float reaches a Triton kernel as float32
    k = torch.full((1,), scale, dtype=acc, device=gs.device)
    launch(lif_bwd_kernel, gs,
           gs, gx, gi, gu, us, is_ if need_i else us, i0, u0, a, b, th, k,
           gi0, gu0, ga if param_grads else gi0, gb if param_grads else gi0,
           gt if param_grads else gi0,
           T, N, gs.stride(0), gs.stride(1), gx.stride(0), gx.stride(1),
           RESET=reset, SURROGATE=surrogate,
           DETACH=detach_reset or reset == 2,  # only resets that read S_{t-1} can undetach
           NORMALIZE=normalize_input, PARAMS=param_grads, HAS_I=need_i, HAS_U=True, LI=False)
    return out


@lif_bwd_triton.register_fake
def _(grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, alpha, beta, threshold, reset,
      detach_reset, surrogate, scale, normalize_input, param_grads):
    return _bwd_outputs(unit_neuron_stride(grad_s), param_grads)


def kernel_variants():
    """Every KernelVariant that lif_fwd_triton and lif_bwd_triton can launch: their whole argument
    space (the I/O dtypes, one N per tile configuration, every reset and surrogate code and flag)
    run through the two wrappers with the launches recorded, duplicates dropped."""
    with record_launches() as rec:
        for dtype, N in itertools.product(IO_DTYPES, distinct_sizes(tile_config, MAX_BLOCK_N)):
            acc = acc_dtype(dtype)
            x = torch.zeros(1, 1, N, dtype=dtype)
            p, st, seq = (torch.zeros(shape, dtype=acc) for shape in ((N,), (1, N), (1, 1, N)))
            for flags in itertools.product(RESET_CODES, BOOLS, BOOLS, BOOLS):
                lif_fwd_triton(x, p, p, p, st, st, *flags)
            for reset, detach, surrogate, normalize, params in itertools.product(
                    RESET_CODES, BOOLS, SURROGATE_CODES, BOOLS, BOOLS):
                lif_bwd_triton(x, st, st, seq, seq, st, st, p, p, p, reset, detach, surrogate, 1.0,
                               normalize, params)
    return unique(rec)


__all__ = ["lif_fwd_triton", "lif_bwd_triton", "lif_fwd_kernel", "lif_bwd_kernel"]

registry.TRITON_KERNELS["lif"] = (lif_fwd_triton, lif_bwd_triton)
