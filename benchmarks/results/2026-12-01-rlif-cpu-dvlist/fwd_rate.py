"""rlif_fwd op time against the firing rate (input mean varied, everything else fixed):
B=250 T=100 N=100 float32, median of 60 calls per rate. Run from the repository root after a
build: python benchmarks/results/2026-12-01-rlif-cpu-dvlist/fwd_rate.py"""
import torch, time, sys
import fastsnn
torch.manual_seed(0)
B,T,N=250,100,100
a,b,th=torch.full((N,),0.8),torch.full((N,),0.9),torch.ones(N)
i0=torch.zeros(B,N); u0=torch.zeros(B,N)
w=torch.randn(N,N)*(0.5/N**0.5)
cases=[]
for mean in (-2.0, 0.0, 0.1, 0.15, 0.2, 0.3):
    xs=[torch.randn(B,T,N)*0.3+mean for _ in range(4)]
    s=torch.ops.fastsnn.rlif_fwd(xs[0],w,a,b,th,i0,u0,0,True,True,False)[0]
    cases.append((mean,xs,s.mean().item()))
for rep in range(2):
    for mean,xs,rate in cases:
        ts=[]
        for i in range(60):
            t0=time.perf_counter(); torch.ops.fastsnn.rlif_fwd(xs[i%4],w,a,b,th,i0,u0,0,True,True,False); ts.append(time.perf_counter()-t0)
        print("mean %.2f rate %.4f fwd %.3f ms"%(mean,rate,sorted(ts)[30]*1e3))
