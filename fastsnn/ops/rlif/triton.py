"""Triton kernels of the fused recurrent LIF scans: the "triton" backend of ``fastsnn.rlif``.

``rlif_fwd_triton`` / ``rlif_bwd_triton`` have the schemas and semantics of
``torch.ops.fastsnn.rlif_fwd`` / ``rlif_bwd`` (csrc/rlif/rlif.cpp) and are custom ops
(``fastsnn::rlif_fwd_triton``, ``fastsnn::rlif_bwd_triton``) with fake implementations, so
``torch.compile(fullgraph=True)`` traces RLIFFunction through them. The per-neuron arithmetic is
that of the LIF kernels (fastsnn/ops/lif/triton.py, csrc/lif/lif_math.h) with the recurrent
input added after the feed-forward current as in ``rlif_step_fwd``: I_t = (alpha I + x_t) + R_t;
the backward adds gI_{t+1} @ Vᵀ to dL/dS_t (not when detach_recurrent), at t = -1 too, where it
reaches grad_u0 and grad_threshold through the surrogate of S_{-1} like the reset term.

Decomposition: one persistent kernel per direction on a 1-D grid of cdiv(B, BLOCK_B) programs.
Program p owns BLOCK_B batch rows and ALL N neurons and walks the whole time axis; batch rows
are independent, so no program ever waits for another. Every step does the recurrent product,
R_t = S_{t-1} @ V forward and gI_{t+1} @ Vᵀ backward, with ``tl.dot``, V (Vᵀ: a transposed copy
made once per backward call) being read from global memory / L2 every step: an N x N operand
does not stay in registers, and all programs share it. Two paths, chosen on the host from N:
  direct   N <= MAX_DIRECT_N (32): the state (I, U), the backward's carries and the parameter
           partials live in [BLOCK_B, BLOCK_N] register tiles; one tl.dot per step straight from
           the register tile of S_{t-1} (gI_{t+1}) against the whole [BLOCK_N, BLOCK_N] V.
  chunked  N > MAX_DIRECT_N: inside each step the neurons are walked in chunks of BLOCK_N, and
           each chunk's product loops over K-chunks of BLOCK_K. A register tile cannot be sliced,
           so S_{t-1} (gI_{t+1}) is staged in global memory: a [2, rows, N] scratch, each program
           on its own rows (double-buffered: step t reads half t % 2 and writes the other); in
           the backward gI_t goes to grad_x itself or to the float32 gI buffer of dV if either
           exists, else to such a scratch;
           the state lives in the final-state outputs I_T / U_T, the backward's carries in a
           [3, rows, N] scratch, the parameter partials in their outputs. One
           ``tl.debug_barrier()`` (bar.sync, which also orders the CTA's global memory accesses)
           per step makes a step's writes visible to the whole program before the next step.
           These round trips hit L1/L2 (BLOCK_B x N x 4 bytes per array and program).
Supported N: no maximum. The tiles have fixed shapes whatever N is ([BLOCK_B, BLOCK_N] state and
output, [BLOCK_B, BLOCK_K] x [BLOCK_K, BLOCK_N] dot operands), so registers do not grow with N;
scratch grows as BLOCK_B x N per program, time per step as N². Tile choice: ptxas -v on sm_90a
(Triton 3.8 ahead-of-time compile, 8 warps) gives direct <= 80 / 124 registers (forward /
backward; float64 126 / 160) and chunked 128 (8 bytes spilled) / 180 (float64 128 / 190, no
spill); wider tiles (BLOCK_N 64 or 128) or 4 warps spill hundreds of bytes, because the
float32 "ieee" dot is an FMA loop that holds whole operand slices in registers. Not yet timed on
a GPU: the constants below are the first thing to tune there.

Precision: float32 products run with input_precision="ieee" (no TF32). The spikes are exact
0/1, so R_t is a float32 sum of entries of V, rounded in tl.dot's order (FMA chains on a GPU)
rather than the reference matmul's: the only difference from the reference's float32 operations.
float64 uses a float64 dot (DMMA, sm_80+). Every tl.dot names out_dtype=ACC: Triton 3.6 takes
float32 for it when omitted and rejects a float64 accumulator. bf16 / fp16 inputs keep float32
state and a float32 (ieee) product; V is always in the accumulation dtype (RLIFFunction converts
it). Everywhere else floating-point contraction is off (enable_fp_fusion=False), as in the LIF
kernels.

dV = sum_t S_{t-1}ᵀ gI_t is one matrix product after the scan, in the op's host code: the
kernel leaves gI_t = dL/dI_t in the accumulation dtype (grad_x itself when the I/O dtype is the
accumulation dtype, else a [B, T, N] float32 buffer, written only when dV is wanted), S_{t-1} is
recomputed from u0 / u_saved exactly as the kernels do, and torch.mm sums over (batch, time):
deterministic, no atomics, and at torch's float32 matmul precision setting (no TF32 by default).

Bytes per neuron-step (io = I/O element size: 2 for bf16/fp16, 4 for fp32, 8 for fp64;
acc = 4, or 8 for float64 x), DRAM:
  forward  moves  x read (io) + s written (io) + U_t written (acc) when training (save_u)
                  + I_t written (acc) only when alpha/beta/threshold learn or the zero reset is
                    not detached (save_i)
           keeps  U_t (acc) [+ I_t (acc)] for the backward; nothing in inference.
  backward moves  grad_s read (io) + grad_x written (io) + U_{t-1} read (acc)
                  [+ I_{t-1} read (acc) when I was saved] + gI_t written (acc) only when dV is
                  wanted and io != acc; dV's product then reads gI and S_{t-1} (recomputed) once.
           keeps  nothing.
  from L2, both directions: V, N x acc / BLOCK_B per neuron-step (N² per program and step,
  shared by its BLOCK_B rows), against 2 N flops of the product; the chunked path also reads
  the staged operand N / BLOCK_N times (N x acc per row and chunk, L1) and round-trips its
  state. For N in the hundreds the product, not DRAM, bounds the step.
Per (batch, neuron) pair, once: the initial and final states, and in the backward the
alpha/beta/threshold partials (B, N), which the autograd Function sums (no atomics, so runs
repeat bit for bit).
"""

