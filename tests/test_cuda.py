"""The hand-written CUDA kernels (csrc/lif/lif_cuda.cu, csrc/li/li_cuda.cu).

On any machine: a CUDA build of fastsnn._C registers a CUDA kernel for every op. On a build
without CUDA that test skips, or fails when FASTSNN_REQUIRE_CUDA_BUILD=1 (CI insists).

With a GPU (marker ``cuda``; tests/conftest.py skips them without one): ``backend="cuda"``
against ``backend="torch"`` on CUDA tensors through the public API, forward and backward with
one loss mixing the output and the final state, every output buffer of the C++ ops poisoned with
NaN before the kernels write it (the ``poison`` fixture); the raw ops against the C++ CPU ops;
repeatability; sizes around the kernels' lane width and prefetch depth. FASTSNN_TEST_LARGE=1
adds B*T*N > 2**31 (about 30 GB of GPU memory).

Tolerances (SPEC section 4), as tests/test_triton.py states them (error: max |a - b| over the
largest |b|):
  float64      identical spikes; outputs and gradients within 1e-10.
  float32      spike mismatches at most 1 in 1000 (built with --fmad=false, the kernels do the
               reference's float32 forward ops in its order, so 0 in practice); (batch, neuron)
               lanes whose spike trains differ are left out of the gradient comparison, the
               rest agree within 1e-5.
  bf16 / fp16  float32 state inside; spikes as for float32; every other output and gradient has
               an error against a float64 reference run on the same (upcast) values of at most
               2 x the error of the low-precision reference run plus one epsilon of its dtype.
"""

import os

import pytest
import torch

import fastsnn
from fastsnn import _backends
from helpers import DTYPES
from kernel_cases import (F32_RTOL, LI_SHARED_CASES, LIF_SHARED_CASES, SPIKE_MISMATCH_MAX,
                          Case, Target, assert_bitwise, check_against_reference, check_empty_sizes,
                          check_torch_compile_fullgraph, cpp_op, li_case, lif_case, make_inputs,
                          op_args, rel_err, run, spike_mismatch)

OPS = ("lif_fwd", "lif_bwd", "li_fwd", "li_bwd", "rlif_fwd", "rlif_bwd")
DEVICE = "cuda"
TARGET = Target("cuda", DEVICE, rng_device=DEVICE, strict=True)
RESETS = ("zero", "subtract", "none")
SURROGATES = ("superspike", "superspike_asymptotic", "sigmoid", "esser", "atan", "exponential")


def test_cuda_kernels_registered():
    if not _backends.cuda_kernels_built():
        why = ("fastsnn._C was built without the CUDA kernels (FASTSNN_BUILD_CUDA=1 builds them)"
               if _backends.extension_available() else "fastsnn._C is not built")
        if os.environ.get("FASTSNN_REQUIRE_CUDA_BUILD") == "1":
            pytest.fail(f"FASTSNN_REQUIRE_CUDA_BUILD=1 but {why}")
        pytest.skip(why)
    missing = [op for op in OPS
               if not torch._C._dispatch_has_kernel_for_dispatch_key(f"fastsnn::{op}", "CUDA")]
    assert not missing, f"no CUDA kernel registered for {missing}"


def on_gpu(test):
    """Everything below: a GPU (tests/conftest.py skips ``cuda`` tests without one), the CUDA
    build, and every buffer the C++ ops allocate poisoned with NaN."""
    for mark in (pytest.mark.usefixtures("poison"),
                 pytest.mark.skipif(not _backends.cuda_kernels_built(),
                                    reason="fastsnn._C was built without the CUDA kernels"),
                 pytest.mark.cuda):
        test = mark(test)
    return test


