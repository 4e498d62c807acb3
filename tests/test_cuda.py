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

import dataclasses
import os

import pytest
import torch

import fastsnn
from fastsnn import _backends

OPS = ("lif_fwd", "lif_bwd", "li_fwd", "li_bwd")
DEVICE = "cuda"
F64_RTOL = 1e-10
F32_RTOL = 1e-5
SPIKE_MISMATCH_MAX = 1e-3
DTYPES = {"f64": torch.float64, "f32": torch.float32, "bf16": torch.bfloat16,
          "f16": torch.float16}
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


@dataclasses.dataclass(frozen=True)
class Case:
    """One configuration; ``id`` spells out everything that differs from the defaults."""

    T: int
    B: int
    N: int
    dtype: str = "f64"
    reset: str = "zero"  # LIF only
    detach_reset: bool = True  # LIF only
    surrogate: str = "superspike"  # LIF only
    scale: float = 10.0  # LIF only
    normalize_input: bool = True
    batch_first: bool = True
    # "sliced": every 2nd time index, neurons 1..N of N+3 (misaligned: one neuron per lane);
    # "padded": neurons 0..N-1 of N+4 (rows stay 16-byte aligned); "nstrided": neuron stride 2
    # (the op copies it)
    layout: str = "contiguous"
    learn: str = "abt"  # per-neuron tensors with grad: a(lpha), b(eta), t(hreshold); others floats
    state: bool = True  # a given initial state (I, U) that gets gradients
    alpha: float = 0.6  # alpha when it is a float

    @property
    def id(self):
        parts = [f"T{self.T}-B{self.B}-N{self.N}-{self.dtype}"]
        if self.reset is not None:
            parts.append(self.reset + ("" if self.detach_reset else "-undetached"))
            parts.append(self.surrogate + ("" if self.scale == 10.0 else f"-k{self.scale}"))
        parts.append(f"learn_{self.learn}" if self.learn else "fixed")
        parts.append("state" if self.state else "nostate")
        if self.alpha != 0.6 and "a" not in self.learn:
            parts.append(f"alpha{self.alpha}")
        if not self.normalize_input:
            parts.append("raw")
        if not self.batch_first:
            parts.append("tbn")
        if self.layout != "contiguous":
            parts.append(self.layout)
        return "-".join(parts)


def lif_case(*args, **kw):
    c = Case(*args, **kw)
    return pytest.param(c, id=c.id)


def li_case(*args, **kw):
    c = Case(*args, reset=None, **kw)
    return pytest.param(c, id=c.id)


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
    lif_case(7, 2, 33, learn="", state=False),
    lif_case(7, 2, 33, detach_reset=False, learn="", state=False),
    lif_case(8, 2, 33, reset="subtract", surrogate="atan", learn="t"),
    lif_case(9, 3, 33, reset="none", surrogate="exponential", batch_first=False, learn="ab"),
    lif_case(8, 2, 33, detach_reset=False, learn="bt", alpha=0.0),
    lif_case(7, 2, 33, dtype="f32"),
    lif_case(9, 3, 40, dtype="f32", reset="subtract", detach_reset=False, surrogate="sigmoid",
             batch_first=False, layout="sliced"),
    lif_case(8, 2, 32, dtype="f32", reset="none", surrogate="atan", normalize_input=False),
    lif_case(7, 2, 33, dtype="bf16"),
    lif_case(8, 3, 32, dtype="bf16", reset="subtract", detach_reset=False,
             surrogate="exponential", layout="sliced"),
    lif_case(7, 2, 33, dtype="f16", detach_reset=False, surrogate="esser"),
    lif_case(9, 2, 40, dtype="f16", reset="none", surrogate="superspike_asymptotic",
             batch_first=False, normalize_input=False),
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
    li_case(9, 2, 40, learn="", state=False, layout="sliced"),
    li_case(6, 3, 17, learn="a", layout="nstrided"),
    li_case(7, 2, 33, learn="ab", dtype="f32"),
    li_case(9, 3, 40, learn="ab", dtype="f32", normalize_input=False, batch_first=False),
    li_case(7, 2, 33, learn="ab", dtype="bf16"),
    li_case(8, 2, 32, learn="b", dtype="f16", normalize_input=False, layout="sliced"),
    # 16-byte lanes
    li_case(21, 100, 2048, learn="ab"),
    li_case(17, 100, 2048, learn="ab", dtype="f32", batch_first=False, layout="padded"),
    li_case(9, 100, 2048, learn="", dtype="bf16"),
    li_case(12, 100, 2048, learn="ab", dtype="f16", normalize_input=False),
]


