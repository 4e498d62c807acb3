"""Property-based tests (hypothesis): random shapes, options, dtypes, layouts and chunkings, every
available fused backend against the reference (lif, rlif, li), forward and backward.

Backends here: "cpu" (C++), "triton" (Triton's interpreter on the CPU when there is no GPU, so
its examples are fewer and smaller), and the CUDA kernels in the host emulation (tests/cuda_emu.py)
when a host compiler is there; on a GPU machine "cuda" and "triton" run on the GPU.
Tolerances as SPEC section 4: float64 identical spikes, values and gradients within 1e-9
(rlif sums in another order); float32 spike mismatches at most 1e-3, and where the spikes agree
values and gradients within 1e-4.
"""

import os

import pytest
import torch

import fastsnn
from helpers import mismatch_rate, rel_err

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

RESETS = ("zero", "subtract", "none")
SURROGATES = ("superspike", "superspike_asymptotic", "sigmoid", "esser", "atan", "exponential")
ON_GPU = torch.cuda.is_available()


def _backends():
    out = [b for b in fastsnn.available_backends() if b != "torch"]
    if not ON_GPU and os.environ.get("TRITON_INTERPRET") != "1":
        out = [b for b in out if b != "triton"]
    return out


@st.composite
def problems(draw, small=False):
    op = draw(st.sampled_from(["lif", "rlif", "li"]))
    B = draw(st.integers(1, 3 if small else 5))
    T = draw(st.integers(0, 6 if small else 14))
    N = draw(st.integers(1, 12 if small else 40))
    cfg = dict(
        op=op, B=B, T=T, N=N,
        dtype=draw(st.sampled_from([torch.float64, torch.float64, torch.float32])),
        batch_first=draw(st.booleans()),
        layout=draw(st.sampled_from(["contiguous", "sliced"])),
        learn=draw(st.sets(st.sampled_from(["alpha", "beta", "threshold"]))),
        state=draw(st.booleans()),
        normalize_input=draw(st.booleans()),
        split=draw(st.integers(0, T)),
        seed=draw(st.integers(0, 2**16)),
    )
    if op != "li":
        cfg.update(reset=draw(st.sampled_from(RESETS)), detach_reset=draw(st.booleans()),
                   surrogate=draw(st.sampled_from(SURROGATES)),
                   scale=draw(st.sampled_from([1.0, 3.7, 10.0])))
    if op == "rlif":
        cfg["detach_recurrent"] = draw(st.booleans())
    return cfg


def leaves(cfg, device):
    g = torch.Generator().manual_seed(cfg["seed"])
    B, T, N, dtype = cfg["B"], cfg["T"], cfg["N"], cfg["dtype"]
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    shape = (B, T, N) if cfg["batch_first"] else (T, B, N)

    def r(*s, mean=0.0, std=1.0):
        return mean + std * torch.randn(*s, generator=g, dtype=torch.float64)

    if cfg["layout"] == "sliced":
        x = r(*shape[:-1], N + 3, mean=0.6, std=1.2)[..., 1:N + 1]
    else:
        x = r(*shape, mean=0.6, std=1.2)
    out = {"x": x.to(dtype)}
    if cfg["op"] == "rlif":
        out["weight_rec"] = (0.6 * r(N, N) / N ** 0.5).to(acc)
    ranges = {"alpha": (0.0, 0.9), "beta": (0.5, 0.95), "threshold": (0.5, 1.5)}
    for name in ("alpha", "beta") + (("threshold",) if cfg["op"] != "li" else ()):
        if name in cfg["learn"]:
            lo, hi = ranges[name]
            out[name] = (lo + (hi - lo) * torch.rand(N, generator=g, dtype=torch.float64)).to(acc)
    if cfg["state"]:
        out["i0"] = (0.5 * r(B, N)).to(acc)
        out["u0"] = r(B, N, mean=0.8, std=0.6).to(acc)
    w = r(*shape)
    return ({k: v.to(device).requires_grad_() for k, v in out.items()}, w.to(device))


def call(cfg, backend, lv, lo=0, hi=None, state=None):
    """The op on time steps [lo, hi) of the leaves; state overrides the given initial state."""
    x = lv["x"]
    t_dim = 1 if cfg["batch_first"] else 0
    x = x.narrow(t_dim, lo, (x.shape[t_dim] if hi is None else hi) - lo)
    params = {"alpha": 0.6, "beta": 0.85, "threshold": 1.0}
    params.update({k: v for k, v in lv.items() if k in params})
    if state is None and cfg["state"]:
        state = (lv["i0"], lv["u0"])
    common = dict(state=state, normalize_input=cfg["normalize_input"],
                  batch_first=cfg["batch_first"], backend=backend)
    if cfg["op"] == "li":
        return fastsnn.li(x, params["alpha"], params["beta"], **common)
    lif_opts = dict(reset=cfg["reset"], detach_reset=cfg["detach_reset"],
                    surrogate=cfg["surrogate"], scale=cfg["scale"], **common)
    if cfg["op"] == "lif":
        return fastsnn.lif(x, params["alpha"], params["beta"], params["threshold"], **lif_opts)
    return fastsnn.rlif(x, lv["weight_rec"], params["alpha"], params["beta"],
                        params["threshold"], detach_recurrent=cfg["detach_recurrent"], **lif_opts)


