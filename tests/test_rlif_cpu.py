"""The fused CPU rlif kernels against the reference, forward and backward, case by case.

float64: identical spikes, outputs and gradients (X, V, α, β, ϑ, initial state) within 1e-10
relative. float32: R_t is summed in a different order than the reference's matrix product, so a
membrane within rounding of ϑ may flip a spike and, through the recurrence, the rest of that
row; the bound asserted is a spike mismatch rate <= 1e-3 (observed 0 in these cases) and 1e-4
relative on gradients. bf16/fp16 inputs keep float32 state: same spike bound, gradients within
2e-2 (dX is rounded to the input dtype).
Both ways of forming R_t are tested: the gather over the spiking neurons (default) and the
dense tile product (the path of a non-finite V, forced here on finite V with
torch.ops.fastsnn.set_rlif_dense).
"""

import pytest
import torch

import fastsnn
from helpers import DTYPES, clone_leaves, loss_weights, make_inputs, mismatch_rate, rel_err

pytestmark = pytest.mark.usefixtures("poison")

TOL = {"f64": (0.0, 1e-10), "f32": (1e-3, 1e-4), "bf16": (1e-3, 2e-2), "f16": (1e-3, 2e-2)}
SURR = ["superspike", "superspike_asymptotic", "sigmoid", "esser", "atan", "exponential"]


@pytest.fixture
def dense_product():
    """R_t by the dense tile product for the test's duration."""
    torch.ops.fastsnn.set_rlif_dense(True)
    yield
    torch.ops.fastsnn.set_rlif_dense(False)


def make_weight(N, dtype, seed=3, gain=0.6):
    """V with both signs, strong enough that the recurrence changes which neurons spike."""
    g = torch.Generator().manual_seed(seed)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    w = gain * torch.randn(N, N, generator=g, dtype=torch.float64) / max(N, 1) ** 0.5
    return w.to(acc).requires_grad_()


def run_rlif(backend, X, Vw, params, state, **opts):
    X, params, state = clone_leaves(X, params, state)
    Vw = Vw.detach().clone().requires_grad_(Vw.requires_grad)
    S, (I_T, U_T) = fastsnn.rlif(X, Vw, params["alpha"], params["beta"], params["threshold"],
                                 state=state, backend=backend, **opts)
    w, c1, c2 = loss_weights(S)
    B = I_T.shape[0]
    loss = ((S.double() * w.double()).sum() + (U_T.double() * c1[:B]).sum()
            + 0.5 * (I_T.double() * c2[:B]).sum())
    loss.backward()
    grads = {"X": X.grad, "V": Vw.grad}
    for k, v in params.items():
        if isinstance(v, torch.Tensor) and v.requires_grad:
            grads[k] = v.grad
    if state:
        grads["I0"], grads["U0"] = state[0].grad, state[1].grad
    return {"S": S.detach(), "I_T": I_T.detach(), "U_T": U_T.detach()}, grads


def case(B, T, N, dt="f64", **kw):
    tag = "-".join(f"{k}={v}" if not isinstance(v, tuple) else f"{k}=" + "+".join(v)
                   for k, v in sorted(kw.items()))
    return pytest.param(B, T, N, dt, kw, id=f"B{B}-T{T}-N{N}-{dt}" + (f"-{tag}" if tag else ""))


CASES = [
    case(2, 17, 33),
    case(5, 30, 100),
    case(3, 1, 20),
    case(1, 40, 1),
    case(4, 12, 3),
    case(37, 9, 17),  # several tiles, a ragged last one
    case(2, 20, 130, "f32"),
    case(6, 40, 96, "f32"),
    case(2, 25, 47, "bf16"),
    case(2, 25, 47, "f16"),
    case(3, 19, 65, noncontig=True),
    case(3, 19, 65, "f32", batch_first=False, noncontig=True),
    case(2, 23, 31, state=True),
    case(2, 23, 31, state=True, detach_recurrent=True),
    case(2, 23, 31, normalize_input=False, mean=0.1, std=0.2),
    *[case(2, 21, 37, reset=r, detach_reset=d, detach_recurrent=dr, state=True,
           learn=("alpha", "beta", "threshold"))
      for r in ("zero", "subtract", "none") for d in (True, False) for dr in (False, True)],
    *[case(2, 21, 37, "f32", reset=r, detach_reset=d, learn=("alpha", "beta", "threshold"))
      for r in ("zero", "subtract", "none") for d in (True, False)],
    *[case(2, 15, 29, surrogate=s, scale=k) for s in SURR for k in (0.5, 10.0)],
    case(3, 18, 41, per_neuron=True, learn=("alpha",)),
    case(3, 18, 41, per_neuron=True, learn=("threshold",), reset="subtract", detach_reset=False),
]

