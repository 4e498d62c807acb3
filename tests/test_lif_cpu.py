"""The fused CPU kernels against the reference, forward and backward, case by case.

float64: identical spikes, outputs and gradients within 1e-10 relative.
float32: the forward is the same arithmetic in the same order, so spikes match exactly in these
cases (the bound asserted is a mismatch rate <= 1e-3, for a membrane within rounding of the
threshold); gradients within 1e-4 relative (different summation order of the parameter
partials).
bf16/fp16 inputs: float32 state inside both; same spikes bound, gradients within 2e-2 relative
(the gradient of X is rounded to the input dtype).
"""

import pytest
import torch

import fastsnn
from helpers import DTYPES, make_inputs, mismatch_rate, rel_err, run

pytestmark = pytest.mark.usefixtures("poison")

TOL = {"f64": (0.0, 1e-10), "f32": (1e-3, 1e-4), "bf16": (1e-3, 2e-2), "f16": (1e-3, 2e-2)}
SURR = ["superspike", "superspike_asymptotic", "sigmoid", "esser", "atan", "exponential"]


def case(B, T, N, dt="f64", **kw):
    def fmt(k, v):
        if isinstance(v, bool):
            return k if v else f"no_{k}"
        if isinstance(v, tuple):
            return f"{k}=" + "+".join(v)
        return f"{k}={v}"

    tag = "-".join(fmt(k, v) for k, v in sorted(kw.items()))
    return pytest.param(B, T, N, dt, kw, id=f"B{B}-T{T}-N{N}-{dt}" + (f"-{tag}" if tag else ""))


CASES = [
    case(2, 17, 33),
    case(4, 32, 64),
    case(3, 1, 70),
    case(1, 50, 1),
    case(2, 20, 130, "f32"),
    case(8, 64, 256, "f32"),
    case(2, 25, 47, "bf16"),
    case(2, 25, 47, "f16"),
    case(3, 19, 65, noncontig=True),
    case(3, 19, 65, "f32", noncontig=True),
    case(3, 19, 65, batch_first=False),
    case(3, 19, 65, "f32", batch_first=False, noncontig=True),
    case(2, 23, 31, state=True),
    case(2, 23, 31, "f32", state=True),
    case(2, 23, 31, normalize_input=False, mean=0.03, std=0.1),
    *[case(2, 21, 37, reset=r, detach_reset=d, state=True, learn=("alpha", "beta", "threshold"))
      for r in ("zero", "subtract", "none") for d in (True, False)],
    *[case(2, 21, 37, "f32", reset=r, detach_reset=d, learn=("alpha", "beta", "threshold"))
      for r in ("zero", "subtract", "none") for d in (True, False)],
    *[case(2, 15, 29, surrogate=s, scale=k) for s in SURR for k in (0.5, 10.0)],
    case(2, 15, 29, "f32", surrogate="sigmoid", scale=100.0),
    case(3, 18, 41, per_neuron=True, learn=("alpha",)),
    case(3, 18, 41, per_neuron=True, learn=("beta",), normalize_input=False),
    case(3, 18, 41, per_neuron=True, learn=("threshold",), reset="subtract", detach_reset=False),
    case(2, 16, 24, alpha=0.0, learn=("beta",)),
    case(2, 16, 24, "f32", alpha=0.0, beta=1.0, threshold=0.3),
]

INPUT_KEYS = {"noncontig", "batch_first", "state", "learn", "per_neuron", "alpha", "beta",
              "threshold", "mean", "std"}


@pytest.mark.parametrize("B,T,N,dt,kw", CASES)
def test_lif_cpu_matches_reference(B, T, N, dt, kw):
    inputs = {k: v for k, v in kw.items() if k in INPUT_KEYS}
    opts = {k: v for k, v in kw.items() if k not in INPUT_KEYS}
    if "batch_first" in inputs:
        opts["batch_first"] = inputs["batch_first"]
    X, params, state = make_inputs(B, T, N, DTYPES[dt], **inputs)
    ref, gref = run(fastsnn.lif, "torch", X, params, state, **opts)
    out, gout = run(fastsnn.lif, "cpu", X, params, state, **opts)
    max_mis, gtol = TOL[dt]
    assert out["out"].shape == X.shape and out["out"].dtype == X.dtype
    assert not torch.isnan(out["out"]).any()
    assert mismatch_rate(out["out"], ref["out"]) <= max_mis
    if dt == "f64":
        assert torch.equal(out["out"], ref["out"])
    for k in ("I_T", "U_T"):
        assert rel_err(out[k], ref[k]) <= max(gtol, 1e-6 if dt != "f64" else 0), k
    assert gref.keys() == gout.keys()
    for k in gref:
        assert not torch.isnan(gout[k]).any(), k
        assert rel_err(gout[k], gref[k]) <= gtol, (k, rel_err(gout[k], gref[k]))


def test_lif_cpu_float32_spike_agreement_at_scale():
    """The headline configuration in small: float32 spikes agree with the reference."""
    X, params, _ = make_inputs(8, 200, 128, torch.float32)
    ref, _ = run(fastsnn.lif, "torch", X, params, None)
    out, _ = run(fastsnn.lif, "cpu", X, params, None)
    assert ref["out"].mean() > 0.005  # the case does spike
    assert mismatch_rate(out["out"], ref["out"]) <= 1e-3


