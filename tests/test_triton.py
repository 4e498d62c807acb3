"""The Triton backend of fastsnn.lif / fastsnn.li against the pure-PyTorch reference.

Without a GPU the kernels run under the Triton interpreter on CPU tensors (TRITON_INTERPRET=1,
set below before fastsnn is imported, or earlier by tests/conftest.py); with one, on CUDA
tensors. Every case runs forward and backward through the public API with one loss mixing the
output and the final state, with every kernel output poisoned with NaN before it is written.

Tolerances (SPEC section 4):
  float64         identical spikes; outputs and gradients within 1e-10 relative (max error over
                  the tensor divided by its largest magnitude).
  float32         spike mismatches at most 1 in 1000 (the interpreter and the GPU kernels
                  compute the reference's float32 ops in its order, so this is 0 in practice);
                  lanes (batch, neuron) whose spike trains differ are left out of the
                  gradient comparison, the rest agree within 1e-5 relative.
  bf16 / fp16     float32 state inside; spikes against the reference run on the same
                  low-precision input as for float32; every other output and gradient has an
                  error against a float64 reference run on the same (upcast) values at most
                  2 x the error of the low-precision reference run plus one epsilon of the
                  output's dtype (the I/O dtype for the output and grad_x, float32 for the
                  state and the parameter gradients), as flash-attention does. The interpreter
                  rounds float32 -> bfloat16 stores toward zero where GPUs round to nearest,
                  which this bound absorbs.
"""

import os

import torch

if not torch.cuda.is_available():  # read when fastsnn imports its Triton modules
    os.environ["TRITON_INTERPRET"] = "1"

import dataclasses  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

import fastsnn  # noqa: E402

lif_tr = pytest.importorskip("fastsnn.ops.lif.triton", reason="Triton is not installed")
li_tr = pytest.importorskip("fastsnn.ops.li.triton", reason="Triton is not installed")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# fastsnn settles at import whether the Triton backend can run, and a kernel module imported
# without TRITON_INTERPRET=1 compiles for a GPU: when another test module imported fastsnn
# first, the variable comes too late here and every test below fails with this message.
MISCONFIGURED = DEVICE == "cpu" and (lif_tr.COMPILED or not fastsnn._backends.triton_available())
MISCONFIGURED_MSG = ("fastsnn was imported before TRITON_INTERPRET=1 was set; without a GPU, set "
                     "it in tests/conftest.py before any test module imports fastsnn")

F64_RTOL = 1e-10
F32_RTOL = 1e-5
SPIKE_MISMATCH_MAX = 1e-3
MODULE_BUDGET_S = 180.0  # the whole file, interpreter included, on a 2-core machine
_T0 = {}

DTYPES = {"f64": torch.float64, "f32": torch.float32, "bf16": torch.bfloat16,
          "f16": torch.float16}


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
    layout: str = "contiguous"  # "sliced": every 2nd index of dim 1, neurons 1..N of N+3;
    #                             "nstrided": neuron stride 2 (the op makes a copy)
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


