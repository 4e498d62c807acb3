"""The Triton backend of fastsnn.rlif against the pure-PyTorch reference.

Without a GPU the kernels run under the Triton interpreter on CPU tensors (TRITON_INTERPRET=1,
set below before fastsnn is imported, or earlier by tests/conftest.py); with one, on CUDA
tensors. Every case runs forward and backward through the public API with one loss mixing the
spikes and the final state, gradients taken for X, V, the learnable alpha/beta/threshold and the
initial state, with every tensor the ops allocate poisoned with NaN before the kernels write it.
Both kernel paths run: "direct" (N <= MAX_DIRECT_N, state in registers) and "chunked" (the
neurons in chunks of BLOCK_N, the product in K-chunks of BLOCK_K); cases marked "small_tiles"
lower the three constants to 16 so that N = 17..100 walks 2..7 chunks.

Tolerances (SPEC section 4):
  float64   identical spikes; outputs and gradients within 1e-10 relative (max error over the
            tensor divided by its largest magnitude).
  float32   R_t = S_{t-1} @ V is summed in tl.dot's order, not the reference matmul's, so a
            membrane within rounding of the threshold may flip a spike, and through V the rest
            of that batch row: spike mismatches at most 1 in 1000 (0 in these cases); batch rows
            whose spike trains differ are left out of the comparison (and the batch-summed
            gradients of alpha, beta, threshold and V are skipped if any row differs), the rest
            agree within 1e-5 relative.
  bf16/fp16 float32 state inside; spikes within the float32 bound against the reference run on
            the same low-precision input; every other output and gradient has an error against
            a float64 reference run on the same (upcast) values at most 2 x the error of the
            low-precision reference run plus one epsilon of the output's dtype.
"""

import dataclasses
import os

import torch

if not torch.cuda.is_available():  # read when fastsnn imports its Triton modules
    os.environ["TRITON_INTERPRET"] = "1"

import time  # noqa: E402

import pytest  # noqa: E402

import fastsnn  # noqa: E402
from helpers import DTYPES  # noqa: E402
from kernel_cases import (F32_RTOL, F64_RTOL, SPIKE_MISMATCH_MAX, Case, Target,  # noqa: E402
                          make_inputs, op_args, rel_err, spike_mismatch, to_btn, upcast)

rlif_tr = pytest.importorskip("fastsnn.ops.rlif.triton", reason="Triton is not installed")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
MISCONFIGURED = DEVICE == "cpu" and not fastsnn._backends.triton_available()
TARGET = Target("triton", DEVICE, rng_device="cpu")
MODULE_BUDGET_S = 180.0  # the whole file, interpreter included, on a 2-core machine
_T0 = {}


@dataclasses.dataclass(frozen=True)
class RCase(Case):
    """A kernel_cases.Case plus the recurrence: learn may hold "v" (V gets a gradient)."""

    detach_recurrent: bool = False
    gain: float = 1.0  # V ~ gain * N(0, 1) / sqrt(N)
    small_tiles: bool = False  # MAX_DIRECT_N = BLOCK_N = BLOCK_K = 16

    @property
    def id(self):
        parts = [super().id]
        if self.detach_recurrent:
            parts.append("detach_rec")
        if self.small_tiles:
            parts.append("small_tiles")
        return "-".join(parts)


def rcase(*args, **kw):
    kw.setdefault("learn", "abtv")
    c = RCase(*args, **kw)
    return pytest.param(c, id=c.id)