import itertools

import torch
import triton
import triton.language as tl

from ..._validate import IO_DTYPES, acc_dtype
from .. import registry
from .._triton_common import (BOOLS, RESET_CODES, SURROGATE_CODES, acc_arg, alloc,
                              alloc_like, distinct_sizes, outputs, record_launches, start,
                              tl_acc, unique, unit_neuron_stride)
from ..lif.triton import check_bwd_args, check_fwd_args, heaviside, surrogate_grad

BLOCK_B = 16  # batch rows per program (tl.dot needs >= 16)
MAX_DIRECT_N = 32  # up to this many neurons (rounded up to a power of 2): the direct path
BLOCK_N = 32  # neurons per chunk of the chunked path
BLOCK_K = 32  # K-chunk of the chunked path's recurrent product
NUM_WARPS = 8


@triton.jit
def load_params(p_alpha, p_beta, p_thr, o_n, m_n, NORMALIZE: tl.constexpr):
    """alpha, beta, gamma, threshold of neurons o_n as [1, BLOCK_N] rows."""
    b_a = tl.load(p_alpha + o_n, mask=m_n, other=0.0)[None, :]
    b_be = tl.load(p_beta + o_n, mask=m_n, other=0.0)[None, :]
    b_th = tl.load(p_thr + o_n, mask=m_n, other=0.0)[None, :]
    if NORMALIZE:
        b_g = 1.0 - b_be
    else:
        b_g = tl.zeros_like(b_be) + 1.0
    return b_a, b_be, b_g, b_th


@triton.jit
def recurrent_product(p_src, src_sb, o_b, m_b, p_w, o_n, m_n, N,
                      ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
                      BLOCK_K: tl.constexpr):
    """[BLOCK_B, BLOCK_N]: sum over k < N of src[b, k] * w[k, n], src rows at p_src + b * src_sb
    (masked loads: rows b >= B and columns k >= N count as zero), w [N, N] row-major."""
    b_r = tl.zeros([BLOCK_B, BLOCK_N], dtype=ACC)
    o_k0 = tl.arange(0, BLOCK_K)
    for k0 in range(0, N, BLOCK_K):
        o_k = k0 + o_k0
        m_k = o_k < N
        b_src = tl.load(p_src + o_b[:, None] * src_sb + o_k[None, :],
                        mask=m_b[:, None] & m_k[None, :], other=0.0)  # [BLOCK_B, BLOCK_K]
        b_w = tl.load(p_w + o_k.to(tl.int64)[:, None] * N + o_n[None, :],
                      mask=m_k[:, None] & m_n[None, :], other=0.0)  # [BLOCK_K, BLOCK_N]
        b_r = tl.dot(b_src, b_w, b_r, input_precision="ieee", out_dtype=ACC)
    return b_r


@triton.jit
def membrane_step(b_i, b_u, b_sp, b_be, b_g, b_th, RESET: tl.constexpr):
    """U_t from U_{t-1} = b_u, I_t = b_i and S_{t-1} = b_sp (lif_membrane_step)."""
    b_h = b_be * b_u + b_g * b_i
    if RESET == 0:  # zero
        b_u = b_h * (1.0 - b_sp)
    elif RESET == 1:  # subtract
        b_u = b_h - b_th * b_sp
    else:
        b_u = b_h
    return b_u