LIF_CASES = [
    lif_case(7, 2, 33),
    lif_case(8, 2, 32, reset="subtract", surrogate="sigmoid"),
    lif_case(9, 3, 40, reset="none", surrogate="esser"),
    lif_case(5, 3, 17, detach_reset=False, surrogate="atan", scale=3.7),
    lif_case(6, 2, 33, reset="subtract", detach_reset=False, surrogate="exponential"),
    lif_case(7, 2, 16, surrogate="superspike_asymptotic", normalize_input=False),
    lif_case(1, 2, 33),
    lif_case(1, 1, 1, reset="subtract", detach_reset=False, surrogate="sigmoid"),
    lif_case(7, 2, 33, detach_reset=False, batch_first=False, layout="sliced"),
    lif_case(6, 3, 24, reset="subtract", surrogate="esser", normalize_input=False,
             layout="nstrided"),
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

LI_CASES = [
    li_case(7, 2, 33, learn="ab"),
    li_case(8, 3, 32, learn="ab", normalize_input=False, batch_first=False),
    li_case(1, 2, 33, learn="ab"),
    li_case(9, 2, 40, learn="", state=False, layout="sliced"),
    li_case(6, 3, 17, learn="a", layout="nstrided"),
    li_case(7, 2, 33, learn="ab", dtype="f32"),
    li_case(9, 3, 40, learn="ab", dtype="f32", normalize_input=False, batch_first=False),
    li_case(7, 2, 33, learn="ab", dtype="bf16"),
    li_case(8, 2, 32, learn="b", dtype="f16", normalize_input=False, layout="sliced"),
]


@pytest.fixture(autouse=True)
def poison_outputs(monkeypatch):
    """Every tensor the Triton ops return starts as NaN: an element never written fails."""
    if MISCONFIGURED:
        pytest.fail(MISCONFIGURED_MSG)

    def alloc(shape, like, dtype):
        return like.new_full(shape, float("nan"), dtype=dtype)

    def alloc_like(x):
        return torch.full_like(x, float("nan"))

    for mod in (lif_tr, li_tr):
        monkeypatch.setattr(mod, "alloc", alloc)
        monkeypatch.setattr(mod, "alloc_like", alloc_like)
    _T0.setdefault("start", time.perf_counter())


def _acc(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def make_inputs(case, seed=0):
    """Leaves of one case in the case's dtype and layout, plus the loss coefficients."""
    g = torch.Generator().manual_seed(seed)
    dtype, acc = DTYPES[case.dtype], _acc(DTYPES[case.dtype])
    B, T, N = case.B, case.T, case.N
    shape = (B, T, N) if case.batch_first else (T, B, N)

    def randn(*s, mean=0.0, std=1.0):
        return torch.randn(*s, generator=g, dtype=torch.float64) * std + mean

    # currents around the threshold so that neurons spike on some steps and not on others
    if case.layout == "sliced":
        wide = randn(shape[0], 2 * shape[1], N + 3, mean=0.6, std=1.2).to(dtype)
        x = wide[:, ::2, 1:N + 1]
    elif case.layout == "nstrided":
        x = randn(shape[0], shape[1], 2 * N, mean=0.6, std=1.2).to(dtype)[..., ::2]
    else:
        x = randn(*shape, mean=0.6, std=1.2).to(dtype)
    leaves = {"x": x.to(DEVICE).detach().requires_grad_()}

    def rand(lo, hi):
        return lo + (hi - lo) * torch.rand(N, generator=g, dtype=torch.float64)

    values = {"alpha": rand(0.0, 0.9), "beta": rand(0.5, 0.95), "threshold": rand(0.5, 1.5)}
    for name, letter in (("alpha", "a"), ("beta", "b"), ("threshold", "t")):
        if letter in case.learn:
            leaves[name] = values[name].to(acc).to(DEVICE).requires_grad_()
    if case.state:
        leaves["i0"] = randn(B, N, std=0.5).to(acc).to(DEVICE).requires_grad_()
        leaves["u0"] = randn(B, N, mean=0.8, std=0.6).to(acc).to(DEVICE).requires_grad_()
    coeffs = {"w": randn(*shape).to(dtype).to(DEVICE), "c1": randn(B, N).to(acc).to(DEVICE),
              "c2": randn(B, N).to(acc).to(DEVICE)}
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


def flipped_lanes(case, s, s_ref):
    """[B, N] mask of (batch, neuron) lanes whose spike trains differ."""
    return (to_btn(s, case) != to_btn(s_ref, case)).any(1)


def masked(name, t, case, keep):
    """t restricted to the lanes in keep ([B, N]); None for tensors that sum over lanes."""
    if name in ("out", "grad_x"):
        return to_btn(t, case).transpose(1, 2)[keep]  # [lanes, T]
    if name in ("I_T", "U_T", "grad_i0", "grad_u0"):
        return t[keep]
    return None  # per-neuron parameter gradients sum over the batch


def check_against_reference(fn, case):
    leaves, coeffs = make_inputs(case)
    tri = run(fn, case, "triton", leaves, coeffs)
    ref = run(fn, case, "torch", leaves, coeffs)
    assert tri.keys() == ref.keys()
    for name in tri:
        assert tri[name].shape == ref[name].shape and tri[name].dtype == ref[name].dtype, name
    dtype = DTYPES[case.dtype]
    spiking = fn == "lif"
    if spiking and ref["out"].numel() >= 64:  # never (or always) spiking would test little
        rate = ref["out"].double().mean().item()
        assert 0.02 < rate < 0.98, f"spike rate {rate:.3f}: pick other inputs"

    if dtype == torch.float64:
        for name in tri:
            if spiking and name == "out":
                assert torch.equal(tri[name], ref[name]), "float64 spikes differ"
            else:
                assert rel_err(tri[name], ref[name]) <= F64_RTOL, name
        return

    if spiking:
        assert spike_mismatch(tri["out"], ref["out"]) <= SPIKE_MISMATCH_MAX
    if dtype == torch.float32:
        keep = ~flipped_lanes(case, tri["out"], ref["out"]) if spiking else None
        for name in tri:
            if spiking and name == "out":
                continue
            a, b = tri[name], ref[name]
            if keep is not None and not keep.all():
                a, b = masked(name, a, case, keep), masked(name, b, case, keep)
                if a is None:
                    continue
            assert rel_err(a, b) <= F32_RTOL, name
        return

    # bf16 / fp16: error against float64 truth within 2x the reference's own error + 1 eps
    truth = run(fn, case, "torch", *upcast(leaves, coeffs))
    for name in tri:
        if spiking and name == "out":
            continue
        err_tri, err_ref = rel_err(tri[name], truth[name]), rel_err(ref[name], truth[name])
        eps = torch.finfo(tri[name].dtype).eps  # the I/O dtype, or float32 for state and params
        assert err_tri <= 2 * err_ref + eps, f"{name}: {err_tri:.3g} vs reference {err_ref:.3g}"


@pytest.mark.parametrize("case", LIF_CASES)
def test_lif_matches_reference(case):
    check_against_reference("lif", case)


@pytest.mark.parametrize("case", LI_CASES)
def test_li_matches_reference(case):
    check_against_reference("li", case)


@pytest.mark.parametrize("fn,case", [
    pytest.param(fn, p.values[0], id=f"{fn}-{p.id}") for fn, p in (
        ("lif", lif_case(5, 3, 33, detach_reset=False)),
        ("lif", lif_case(4, 2, 40, dtype="bf16", reset="subtract", layout="sliced")),
        ("li", li_case(5, 3, 33, learn="ab")))
])
def test_several_neuron_blocks_per_row(monkeypatch, fn, case):
    """Blocks of 16 neurons: N = 33 is 16 + 16 + 1, so full and ragged blocks of several rows."""
    monkeypatch.setattr(lif_tr, "MAX_BLOCK_N", 16)
    check_against_reference(fn, case)


def test_poisoning_is_active():
    """The fixture above really fills the ops' outputs with NaN (else it would prove nothing)."""
    x = torch.zeros(2, 3, 4, device=DEVICE)
    assert lif_tr.alloc((2, 4), x, torch.float32).isnan().all()
    assert li_tr.alloc_like(x).isnan().all()


def _op_args(B, T, N, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    acc = _acc(dtype)

    def r(*s, lo=None, hi=None, mean=0.0, std=1.0):
        if lo is not None:
            t = lo + (hi - lo) * torch.rand(*s, generator=g, dtype=torch.float64)
        else:
            t = torch.randn(*s, generator=g, dtype=torch.float64) * std + mean
        return t.to(DEVICE)

    x = r(B, T, N, mean=0.6, std=1.2).to(dtype)
    params = (r(N, lo=0.0, hi=0.9).to(acc), r(N, lo=0.5, hi=0.95).to(acc),
              r(N, lo=0.5, hi=1.5).to(acc))
    state = (r(B, N, std=0.5).to(acc), r(B, N, mean=0.8, std=0.6).to(acc))
    grads = (r(B, T, N).to(dtype), r(B, N).to(acc), r(B, N).to(acc))
    return x, params, state, grads


needs_cpp = pytest.mark.skipif(not fastsnn._backends.extension_available(),
                               reason="the C++ extension is not built")


def cpp_op(op, *args):
    """A C++ CPU op on CPU copies of the arguments, its outputs back on DEVICE. The CPU kernels
    are the yardstick on a GPU too: they round like the Triton kernels (no contraction)."""
    out = op(*(a.cpu() if isinstance(a, torch.Tensor) else a for a in args))
    return tuple(t.to(DEVICE) for t in out)


@needs_cpp
@pytest.mark.parametrize("dtype", ["f64", "f32"])
def test_lif_ops_match_cpp_ops(dtype):
    """Every output of lif_fwd / lif_bwd, saved tensors and partials included, for every reset,
    surrogate, detach and save flag: forwards bit for bit, backwards to the rounding of exp()."""
    dt = DTYPES[dtype]
    x, (a, b, th), (i0, u0), (gs, giT, guT) = _op_args(2, 5, 19, dt)
    # exp() of numpy / libdevice vs glibc; GPUs also divide and exponentiate approximately in fp32
    tol = 1e-13 if dt == torch.float64 else F32_RTOL
    for reset in range(3):
        for normalize in (True, False):
            for save_u, save_i in ((False, False), (True, False), (True, True)):
                args = (x, a, b, th, i0, u0, reset, normalize, save_u, save_i)
                got = lif_tr.lif_fwd_triton(*args)
                want = cpp_op(torch.ops.fastsnn.lif_fwd, *args)
                for g_, w_ in zip(got, want):
                    assert g_.shape == w_.shape and g_.stride() == w_.stride()
                    assert torch.equal(g_, w_), (reset, normalize, save_u, save_i)
        _, _, _, us, is_ = want
        # param_grads on computes every output; one run with it off checks the empty partials
        runs = [(sg, detach, sg % 2 == 0, True) for sg in range(6) for detach in (True, False)]
        for surrogate, detach, normalize, params in runs + [(0, True, True, False)]:
            args = (gs, giT, guT, us, is_, i0, u0, a, b, th, reset, detach, surrogate, 3.7,
                    normalize, params)
            got = lif_tr.lif_bwd_triton(*args)
            want = cpp_op(torch.ops.fastsnn.lif_bwd, *args)
            for g_, w_ in zip(got, want):
                assert g_.shape == w_.shape and g_.dtype == w_.dtype
                assert rel_err(g_, w_) <= tol, (reset, surrogate, detach, normalize, params)


@needs_cpp
@pytest.mark.parametrize("dtype", ["f64", "f32"])
def test_li_ops_match_cpp_ops(dtype):
    """Every output of li_fwd / li_bwd bit for bit (the readout has no exp and no division)."""
    dt = DTYPES[dtype]
    x, (a, b, _), (i0, u0), (gu, giT, guT) = _op_args(3, 6, 21, dt)
    for normalize in (True, False):
        for save in (True, False):
            args = (x, a, b, i0, u0, normalize, save)
            got, want = li_tr.li_fwd_triton(*args), cpp_op(torch.ops.fastsnn.li_fwd, *args)
            for g_, w_ in zip(got, want):
                assert g_.shape == w_.shape and g_.stride() == w_.stride()
                assert torch.equal(g_, w_)
            args = (gu, giT, guT, want[3], want[4], i0, u0, a, b, normalize, save)
            got, want = li_tr.li_bwd_triton(*args), cpp_op(torch.ops.fastsnn.li_bwd, *args)
            for g_, w_ in zip(got, want):
                assert g_.shape == w_.shape and torch.equal(g_, w_)


def test_inference_saves_nothing():
    x, (a, b, th), (i0, u0), _ = _op_args(2, 4, 9, torch.float32)
    s, iT, uT, us, is_ = lif_tr.lif_fwd_triton(x, a, b, th, i0, u0, 0, True, False, False)
    assert us.shape == (0,) and is_.shape == (0,) and us.dtype == torch.float32
    u, iT, uT, is_, us = li_tr.li_fwd_triton(x, a, b, i0, u0, True, False)
    assert us.shape == (0,) and is_.shape == (0,)
    with torch.no_grad():
        for fn, kw in ((fastsnn.lif, {"threshold": th}), (fastsnn.li, {})):
            got = fn(x, a, b, state=(i0, u0), backend="triton", **kw)
            want = fn(x, a, b, state=(i0, u0), backend="torch", **kw)
            assert torch.equal(got[0], want[0])
            assert rel_err(got[1][1], want[1][1]) <= F32_RTOL


def test_empty_sizes():
    """T = 0 launches a kernel that only copies the state through; B = 0 or N = 0 launches none."""
    x, (a, b, th), (i0, u0), (gs, giT, guT) = _op_args(2, 0, 5, torch.float64)
    s, iT, uT, us, is_ = lif_tr.lif_fwd_triton(x, a, b, th, i0, u0, 0, True, True, True)
    assert s.shape == (2, 0, 5) and us.shape == (2, 0, 5)
    assert torch.equal(iT, i0) and torch.equal(uT, u0)
    gx, gi0, gu0, ga, gb, gt = lif_tr.lif_bwd_triton(gs, giT, guT, us, is_, i0, u0, a, b, th, 0,
                                                    False, 0, 10.0, True, True)
    assert gx.shape == (2, 0, 5) and torch.equal(gi0, giT) and torch.equal(gu0, guT)
    for part in (ga, gb, gt):
        assert part.shape == (2, 5) and not part.any()
    u, iT, uT, is_, us = li_tr.li_fwd_triton(x, a, b, i0, u0, True, True)
    assert u.shape == (2, 0, 5) and torch.equal(iT, i0) and torch.equal(uT, u0)
    gx, gi0, gu0, ga, gb = li_tr.li_bwd_triton(gs, giT, guT, is_, us, i0, u0, a, b, True, True)
    assert torch.equal(gi0, giT) and torch.equal(gu0, guT) and not ga.any() and not gb.any()

    for B, T, N in ((0, 4, 5), (2, 4, 0)):
        x = torch.randn(B, T, N, device=DEVICE, requires_grad=True)
        for fn in (fastsnn.lif, fastsnn.li):
            out, (i_T, u_T) = fn(x, 0.5, 0.9, backend="triton")
            assert out.shape == (B, T, N) and i_T.shape == (B, N)
            (gx,) = torch.autograd.grad(out.sum() + u_T.sum(), x)
            assert gx.shape == (B, T, N)
    x = torch.randn(2, 0, 5, device=DEVICE)
    for fn in (fastsnn.lif, fastsnn.li):
        out, (i_T, u_T) = fn(x, 0.5, 0.9, state=(i0.float(), u0.float()), backend="triton")
        assert out.shape == (2, 0, 5) and torch.equal(u_T, u0.float())


def test_op_argument_errors():
    x, (a, b, th), (i0, u0), (gs, giT, guT) = _op_args(2, 3, 5, torch.float32)
    with pytest.raises(ValueError, match="reset"):
        lif_tr.lif_fwd_triton(x, a, b, th, i0, u0, 3, True, True, True)
    with pytest.raises(TypeError, match="alpha"):
        lif_tr.lif_fwd_triton(x, a.double(), b, th, i0, u0, 0, True, True, True)
    with pytest.raises(ValueError, match="u0"):
        li_tr.li_fwd_triton(x, a, b, i0, u0[:1], True, True)
    _, _, _, us, _ = lif_tr.lif_fwd_triton(x, a, b, th, i0, u0, 0, True, True, False)
    with pytest.raises(ValueError, match="i_saved"):
        lif_tr.lif_bwd_triton(gs, giT, guT, us, us.new_empty(0), i0, u0, a, b, th, 0, False, 0,
                              10.0, True, False)
    with pytest.raises(ValueError, match="surrogate"):
        lif_tr.lif_bwd_triton(gs, giT, guT, us, us.new_empty(0), i0, u0, a, b, th, 1, True, 6,
                              10.0, True, False)


def test_opcheck():
    """Schemas, fake (meta) implementations and their strides agree with the real ops."""
    x, (a, b, th), (i0, u0), (gs, giT, guT) = _op_args(2, 3, 6, torch.float32)
    xn = torch.randn(2, 3, 12, device=DEVICE)[..., ::2]  # neuron stride 2: the op copies it
    for xi in (x, xn):
        torch.library.opcheck(lif_tr.lif_fwd_triton, (xi, a, b, th, i0, u0, 0, True, True, True))
        torch.library.opcheck(li_tr.li_fwd_triton, (xi, a, b, i0, u0, False, True))
    _, _, _, us, is_ = lif_tr.lif_fwd_triton(x, a, b, th, i0, u0, 0, True, True, True)
    torch.library.opcheck(lif_tr.lif_bwd_triton, (gs, giT, guT, us, is_, i0, u0, a, b, th, 0,
                                                  False, 2, 4.0, True, True))
    torch.library.opcheck(lif_tr.lif_bwd_triton, (gs, giT, guT, us, is_.new_empty(0), i0, u0, a,
                                                  b, th, 1, True, 4, 4.0, False, False))
    torch.library.opcheck(li_tr.li_bwd_triton, (gs, giT, guT, us, is_, i0, u0, a, b, True, True))


def test_torch_compile_fullgraph():
    """dynamo traces LIFFunction / LIFunction through the custom ops in one graph."""
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(2, 5, 9, generator=g) + 0.6).to(DEVICE).requires_grad_()
    thr = (1.0 + 0.3 * torch.rand(9, generator=g)).to(DEVICE).requires_grad_()
    w = torch.randn(2, 5, 9, generator=g).to(DEVICE)

    def f(x, thr):
        s, (i_T, u_T) = fastsnn.lif(x, 0.5, 0.8, thr, detach_reset=False, backend="triton")
        v, (j_T, _) = fastsnn.li(s, 0.3, 0.9, backend="triton")
        return (v * w).sum() + (u_T * 2.0).sum() - i_T.sum() + j_T.sum()

    want = f(x, thr)
    want_g = torch.autograd.grad(want, (x, thr))
    got = torch.compile(f, fullgraph=True)(x, thr)
    got_g = torch.autograd.grad(got, (x, thr))
    assert rel_err(got, want) <= F32_RTOL
    for a, b in zip(got_g, want_g):
        assert rel_err(a, b) <= F32_RTOL


def test_triton_is_an_available_backend():
    assert "triton" in fastsnn.available_backends()


def test_module_runtime_budget():
    """Last in the file: the interpreter is slow, and this file must stay quick to run."""
    elapsed = time.perf_counter() - _T0["start"]
    assert elapsed < MODULE_BUDGET_S, f"tests/test_triton.py took {elapsed:.0f} s"
