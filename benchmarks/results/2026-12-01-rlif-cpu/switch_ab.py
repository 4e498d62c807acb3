"""Alternate FASTSNN_X switch values in one process (switch_experiments.patch build) and print
each value's median time and its ratio to the first value.

    python switch_ab.py VALUES [ROUNDS] [fwdbwd|fwd]

fwdbwd: fastsnn.rlif forward + S.backward(G), 40 calls per value and round (default 8 rounds);
fwd: the rlif_fwd op alone, 60 calls per value and round. B=250 T=100 N=100, float32.
"""
import os
import statistics as st
import sys
import time

import torch

import fastsnn

torch.manual_seed(0)
B, T, N = 250, 100, 100
Xs = [torch.randn(B, T, N) * 0.3 + 0.15 for _ in range(7)]
w = torch.randn(N, N) * (0.5 / N**0.5)
V = w.clone().requires_grad_()
G = torch.randn(B, T, N)
a, b, th = torch.full((N,), 0.8), torch.full((N,), 0.9), torch.ones(N)
i0, u0 = torch.zeros(B, N), torch.zeros(B, N)


def fwdbwd(x):
    x = x.detach().requires_grad_()
    V.grad = None
    S, _ = fastsnn.rlif(x, V, 0.8, 0.9, backend="cpu")
    S.backward(G)


def fwd(x):
    torch.ops.fastsnn.rlif_fwd(x, w, a, b, th, i0, u0, 0, True, True, False)


values = sys.argv[1].split(",")
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
call, calls = (fwd, 60) if len(sys.argv) > 3 and sys.argv[3] == "fwd" else (fwdbwd, 40)
res = {v: [] for v in values}
for _ in range(rounds):
    for v in values:
        os.environ["FASTSNN_X"] = v  # read by the op at each forward call
        for i in range(5):
            call(Xs[i % 7])
        ts = []
        for i in range(calls):
            t0 = time.perf_counter()
            call(Xs[i % 7])
            ts.append(time.perf_counter() - t0)
        res[v].append(st.median(ts) * 1e3)
base = st.median(res[values[0]])
for v in values:
    m = st.median(res[v])
    print(f"switch {v:>5}: median {m:.3f} ms  ratio {m / base:.3f}   rounds "
          + " ".join(f"{r:.2f}" for r in res[v]))