@triton.jit(do_not_specialize=["T"])
def rlif_fwd_kernel(
    p_x, p_w, p_s, p_alpha, p_beta, p_thr, p_i0, p_u0, p_iT, p_uT, p_u_saved, p_i_saved, p_sc,
    B, T, N, x_sb, x_st, s_sb, s_st, sc_st,
    RESET: tl.constexpr, NORMALIZE: tl.constexpr, SAVE_U: tl.constexpr, SAVE_I: tl.constexpr,
    ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    CHUNKED: tl.constexpr,
):
    pid = tl.program_id(0)
    o_b = (pid * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)  # [BLOCK_B] batch rows
    m_b = o_b < B
    if not CHUNKED:  # all N neurons in one [BLOCK_B, BLOCK_N] register tile
        o_n = tl.arange(0, BLOCK_N)
        m_n = o_n < N
        m = m_b[:, None] & m_n[None, :]  # [BLOCK_B, BLOCK_N]
        o_bn = o_b[:, None] * N + o_n[None, :]
        b_a, b_be, b_g, b_th = load_params(p_alpha, p_beta, p_thr, o_n, m_n, NORMALIZE)
        b_i = tl.load(p_i0 + o_bn, mask=m, other=0.0)  # [BLOCK_B, BLOCK_N] acc
        b_u = tl.load(p_u0 + o_bn, mask=m, other=0.0)
        # V [BLOCK_N, BLOCK_N] is loaded every step: held across the loop it would pin registers
        p_wt = p_w + o_n.to(tl.int64)[:, None] * N + o_n[None, :]
        m_w = m_n[:, None] & m_n[None, :]
        p_xt = p_x + o_b[:, None] * x_sb + o_n[None, :]  # advanced one step per iteration
        p_st = p_s + o_b[:, None] * s_sb + o_n[None, :]
        p_ut = p_u_saved + o_b[:, None] * T * N + o_n[None, :]  # saved: contiguous [B, T, N]
        p_it = p_i_saved + o_b[:, None] * T * N + o_n[None, :]
        for _ in range(T):
            b_sp = heaviside(b_u, b_th, ACC)  # S_{t-1}, exactly as the reference
            b_w = tl.load(p_wt, mask=m_w, other=0.0)
            b_r = tl.dot(tl.where(m, b_sp, 0.0), b_w, input_precision="ieee", out_dtype=ACC)
            b_x = tl.load(p_xt, mask=m, other=0.0).to(ACC)
            b_i = b_a * b_i + b_x
            b_i = b_i + b_r
            b_u = membrane_step(b_i, b_u, b_sp, b_be, b_g, b_th, RESET)
            tl.store(p_st, heaviside(b_u, b_th, ACC).to(p_s.dtype.element_ty), mask=m)
            if SAVE_U:
                tl.store(p_ut, b_u, mask=m)
            if SAVE_I:
                tl.store(p_it, b_i, mask=m)
            p_xt += x_st
            p_st += s_st
            p_ut += N
            p_it += N
        tl.store(p_iT + o_bn, b_i, mask=m)
        tl.store(p_uT + o_bn, b_u, mask=m)
    else:
        # the state lives in I_T / U_T (this program's rows), S_{t-1} in the spike scratch
        # p_sc [2, rows, N]: half t % 2 holds S_{t-1} at step t
        for n0 in range(0, N, BLOCK_N):
            o_n = n0 + tl.arange(0, BLOCK_N)
            m_n = o_n < N
            m = m_b[:, None] & m_n[None, :]
            o_bn = o_b[:, None] * N + o_n[None, :]
            b_th = tl.load(p_thr + o_n, mask=m_n, other=0.0)[None, :]
            b_u = tl.load(p_u0 + o_bn, mask=m, other=0.0)
            tl.store(p_iT + o_bn, tl.load(p_i0 + o_bn, mask=m, other=0.0), mask=m)
            tl.store(p_uT + o_bn, b_u, mask=m)
            tl.store(p_sc + o_bn, heaviside(b_u, b_th, ACC), mask=m)  # S_{-1}: half 0
        tl.debug_barrier()
        for t in range(T):
            p_cur = p_sc + tl.cast(t % 2, tl.int64) * sc_st
            p_nxt = p_sc + tl.cast((t + 1) % 2, tl.int64) * sc_st
            t64 = tl.cast(t, tl.int64)
            for n0 in range(0, N, BLOCK_N):
                o_n = n0 + tl.arange(0, BLOCK_N)
                m_n = o_n < N
                m = m_b[:, None] & m_n[None, :]
                o_bn = o_b[:, None] * N + o_n[None, :]
                b_r = recurrent_product(p_cur, N, o_b, m_b, p_w, o_n, m_n, N,
                                        ACC, BLOCK_B, BLOCK_N, BLOCK_K)
                b_a, b_be, b_g, b_th = load_params(p_alpha, p_beta, p_thr, o_n, m_n, NORMALIZE)
                b_i = tl.load(p_iT + o_bn, mask=m, other=0.0)
                b_u = tl.load(p_uT + o_bn, mask=m, other=0.0)
                b_sp = heaviside(b_u, b_th, ACC)
                b_x = tl.load(p_x + o_b[:, None] * x_sb + t64 * x_st + o_n[None, :],
                              mask=m, other=0.0).to(ACC)
                b_i = b_a * b_i + b_x
                b_i = b_i + b_r
                b_u = membrane_step(b_i, b_u, b_sp, b_be, b_g, b_th, RESET)
                b_s = heaviside(b_u, b_th, ACC)
                tl.store(p_s + o_b[:, None] * s_sb + t64 * s_st + o_n[None, :],
                         b_s.to(p_s.dtype.element_ty), mask=m)
                tl.store(p_iT + o_bn, b_i, mask=m)
                tl.store(p_uT + o_bn, b_u, mask=m)
                tl.store(p_nxt + o_bn, b_s, mask=m)
                o_saved = (o_b[:, None] * T + t64) * N + o_n[None, :]
                if SAVE_U:
                    tl.store(p_u_saved + o_saved, b_u, mask=m)
                if SAVE_I:
                    tl.store(p_i_saved + o_saved, b_i, mask=m)
            tl.debug_barrier()