CASES = [
    # direct path (N <= 32)
    rcase(4, 3, 1),
    rcase(5, 2, 3, reset="subtract", detach_reset=False, surrogate="sigmoid"),
    rcase(3, 17, 17, detach_reset=False, surrogate="atan", scale=3.7),  # 2 programs, ragged
    rcase(1, 1, 17, surrogate="exponential"),
    rcase(4, 3, 32, reset="none", surrogate="esser", detach_recurrent=True),
    rcase(5, 2, 20, surrogate="superspike_asymptotic", normalize_input=False, learn="v",
          state=False),
    # chunked path with the module's tiles
    rcase(4, 3, 33, detach_recurrent=True, detach_reset=False),
    rcase(3, 2, 64, reset="subtract", detach_reset=False, surrogate="sigmoid"),
    rcase(3, 2, 100, batch_first=False, layout="sliced"),
    # chunked path, 16-wide tiles: 2..7 chunks per step and per product
    rcase(4, 3, 17, small_tiles=True, detach_reset=False),
    rcase(3, 17, 33, small_tiles=True, reset="subtract", detach_reset=False, surrogate="esser"),
    rcase(1, 3, 33, small_tiles=True, reset="none", detach_recurrent=True, surrogate="atan"),
    rcase(3, 1, 100, small_tiles=True, surrogate="exponential", layout="nstrided"),
    rcase(6, 2, 33, small_tiles=True, learn="", state=False, gain=2.0),
    rcase(3, 2, 33, small_tiles=True, learn="t", alpha=0.0, reset="subtract",
          detach_reset=False, normalize_input=False),
    rcase(3, 2, 40, small_tiles=True, learn="ab", batch_first=False, detach_reset=False),
    # float32
    rcase(4, 3, 17, dtype="f32", detach_reset=False),
    rcase(3, 2, 40, dtype="f32", reset="subtract", surrogate="sigmoid", batch_first=False,
          layout="sliced"),
    rcase(3, 2, 33, dtype="f32", small_tiles=True, reset="none", detach_recurrent=True),
    # bf16 / fp16: gI goes to a float32 buffer for dV ("v" learns) or to a 2-step scratch
    rcase(4, 2, 17, dtype="bf16", detach_reset=False),
    rcase(3, 2, 40, dtype="bf16", learn="abt", reset="subtract", layout="sliced"),
    rcase(3, 2, 33, dtype="f16", small_tiles=True, learn="t", surrogate="esser"),
]


@pytest.fixture(autouse=True)
def poison_outputs(monkeypatch):
    """Every tensor the Triton ops allocate starts as NaN: an element never written fails."""
    if MISCONFIGURED:
        pytest.fail("fastsnn was imported before TRITON_INTERPRET=1 was set; without a GPU, set "
                    "it in tests/conftest.py before any test module imports fastsnn")
    monkeypatch.setattr(rlif_tr, "alloc",
                        lambda shape, like, dtype: like.new_full(shape, float("nan"), dtype=dtype))
    monkeypatch.setattr(rlif_tr, "alloc_like", lambda x: torch.full_like(x, float("nan")))
    real_scratch = rlif_tr.scratch
    monkeypatch.setattr(rlif_tr, "scratch", lambda x, planes, N: real_scratch(x, planes, N)
                        .fill_(float("nan")))
    _T0.setdefault("start", time.perf_counter())


def small_tiles(monkeypatch):
    for name in ("MAX_DIRECT_N", "BLOCK_N", "BLOCK_K"):
        monkeypatch.setattr(rlif_tr, name, 16)


def make_weight(case, target, seed=5):
    g = torch.Generator(target.rng_device).manual_seed(seed)
    acc = torch.float64 if case.dtype == "f64" else torch.float32
    w = case.gain * torch.randn(case.N, case.N, generator=g, device=target.rng_device,
                                dtype=torch.float64) / max(case.N, 1) ** 0.5
    return w.to(acc).to(target.device)


def leaves_of(case, target):
    leaves, coeffs = make_inputs(case, target)
    w = make_weight(case, target)
    return leaves, coeffs, w


def forward(case, backend, leaves, w):
    params = {"alpha": case.alpha, "beta": 0.85, "threshold": 1.0}
    params.update({k: v for k, v in leaves.items() if k in params})
    state = (leaves["i0"], leaves["u0"]) if case.state else None
    return fastsnn.rlif(
        leaves["x"], w, params["alpha"], params["beta"], params["threshold"], state=state,
        detach_recurrent=case.detach_recurrent, reset=case.reset,
        detach_reset=case.detach_reset, surrogate=case.surrogate, scale=case.scale,
        normalize_input=case.normalize_input, batch_first=case.batch_first, backend=backend)