# The kernels give each thread a lane of 16 bytes of state (4 float32 or 2 float64 neurons)
# when N, pointers and strides allow and B*N/lane >= 2 * 128 * multiprocessors (the B100-N2048
# cases, on GPUs of up to 200 multiprocessors), else one neuron; the forward keeps 8 steps of
# input in flight and the backward 4, so T runs around those depths.
LIF_CASES = [
    lif_case(1, 1, 1),
    lif_case(1, 2, 33),
    lif_case(7, 2, 33),
    lif_case(8, 2, 32, reset="subtract", surrogate="sigmoid"),
    lif_case(9, 3, 40, reset="none", surrogate="esser"),
    lif_case(4, 3, 17, detach_reset=False, surrogate="atan", scale=3.7),
    lif_case(5, 2, 33, reset="subtract", detach_reset=False, surrogate="exponential"),
    lif_case(17, 2, 16, surrogate="superspike_asymptotic", normalize_input=False),
    lif_case(63, 4, 500, detach_reset=False),
    lif_case(64, 3, 128, reset="subtract"),
    lif_case(7, 2, 33, detach_reset=False, batch_first=False, layout="sliced"),
    lif_case(6, 3, 24, reset="subtract", surrogate="esser", normalize_input=False,
             layout="nstrided"),
    lif_case(9, 3, 36, layout="padded", batch_first=False),
    *LIF_SHARED_CASES,
    # 16-byte lanes
    lif_case(21, 100, 2048),
    lif_case(19, 100, 2048, reset="subtract", detach_reset=False, batch_first=False,
             layout="padded"),
    lif_case(21, 100, 2048, dtype="f32", detach_reset=False),
    lif_case(13, 100, 2048, dtype="f32", reset="none", surrogate="sigmoid", layout="nstrided"),
    lif_case(21, 100, 2048, dtype="bf16", reset="subtract", surrogate="atan"),
    lif_case(10, 100, 2048, dtype="f16", batch_first=False, layout="padded", learn="t"),
]
# every reset x surrogate x detach_reset, normalize_input both ways, in float64
LIF_CASES += [
    lif_case(11, 3, 21, reset=r, surrogate=s, detach_reset=d, normalize_input=(i % 2 == 0))
    for i, (r, s, d) in enumerate((r, s, d) for r in RESETS for s in SURROGATES
                                  for d in (True, False))
]

LI_CASES = [
    li_case(1, 1, 1, learn="ab"),
    li_case(1, 2, 33, learn="ab"),
    li_case(7, 2, 33, learn="ab"),
    li_case(8, 3, 32, learn="ab", normalize_input=False, batch_first=False),
    li_case(63, 2, 500, learn="ab"),
    *LI_SHARED_CASES,
    # 16-byte lanes
    li_case(21, 100, 2048, learn="ab"),
    li_case(17, 100, 2048, learn="ab", dtype="f32", batch_first=False, layout="padded"),
    li_case(9, 100, 2048, learn="", dtype="bf16"),
    li_case(12, 100, 2048, learn="ab", dtype="f16", normalize_input=False),
]


@pytest.mark.parametrize("case", LIF_CASES)
@on_gpu
def test_lif_cuda_matches_reference(case):
    check_against_reference("lif", case, TARGET)


@pytest.mark.parametrize("case", LI_CASES)
@on_gpu
def test_li_cuda_matches_reference(case):
    check_against_reference("li", case, TARGET)


def _bwd_tol(t):
    """Backward against the CPU ops: exp() differs between libdevice and glibc by an ulp or
    two, which a rounding to bf16/fp16 can turn into one ulp of that dtype."""
    if t.dtype == torch.float64:
        return 1e-13
    return F32_RTOL if t.dtype == torch.float32 else torch.finfo(t.dtype).eps


LANES = {"one-neuron-lanes": (2, 9, 19), "16-byte-lanes": (100, 9, 2048)}


