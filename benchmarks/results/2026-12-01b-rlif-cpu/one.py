import sys, time, statistics as st, torch, fastsnn
torch.manual_seed(0)
B, T, N = [int(v) for v in (sys.argv[2] if len(sys.argv) > 2 else "250,100,100").split(",")]
mode = sys.argv[1]
Xs = [torch.randn(B, T, N) * 0.3 + 0.15 for _ in range(7)]
w = torch.randn(N, N) * (0.5 / N**0.5)
V = w.clone().requires_grad_()
G = torch.randn(B, T, N)
a, b, th = torch.full((N,), 0.8), torch.full((N,), 0.9), torch.ones(N)
i0, u0 = torch.zeros(B, N), torch.zeros(B, N)
def fwdbwd(x):
    x = x.detach().requires_grad_(); V.grad = None
    S, _ = fastsnn.rlif(x, V, 0.8, 0.9, backend="cpu"); S.backward(G)
def fwd(x):
    torch.ops.fastsnn.rlif_fwd(x, w, a, b, th, i0, u0, 0, True, True, False)
_, _, _, us, isv = torch.ops.fastsnn.rlif_fwd(Xs[0], w, a, b, th, i0, u0, 0, True, True, False)
def bwd(x):
    torch.ops.fastsnn.rlif_bwd(G, i0, i0, us, isv, i0, u0, w, a, b, th, 0, True, False, 0, 10.0, True, False, True)
call = {"fwdbwd": fwdbwd, "fwd": fwd, "bwd": bwd}[mode]
calls = int(sys.argv[3]) if len(sys.argv) > 3 else 40
for i in range(8): call(Xs[i % 7])
ts = []
for i in range(calls):
    t0 = time.perf_counter(); call(Xs[i % 7]); ts.append(time.perf_counter() - t0)
print(st.median(ts) * 1e3)