@triton.jit
def bwd_step(b_gso, c_gs, b_rec, b_u, b_up, b_i, c_gu, c_gi, b_be, b_g, b_th, k, k_atan,
             RESET: tl.constexpr, SURROGATE: tl.constexpr, DETACH: tl.constexpr,
             RECUR: tl.constexpr, ACC: tl.constexpr):
    """One reverse step (lif_step_bwd) with the recurrent term b_rec = (gI_{t+1} @ Vᵀ) added to
    dL/dS_t: (gx, gH, sigma' gS, gU, S_{t-1}, carry gS for step t-1)."""
    b_gs = b_gso + c_gs
    if RECUR:
        b_gs = b_gs + b_rec
    b_sg_gs = surrogate_grad(b_u - b_th, k, k_atan, SURROGATE) * b_gs
    b_gu = b_sg_gs + c_gu
    b_sp = heaviside(b_up, b_th, ACC)  # S_{t-1}
    n_gs = tl.zeros_like(b_gu)  # the carry of a detached reset is 0, even for a NaN gU
    if RESET == 0:  # zero
        b_gh = b_gu * (1.0 - b_sp)
        if not DETACH:
            b_h = b_be * b_up + b_g * b_i
            n_gs = -(b_gu * b_h)
    elif RESET == 1:  # subtract
        b_gh = b_gu
        if not DETACH:
            n_gs = -(b_gu * b_th)
    else:
        b_gh = b_gu
    b_gx = b_g * b_gh + c_gi
    return b_gx, b_gh, b_sg_gs, b_gu, b_sp, n_gs


@triton.jit
def param_partials(b_ga, b_gb, b_gt, b_gx, b_gh, b_sg_gs, b_gu, b_sp, b_up, b_ip, b_i,
                   RESET: tl.constexpr, NORMALIZE: tl.constexpr):
    """lif_param_grads for one step, added to the (batch, neuron) partials."""
    b_ga += b_gx * b_ip
    if NORMALIZE:
        b_gb += b_gh * (b_up - b_i)
    else:  # 0 * I_t as in the C++ kernel: an infinite I_t still makes NaN
        b_gb += b_gh * (b_up - 0.0 * b_i)
    b_gt -= b_sg_gs
    if RESET == 1:
        b_gt -= b_sp * b_gu
    return b_ga, b_gb, b_gt


