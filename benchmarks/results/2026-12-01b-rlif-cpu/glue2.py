import torch, time, fastsnn, statistics as st
from fastsnn.ops.rlif import function as F
torch.manual_seed(0)
B,T,N = 250,100,100
x0 = torch.randn(B,T,N)*0.3+0.15
w = (torch.randn(N,N)*0.05).requires_grad_()
G = torch.randn(B,T,N)
a = torch.full((N,),0.8); b=torch.full((N,),0.9); th=torch.ones(N); z=torch.zeros(B,N)
fo = torch.ops.fastsnn.rlif_fwd(x0, w.detach(), a, b, th, z, z, 0, True, True, False)
bo = torch.ops.fastsnn.rlif_bwd(G, z, z, fo[3], fo[4], z, z, w.detach(), a, b, th, 0, True, False, 0, 10.0, True, False, True)
F.kernels = lambda backend: ((lambda *args: fo), (lambda *args: (torch.empty(B,T,N),) + tuple(bo[1:])))
def full(x):
    x = x.detach().requires_grad_(); w.grad=None
    s,_ = fastsnn.rlif(x, w, 0.8, 0.9, 1.0, backend="cpu"); s.backward(G)
for i in range(50): full(x0)
for r in range(3):
    ts=[]
    for i in range(300):
        t0=time.perf_counter(); full(x0); ts.append(time.perf_counter()-t0)
    print("glue only: median %.1f us"%(st.median(ts)*1e6))
import cProfile, pstats
cProfile.run("for i in range(300): full(x0)", "/tmp/glue.prof")
pstats.Stats("/tmp/glue.prof").sort_stats("tottime").print_stats(15)
