"""Shared machinery of tests/test_triton.py and tests/test_cuda.py: the case table, inputs drawn
for a case, one forward and backward pass through the public API, and the comparison of a
kernel backend against the pure-PyTorch reference under the tolerances of SPEC section 4 (the
test files' docstrings spell them out).

A ``Target`` says where a test file runs: the backend under test, the device of its tensors and
the device its random inputs are drawn on."""

import dataclasses

import pytest
import torch

import fastsnn
from helpers import DTYPES

F64_RTOL = 1e-10
F32_RTOL = 1e-5
SPIKE_MISMATCH_MAX = 1e-3


@dataclasses.dataclass(frozen=True)
class Target:
    backend: str
    device: str
    rng_device: str  # inputs are drawn here, then moved to device
    # also fail on unwritten (NaN) spikes, and on float32 runs where under 90% of the
    # (batch, neuron) lanes have the reference's spike trains
    strict: bool = False


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


# Cases that both the CUDA kernels (tests/test_cuda.py) and the Triton kernels
# (tests/test_triton.py) run, each file adding its own around them: learnable parameters and no
# state, then every I/O dtype.
LIF_SHARED_CASES = [
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
]

LI_SHARED_CASES = [
    li_case(9, 2, 40, learn="", state=False, layout="sliced"),
    li_case(6, 3, 17, learn="a", layout="nstrided"),
    li_case(7, 2, 33, learn="ab", dtype="f32"),
    li_case(9, 3, 40, learn="ab", dtype="f32", normalize_input=False, batch_first=False),
    li_case(7, 2, 33, learn="ab", dtype="bf16"),
    li_case(8, 2, 32, learn="b", dtype="f16", normalize_input=False, layout="sliced"),
]