@triton.jit(do_not_specialize=["T"])
def rlif_bwd_kernel(
    p_gs, p_gx, p_giT, p_guT, p_u_saved, p_i_saved, p_i0, p_u0, p_wt, p_alpha, p_beta, p_thr,
    p_scale, p_gi0, p_gu0, p_galpha, p_gbeta, p_gthr, p_ring, p_carry,
    B, T, N, gs_sb, gs_st, gx_sb, gx_st, ring_sb, ring_st, ring_mod, carry_st,
    RESET: tl.constexpr, SURROGATE: tl.constexpr, DETACH: tl.constexpr, RECUR: tl.constexpr,
    NORMALIZE: tl.constexpr, PARAMS: tl.constexpr, HAS_I: tl.constexpr,
    WRITE_RING: tl.constexpr, ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr, CHUNKED: tl.constexpr,
):
    # p_wt: Vᵀ [N, N] contiguous. p_ring: where gI_t = dL/dI_t (acc) of step t goes, at
    # p_ring + b * ring_sb + (t % ring_mod) * ring_st + n: grad_x itself, a [B, T, N] buffer for
    # dV, or a 2-step scratch. The chunked path reads gI_{t+1} back from it; the direct path
    # keeps gI_{t+1} in registers and writes the ring only for dV (WRITE_RING).
    pid = tl.program_id(0)
    o_b = (pid * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)  # [BLOCK_B] batch rows
    m_b = o_b < B
    k = tl.load(p_scale)  # scalar acc: a float argument would arrive as float32
    if not CHUNKED:  # all N neurons in one [BLOCK_B, BLOCK_N] register tile
        o_n = tl.arange(0, BLOCK_N)
        m_n = o_n < N
        m = m_b[:, None] & m_n[None, :]
        o_bn = o_b[:, None] * N + o_n[None, :]
        b_a, b_be, b_g, b_th = load_params(p_alpha, p_beta, p_thr, o_n, m_n, NORMALIZE)
        k_atan = tl.full([1, BLOCK_N], 1.5707963267948966, ACC) * k  # (pi/2) k, as C++
        b_u0 = tl.load(p_u0 + o_bn, mask=m, other=0.0)
        b_i0 = tl.load(p_i0 + o_bn, mask=m, other=0.0)
        p_wtt = p_wt + o_n.to(tl.int64)[:, None] * N + o_n[None, :]  # Vᵀ [BLOCK_N, BLOCK_N]
        m_w = m_n[:, None] & m_n[None, :]
        c_gu = tl.load(p_guT + o_bn, mask=m, other=0.0)
        c_gi = tl.load(p_giT + o_bn, mask=m, other=0.0)
        c_gs = tl.zeros([BLOCK_B, BLOCK_N], dtype=ACC)
        b_gnext = tl.zeros([BLOCK_B, BLOCK_N], dtype=ACC)  # gI_{t+1}, zero at t = T-1
        b_ga = tl.zeros([BLOCK_B, BLOCK_N], dtype=ACC)
        b_gb = tl.zeros([BLOCK_B, BLOCK_N], dtype=ACC)
        b_gt = tl.zeros([BLOCK_B, BLOCK_N], dtype=ACC)
        b_rec = tl.zeros([BLOCK_B, BLOCK_N], dtype=ACC)

        t_last = (T - 1).to(tl.int64)  # -1 when T == 0: the pointers are then never used
        p_gst = p_gs + o_b[:, None] * gs_sb + t_last * gs_st + o_n[None, :]  # walked backwards
        p_gxt = p_gx + o_b[:, None] * gx_sb + t_last * gx_st + o_n[None, :]
        p_rt = p_ring + o_b[:, None] * ring_sb + t_last * ring_st + o_n[None, :]
        p_ut = p_u_saved + (o_b[:, None] * T + t_last) * N + o_n[None, :]
        p_it = p_i_saved + (o_b[:, None] * T + t_last) * N + o_n[None, :]
        m_any = m & (T > 0)
        b_u = tl.load(p_ut, mask=m_any, other=0.0)  # U_t, carried down the loop
        b_i = tl.zeros([BLOCK_B, BLOCK_N], dtype=ACC)  # I_t (0 when not saved)
        if HAS_I:
            b_i = tl.load(p_it, mask=m_any, other=0.0)
        for r in range(T):
            if RECUR:
                b_w = tl.load(p_wtt, mask=m_w, other=0.0)
                # gI_{t+1} @ Vᵀ; none at t = T-1 (no R_T: 0 @ Vᵀ would be NaN for an inf in V)
                b_rec = tl.dot(b_gnext, b_w, input_precision="ieee", out_dtype=ACC)
                b_rec = tl.where(r > 0, b_rec, 0.0)
            has_prev = r < T - 1  # t > 0: U_{t-1} is saved; else the initial state
            b_up = tl.load(p_ut - N, mask=m & has_prev, other=0.0)
            b_up = tl.where(has_prev, b_up, b_u0)  # U_{t-1}
            b_ip = b_i0
            if HAS_I:
                b_ip = tl.load(p_it - N, mask=m & has_prev, other=0.0)
                b_ip = tl.where(has_prev, b_ip, b_i0)  # I_{t-1}
            b_gso = tl.load(p_gst, mask=m, other=0.0).to(ACC)
            b_gx, b_gh, b_sg_gs, b_gu, b_sp, c_gs = bwd_step(
                b_gso, c_gs, b_rec, b_u, b_up, b_i, c_gu, c_gi, b_be, b_g, b_th, k, k_atan,
                RESET, SURROGATE, DETACH, RECUR, ACC)
            c_gi = b_a * b_gx
            c_gu = b_be * b_gh
            tl.store(p_gxt, b_gx.to(p_gx.dtype.element_ty), mask=m)
            if WRITE_RING:
                tl.store(p_rt, b_gx, mask=m)
            b_gnext = tl.where(m, b_gx, 0.0)
            if PARAMS:
                b_ga, b_gb, b_gt = param_partials(b_ga, b_gb, b_gt, b_gx, b_gh, b_sg_gs, b_gu,
                                                  b_sp, b_up, b_ip, b_i, RESET, NORMALIZE)
            b_u = b_up
            if HAS_I:
                b_i = b_ip
            p_gst -= gs_st
            p_gxt -= gx_st
            p_rt -= ring_st
            p_ut -= N
            p_it -= N

        # S_{-1} fed step 0's reset and its recurrence: gS_{-1} = carry + gI_0 @ Vᵀ
        b_gs0 = c_gs
        if RECUR:
            b_w = tl.load(p_wtt, mask=m_w, other=0.0)
            b_gs0 = b_gs0 + tl.where(
                T > 0, tl.dot(b_gnext, b_w, input_precision="ieee", out_dtype=ACC), 0.0)
        b_sg0 = surrogate_grad(b_u0 - b_th, k, k_atan, SURROGATE) * b_gs0
        tl.store(p_gi0 + o_bn, c_gi, mask=m)
        tl.store(p_gu0 + o_bn, c_gu + b_sg0, mask=m)
        if PARAMS:
            b_gt -= b_sg0
            tl.store(p_galpha + o_bn, b_ga, mask=m)
            tl.store(p_gbeta + o_bn, b_gb, mask=m)
            tl.store(p_gthr + o_bn, b_gt, mask=m)
    else:
        # carries [3, rows, N] in p_carry: gU, gI, gS of step t as seen from t+1; the parameter
        # partials accumulate in their outputs
        p_cgu = p_carry
        p_cgi = p_carry + carry_st
        p_cgs = p_carry + 2 * carry_st
        for n0 in range(0, N, BLOCK_N):
            o_n = n0 + tl.arange(0, BLOCK_N)
            m_n = o_n < N
            m = m_b[:, None] & m_n[None, :]
            o_bn = o_b[:, None] * N + o_n[None, :]
            tl.store(p_cgu + o_bn, tl.load(p_guT + o_bn, mask=m, other=0.0), mask=m)
            tl.store(p_cgi + o_bn, tl.load(p_giT + o_bn, mask=m, other=0.0), mask=m)
            zero = tl.zeros([BLOCK_B, BLOCK_N], dtype=ACC)
            tl.store(p_cgs + o_bn, zero, mask=m)
            if PARAMS:
                tl.store(p_galpha + o_bn, zero, mask=m)
                tl.store(p_gbeta + o_bn, zero, mask=m)
                tl.store(p_gthr + o_bn, zero, mask=m)
        tl.debug_barrier()
        for r in range(T):
            t = T - 1 - r
            t64 = tl.cast(t, tl.int64)
            o_ring = tl.cast(t % ring_mod, tl.int64) * ring_st
            o_ring_next = tl.cast((t + 1) % ring_mod, tl.int64) * ring_st
            has_prev = r < T - 1
            for n0 in range(0, N, BLOCK_N):
                o_n = n0 + tl.arange(0, BLOCK_N)
                m_n = o_n < N
                m = m_b[:, None] & m_n[None, :]
                o_bn = o_b[:, None] * N + o_n[None, :]
                b_rec = tl.zeros([BLOCK_B, BLOCK_N], dtype=ACC)
                if RECUR:
                    b_rec = recurrent_product(p_ring + o_ring_next, ring_sb,
                                              o_b, m_b & (r > 0), p_wt, o_n, m_n, N,
                                              ACC, BLOCK_B, BLOCK_N, BLOCK_K)
                    b_rec = tl.where(r > 0, b_rec, 0.0)  # no R_T (0 * inf in V: NaN)
                b_a, b_be, b_g, b_th = load_params(p_alpha, p_beta, p_thr, o_n, m_n, NORMALIZE)
                k_atan = tl.full([1, BLOCK_N], 1.5707963267948966, ACC) * k
                o_saved = (o_b[:, None] * T + t64) * N + o_n[None, :]
                b_u = tl.load(p_u_saved + o_saved, mask=m, other=0.0)
                b_up = tl.load(p_u_saved + o_saved - N, mask=m & has_prev, other=0.0)
                b_up = tl.where(has_prev, b_up, tl.load(p_u0 + o_bn, mask=m, other=0.0))
                b_i = tl.zeros([BLOCK_B, BLOCK_N], dtype=ACC)
                b_ip = b_i
                if HAS_I:
                    b_i = tl.load(p_i_saved + o_saved, mask=m, other=0.0)
                    b_ip = tl.load(p_i_saved + o_saved - N, mask=m & has_prev, other=0.0)
                    b_ip = tl.where(has_prev, b_ip, tl.load(p_i0 + o_bn, mask=m, other=0.0))
                b_gso = tl.load(p_gs + o_b[:, None] * gs_sb + t64 * gs_st + o_n[None, :],
                                mask=m, other=0.0).to(ACC)
                c_gu = tl.load(p_cgu + o_bn, mask=m, other=0.0)
                c_gi = tl.load(p_cgi + o_bn, mask=m, other=0.0)
                c_gs = tl.load(p_cgs + o_bn, mask=m, other=0.0)
                b_gx, b_gh, b_sg_gs, b_gu, b_sp, c_gs = bwd_step(
                    b_gso, c_gs, b_rec, b_u, b_up, b_i, c_gu, c_gi, b_be, b_g, b_th, k, k_atan,
                    RESET, SURROGATE, DETACH, RECUR, ACC)
                tl.store(p_gx + o_b[:, None] * gx_sb + t64 * gx_st + o_n[None, :],
                         b_gx.to(p_gx.dtype.element_ty), mask=m)
                if WRITE_RING:
                    tl.store(p_ring + o_b[:, None] * ring_sb + o_ring + o_n[None, :], b_gx,
                             mask=m)
                tl.store(p_cgu + o_bn, b_be * b_gh, mask=m)
                tl.store(p_cgi + o_bn, b_a * b_gx, mask=m)
                tl.store(p_cgs + o_bn, c_gs, mask=m)
                if PARAMS:
                    b_ga, b_gb, b_gt = param_partials(
                        tl.load(p_galpha + o_bn, mask=m, other=0.0),
                        tl.load(p_gbeta + o_bn, mask=m, other=0.0),
                        tl.load(p_gthr + o_bn, mask=m, other=0.0),
                        b_gx, b_gh, b_sg_gs, b_gu, b_sp, b_up, b_ip, b_i, RESET, NORMALIZE)
                    tl.store(p_galpha + o_bn, b_ga, mask=m)
                    tl.store(p_gbeta + o_bn, b_gb, mask=m)
                    tl.store(p_gthr + o_bn, b_gt, mask=m)
            tl.debug_barrier()
        for n0 in range(0, N, BLOCK_N):
            o_n = n0 + tl.arange(0, BLOCK_N)
            m_n = o_n < N
            m = m_b[:, None] & m_n[None, :]
            o_bn = o_b[:, None] * N + o_n[None, :]
            b_th = tl.load(p_thr + o_n, mask=m_n, other=0.0)[None, :]
            k_atan = tl.full([1, BLOCK_N], 1.5707963267948966, ACC) * k
            b_gs0 = tl.load(p_cgs + o_bn, mask=m, other=0.0)
            if RECUR:
                b_gs0 = b_gs0 + tl.where(
                    T > 0, recurrent_product(p_ring, ring_sb, o_b, m_b & (T > 0), p_wt, o_n,
                                             m_n, N, ACC, BLOCK_B, BLOCK_N, BLOCK_K), 0.0)
            b_u0 = tl.load(p_u0 + o_bn, mask=m, other=0.0)
            b_sg0 = surrogate_grad(b_u0 - b_th, k, k_atan, SURROGATE) * b_gs0
            tl.store(p_gi0 + o_bn, tl.load(p_cgi + o_bn, mask=m, other=0.0), mask=m)
            tl.store(p_gu0 + o_bn, tl.load(p_cgu + o_bn, mask=m, other=0.0) + b_sg0, mask=m)
            if PARAMS:
                tl.store(p_gthr + o_bn, tl.load(p_gthr + o_bn, mask=m, other=0.0) - b_sg0,
                         mask=m)


