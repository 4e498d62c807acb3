import torch, time, fastsnn, sys, os, statistics as st
torch.manual_seed(0)
B,T,N=250,100,100
Xs=[(torch.randn(B,T,N)*0.3+0.15) for _ in range(7)]
V=(torch.randn(N,N)*(0.5/N**0.5)).requires_grad_()
G=torch.randn(B,T,N)
def api(x):
    x=x.detach().requires_grad_(); V.grad=None
    S,_=fastsnn.rlif(x,V,0.8,0.9,backend="cpu"); S.backward(G)
    return x.grad, V.grad
knobs=sys.argv[1].split(",")
ref=None
for k in knobs:
    os.environ["FASTSNN_X"]=k; gx,gw=api(Xs[0])
    if k=="0": ref=(gx,gw)
res={k:[] for k in knobs}
for rnd in range(int(sys.argv[2]) if len(sys.argv)>2 else 8):
    for k in knobs:
        os.environ["FASTSNN_X"]=k
        for i in range(5): api(Xs[i%7])
        ts=[]
        for i in range(40):
            t0=time.perf_counter(); api(Xs[i%7]); ts.append(time.perf_counter()-t0)
        res[k].append(st.median(ts)*1e3)
base=st.median(res[knobs[0]])
for k in knobs: print("knob %3s: median %.3f ms  ratio %.3f   rounds %s"%(k, st.median(res[k]), st.median(res[k])/base, " ".join("%.2f"%v for v in res[k])))
