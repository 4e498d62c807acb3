"""Every op of fastsnn/ops/registry.py, every fused backend it has that runs here, against its
reference: the test a new op gets without being edited (CONTRIBUTING.md).

Each op's ref module gives ``example(B, T, N, dtype, seed)``: leaves (every input that can learn)
and the arguments of ``fastsnn.<public>``. In float64 the outputs must be bitwise the
reference's (spikes and states: the fused scans do the reference's operations in its order,
except the recurrent sum of rlif, hence the tolerance) and every gradient within 1e-9; in
float32 within the tolerances of the per-op tests. Inputs requiring no gradient save nothing
(inference): the fused forward under no_grad packs no tensor for the backward.
"""

import os

import torch

if not torch.cuda.is_available():  # read when fastsnn imports its Triton modules
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

import fastsnn  # noqa: E402
from fastsnn.ops import registry  # noqa: E402

CASES = [(op, backend) for op, row in registry.OPS.items() if row["ref"] is not None
         for backend in row["backends"]]


def flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in flat(o)]


def run(op, backend, dtype, B=3, T=9, N=20):
    leaves, args = registry.import_part(op, "ref").example(B, T, N, dtype)
    leaves = [t.detach().clone().requires_grad_() for t in leaves]
    a, kw = args(leaves)
    outs = flat(getattr(fastsnn, registry.OPS[op]["public"])(*a, backend=backend, **kw))
    g = torch.Generator().manual_seed(7)
    loss = sum((o.double() * torch.randn(o.shape, generator=g, dtype=torch.float64)).sum()
               for o in outs)
    grads = torch.autograd.grad(loss, leaves)
    return [o.detach() for o in outs], grads


@pytest.mark.parametrize("op,backend", CASES, ids=[f"{o}-{b}" for o, b in CASES])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_backend_matches_reference(op, backend, dtype):
    if backend not in fastsnn.available_backends() or backend == "cuda":
        pytest.skip(f"backend {backend!r} does not run here")
    want_out, want_grads = run(op, "torch", dtype)
    got_out, got_grads = run(op, backend, dtype)
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == torch.float64 else dict(rtol=2e-4, atol=2e-5)
    for i, (x, y) in enumerate(zip(got_out, want_out)):
        torch.testing.assert_close(x, y, **tol, msg=f"{op} {backend} output {i}")
    assert any(0 < o.float().mean() < 1 for o in got_out)  # the case is not trivial
    for i, (x, y) in enumerate(zip(got_grads, want_grads)):
        torch.testing.assert_close(x, y, **tol, msg=f"{op} {backend} gradient of leaf {i}")


@pytest.mark.parametrize("op,backend", CASES, ids=[f"{o}-{b}" for o, b in CASES])
def test_inference_saves_nothing(op, backend):
    if backend not in fastsnn.available_backends() or backend == "cuda":
        pytest.skip(f"backend {backend!r} does not run here")
    leaves, args = registry.import_part(op, "ref").example(2, 4, 8, torch.float32)
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
        with torch.no_grad():
            a, kw = args(leaves)
            getattr(fastsnn, registry.OPS[op]["public"])(*a, backend=backend, **kw)
    assert not packed