def plan(N):
    """(chunked, BLOCK_N) for N neurons: the direct path up to MAX_DIRECT_N, else chunked."""
    block_n = max(16, triton.next_power_of_2(N))
    if block_n <= MAX_DIRECT_N:
        return False, block_n
    return True, BLOCK_N


def launch(kernel, x, *args, **constexprs):
    """kernel on cdiv(B, BLOCK_B) programs for x [B, T, N] (no launch when B*N == 0), with ACC,
    the tile sizes, CHUNKED and num_warps filled in and no contraction (as the C++ kernels)."""
    B, _, N = x.shape
    if B * N == 0:
        return
    chunked, block_n = plan(N)
    start(kernel, (triton.cdiv(B, BLOCK_B),), x, args,
          dict(constexprs, ACC=tl_acc(acc_dtype(x.dtype)), BLOCK_B=BLOCK_B, BLOCK_N=block_n,
               BLOCK_K=BLOCK_K, CHUNKED=chunked), NUM_WARPS)


def scratch(x, planes, N):
    """[planes, rows, N] accumulation-dtype scratch covering every program's rows."""
    B = x.size(0)
    rows = triton.cdiv(B, BLOCK_B) * BLOCK_B
    return x.new_empty((planes, rows, N), dtype=acc_dtype(x.dtype))