OPTS = ("reset", "detach_reset", "detach_recurrent", "surrogate", "scale", "normalize_input",
        "batch_first")


def check(B, T, N, dt, kw):
    dtype = DTYPES[dt]
    opts = {k: v for k, v in kw.items() if k in OPTS}
    inp = {"mean": 0.6, "std": 0.8, **{k: v for k, v in kw.items() if k not in OPTS}}
    X, params, state = make_inputs(B, T, N, dtype, batch_first=kw.get("batch_first", True),
                                   **inp)
    Vw = make_weight(N, dtype)
    ref_out, ref_g = run_rlif("torch", X, Vw, params, state, **opts)
    out, g = run_rlif("cpu", X, Vw, params, state, **opts)
    spike_tol, grad_tol = TOL[dt]
    assert mismatch_rate(out["S"], ref_out["S"]) <= spike_tol
    if dt == "f64":
        assert torch.equal(out["S"], ref_out["S"])
    for k in ("I_T", "U_T"):
        assert rel_err(out[k], ref_out[k]) <= max(grad_tol, 1e-12 if dt == "f64" else 1e-5), k
    assert set(g) == set(ref_g)
    for k in ref_g:
        assert g[k] is not None and torch.isfinite(g[k]).all(), k
        assert rel_err(g[k], ref_g[k]) <= grad_tol, (k, rel_err(g[k], ref_g[k]))
    return ref_out


@pytest.mark.parametrize("B,T,N,dt,kw", CASES)
def test_rlif_cpu_matches_reference(B, T, N, dt, kw):
    check(B, T, N, dt, kw)


@pytest.mark.parametrize("B,T,N,dt,kw", [case(5, 30, 100), case(37, 9, 17), case(6, 40, 96, "f32"),
                                         case(2, 21, 37, reset="subtract", detach_reset=False,
                                              learn=("threshold",))])
def test_rlif_cpu_dense_product_matches_reference(B, T, N, dt, kw, dense_product):
    check(B, T, N, dt, kw)


def test_rlif_cases_exercise_the_recurrence():
    """The cases above could not fail on a wrong recurrence if V changed nothing: check that
    neurons spike and that rlif with this V differs from lif (forward and dX)."""
    X, params, _ = make_inputs(5, 30, 100, torch.float64, mean=0.6, std=0.8)
    Vw = make_weight(100, torch.float64)
    S_r, _ = fastsnn.rlif(X, Vw, params["alpha"], params["beta"], params["threshold"],
                          backend="cpu")
    S_l, _ = fastsnn.lif(X, params["alpha"], params["beta"], params["threshold"], backend="cpu")
    assert 0.01 < S_r.mean().item() < 0.5
    assert (S_r != S_l).double().mean().item() > 0.01
    g_r, = torch.autograd.grad(S_r.sum(), X)
    g_l, = torch.autograd.grad(S_l.sum(), X)
    assert rel_err(g_r, g_l) > 1e-3


def test_rlif_cpu_chunks_equal_one_call():
    X, params, _ = make_inputs(3, 40, 24, torch.float64)
    Vw = make_weight(24, torch.float64)
    a, b = params["alpha"], params["beta"]
    S, (I, U) = fastsnn.rlif(X, Vw, a, b, backend="cpu")
    S1, st = fastsnn.rlif(X[:, :17], Vw, a, b, backend="cpu")
    S2, (I2, U2) = fastsnn.rlif(X[:, 17:], Vw, a, b, state=st, backend="cpu")
    assert torch.equal(torch.cat([S1, S2], 1), S)
    assert torch.equal(I2, I) and torch.equal(U2, U)
    gV_one, = torch.autograd.grad(S.sum() + U.sum(), Vw)
    S1, st = fastsnn.rlif(X[:, :17], Vw, a, b, backend="cpu")
    S2, (_, U2) = fastsnn.rlif(X[:, 17:], Vw, a, b, state=st, backend="cpu")
    gV_two, = torch.autograd.grad(S1.sum() + S2.sum() + U2.sum(), Vw)
    assert rel_err(gV_two, gV_one) <= 1e-12