def _acc(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def make_inputs(case, seed=0):
    """Leaves of one case in the case's dtype and layout, plus the loss coefficients."""
    g = torch.Generator(DEVICE).manual_seed(seed)
    dtype, acc = DTYPES[case.dtype], _acc(DTYPES[case.dtype])
    B, T, N = case.B, case.T, case.N
    shape = (B, T, N) if case.batch_first else (T, B, N)

    def randn(*s, mean=0.0, std=1.0):
        return torch.randn(*s, generator=g, device=DEVICE, dtype=torch.float64) * std + mean

    # currents around the threshold so that neurons spike on some steps and not on others
    if case.layout == "sliced":
        x = randn(shape[0], 2 * shape[1], N + 3, mean=0.6, std=1.2).to(dtype)[:, ::2, 1:N + 1]
    elif case.layout == "padded":
        x = randn(shape[0], shape[1], N + 4, mean=0.6, std=1.2).to(dtype)[..., :N]
    elif case.layout == "nstrided":
        x = randn(shape[0], shape[1], 2 * N, mean=0.6, std=1.2).to(dtype)[..., ::2]
    else:
        x = randn(*shape, mean=0.6, std=1.2).to(dtype)
    leaves = {"x": x.detach().requires_grad_()}

    def rand(lo, hi):
        return lo + (hi - lo) * torch.rand(N, generator=g, device=DEVICE, dtype=torch.float64)

    values = {"alpha": rand(0.0, 0.9), "beta": rand(0.5, 0.95), "threshold": rand(0.5, 1.5)}
    for name, letter in (("alpha", "a"), ("beta", "b"), ("threshold", "t")):
        if letter in case.learn:
            leaves[name] = values[name].to(acc).requires_grad_()
    if case.state:
        leaves["i0"] = randn(B, N, std=0.5).to(acc).requires_grad_()
        leaves["u0"] = randn(B, N, mean=0.8, std=0.6).to(acc).requires_grad_()
    coeffs = {"w": randn(*shape).to(dtype), "c1": randn(B, N).to(acc),
              "c2": randn(B, N).to(acc)}
    return leaves, coeffs


def upcast(leaves, coeffs):
    """The same values in float64, for the float64 ground truth of low-precision cases."""
    up = {k: v.detach().double().requires_grad_() for k, v in leaves.items()}
    return up, {k: v.double() for k, v in coeffs.items()}


def run(fn, case, backend, leaves, coeffs):
    """One forward and backward pass: {output name: tensor} with the gradients as grad_<leaf>."""
    params = {"alpha": case.alpha, "beta": 0.85, "threshold": 1.0}
    params.update({k: v for k, v in leaves.items() if k in params})
    state = (leaves["i0"], leaves["u0"]) if case.state else None
    common = dict(state=state, normalize_input=case.normalize_input,
                  batch_first=case.batch_first, backend=backend)
    if fn == "lif":
        out, (i_T, u_T) = fastsnn.lif(
            leaves["x"], params["alpha"], params["beta"], params["threshold"], reset=case.reset,
            detach_reset=case.detach_reset, surrogate=case.surrogate, scale=case.scale, **common)
    else:
        out, (i_T, u_T) = fastsnn.li(leaves["x"], params["alpha"], params["beta"], **common)
    loss = (out * coeffs["w"]).sum() + (u_T * coeffs["c1"]).sum() + (i_T * coeffs["c2"]).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    res = {"out": out.detach(), "I_T": i_T.detach(), "U_T": u_T.detach()}
    res.update({"grad_" + k: g for k, g in zip(leaves, grads)})
    return res


def rel_err(a, b):
    """max |a - b| over the largest |b| (NaN anywhere makes it NaN, which fails every bound)."""
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item() if b.numel() else 0.0


def spike_mismatch(a, b):
    return (a != b).double().mean().item() if a.numel() else 0.0


def to_btn(t, case):
    return t if case.batch_first else t.transpose(0, 1)


def masked(name, t, case, keep):
    """t restricted to the lanes in keep ([B, N]); None for tensors that sum over lanes."""
    if name in ("out", "grad_x"):
        return to_btn(t, case).transpose(1, 2)[keep]  # [lanes, T]
    if name in ("I_T", "U_T", "grad_i0", "grad_u0"):
        return t[keep]
    return None  # per-neuron parameter gradients sum over the batch


def check_against_reference(fn, case):
    leaves, coeffs = make_inputs(case)
    got = run(fn, case, "cuda", leaves, coeffs)
    ref = run(fn, case, "torch", leaves, coeffs)
    assert got.keys() == ref.keys()
    for name in got:
        assert got[name].shape == ref[name].shape and got[name].dtype == ref[name].dtype, name
    dtype = DTYPES[case.dtype]
    spiking = fn == "lif"
    if spiking and ref["out"].numel() >= 64:  # never (or always) spiking would test little
        rate = ref["out"].double().mean().item()
        assert 0.02 < rate < 0.98, f"spike rate {rate:.3f}: pick other inputs"

    if dtype == torch.float64:
        for name in got:
            if spiking and name == "out":
                assert torch.equal(got[name], ref[name]), "float64 spikes differ"
            else:
                assert rel_err(got[name], ref[name]) <= F64_RTOL, name
        return

    if spiking:
        assert not got["out"].isnan().any(), "spikes left unwritten"
        assert spike_mismatch(got["out"], ref["out"]) <= SPIKE_MISMATCH_MAX
    if dtype == torch.float32:
        keep = (to_btn(got["out"], case) == to_btn(ref["out"], case)).all(1) if spiking else None
        for name in got:
            if spiking and name == "out":
                continue
            a, b = got[name], ref[name]
            if keep is not None and not keep.all():
                assert keep.double().mean().item() >= 0.9, "too few lanes agree to compare"
                a, b = masked(name, a, case, keep), masked(name, b, case, keep)
                if a is None:
                    continue
            assert rel_err(a, b) <= F32_RTOL, name
        return

    # bf16 / fp16: error against float64 truth within 2x the reference's own error + 1 eps
    truth = run(fn, case, "torch", *upcast(leaves, coeffs))
    for name in got:
        if spiking and name == "out":
            continue
        err_got, err_ref = rel_err(got[name], truth[name]), rel_err(ref[name], truth[name])
        eps = torch.finfo(got[name].dtype).eps  # the I/O dtype, or float32 for state and params
        assert err_got <= 2 * err_ref + eps, f"{name}: {err_got:.3g} vs reference {err_ref:.3g}"


@pytest.mark.parametrize("case", LIF_CASES)
@on_gpu
def test_lif_cuda_matches_reference(case):
    check_against_reference("lif", case)


@pytest.mark.parametrize("case", LI_CASES)
@on_gpu
def test_li_cuda_matches_reference(case):
    check_against_reference("li", case)


def _op_args(B, T, N, dtype, seed=0):
    """Raw op arguments on DEVICE: x, (alpha, beta, threshold), (i0, u0), (g_out, g_iT, g_uT)."""
    g = torch.Generator(DEVICE).manual_seed(seed)
    acc = _acc(dtype)

    def r(*s, lo=None, hi=None, mean=0.0, std=1.0):
        if lo is not None:
            return lo + (hi - lo) * torch.rand(*s, generator=g, device=DEVICE,
                                               dtype=torch.float64)
        return torch.randn(*s, generator=g, device=DEVICE, dtype=torch.float64) * std + mean

    x = r(B, T, N, mean=0.6, std=1.2).to(dtype)
    params = (r(N, lo=0.0, hi=0.9).to(acc), r(N, lo=0.5, hi=0.95).to(acc),
              r(N, lo=0.5, hi=1.5).to(acc))
    state = (r(B, N, std=0.5).to(acc), r(B, N, mean=0.8, std=0.6).to(acc))
    grads = (r(B, T, N).to(dtype), r(B, N).to(acc), r(B, N).to(acc))
    return x, params, state, grads


def cpp_op(op, *args):
    """A C++ CPU op on CPU copies of the arguments, its outputs back on DEVICE."""
    out = op(*(a.cpu() if isinstance(a, torch.Tensor) else a for a in args))
    return tuple(t.to(DEVICE) for t in out)


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
    x, (a, b, th), (i0, u0), (gs, giT, guT) = _op_args(*LANES[lanes], DTYPES[dtype])
    for reset in range(3):
        for normalize in (True, False):
            for save_u, save_i in ((False, False), (True, False), (False, True), (True, True)):
                args = (x, a, b, th, i0, u0, reset, normalize, save_u, save_i)
                got = torch.ops.fastsnn.lif_fwd(*args)
                want = cpp_op(torch.ops.fastsnn.lif_fwd, *args)
                for g_, w_ in zip(got, want):
                    assert g_.shape == w_.shape and g_.stride() == w_.stride()
                    assert torch.equal(g_, w_), (reset, normalize, save_u, save_i)
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
    x, (a, b, _), (i0, u0), (gu, giT, guT) = _op_args(*LANES[lanes], DTYPES[dtype])
    for normalize in (True, False):
        for save in (True, False):
            args = (x, a, b, i0, u0, normalize, save)
            got, want = torch.ops.fastsnn.li_fwd(*args), cpp_op(torch.ops.fastsnn.li_fwd, *args)
            for g_, w_ in zip(got, want):
                assert g_.shape == w_.shape and g_.stride() == w_.stride()
                assert torch.equal(g_, w_)
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
    x, (a, b, th), (i0, u0), (gs, giT, guT) = _op_args(100, 11, 2048, DTYPES[dtype], seed=3)
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
    leaves, coeffs = make_inputs(case, seed=5)
    first = run(fn, case, "cuda", leaves, coeffs)
    second = run(fn, case, "cuda", leaves, coeffs)
    for name in first:
        assert torch.equal(first[name], second[name]), name


@on_gpu
def test_empty_sizes():
    """T = 0 only copies the state through; B = 0 or N = 0 launches nothing."""
    x, (a, b, th), (i0, u0), (gs, giT, guT) = _op_args(2, 0, 5, torch.float64)
    s, iT, uT, us, is_ = torch.ops.fastsnn.lif_fwd(x, a, b, th, i0, u0, 0, True, True, True)
    assert s.shape == (2, 0, 5) and us.shape == (2, 0, 5)
    assert torch.equal(iT, i0) and torch.equal(uT, u0)
    gx, gi0, gu0, ga, gb, gt = torch.ops.fastsnn.lif_bwd(gs, giT, guT, us, is_, i0, u0, a, b, th,
                                                         0, False, 0, 10.0, True, True)
    assert gx.shape == (2, 0, 5) and torch.equal(gi0, giT) and torch.equal(gu0, guT)
    for part in (ga, gb, gt):
        assert part.shape == (2, 5) and not part.any()
    u, iT, uT, is_, us = torch.ops.fastsnn.li_fwd(x, a, b, i0, u0, True, True)
    assert u.shape == (2, 0, 5) and torch.equal(iT, i0) and torch.equal(uT, u0)
    gx, gi0, gu0, ga, gb = torch.ops.fastsnn.li_bwd(gs, giT, guT, is_, us, i0, u0, a, b, True,
                                                    True)
    assert torch.equal(gi0, giT) and torch.equal(gu0, guT) and not ga.any() and not gb.any()

    for B, T, N in ((0, 4, 5), (2, 4, 0)):
        x = torch.randn(B, T, N, device=DEVICE, requires_grad=True)
        for fn in (fastsnn.lif, fastsnn.li):
            out, (i_T, u_T) = fn(x, 0.5, 0.9, backend="cuda")
            assert out.shape == (B, T, N) and i_T.shape == (B, N)
            (gx,) = torch.autograd.grad(out.sum() + u_T.sum(), x)
            assert gx.shape == (B, T, N)


@on_gpu
def test_inference_saves_nothing():
    x, (a, b, th), (i0, u0), _ = _op_args(2, 4, 9, torch.float32)
    *_, us, is_ = torch.ops.fastsnn.lif_fwd(x, a, b, th, i0, u0, 0, True, False, False)
    assert us.shape == (0,) and is_.shape == (0,) and us.dtype == torch.float32
    *_, is_, us = torch.ops.fastsnn.li_fwd(x, a, b, i0, u0, True, False)
    assert us.shape == (0,) and is_.shape == (0,)


@on_gpu
def test_nan_input_stays_in_its_row():
    x, _, _, _ = _op_args(3, 12, 20, torch.float64)
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
    leaves, _ = make_inputs(case, seed=2)
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
    x, (a, b, th), (i0, u0), (gs, giT, guT) = _op_args(2, 3, 8, torch.float32)
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
    """dynamo traces LIFFunction / LIFunction through the CUDA ops in one graph."""
    torch._dynamo.reset()
    g = torch.Generator(DEVICE).manual_seed(1)
    x = (torch.randn(2, 5, 9, generator=g, device=DEVICE) + 0.6).requires_grad_()
    thr = (1.0 + 0.3 * torch.rand(9, generator=g, device=DEVICE)).requires_grad_()
    w = torch.randn(2, 5, 9, generator=g, device=DEVICE)

    def f(x, thr):
        s, (i_T, u_T) = fastsnn.lif(x, 0.5, 0.8, thr, detach_reset=False, backend="cuda")
        v, (j_T, _) = fastsnn.li(s, 0.3, 0.9, backend="cuda")
        return (v * w).sum() + (u_T * 2.0).sum() - i_T.sum() + j_T.sum()

    want = f(x, thr)
    want_g = torch.autograd.grad(want, (x, thr))
    got = torch.compile(f, fullgraph=True)(x, thr)
    got_g = torch.autograd.grad(got, (x, thr))
    assert rel_err(got, want) <= F32_RTOL
    for a_, b_ in zip(got_g, want_g):
        assert rel_err(a_, b_) <= F32_RTOL


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