def spikes(case, backend, leaves, w):
    return forward(case, backend, leaves, w)[0]


def run(case, backend, leaves, coeffs, w):
    """One forward and backward pass: {output name: tensor} with the gradients as grad_<leaf>."""
    if "v" in case.learn:
        w = w.detach().clone().requires_grad_()
        leaves = dict(leaves, weight_rec=w)
    s, (i_T, u_T) = forward(case, backend, leaves, w)
    loss = (s * coeffs["w"]).sum() + (u_T * coeffs["c1"]).sum() + (i_T * coeffs["c2"]).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    res = {"out": s.detach(), "I_T": i_T.detach(), "U_T": u_T.detach()}
    res.update({"grad_" + k: g for k, g in zip(leaves, grads)})
    return res


def rows_of(name, t, case, keep):
    """t restricted to the batch rows in keep ([B]); None for tensors summed over the batch."""
    if name in ("out", "grad_x"):
        return to_btn(t, case)[keep]
    if name in ("I_T", "U_T", "grad_i0", "grad_u0"):
        return t[keep]
    return None


def check_against_reference(case, target):
    leaves, coeffs, w = leaves_of(case, target)
    got = run(case, target.backend, leaves, coeffs, w)
    ref = run(case, "torch", leaves, coeffs, w)
    assert got.keys() == ref.keys()
    for name in got:
        assert got[name].shape == ref[name].shape and got[name].dtype == ref[name].dtype, name
    if ref["out"].numel() >= 64:  # else the case could not catch a wrong recurrence
        rate = ref["out"].double().mean().item()
        assert 0.02 < rate < 0.98, f"spike rate {rate:.3f}: pick other inputs"
        with torch.no_grad():
            lif_s = spikes(case, "torch", leaves, torch.zeros_like(w))
        assert not torch.equal(lif_s, ref["out"]), "V changes no spike: pick a larger gain"
    dtype = DTYPES[case.dtype]
    if dtype == torch.float64:
        assert torch.equal(got["out"], ref["out"]), "float64 spikes differ"
        for name in got:
            assert rel_err(got[name], ref[name]) <= F64_RTOL, name
        return

    assert not got["out"].isnan().any(), "spikes left unwritten"
    assert spike_mismatch(got["out"], ref["out"]) <= SPIKE_MISMATCH_MAX
    if dtype == torch.float32:
        keep = (to_btn(got["out"], case) == to_btn(ref["out"], case)).flatten(1).all(1)  # [B]
        for name in got:
            if name == "out":
                continue
            a, b = got[name], ref[name]
            if not keep.all():
                a, b = rows_of(name, a, case, keep), rows_of(name, b, case, keep)
                if a is None:
                    continue
            assert rel_err(a, b) <= F32_RTOL, name
        return

    # bf16 / fp16: error against float64 truth within 2x the reference's own error + 1 eps
    up_leaves, up_coeffs = upcast(leaves, coeffs)
    truth = run(dataclasses.replace(case, dtype="f64"), "torch", up_leaves, up_coeffs,
                w.double())
    for name in got:
        if name == "out":
            continue
        err_got, err_ref = rel_err(got[name], truth[name]), rel_err(ref[name], truth[name])
        eps = torch.finfo(got[name].dtype).eps  # the I/O dtype, or float32 for state and params
        assert err_got <= 2 * err_ref + eps, f"{name}: {err_got:.3g} vs reference {err_ref:.3g}"


@pytest.mark.parametrize("case", CASES)
def test_rlif_matches_reference(case, monkeypatch):
    if case.small_tiles:
        small_tiles(monkeypatch)
    assert rlif_tr.plan(case.N)[0] == (case.N > (16 if case.small_tiles else 32))
    check_against_reference(case, TARGET)