@pytest.mark.parametrize("lanes", LANES)
@pytest.mark.parametrize("dtype", DTYPES)
@on_gpu
def test_lif_ops_match_cpp_ops(dtype, lanes):
    """Every output of lif_fwd / lif_bwd, saved tensors and partials included, for every reset,
    surrogate, detach and save flag: forwards bit for bit (no fused multiply-add on either
    side), backwards to the rounding of exp()."""
    x, (a, b, th), (i0, u0), (gs, giT, guT) = op_args(*LANES[lanes], DTYPES[dtype], TARGET)
    for reset in range(3):
        for normalize in (True, False):
            for save_u, save_i in ((False, False), (True, False), (False, True), (True, True)):
                args = (x, a, b, th, i0, u0, reset, normalize, save_u, save_i)
                got = torch.ops.fastsnn.lif_fwd(*args)
                want = cpp_op(torch.ops.fastsnn.lif_fwd, *args)
                assert_bitwise(got, want, (reset, normalize, save_u, save_i))
        _, _, _, us, is_ = got
        runs = [(sg, detach, sg % 2 == 0, True) for sg in range(6) for detach in (True, False)]
        for surrogate, detach, normalize, params in runs + [(0, True, True, False),
                                                            (2, False, False, False)]:
            args = (gs, giT, guT, us, is_, i0, u0, a, b, th, reset, detach, surrogate, 3.7,
                    normalize, params)
            got_b = torch.ops.fastsnn.lif_bwd(*args)
            want_b = cpp_op(torch.ops.fastsnn.lif_bwd, *args)
            for g_, w_ in zip(got_b, want_b):
                assert g_.shape == w_.shape and g_.dtype == w_.dtype
                assert rel_err(g_, w_) <= _bwd_tol(g_), (reset, surrogate, detach, normalize)


@pytest.mark.parametrize("lanes", LANES)
@pytest.mark.parametrize("dtype", DTYPES)
@on_gpu
def test_li_ops_match_cpp_ops(dtype, lanes):
    """Every output of li_fwd / li_bwd bit for bit (the readout has no exp and no division)."""
    x, (a, b, _), (i0, u0), (gu, giT, guT) = op_args(*LANES[lanes], DTYPES[dtype], TARGET)
    for normalize in (True, False):
        for save in (True, False):
            args = (x, a, b, i0, u0, normalize, save)
            got, want = torch.ops.fastsnn.li_fwd(*args), cpp_op(torch.ops.fastsnn.li_fwd, *args)
            assert_bitwise(got, want)
            args = (gu, giT, guT, got[3], got[4], i0, u0, a, b, normalize, save)
            got_b = torch.ops.fastsnn.li_bwd(*args)
            want_b = cpp_op(torch.ops.fastsnn.li_bwd, *args)
            for g_, w_ in zip(got_b, want_b):
                assert g_.shape == w_.shape and torch.equal(g_, w_)


def _misaligned(t):
    """The same values one element into a fresh buffer: batch/time strides N + 1 and a start
    that no 16-byte access fits, so the kernels take one-neuron lanes."""
    B, T, N = t.shape
    buf = torch.empty(B, T, N + 1, dtype=t.dtype, device=t.device)
    out = buf[..., 1:]
    out.copy_(t)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@on_gpu
def test_lane_width_changes_no_result(dtype):
    """16-byte lanes and one-neuron lanes run the same arithmetic per neuron: bit for bit."""
    x, (a, b, th), (i0, u0), (gs, giT, guT) = op_args(100, 11, 2048, DTYPES[dtype], TARGET,
                                                      seed=3)
    xm, gsm = _misaligned(x), _misaligned(gs)
    for reset, surrogate, detach in ((0, 0, False), (1, 2, False), (2, 5, True)):
        wide = torch.ops.fastsnn.lif_fwd(x, a, b, th, i0, u0, reset, True, True, True)
        narrow = torch.ops.fastsnn.lif_fwd(xm, a, b, th, i0, u0, reset, True, True, True)
        for g_, w_ in zip(wide, narrow):
            assert torch.equal(g_, w_), reset
        args = (wide[3], wide[4], i0, u0, a, b, th, reset, detach, surrogate, 10.0, True, True)
        wide_b = torch.ops.fastsnn.lif_bwd(gs, giT, guT, *args)
        narrow_b = torch.ops.fastsnn.lif_bwd(gsm, giT, guT, *args)
        for g_, w_ in zip(wide_b, narrow_b):
            assert torch.equal(g_, w_), (reset, surrogate, detach)
    wide = torch.ops.fastsnn.li_fwd(x, a, b, i0, u0, False, True)
    narrow = torch.ops.fastsnn.li_fwd(xm, a, b, i0, u0, False, True)
    for g_, w_ in zip(wide, narrow):
        assert torch.equal(g_, w_)
    args = (wide[3], wide[4], i0, u0, a, b, False, True)
    for g_, w_ in zip(torch.ops.fastsnn.li_bwd(gs, giT, guT, *args),
                      torch.ops.fastsnn.li_bwd(gsm, giT, guT, *args)):
        assert torch.equal(g_, w_)