def test_rlif_cpu_inference_and_no_weight_grad():
    X, params, _ = make_inputs(2, 10, 16, torch.float32)
    Vw = make_weight(16, torch.float32)
    with torch.no_grad():
        S, _ = fastsnn.rlif(X, Vw, 0.8, 0.9, backend="cpu")
    assert not S.requires_grad
    S_ref, _ = fastsnn.rlif(X.detach(), Vw.detach(), 0.8, 0.9, backend="torch")
    assert torch.equal(S, S_ref)
    # V frozen: X still gets its gradient, V none
    V_frozen = Vw.detach()
    S, _ = fastsnn.rlif(X, V_frozen, 0.8, 0.9, backend="cpu")
    gx, = torch.autograd.grad(S.sum(), X)
    assert torch.isfinite(gx).all() and gx.abs().sum() > 0


def test_rlif_cpu_gradients_deterministic():
    X, params, _ = make_inputs(40, 20, 48, torch.float32)
    Vw = make_weight(48, torch.float32)
    out = []
    for _ in range(2):
        v = Vw.detach().clone().requires_grad_()
        S, _ = fastsnn.rlif(X, v, 0.8, 0.9, backend="cpu")
        out.append(torch.autograd.grad(S.sum(), v)[0])
    assert torch.equal(out[0], out[1])


def test_rlif_cpu_empty_and_nan():
    Vw = torch.zeros(4, 4, requires_grad=True)
    X = torch.randn(0, 5, 4, requires_grad=True)
    S, _ = fastsnn.rlif(X, Vw, 0.8, 0.9, backend="cpu")
    S.sum().backward()
    assert S.shape == (0, 5, 4) and torch.equal(Vw.grad, torch.zeros(4, 4))
    X = torch.full((3, 6, 4), 2.0)
    X[1, 2, 0] = float("nan")
    S, (I, U) = fastsnn.rlif(X, torch.full((4, 4), 0.1), 0.8, 0.9, backend="cpu")
    assert torch.isnan(U[1, 0]) and torch.isfinite(U[[0, 2]]).all()
    S_ref, _ = fastsnn.rlif(X, torch.full((4, 4), 0.1), 0.8, 0.9, backend="torch")
    assert torch.equal(S[[0, 2]], S_ref[[0, 2]])


def test_rlif_auto_picks_cpu():
    X = torch.randn(2, 5, 4)
    assert fastsnn._backends.resolve("auto", X) == "cpu"


def test_rlif_op_checks_weight_shape():
    x = torch.randn(2, 5, 4)
    z = torch.zeros(4)
    with pytest.raises(ValueError, match="weight_rec must have shape"):
        torch.ops.fastsnn.rlif_fwd(x, torch.zeros(3, 4), z, z, z + 1, torch.zeros(2, 4),
                                   torch.zeros(2, 4), 0, True, True, False)


@pytest.mark.parametrize("reset,detach,param_grads,weight_grad,detach_rec",
                         [(0, True, False, True, False), (1, False, True, True, True),
                          (0, False, True, False, False)])
def test_opcheck_rlif(reset, detach, param_grads, weight_grad, detach_rec):
    g = torch.Generator().manual_seed(0)
    B, T, N = 3, 6, 10
    x = torch.randn(B, T, N, generator=g) + 0.6
    w = 0.3 * torch.randn(N, N, generator=g)
    a, b, th = torch.full((N,), 0.8), torch.full((N,), 0.9), torch.ones(N)
    i0, u0 = torch.zeros(B, N), torch.randn(B, N, generator=g)
    torch.library.opcheck(torch.ops.fastsnn.rlif_fwd.default,
                          (x, w, a, b, th, i0, u0, reset, True, True, True))
    _, _, _, us, i_s = torch.ops.fastsnn.rlif_fwd(x, w, a, b, th, i0, u0, reset, True, True, True)
    torch.library.opcheck(torch.ops.fastsnn.rlif_bwd.default,
                          (torch.randn_like(x), torch.randn_like(i0), torch.randn_like(u0), us,
                           i_s, i0, u0, w, a, b, th, reset, detach, detach_rec, 0, 10.0, True,
                           param_grads, weight_grad))