def _acc(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def make_inputs(case, target, seed=0):
    """Leaves of one case in the case's dtype and layout, plus the loss coefficients."""
    g = torch.Generator(target.rng_device).manual_seed(seed)
    dtype, acc = DTYPES[case.dtype], _acc(DTYPES[case.dtype])
    B, T, N = case.B, case.T, case.N
    shape = (B, T, N) if case.batch_first else (T, B, N)

    def randn(*s, mean=0.0, std=1.0):
        return torch.randn(*s, generator=g, device=target.rng_device,
                           dtype=torch.float64) * std + mean

    # currents around the threshold so that neurons spike on some steps and not on others
    if case.layout == "sliced":
        x = randn(shape[0], 2 * shape[1], N + 3, mean=0.6, std=1.2).to(dtype)[:, ::2, 1:N + 1]
    elif case.layout == "padded":
        x = randn(shape[0], shape[1], N + 4, mean=0.6, std=1.2).to(dtype)[..., :N]
    elif case.layout == "nstrided":
        x = randn(shape[0], shape[1], 2 * N, mean=0.6, std=1.2).to(dtype)[..., ::2]
    else:
        x = randn(*shape, mean=0.6, std=1.2).to(dtype)
    leaves = {"x": x.to(target.device).detach().requires_grad_()}

    def rand(lo, hi):
        return lo + (hi - lo) * torch.rand(N, generator=g, device=target.rng_device,
                                           dtype=torch.float64)

    values = {"alpha": rand(0.0, 0.9), "beta": rand(0.5, 0.95), "threshold": rand(0.5, 1.5)}
    for name, letter in (("alpha", "a"), ("beta", "b"), ("threshold", "t")):
        if letter in case.learn:
            leaves[name] = values[name].to(acc).to(target.device).requires_grad_()
    if case.state:
        leaves["i0"] = randn(B, N, std=0.5).to(acc).to(target.device).requires_grad_()
        leaves["u0"] = randn(B, N, mean=0.8, std=0.6).to(acc).to(target.device).requires_grad_()
    coeffs = {"w": randn(*shape).to(dtype).to(target.device),
              "c1": randn(B, N).to(acc).to(target.device),
              "c2": randn(B, N).to(acc).to(target.device)}
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


def check_against_reference(fn, case, target):
    leaves, coeffs = make_inputs(case, target)
    got = run(fn, case, target.backend, leaves, coeffs)
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
        if target.strict:
            assert not got["out"].isnan().any(), "spikes left unwritten"
        assert spike_mismatch(got["out"], ref["out"]) <= SPIKE_MISMATCH_MAX
    if dtype == torch.float32:
        # (batch, neuron) lanes whose spike trains differ are left out of the comparison
        keep = (to_btn(got["out"], case) == to_btn(ref["out"], case)).all(1) if spiking else None
        for name in got:
            if spiking and name == "out":
                continue
            a, b = got[name], ref[name]
            if keep is not None and not keep.all():
                if target.strict:
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


def op_args(B, T, N, dtype, target, seed=0):
    """Raw op arguments on the target's device: x, (alpha, beta, threshold), (i0, u0),
    (g_out, g_iT, g_uT)."""
    g = torch.Generator(target.rng_device).manual_seed(seed)
    acc = _acc(dtype)

    def r(*s, lo=None, hi=None, mean=0.0, std=1.0):
        if lo is not None:
            t = lo + (hi - lo) * torch.rand(*s, generator=g, device=target.rng_device,
                                            dtype=torch.float64)
        else:
            t = torch.randn(*s, generator=g, device=target.rng_device,
                            dtype=torch.float64) * std + mean
        return t.to(target.device)

    x = r(B, T, N, mean=0.6, std=1.2).to(dtype)
    params = (r(N, lo=0.0, hi=0.9).to(acc), r(N, lo=0.5, hi=0.95).to(acc),
              r(N, lo=0.5, hi=1.5).to(acc))
    state = (r(B, N, std=0.5).to(acc), r(B, N, mean=0.8, std=0.6).to(acc))
    grads = (r(B, T, N).to(dtype), r(B, N).to(acc), r(B, N).to(acc))
    return x, params, state, grads


def cpp_op(op, *args):
    """A C++ CPU op on CPU copies of the arguments, its outputs back on the arguments' device."""
    device = next(a.device for a in args if isinstance(a, torch.Tensor))
    out = op(*(a.cpu() if isinstance(a, torch.Tensor) else a for a in args))
    return tuple(t.to(device) for t in out)


def assert_bitwise(got, want, what=None):
    """Outputs of two ops with the same shapes, strides and values bit for bit."""
    for g_, w_ in zip(got, want):
        assert g_.shape == w_.shape and g_.stride() == w_.stride()
        assert torch.equal(g_, w_), what


def check_empty_sizes(ops, target):
    """T = 0 only copies the state through; B = 0 or N = 0 launches nothing. ops: the target's
    lif_fwd, lif_bwd, li_fwd, li_bwd."""
    lif_fwd, lif_bwd, li_fwd, li_bwd = ops
    x, (a, b, th), (i0, u0), (gs, giT, guT) = op_args(2, 0, 5, torch.float64, target)
    s, iT, uT, us, is_ = lif_fwd(x, a, b, th, i0, u0, 0, True, True, True)
    assert s.shape == (2, 0, 5) and us.shape == (2, 0, 5)
    assert torch.equal(iT, i0) and torch.equal(uT, u0)
    gx, gi0, gu0, ga, gb, gt = lif_bwd(gs, giT, guT, us, is_, i0, u0, a, b, th, 0, False, 0, 10.0,
                                       True, True)
    assert gx.shape == (2, 0, 5) and torch.equal(gi0, giT) and torch.equal(gu0, guT)
    for part in (ga, gb, gt):
        assert part.shape == (2, 5) and not part.any()
    u, iT, uT, is_, us = li_fwd(x, a, b, i0, u0, True, True)
    assert u.shape == (2, 0, 5) and torch.equal(iT, i0) and torch.equal(uT, u0)
    gx, gi0, gu0, ga, gb = li_bwd(gs, giT, guT, is_, us, i0, u0, a, b, True, True)
    assert torch.equal(gi0, giT) and torch.equal(gu0, guT) and not ga.any() and not gb.any()

    for B, T, N in ((0, 4, 5), (2, 4, 0)):
        x = torch.randn(B, T, N, device=target.device, requires_grad=True)
        for fn in (fastsnn.lif, fastsnn.li):
            out, (i_T, u_T) = fn(x, 0.5, 0.9, backend=target.backend)
            assert out.shape == (B, T, N) and i_T.shape == (B, N)
            (gx,) = torch.autograd.grad(out.sum() + u_T.sum(), x)
            assert gx.shape == (B, T, N)


def check_torch_compile_fullgraph(target):
    """dynamo traces LIFFunction / LIFunction through the target's ops in one graph."""
    torch._dynamo.reset()
    g = torch.Generator(target.rng_device).manual_seed(1)
    x = (torch.randn(2, 5, 9, generator=g, device=target.rng_device) + 0.6).to(target.device)
    x.requires_grad_()
    thr = (1.0 + 0.3 * torch.rand(9, generator=g, device=target.rng_device)).to(target.device)
    thr.requires_grad_()
    w = torch.randn(2, 5, 9, generator=g, device=target.rng_device).to(target.device)

    def f(x, thr):
        s, (i_T, u_T) = fastsnn.lif(x, 0.5, 0.8, thr, detach_reset=False, backend=target.backend)
        v, (j_T, _) = fastsnn.li(s, 0.3, 0.9, backend=target.backend)
        return (v * w).sum() + (u_T * 2.0).sum() - i_T.sum() + j_T.sum()

    want = f(x, thr)
    want_g = torch.autograd.grad(want, (x, thr))
    got = torch.compile(f, fullgraph=True)(x, thr)
    got_g = torch.autograd.grad(got, (x, thr))
    assert rel_err(got, want) <= F32_RTOL
    for a, b in zip(got_g, want_g):
        assert rel_err(a, b) <= F32_RTOL