_FWD_SCHEMA = (
    "(Tensor x, Tensor weight_rec, Tensor alpha, Tensor beta, Tensor threshold, Tensor i0, "
    "Tensor u0, int reset, bool normalize_input, bool save_u, bool save_i) "
    "-> (Tensor s, Tensor i_T, Tensor u_T, Tensor u_saved, Tensor i_saved)")
_BWD_SCHEMA = (
    "(Tensor grad_s, Tensor grad_iT, Tensor grad_uT, Tensor u_saved, Tensor i_saved, Tensor i0, "
    "Tensor u0, Tensor weight_rec, Tensor alpha, Tensor beta, Tensor threshold, int reset, "
    "bool detach_reset, bool detach_recurrent, int surrogate, float scale, bool normalize_input, "
    "bool param_grads, bool weight_grad) "
    "-> (Tensor grad_x, Tensor grad_i0, Tensor grad_u0, Tensor grad_alpha, Tensor grad_beta, "
    "Tensor grad_threshold, Tensor grad_weight_rec)")


def _fwd_outputs(x, save_u, save_i):
    # x [B, T, N] with unit neuron stride; this module's alloc (tests poison it)
    return outputs(x, alloc, alloc_like, seq=(save_u, save_i))


def _bwd_outputs(gs, param_grads, weight_grad):
    return outputs(gs, alloc, alloc_like, part=(param_grads,) * 3, square=(weight_grad,))


@torch.library.custom_op("fastsnn::rlif_fwd_triton", mutates_args=(), schema=_FWD_SCHEMA)
def rlif_fwd_triton(x, weight_rec, alpha, beta, threshold, i0, u0, reset, normalize_input,
                    save_u, save_i):
    """torch.ops.fastsnn.rlif_fwd on the Triton kernels: S, I_T, U_T, u_saved, i_saved."""
    op = "fastsnn::rlif_fwd_triton"
    x, acc, a, b, th, i0, u0 = check_fwd_args(op, x, alpha, beta, threshold, i0, u0, reset)
    B, T, N = x.shape
    w = acc_arg(weight_rec, x, acc, (N, N), op, "weight_rec")
    s, iT, uT, u_saved, i_saved = out = _fwd_outputs(x, save_u, save_i)
    sc = scratch(x, 2, N) if B * N and plan(N)[0] else iT  # spikes of the chunked path
    # absent saved tensors get a stand-in pointer that the constexpr flags never touch
    launch(rlif_fwd_kernel, x,
           x, w, s, a, b, th, i0, u0, iT, uT, u_saved if save_u else uT,
           i_saved if save_i else iT, sc, B, T, N, x.stride(0), x.stride(1), s.stride(0),
           s.stride(1), sc.stride(0) if sc.dim() == 3 else 0,
           RESET=reset, NORMALIZE=normalize_input, SAVE_U=save_u, SAVE_I=save_i)
    return out


@rlif_fwd_triton.register_fake
def _(x, weight_rec, alpha, beta, threshold, i0, u0, reset, normalize_input, save_u, save_i):
    return _fwd_outputs(unit_neuron_stride(x), save_u, save_i)


