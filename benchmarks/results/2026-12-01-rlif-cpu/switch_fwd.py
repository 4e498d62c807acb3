import torch, time, fastsnn, sys, os, statistics as st
torch.manual_seed(0)
B,T,N=250,100,100
Xs=[(torch.randn(B,T,N)*0.3+0.15) for _ in range(7)]
w=(torch.randn(N,N)*(0.5/N**0.5))
a,b,th=torch.full((N,),0.8),torch.full((N,),0.9),torch.ones(N)
i0=torch.zeros(B,N); u0=torch.zeros(B,N)
def f(x): return torch.ops.fastsnn.rlif_fwd(x,w,a,b,th,i0,u0,0,True,True,False)
knobs=sys.argv[1].split(","); res={k:[] for k in knobs}
for rnd in range(6):
    for k in knobs:
        os.environ["FASTSNN_X"]=k
        for i in range(5): f(Xs[i%7])
        ts=[]
        for i in range(60):
            t0=time.perf_counter(); f(Xs[i%7]); ts.append(time.perf_counter()-t0)
        res[k].append(st.median(ts)*1e3)
base=st.median(res[knobs[0]])
for k in knobs: print("knob %4s: %.3f ms ratio %.3f  %s"%(k,st.median(res[k]),st.median(res[k])/base," ".join("%.2f"%v for v in res[k])))