@pytest.mark.slow
@pytest.mark.parametrize("case", [
    rcase(19, 24, 130, detach_reset=False),
    rcase(5, 16, 300, dtype="f32", reset="subtract", small_tiles=True),
    rcase(33, 12, 65, reset="subtract", detach_reset=False, detach_recurrent=True),
])
def test_rlif_matches_reference_larger(case, monkeypatch):
    if case.small_tiles:
        small_tiles(monkeypatch)
    check_against_reference(case, TARGET)


def test_poisoning_is_active():
    """The fixture above really fills the ops' buffers with NaN (else it would prove nothing)."""
    x = torch.zeros(2, 3, 4, device=DEVICE)
    assert rlif_tr.alloc((2, 4), x, torch.float32).isnan().all()
    assert rlif_tr.alloc_like(x).isnan().all()
    assert rlif_tr.scratch(x, 2, 4).isnan().all()


def rlif_op_args(B, T, N, dtype, seed=0, gain=1.0):
    x, params, state, grads = op_args(B, T, N, dtype, TARGET, seed)
    acc = params[0].dtype
    g = torch.Generator("cpu").manual_seed(seed + 1)
    w = (gain * torch.randn(N, N, generator=g, dtype=torch.float64) / max(N, 1) ** 0.5)
    return x, w.to(acc).to(DEVICE), params, state, grads


needs_cpp_rlif = pytest.mark.skipif(
    not (fastsnn._backends.extension_available() and hasattr(torch.ops.fastsnn, "rlif_fwd")),
    reason="the C++ extension with the rlif ops is not built")


@needs_cpp_rlif
@pytest.mark.parametrize("small", [False, True], ids=["module_tiles", "small_tiles"])
def test_ops_match_cpp_ops(monkeypatch, small):
    """Every output of rlif_fwd / rlif_bwd, saved tensors, partials and dV included, against the
    C++ CPU ops in float64, over every reset, detach and save flag: spikes identical, the rest
    within 1e-12 relative (the recurrent sums are taken in another order)."""
    if small:
        small_tiles(monkeypatch)
    x, w, (a, b, th), (i0, u0), (gs, giT, guT) = rlif_op_args(3, 4, 21, torch.float64)

    def cpp(op, *args):
        return tuple(t.to(DEVICE) for t in op(*(v.cpu() if isinstance(v, torch.Tensor) else v
                                                 for v in args)))

    for reset in range(3):
        args = (x, w, a, b, th, i0, u0, reset, reset != 1, True, True)
        got, want = rlif_tr.rlif_fwd_triton(*args), cpp(torch.ops.fastsnn.rlif_fwd, *args)
        assert torch.equal(got[0], want[0])
        for g_, w_ in zip(got[1:], want[1:]):
            assert g_.shape == w_.shape and rel_err(g_, w_) <= 1e-12, reset
        _, _, _, us, is_ = want
        for surrogate, detach, detach_rec, params, wgrad in (
                (0, True, False, True, True), (2, False, False, True, False),
                (4, False, True, False, True), (5, True, True, False, False)):
            args = (gs, giT, guT, us, is_, i0, u0, w, a, b, th, reset, detach, detach_rec,
                    surrogate, 3.7, reset != 2, params, wgrad)
            got = rlif_tr.rlif_bwd_triton(*args)
            want = cpp(torch.ops.fastsnn.rlif_bwd, *args)
            for i, (g_, w_) in enumerate(zip(got, want)):
                assert g_.shape == w_.shape and g_.dtype == w_.dtype, i
                assert rel_err(g_, w_) <= 1e-12, (reset, surrogate, detach, detach_rec, i)