def test_nan_input_stays_in_its_row():
    X, params, _ = make_inputs(3, 12, 20, torch.float64)
    X = X.detach().clone()
    X[1, 4, 7] = float("nan")
    S, (I, U) = fastsnn.lif(X, 0.8, 0.9, backend="cpu")
    Sr, (Ir, Ur) = fastsnn.lif(X, 0.8, 0.9, backend="torch")
    assert torch.equal(S, Sr)
    assert torch.isnan(U[1, 7]) and torch.isnan(Ur[1, 7])
    keep = torch.ones_like(U, dtype=torch.bool)
    keep[1, 7] = False
    assert torch.isfinite(U[keep]).all()


def test_inference_saves_nothing():
    X, params, _ = make_inputs(2, 30, 40, torch.float32)
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
        with torch.no_grad():
            fastsnn.lif(X, 0.8, 0.9, backend="cpu")
        fastsnn.lif(X.detach(), 0.8, 0.9, backend="cpu")
    assert packed == []


def saved_bytes_per_step(fn, X, *args, **kw):
    """Bytes of the unique storages autograd keeps for the backward, per neuron-step."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(X, *args, **kw)
    return sum(storages.values()) / X.numel()


def test_cpu_kernel_keeps_at_most_5_bytes_per_neuron_step():
    X = (0.15 + 0.3 * torch.randn(4, 200, 256)).requires_grad_()
    fused = saved_bytes_per_step(fastsnn.lif, X, 0.8, 0.9, backend="cpu")
    ref = saved_bytes_per_step(fastsnn.lif, X, 0.8, 0.9, backend="torch")
    assert fused <= 5.0  # the float32 membrane, spikes recomputed from it
    # The eager loop keeps U - thr for the surrogate and (1 - S) for the reset: 8 B/step.
    assert ref >= 1.9 * fused


@pytest.mark.parametrize("dt", ["f64", "f32"])
def test_learnable_parameter_gradients_repeat_bitwise(dt):
    X, params, state = make_inputs(3, 20, 40, DTYPES[dt], learn=("alpha", "beta", "threshold"),
                                   state=True)
    _, g1 = run(fastsnn.lif, "cpu", X, params, state)
    _, g2 = run(fastsnn.lif, "cpu", X, params, state)
    for k in g1:
        assert torch.equal(g1[k], g2[k]), k


def test_baseline_and_avx2_kernels_agree_bitwise(tmp_path):
    """The kernels are built for baseline x86-64 and for AVX2 (picked at run time); both run
    the same IEEE operations in the same order, so every output and gradient is identical."""
    import subprocess
    import sys

    code = (
        "import sys, torch, fastsnn\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from helpers import make_inputs, run\n"
        "out = {}\n"
        "for dt in (torch.float64, torch.float32, torch.bfloat16):\n"
        "    for reset in ('zero', 'subtract'):\n"
        "        X, p, st = make_inputs(3, 40, 77, dt, learn=('alpha', 'beta', 'threshold'),\n"
        "                               state=True)\n"
        "        o, g = run(fastsnn.lif, 'cpu', X, p, st, reset=reset, detach_reset=False)\n"
        "        out[f'{dt}-{reset}'] = (o, g)\n"
        "        X, p, st = make_inputs(3, 40, 77, dt, learn=('alpha', 'beta'), state=True)\n"
        "        out[f'{dt}-{reset}-li'] = run(fastsnn.li, 'cpu', X,\n"
        "                                      {k: v for k, v in p.items() if k != 'threshold'}, st)\n"
        "torch.save(out, sys.argv[1])\n"
    )
    import os

    here = os.path.dirname(__file__)
    results = []
    for isa in ("base", "auto"):
        path = tmp_path / f"{isa}.pt"
        env = dict(os.environ, FASTSNN_CPU_ISA=isa)
        proc = subprocess.run([sys.executable, "-c", code, str(path), here], env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        results.append(torch.load(path))
    base, auto = results
    for key in base:
        for part_b, part_a in zip(base[key], auto[key]):
            for name in part_b:
                assert torch.equal(part_b[name], part_a[name]), (key, name)


def test_no_grad_mode_asks_the_kernel_to_save_nothing(monkeypatch):
    """Under torch.no_grad() autograd still reports needs_input_grad for leaves that require
    grad (a learnable alpha); the forward must not write the saved membrane then."""
    from fastsnn.ops.lif import function as lif_function
    from fastsnn.ops.li import function as li_function

    calls = []
    for mod in (lif_function, li_function):
        real = mod.kernels

        def spy(backend, real=real):
            fwd, bwd = real(backend)

            def fwd_spy(*args):
                calls.append(args[-2:] if len(args) == 10 else args[-1:])
                return fwd(*args)

            return fwd_spy, bwd

        monkeypatch.setattr(mod, "kernels", spy)
    alpha = torch.nn.Parameter(torch.full((16,), 0.8))
    X = torch.randn(2, 10, 16)
    with torch.no_grad():
        fastsnn.lif(X, alpha, 0.9, backend="cpu")
        fastsnn.li(X, alpha, 0.9, backend="cpu")
    assert calls == [(False, False), (False,)]
    fastsnn.lif(X, alpha, 0.9, backend="cpu")
    assert calls[-1] == (True, True)  # training with a learnable alpha saves U and I