def test_rlif_cpu_compiles_fullgraph():
    X, params, _ = make_inputs(2, 12, 16, torch.float32, mean=0.6, std=0.8)
    Vw = make_weight(16, torch.float32)

    def f(x, v):
        S, (_, U) = fastsnn.rlif(x, v, 0.8, 0.9, backend="cpu")
        return S.sum() + U.sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    x1, v1 = X.detach().clone().requires_grad_(), Vw.detach().clone().requires_grad_()
    x2, v2 = X.detach().clone().requires_grad_(), Vw.detach().clone().requires_grad_()
    f(x1, v1).backward()
    compiled(x2, v2).backward()
    assert torch.equal(x1.grad, x2.grad) and torch.equal(v1.grad, v2.grad)


def test_rlif_cpu_isa_paths_agree(tmp_path):
    """The float32 tile products (the backward's gI @ Vᵀ, the dense forward's S @ V) run with
    AVX-512 where the processor has it, else with AVX2, else baseline code. AVX-512 and AVX2
    form every product element by the same FMA chain, so all outputs and gradients must be
    bitwise equal; the baseline (no FMA) within float32 rounding. Widths cover every panel
    rest (N padded to 8, 16, 24, 40, 64, 80, 104, 136) and batch sizes every row remainder of
    a tile. Each ISA needs its own process: the choice is made once per process."""
    import os
    import subprocess
    import sys

    code = (
        "import os, sys, torch, fastsnn\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "torch.set_num_threads(2)\n"
        "from helpers import make_inputs\n"
        "from test_rlif_cpu import make_weight, run_rlif\n"
        "out = {'isa': torch.ops.fastsnn.cpu_isa()}\n"
        "cases = [(15, 9, 100, {}), (13, 7, 20, {}), (5, 8, 40, {}), (1, 6, 130, {}),\n"
        "         (3, 7, 61, {}), (6, 5, 80, {}), (4, 5, 8, {}), (2, 5, 17, {}),\n"
        "         (7, 6, 33, {'reset': 'subtract', 'detach_reset': False})]\n"
        "for dense in ('0', '1'):\n"
        "    torch.ops.fastsnn.set_rlif_dense(dense == '1')\n"
        "    for B, T, N, kw in cases:\n"
        "        for dt in (torch.float32, torch.bfloat16):\n"
        "            X, p, st = make_inputs(B, T, N, dt, mean=0.6, std=0.8, state=True,\n"
        "                                   learn=('alpha',))\n"
        "            key = f'{dense}-{B}-{T}-{N}-{dt}'\n"
        "            out[key] = run_rlif('cpu', X, make_weight(N, dt), p, st, **kw)\n"
        "torch.save(out, sys.argv[1])\n"
    )
    here = os.path.dirname(__file__)
    res = {}
    for isa in ("avx2", "auto", "base"):
        path = tmp_path / f"{isa}.pt"
        env = dict(os.environ, FASTSNN_CPU_ISA=isa)
        proc = subprocess.run([sys.executable, "-c", code, str(path), here], env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        res[isa] = torch.load(path)
    assert res["base"]["isa"] == "base"
    keys = [k for k in res["auto"] if k != "isa"]
    for key in keys:  # the baseline build: same spikes here, gradients within float32 rounding
        (o_b, g_b), (o_a, g_a) = res["base"][key], res["auto"][key]
        assert torch.equal(o_b["S"], o_a["S"]), key
        for name in g_a:
            assert rel_err(g_b[name], g_a[name]) <= 1e-5, (key, name)
    if res["auto"]["isa"] != "avx2+avx512":
        pytest.skip(f"no AVX-512 here (auto runs {res['auto']['isa']}): the AVX-512 product was "
                    "not exercised; the baseline and AVX2 paths were")
    assert res["avx2"]["isa"] == "avx2"
    for key in keys:
        (o_2, g_2), (o_5, g_5) = res["avx2"][key], res["auto"][key]
        for name in o_2:
            assert torch.equal(o_2[name], o_5[name]), (key, name)
        assert set(g_2) == set(g_5)
        for name in g_2:
            assert torch.equal(g_2[name], g_5[name]), (key, name)
