"""The CPU kernels' float32 forward outputs, bitwise, on a fixed set of inputs.

Issue 19 restructured the kernels (li became an instantiation of the lif skeleton, the CUDA
skeleton was written once, the parallel loops changed) with the promise that no result would
change. These SHA-256 prefixes of (output, I_T, U_T) were computed with the build before that
work (commit 3e0fa89's kernels) and again after it, identical, and are identical for the
baseline, AVX2 and AVX-512 kernels (FASTSNN_CPU_ISA): a change to the forward arithmetic of lif,
li or rlif, or to the order of its operations, fails here. If such a change is intended, say so
in the commit and update the table.
"""

import hashlib

import pytest
import torch

import fastsnn

pytestmark = pytest.mark.skipif("cpu" not in fastsnn.available_backends(),
                                reason="the C++ extension is not built")


def cases():
    for op in ("lif", "li", "rlif"):
        for (B, T, N) in ((3, 17, 37), (2, 9, 128), (4, 5, 1)):
            for kw in ({}, {"reset": "subtract"}, {"reset": "none", "normalize_input": False}):
                if op == "li" and "reset" in kw and kw["reset"] != "none":
                    continue
                yield op, (B, T, N), kw


def digest(op, shape, kw):
    B, T, N = shape
    g = torch.Generator().manual_seed(B * 1000 + T * 10 + N)
    X = 0.6 + 0.8 * torch.randn(B, T, N, generator=g)
    a = 0.5 + 0.45 * torch.rand(N, generator=g)
    b = 0.5 + 0.45 * torch.rand(N, generator=g)
    st = (0.2 * torch.randn(B, N, generator=g), 0.2 * torch.randn(B, N, generator=g))
    with torch.no_grad():
        if op == "li":
            kw = {k: v for k, v in kw.items() if k == "normalize_input"}
            out = fastsnn.li(X, a, b, state=st, backend="cpu", **kw)
        elif op == "lif":
            out = fastsnn.lif(X, a, b, 1.0, state=st, backend="cpu", **kw)
        else:
            V = 0.5 * torch.randn(N, N, generator=g) / N ** 0.5
            out = fastsnn.rlif(X, V, a, b, 1.0, state=st, backend="cpu", **kw)
    y, (i, u) = out
    h = hashlib.sha256()
    for t in (y, i, u):
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


GOLDEN = {
    "lif-(3, 17, 37)-[]": "32d7a4da9d5100aa",
    "lif-(3, 17, 37)-[('reset', 'subtract')]": "fdab6228276f866b",
    "lif-(3, 17, 37)-[('normalize_input', False), ('reset', 'none')]": "9bbaf529d1d3e16a",
    "lif-(2, 9, 128)-[]": "079b7cdb2f299e1b",
    "lif-(2, 9, 128)-[('reset', 'subtract')]": "c4920af4ec8b501d",
    "lif-(2, 9, 128)-[('normalize_input', False), ('reset', 'none')]": "96730b7c88508148",
    "lif-(4, 5, 1)-[]": "aa400f06b5c05020",
    "lif-(4, 5, 1)-[('reset', 'subtract')]": "aa400f06b5c05020",
    "lif-(4, 5, 1)-[('normalize_input', False), ('reset', 'none')]": "cc5241d0f2edda68",
    "li-(3, 17, 37)-[]": "c8adb6a3e090d623",
    "li-(3, 17, 37)-[('normalize_input', False), ('reset', 'none')]": "69b4d11bf47eea2e",
    "li-(2, 9, 128)-[]": "55b2fe9e886e755a",
    "li-(2, 9, 128)-[('normalize_input', False), ('reset', 'none')]": "d1f2a5b497595218",
    "li-(4, 5, 1)-[]": "c4369407a22d7706",
    "li-(4, 5, 1)-[('normalize_input', False), ('reset', 'none')]": "39305075d784b9c2",
    "rlif-(3, 17, 37)-[]": "28b1b7fbe46e96e3",
    "rlif-(3, 17, 37)-[('reset', 'subtract')]": "eb4bfee39d7eba14",
    "rlif-(3, 17, 37)-[('normalize_input', False), ('reset', 'none')]": "f290de4b9d64c5f1",
    "rlif-(2, 9, 128)-[]": "7e6e6dde0fc7a246",
    "rlif-(2, 9, 128)-[('reset', 'subtract')]": "e4c2946a30c5fa3e",
    "rlif-(2, 9, 128)-[('normalize_input', False), ('reset', 'none')]": "9bd641823a2f223c",
    "rlif-(4, 5, 1)-[]": "aa400f06b5c05020",
    "rlif-(4, 5, 1)-[('reset', 'subtract')]": "aa400f06b5c05020",
    "rlif-(4, 5, 1)-[('normalize_input', False), ('reset', 'none')]": "69d78164409a741b"
}


@pytest.mark.parametrize("op,shape,kw", list(cases()),
                         ids=[f"{op}-{s}-{sorted(kw.items())}" for op, s, kw in cases()])
def test_forward_bitwise_as_before(op, shape, kw):
    assert digest(op, shape, kw) == GOLDEN[f"{op}-{shape}-{sorted(kw.items())}"]
