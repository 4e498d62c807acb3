import sys, torch, fastsnn
out = {}
for (B,T,N,dt) in [(250,100,100,torch.float32),(7,30,61,torch.float32),(5,20,130,torch.float32),(6,12,47,torch.bfloat16),(4,9,33,torch.float64),(3,11,96,torch.float32)]:
    for reset, dr, lrn in [("zero",True,False),("zero",False,True),("subtract",False,False)]:
        torch.manual_seed(1)
        x = (torch.randn(B,T,N)*0.3+0.35).to(dt).requires_grad_()
        V = (torch.randn(N,N)*(0.5/N**0.5)).to(torch.float64 if dt==torch.float64 else torch.float32).requires_grad_()
        acc = V.dtype
        al = torch.full((N,),0.8,dtype=acc).requires_grad_(lrn)
        S,(iT,uT) = fastsnn.rlif(x, V, al, 0.9, reset=reset, detach_reset=dr, backend="cpu")
        g = torch.randn_like(S)
        (S*g).sum().backward()
        key=f"{B},{T},{N},{dt},{reset},{dr},{lrn}"
        out[key] = [S.detach(), x.grad, V.grad] + ([al.grad] if lrn else [])
torch.save(out, sys.argv[1])
