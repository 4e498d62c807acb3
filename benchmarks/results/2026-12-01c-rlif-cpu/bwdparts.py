"""The CPU rlif ops alone at B=250 T=100 N=100: forward, backward, backward with
detach_recurrent (no gI @ Vᵀ product), without dV, and both; 40 calls, median ms, 3 passes.
FASTSNN_CPU_ISA=avx2 python bwdparts.py  /  python bwdparts.py  (AVX-512 products where present)"""
import sys, time, statistics as st, torch, fastsnn
torch.manual_seed(0)
B, T, N = 250, 100, 100
X = torch.randn(B, T, N) * 0.3 + 0.15
w = torch.randn(N, N) * (0.5 / N**0.5)
G = torch.randn(B, T, N)
a, b, th = torch.full((N,), 0.8), torch.full((N,), 0.9), torch.ones(N)
i0, u0 = torch.zeros(B, N), torch.zeros(B, N)
_, _, _, us, isv = torch.ops.fastsnn.rlif_fwd(X, w, a, b, th, i0, u0, 0, True, True, False)
def bwd(detach_rec, wgrad):
    torch.ops.fastsnn.rlif_bwd(G, i0, i0, us, isv, i0, u0, w, a, b, th, 0, True, detach_rec, 0, 10.0, True, False, wgrad)
def fwd():
    torch.ops.fastsnn.rlif_fwd(X, w, a, b, th, i0, u0, 0, True, True, False)
def t(f, *a):
    for _ in range(5): f(*a)
    ts = []
    for _ in range(40):
        t0 = time.perf_counter(); f(*a); ts.append(time.perf_counter() - t0)
    return st.median(ts) * 1e3
for r in range(3):
    print(torch.ops.fastsnn.cpu_isa() if hasattr(torch.ops.fastsnn, "cpu_isa") else "", "fwd %.3f  bwd full %.3f  bwd detach_rec %.3f  bwd no dV %.3f  detach+nodV %.3f" % (t(fwd), t(bwd, False, True), t(bwd, True, True), t(bwd, False, False), t(bwd, True, False)))