def outputs(cfg, backend, lv, w, chunked=False):
    """Output, final state and every gradient of one loss; chunked: two calls split at
    cfg['split'] with the state carried."""
    if chunked:
        t_dim = 1 if cfg["batch_first"] else 0
        out1, st = call(cfg, backend, lv, 0, cfg["split"])
        out2, (i_T, u_T) = call(cfg, backend, lv, cfg["split"], None, state=st)
        out = torch.cat([out1, out2], t_dim)
    else:
        out, (i_T, u_T) = call(cfg, backend, lv)
    loss = (out.double() * w).sum() + u_T.double().sum() + 0.5 * i_T.double().sum()
    names = list(lv)
    if loss.requires_grad:
        grads = torch.autograd.grad(loss, [lv[k] for k in names], allow_unused=True)
    else:  # T = 0 and nothing given: the outputs depend on no leaf
        grads = [None] * len(names)
    res = {"out": out.detach(), "I_T": i_T.detach(), "U_T": u_T.detach()}
    res.update({"grad_" + k: (g if g is not None else torch.zeros_like(lv[k]))
                for k, g in zip(names, grads)})
    return res


def compare(cfg, got, ref):
    spiking = cfg["op"] != "li"
    assert got.keys() == ref.keys()
    for k in got:
        assert got[k].shape == ref[k].shape and got[k].dtype == ref[k].dtype, k
    if cfg["dtype"] == torch.float64:
        for k in got:
            if spiking and k == "out":
                assert torch.equal(got[k], ref[k]), "float64 spikes differ"
            else:
                assert rel_err(got[k], ref[k]) <= 1e-9, k
        return
    if spiking:
        assert mismatch_rate(got["out"], ref["out"]) <= 1e-3
        if not torch.equal(got["out"], ref["out"]):
            return
    for k in got:
        assert rel_err(got[k], ref[k]) <= 1e-4, k


def check(cfg, backend):
    device = "cuda" if ON_GPU and backend in ("cuda", "triton") else "cpu"
    lv, w = leaves(cfg, device)
    ref = outputs(cfg, "torch", lv, w)
    compare(cfg, outputs(cfg, backend, lv, w), ref)
    compare(cfg, outputs(cfg, backend, lv, w, chunked=True), ref)


COMMON = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@pytest.mark.skipif("cpu" not in _backends(), reason="the C++ extension is not built")
@settings(max_examples=200, **COMMON)
@given(problems())
def test_cpu_backend_matches_reference(cfg):
    check(cfg, "cpu")


@pytest.mark.skipif("triton" not in _backends(), reason="Triton cannot run here")
@settings(max_examples=12 if not ON_GPU else 60, **COMMON)
@given(problems(small=not ON_GPU))
def test_triton_backend_matches_reference(cfg):
    check(cfg, "triton")


@pytest.mark.skipif(not ON_GPU or "cuda" not in _backends(), reason="needs a GPU")
@settings(max_examples=60, **COMMON)
@given(problems())
def test_cuda_backend_matches_reference(cfg):
    check(cfg, "cuda")


@settings(max_examples=60, **COMMON)
@given(problems())
def test_emulated_cuda_kernels_match_reference(cfg):
    """The CUDA kernels in the host emulation, through the public API (backend "cpu" swapped to
    them, as tests/test_cuda_emulated.py does)."""
    cuda_emu = pytest.importorskip("cuda_emu")
    if not cuda_emu.compiler_available() or "cpu" not in _backends():
        pytest.skip("needs a host compiler and the extension")
    from fastsnn.ops.li import function as li_f
    from fastsnn.ops.lif import function as lif_f
    from fastsnn.ops.rlif import function as rlif_f
    saved = [(m, m.kernels) for m in (lif_f, li_f, rlif_f)]
    try:
        for m, name in ((lif_f, "lif"), (li_f, "li"), (rlif_f, "rlif")):
            orig = m.kernels
            m.kernels = (lambda orig, name: lambda b: (
                (cuda_emu.OPS[name + "_fwd"], cuda_emu.OPS[name + "_bwd"]) if b == "cpu"
                else orig(b)))(orig, name)
        check(cfg, "cpu")
    finally:
        for m, k in saved:
            m.kernels = k