def test_inference_saves_nothing():
    x, w, (a, b, th), (i0, u0), _ = rlif_op_args(2, 4, 9, torch.float32)
    s, iT, uT, us, is_ = rlif_tr.rlif_fwd_triton(x, w, a, b, th, i0, u0, 0, True, False, False)
    assert us.shape == (0,) and is_.shape == (0,) and us.dtype == torch.float32
    with torch.no_grad():
        got = fastsnn.rlif(x, w, a, b, th, state=(i0, u0), backend="triton")
        want = fastsnn.rlif(x, w, a, b, th, state=(i0, u0), backend="torch")
    assert torch.equal(got[0], want[0])
    assert rel_err(got[1][1], want[1][1]) <= F32_RTOL


def test_weight_only_gradient(monkeypatch):
    """Only V learns (a frozen input): the backward still runs the whole scan for dV; bf16 input
    puts gI in a float32 buffer, chunked."""
    small_tiles(monkeypatch)
    x, w, (a, b, th), (i0, u0), _ = rlif_op_args(3, 3, 20, torch.float64)
    got = {}
    for backend in ("triton", "torch"):
        v = w.clone().requires_grad_()
        s, (iT, uT) = fastsnn.rlif(x, v, a, b, th, state=(i0, u0), detach_reset=False,
                                   backend=backend)
        (got[backend],) = torch.autograd.grad((s * x).sum() + uT.sum(), v)
    assert got["torch"].abs().sum() > 0
    assert rel_err(got["triton"], got["torch"]) <= F64_RTOL


def test_nan_input_stays_in_its_row(monkeypatch):
    """NaN in one batch row reaches that row's outputs only (rows share V, not state)."""
    for small in (False, True):
        if small:
            small_tiles(monkeypatch)
        x, w, (a, b, th), (i0, u0), _ = rlif_op_args(3, 3, 20, torch.float64)
        x = x.clone()
        x[1, 1, 4] = float("nan")
        x.requires_grad_()
        s, (iT, uT) = fastsnn.rlif(x, w, a, b, th, state=(i0, u0), backend="triton")
        (gx,) = torch.autograd.grad(s.sum() + uT.sum(), x)
        assert uT[1].isnan().any()
        for t in (s, iT, uT, gx):
            assert not t[0].isnan().any() and not t[2].isnan().any()


@pytest.mark.parametrize("N", [5, 20], ids=["direct", "chunked"])
def test_empty_sizes(monkeypatch, N):
    """T = 0 only copies the state through; B = 0 or N = 0 launches nothing."""
    small_tiles(monkeypatch)
    x, w, (a, b, th), (i0, u0), (gs, giT, guT) = rlif_op_args(2, 0, N, torch.float64)
    s, iT, uT, us, is_ = rlif_tr.rlif_fwd_triton(x, w, a, b, th, i0, u0, 0, True, True, True)
    assert s.shape == (2, 0, N) and us.shape == (2, 0, N)
    assert torch.equal(iT, i0) and torch.equal(uT, u0)
    out = rlif_tr.rlif_bwd_triton(gs, giT, guT, us, is_, i0, u0, w, a, b, th, 0, False, False, 0,
                                  10.0, True, True, True)
    gx, gi0, gu0, ga, gb, gt, gw = out
    assert gx.shape == (2, 0, N) and torch.equal(gi0, giT) and torch.equal(gu0, guT)
    for part in (ga, gb, gt):
        assert part.shape == (2, N) and not part.any()
    assert gw.shape == (N, N) and not gw.any()
    for B, T, N in ((0, 4, 5), (2, 4, 0)):
        x = torch.randn(B, T, N, device=DEVICE, requires_grad=True)
        v = torch.randn(N, N, device=DEVICE, requires_grad=True)
        s, (i_T, u_T) = fastsnn.rlif(x, v, 0.5, 0.9, backend="triton")
        assert s.shape == (B, T, N) and i_T.shape == (B, N)
        gx, gv = torch.autograd.grad(s.sum() + u_T.sum(), (x, v))
        assert gx.shape == (B, T, N) and gv.shape == (N, N) and not gv.any()