@torch.library.custom_op("fastsnn::rlif_bwd_triton", mutates_args=(), schema=_BWD_SCHEMA)
def rlif_bwd_triton(grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, weight_rec, alpha, beta,
                    threshold, reset, detach_reset, detach_recurrent, surrogate, scale,
                    normalize_input, param_grads, weight_grad):
    """torch.ops.fastsnn.rlif_bwd on the Triton kernels: grads of x, i0, u0, the (B, N) partials
    of alpha, beta, threshold (empty (0,) unless param_grads) and dV (N, N) (empty (0,) unless
    weight_grad)."""
    op = "fastsnn::rlif_bwd_triton"
    gs, acc, us, is_, need_i, gi, gu, i0, u0, a, b, th = check_bwd_args(
        op, grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, alpha, beta, threshold, reset,
        detach_reset, surrogate, param_grads)
    B, T, N = gs.shape
    w = acc_arg(weight_rec, gs, acc, (N, N), op, "weight_rec")
    gx, gi0, gu0, ga, gb, gt, gw = out = _bwd_outputs(gs, param_grads, weight_grad)
    chunked, _ = plan(N)
    recur = not detach_recurrent
    # where gI_t (acc) goes: grad_x when it has the acc dtype; a [B, T, N] buffer when dV needs
    # it; a 2-step scratch when only the chunked recurrence reads it back
    if gx.dtype == acc:
        ring, ring_sb, ring_st, ring_mod, write_ring = gx, gx.stride(0), gx.stride(1), T, False
    elif weight_grad:
        ring = alloc((B, T, N), gs, acc) if B * N else gx
        ring_sb, ring_st, ring_mod, write_ring = T * N, N, T, True
    elif recur and chunked and B * N:
        ring = scratch(gs, 2, N)
        ring_sb, ring_st, ring_mod, write_ring = N, ring.stride(0), 2, True
    else:
        ring, ring_sb, ring_st, ring_mod, write_ring = gx, 0, 0, 1, False
    carry = scratch(gs, 3, N) if chunked and B * N else gi0
    # the scale in the acc dtype: a Python float reaches a Triton kernel as float32
    k = torch.full((1,), scale, dtype=acc, device=gs.device)
    launch(rlif_bwd_kernel, gs,
           gs, gx, gi, gu, us, is_ if need_i else us, i0, u0, w.t().contiguous(), a, b, th, k,
           gi0, gu0, ga if param_grads else gi0, gb if param_grads else gi0,
           gt if param_grads else gi0, ring, carry,
           B, T, N, gs.stride(0), gs.stride(1), gx.stride(0), gx.stride(1), ring_sb, ring_st,
           max(ring_mod, 1), carry.stride(0) if carry.dim() == 3 else 0,
           RESET=reset, SURROGATE=surrogate,
           DETACH=detach_reset or reset == 2,  # only resets that read S_{t-1} can undetach
           RECUR=recur, NORMALIZE=normalize_input, PARAMS=param_grads, HAS_I=need_i,
           WRITE_RING=write_ring)
    if weight_grad:
        # dV = sum over (b, t) of S_{t-1}ᵀ gI_t, S_{t-1} recomputed as the kernels do
        if B * T * N:
            u_prev = torch.cat((u0.unsqueeze(1), us[:, :-1]), 1)  # [B, T, N]
            s_prev = ((u_prev - th) > 0).to(acc)
            torch.mm(s_prev.reshape(-1, N).t(), ring.reshape(-1, N), out=gw)
        else:
            gw.zero_()
    return out


@rlif_bwd_triton.register_fake
def _(grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, weight_rec, alpha, beta, threshold,
      reset, detach_reset, detach_recurrent, surrogate, scale, normalize_input, param_grads,
      weight_grad):
    return _bwd_outputs(unit_neuron_stride(grad_s), param_grads, weight_grad)


def kernel_variants():
    """Every KernelVariant (fastsnn/ops/_triton_common.py) that rlif_fwd_triton and rlif_bwd_triton
    can launch: their whole argument space (the I/O dtypes, one N per plan(N), every reset and
    surrogate code and flag) run through them with the launches recorded, duplicates dropped."""
    with record_launches() as rec:
        for dtype, N in itertools.product(IO_DTYPES,
                                          distinct_sizes(plan, max(MAX_DIRECT_N, BLOCK_N))):
            acc = acc_dtype(dtype)
            x = torch.zeros(1, 1, N, dtype=dtype)
            p, st, seq, w = (torch.zeros(shape, dtype=acc)
                             for shape in ((N,), (1, N), (1, 1, N), (N, N)))
            for flags in itertools.product(RESET_CODES, BOOLS, BOOLS, BOOLS):
                rlif_fwd_triton(x, w, p, p, p, st, st, *flags)
            for (reset, detach, detach_rec, surrogate, normalize, params,
                 weight) in itertools.product(RESET_CODES, BOOLS, BOOLS, SURROGATE_CODES, BOOLS,
                                              BOOLS, BOOLS):
                rlif_bwd_triton(x, st, st, seq, seq, st, st, w, p, p, p, reset, detach,
                                detach_rec, surrogate, 1.0, normalize, params, weight)
    return unique(rec)


__all__ = ["rlif_fwd_triton", "rlif_bwd_triton", "rlif_fwd_kernel", "rlif_bwd_kernel"]

registry.TRITON_KERNELS["rlif"] = (rlif_fwd_triton, rlif_bwd_triton)