@pytest.mark.parametrize("fn", ["lif", "li"])
@pytest.mark.parametrize("dtype", ["f64", "f32"])
@on_gpu
def test_parameter_gradients_repeat_bitwise(fn, dtype):
    """Per-(batch, neuron) partials summed by torch.sum, no atomics: two runs are identical."""
    case = Case(40, 64, 300, dtype=dtype, reset="subtract" if fn == "lif" else None,
                detach_reset=False, learn="abt" if fn == "lif" else "ab")
    leaves, coeffs = make_inputs(case, TARGET, seed=5)
    first = run(fn, case, "cuda", leaves, coeffs)
    second = run(fn, case, "cuda", leaves, coeffs)
    for name in first:
        assert torch.equal(first[name], second[name]), name


@on_gpu
def test_empty_sizes():
    ops = torch.ops.fastsnn
    check_empty_sizes((ops.lif_fwd, ops.lif_bwd, ops.li_fwd, ops.li_bwd), TARGET)


@on_gpu
def test_inference_saves_nothing():
    x, (a, b, th), (i0, u0), _ = op_args(2, 4, 9, torch.float32, TARGET)
    *_, us, is_ = torch.ops.fastsnn.lif_fwd(x, a, b, th, i0, u0, 0, True, False, False)
    assert us.shape == (0,) and is_.shape == (0,) and us.dtype == torch.float32
    *_, is_, us = torch.ops.fastsnn.li_fwd(x, a, b, i0, u0, True, False)
    assert us.shape == (0,) and is_.shape == (0,)


@on_gpu
def test_nan_input_stays_in_its_row():
    x, _, _, _ = op_args(3, 12, 20, torch.float64, TARGET)
    x[1, 4, 7] = float("nan")
    S, (I, U) = fastsnn.lif(x, 0.8, 0.9, backend="cuda")
    Sr, (Ir, Ur) = fastsnn.lif(x, 0.8, 0.9, backend="torch")
    assert torch.equal(S, Sr)
    assert torch.isnan(U[1, 7]) and torch.isnan(Ur[1, 7])
    keep = torch.ones_like(U, dtype=torch.bool)
    keep[1, 7] = False
    assert torch.isfinite(U[keep]).all()


@pytest.mark.parametrize("dtype", ["f64", "f32"])
@on_gpu
def test_sequence_in_two_calls_equals_one(dtype):
    """Carrying the final state into the next call gives the same values and gradients."""
    case = Case(40, 3, 24, dtype=dtype, learn="at")
    leaves, _ = make_inputs(case, TARGET, seed=2)
    x, alpha, thr, i0, u0 = (leaves[k] for k in ("x", "alpha", "threshold", "i0", "u0"))
    tol = 1e-12 if dtype == "f64" else F32_RTOL

    def lif(x, state):
        return fastsnn.lif(x, alpha, 0.85, thr, state=state, detach_reset=False, backend="cuda")

    S, (I, U) = lif(x, (i0, u0))
    S1, st = lif(x[:, :17], (i0, u0))
    S2, (I2, U2) = lif(x[:, 17:], st)
    assert torch.equal(S, torch.cat([S1, S2], 1))
    assert rel_err(I2, I) <= tol and rel_err(U2, U) <= tol
    leaves_list = [x, alpha, thr, i0, u0]
    w = torch.randn_like(S)
    gw = torch.autograd.grad((S * w).sum() + U.sum(), leaves_list)
    gp = torch.autograd.grad((torch.cat([S1, S2], 1) * w).sum() + U2.sum(), leaves_list)
    for a_, b_ in zip(gw, gp):
        assert rel_err(b_, a_) <= tol