def test_op_argument_errors():
    x, w, (a, b, th), (i0, u0), (gs, giT, guT) = rlif_op_args(2, 3, 5, torch.float32)
    with pytest.raises(ValueError, match="weight_rec"):
        rlif_tr.rlif_fwd_triton(x, w[:4], a, b, th, i0, u0, 0, True, True, True)
    with pytest.raises(TypeError, match="weight_rec"):
        rlif_tr.rlif_fwd_triton(x, w.double(), a, b, th, i0, u0, 0, True, True, True)
    with pytest.raises(ValueError, match="reset"):
        rlif_tr.rlif_fwd_triton(x, w, a, b, th, i0, u0, 3, True, True, True)
    _, _, _, us, _ = rlif_tr.rlif_fwd_triton(x, w, a, b, th, i0, u0, 0, True, True, False)
    with pytest.raises(ValueError, match="i_saved"):
        rlif_tr.rlif_bwd_triton(gs, giT, guT, us, us.new_empty(0), i0, u0, w, a, b, th, 0,
                                False, False, 0, 10.0, True, False, True)
    with pytest.raises(ValueError, match="weight_rec"):
        rlif_tr.rlif_bwd_triton(gs, giT, guT, us, us.new_empty(0), i0, u0, w.t()[:, :3], a, b,
                                th, 1, True, False, 0, 10.0, True, False, True)


def test_opcheck():
    """Schemas, fake (meta) implementations and their strides agree with the real ops."""
    x, w, (a, b, th), (i0, u0), (gs, giT, guT) = rlif_op_args(2, 3, 6, torch.float32)
    xn = torch.randn(2, 3, 12, device=DEVICE)[..., ::2]  # neuron stride 2: the op copies it
    for xi in (x, xn):
        torch.library.opcheck(rlif_tr.rlif_fwd_triton,
                              (xi, w, a, b, th, i0, u0, 0, True, True, True))
    _, _, _, us, is_ = rlif_tr.rlif_fwd_triton(x, w, a, b, th, i0, u0, 0, True, True, True)
    torch.library.opcheck(rlif_tr.rlif_bwd_triton, (gs, giT, guT, us, is_, i0, u0, w, a, b, th,
                                                    0, False, False, 2, 4.0, True, True, True))
    torch.library.opcheck(rlif_tr.rlif_bwd_triton,
                          (gs.bfloat16(), giT, guT, us, is_.new_empty(0), i0, u0, w, a, b, th, 1,
                           True, True, 4, 4.0, False, False, False))


def test_torch_compile_fullgraph():
    """dynamo traces RLIFFunction through the Triton ops in one graph, forward and backward."""
    torch._dynamo.reset()
    g = torch.Generator("cpu").manual_seed(1)
    x = (torch.randn(3, 4, 9, generator=g) + 0.6).to(DEVICE).requires_grad_()
    v = (torch.randn(9, 9, generator=g) / 3.0).to(DEVICE).requires_grad_()
    thr = (1.0 + 0.3 * torch.rand(9, generator=g)).to(DEVICE).requires_grad_()
    c = torch.randn(3, 4, 9, generator=g).to(DEVICE)

    def f(x, v, thr):
        s, (i_T, u_T) = fastsnn.rlif(x, v, 0.5, 0.8, thr, detach_reset=False, backend="triton")
        return (s * c).sum() + (u_T * 2.0).sum() - i_T.sum()

    want = f(x, v, thr)
    want_g = torch.autograd.grad(want, (x, v, thr))
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(x, v, thr)
    got_g = torch.autograd.grad(got, (x, v, thr))
    assert rel_err(got, want) <= F32_RTOL
    for a, b in zip(got_g, want_g):
        assert rel_err(a, b) <= F32_RTOL


def test_module_runtime_budget():
    """Last in the file: the interpreter is slow, and this file must stay quick to run."""
    elapsed = time.perf_counter() - _T0["start"]
    assert elapsed < MODULE_BUDGET_S, f"tests/test_rlif_triton.py took {elapsed:.0f} s"
