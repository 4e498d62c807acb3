"""The fused leaky-integrator kernels against the reference (same tolerances as test_lif_cpu)."""

import pytest
import torch

import fastsnn
from helpers import DTYPES, make_inputs, rel_err, run

pytestmark = pytest.mark.usefixtures("poison")

GTOL = {"f64": 1e-10, "f32": 1e-5, "bf16": 2e-2, "f16": 2e-2}
OTOL = {"f64": 1e-12, "f32": 1e-6, "bf16": 1e-2, "f16": 2e-3}


def case(B, T, N, dt="f64", **kw):
    tag = "-".join(f"{k}={'+'.join(v) if isinstance(v, tuple) else v}" for k, v in sorted(kw.items()))
    return pytest.param(B, T, N, dt, kw, id=f"B{B}-T{T}-N{N}-{dt}" + (f"-{tag}" if tag else ""))


CASES = [
    case(2, 17, 33),
    case(4, 32, 64, "f32"),
    case(3, 1, 10),
    case(2, 20, 47, "bf16"),
    case(2, 20, 47, "f16"),
    case(3, 19, 65, noncontig=True),
    case(3, 19, 65, "f32", batch_first=False),
    case(2, 23, 31, state=True),
    case(2, 23, 31, normalize_input=False),
    case(2, 21, 37, learn=("alpha", "beta"), state=True),
    case(2, 21, 37, "f32", learn=("alpha", "beta"), per_neuron=True, normalize_input=False),
    case(2, 21, 37, learn=("beta",), alpha=0.0),
]
INPUT_KEYS = {"noncontig", "batch_first", "state", "learn", "per_neuron", "alpha", "beta"}


@pytest.mark.parametrize("B,T,N,dt,kw", CASES)
def test_li_cpu_matches_reference(B, T, N, dt, kw):
    inputs = {k: v for k, v in kw.items() if k in INPUT_KEYS}
    opts = {k: v for k, v in kw.items() if k not in INPUT_KEYS}
    if "batch_first" in inputs:
        opts["batch_first"] = inputs["batch_first"]
    X, params, state = make_inputs(B, T, N, DTYPES[dt], **inputs)
    params.pop("threshold")
    ref, gref = run(fastsnn.li, "torch", X, params, state, **opts)
    out, gout = run(fastsnn.li, "cpu", X, params, state, **opts)
    assert out["out"].shape == X.shape and out["out"].dtype == X.dtype
    for k in ("out", "I_T", "U_T"):
        assert not torch.isnan(out[k]).any(), k
        assert rel_err(out[k], ref[k]) <= OTOL[dt], k
    assert gref.keys() == gout.keys()
    for k in gref:
        assert rel_err(gout[k], gref[k]) <= GTOL[dt], (k, rel_err(gout[k], gref[k]))


def test_li_inference_and_fixed_decays_save_nothing():
    X = torch.randn(2, 30, 8, requires_grad=True)
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
        fastsnn.li(X, 0.8, 0.9, backend="cpu")
    # only the (B, N) initial state and the (N,) decays, no per-step tensor
    assert all(t.numel() <= X.shape[0] * X.shape[2] for t in packed)