@on_gpu
def test_opcheck():
    """Schemas, fake (meta) implementations and their strides agree with the CUDA ops."""
    x, (a, b, th), (i0, u0), (gs, giT, guT) = op_args(2, 3, 8, torch.float32, TARGET)
    xn = torch.randn(2, 3, 16, device=DEVICE)[..., ::2]  # neuron stride 2: the op copies it
    ops = torch.ops.fastsnn
    for xi in (x, xn):
        torch.library.opcheck(ops.lif_fwd.default, (xi, a, b, th, i0, u0, 0, True, True, True))
        torch.library.opcheck(ops.li_fwd.default, (xi, a, b, i0, u0, False, True))
    _, _, _, us, is_ = ops.lif_fwd(x, a, b, th, i0, u0, 0, True, True, True)
    torch.library.opcheck(ops.lif_bwd.default, (gs, giT, guT, us, is_, i0, u0, a, b, th, 0,
                                                False, 2, 4.0, True, True))
    torch.library.opcheck(ops.lif_bwd.default, (gs, giT, guT, us, is_.new_empty(0), i0, u0, a,
                                                b, th, 1, True, 4, 4.0, False, False))
    torch.library.opcheck(ops.li_bwd.default, (gs, giT, guT, us, is_, i0, u0, a, b, True, True))


@on_gpu
def test_torch_compile_fullgraph():
    check_torch_compile_fullgraph(TARGET)


@on_gpu
def test_auto_picks_cuda():
    assert "cuda" in fastsnn.available_backends()
    assert _backends.resolve("auto", torch.zeros(1, 1, 1, device=DEVICE)) == "cuda"


@pytest.mark.parametrize("N", [1024, 1023], ids=["N1024-16-byte-lanes", "N1023-one-neuron-lanes"])
@pytest.mark.parametrize("fn", ["lif", "li"])
@pytest.mark.skipif(os.environ.get("FASTSNN_TEST_LARGE") != "1",
                    reason="B*T*N > 2**31 needs about 30 GB of GPU memory: FASTSNN_TEST_LARGE=1")
@on_gpu
def test_more_than_2_31_elements(fn, N):
    """64-bit offsets: (T, B, N) = (2, 1052672, N) bf16, batch_first=False, over 2**31 elements.
    The last batch rows hold the largest offsets (in X, the output and the saved [B, T, N]
    state); they are checked against the reference run on those rows alone."""
    T, B, rows = 2, 1_052_672, 3
    assert T * B * N > 2**31
    g = torch.Generator(DEVICE).manual_seed(6)
    x = torch.randn(T, B, N, generator=g, device=DEVICE, dtype=torch.bfloat16)
    x.mul_(1.2).add_(0.6)
    x.requires_grad_()
    kw = dict(batch_first=False)
    if fn == "lif":
        kw.update(reset="subtract", detach_reset=False)
    run_fn = fastsnn.lif if fn == "lif" else fastsnn.li
    out, (i_T, u_T) = run_fn(x, 0.6, 0.85, backend="cuda", **kw)
    w = torch.randn(T, rows, N, generator=g, device=DEVICE, dtype=torch.bfloat16)
    (gx,) = torch.autograd.grad((out[:, -rows:] * w).sum(), x)
    got = {"out": out[:, -rows:], "I_T": i_T[-rows:], "U_T": u_T[-rows:],
           "grad_x": gx[:, -rows:]}
    del out, gx
    tail = x.detach()[:, -rows:].clone().requires_grad_()
    ref_out, (ri, ru) = run_fn(tail, 0.6, 0.85, backend="torch", **kw)
    (rg,) = torch.autograd.grad((ref_out * w).sum(), tail)
    ref = {"out": ref_out, "I_T": ri, "U_T": ru, "grad_x": rg}
    for name in got:
        assert not got[name].isnan().any(), name
    if fn == "lif":
        assert spike_mismatch(got["out"], ref["out"]) <= SPIKE_MISMATCH_MAX
        del got["out"], ref["out"]
    for name in got:  # the same float32 arithmetic on the same values: a bf16 ulp at most
        assert rel_err(got[name], ref[name]) <= torch.finfo(got[name].dtype).eps, name
