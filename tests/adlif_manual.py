"""The adLIF reverse scan of fastsnn/ops/adlif/README.md, written with whole-tensor torch ops.

It is the blueprint of the fused backward kernels: it reads only what the README says the
forward saves (the membrane before the reset for "se" / the membrane for "ef", the adaptation
w_t and the drive d_t = X_t + R_t - w_{t-1} when beta / alpha learn) plus the inputs, and
tests/test_adlif_ref.py checks its gradients against the reference's autograd in float64.
"""

import torch

from fastsnn.ops.adlif.ref import _reset
from fastsnn.surrogate import surrogate_grad


def forward_saved(X, alpha, beta, a, b, thr, u0, w0, z0, V, variant, reset):
    """The forward without autograd: Z and the saved tensors m (membrane compared with the
    threshold: u'_t for "se", u_t for "ef"), w_t and d_t, each [B, T, N]."""
    u, w, z = u0, w0, z0
    Z, M, W, D = [], [], [], []
    for x_t in X.unbind(1):
        c = x_t + z @ V if V is not None else x_t
        d = c - w
        if variant == "se":
            m = alpha * u + (1 - alpha) * d
            z_t = (m - thr > 0).to(m.dtype)
            u = _reset(m, z_t, thr, reset)
            w = beta * w + (1 - beta) * (a * u + b * z_t)
        else:
            ur = _reset(u, z, thr, reset)
            m = alpha * ur + (1 - alpha) * d
            w = beta * w + (1 - beta) * (a * ur + b * z)
            z_t = (m - thr > 0).to(m.dtype)
            u = m
        z = z_t
        Z.append(z_t), M.append(m), W.append(w), D.append(d)
    return torch.stack(Z, 1), (u, w, z), torch.stack(M, 1), torch.stack(W, 1), torch.stack(D, 1)


def backward(G, gu_T, gw_T, gz_T, M, W, D, alpha, beta, a, b, thr, u0, w0, z0, V, variant,
             reset, detach_reset, detach_recurrent, surrogate, scale):
    """Gradients of X, alpha, beta, a, b, thr, u0, w0, z0, V from dL/dZ (G) and the final
    state's gradients, walking t = T-1 .. 0 with the carries gU = dL/du_t, gW = dL/dw_t and
    gZ = dL/dZ_t as seen from step t+1."""
    B, T, N = G.shape
    zeros = torch.zeros_like(u0)
    gU, gW, gZ = gu_T.clone(), gw_T.clone(), gz_T.clone()
    gX = torch.zeros_like(G)
    ga = [torch.zeros_like(u0) for _ in range(5)]  # alpha, beta, a, b, thr partials [B, N]
    gV = torch.zeros_like(V) if V is not None else None
    nd = 0.0 if detach_reset else 1.0

    def z_of(t):  # Z_t recomputed from the saved membrane; Z_{-1} = z0
        return z0 if t < 0 else (M[:, t] - thr > 0).to(M.dtype)

    def u_of(t):  # u_t as the next step reads it
        if t < 0:
            return u0
        return _reset(M[:, t], z_of(t), thr, reset) if variant == "se" else M[:, t]

    def w_of(t):
        return w0 if t < 0 else W[:, t]

    for t in range(T - 1, -1, -1):
        m, z_t, z_p = M[:, t], z_of(t), z_of(t - 1)
        sg = surrogate_grad(surrogate, m - thr, scale)
        if variant == "se":
            u_t = u_of(t)
            gZt = G[:, t] + gZ + (1 - beta) * b * gW
            gu = gU + (1 - beta) * a * gW
            if reset == "zero":
                gm = gu * (1 - z_t)
                gZt = gZt + nd * (-m * gu)
            elif reset == "subtract":
                gm = gu
                gZt = gZt + nd * (-thr * gu)
                ga[4] -= z_t * gu
            else:
                gm = gu
            gm = gm + sg * gZt
            ga[4] -= sg * gZt
            gc = (1 - alpha) * gm
            ga[0] += gm * (u_of(t - 1) - D[:, t])
            ga[1] += gW * (w_of(t - 1) - (a * u_t + b * z_t))
            ga[2] += (1 - beta) * gW * u_t
            ga[3] += (1 - beta) * gW * z_t
            gU_prev = alpha * gm
            gW_prev = beta * gW - (1 - alpha) * gm
            gZ_prev = zeros.clone()
        else:
            gZt = G[:, t] + gZ
            gm = gU + sg * gZt
            ga[4] -= sg * gZt
            ur = _reset(u_of(t - 1), z_p, thr, reset)
            gur = alpha * gm + (1 - beta) * a * gW
            gc = (1 - alpha) * gm
            ga[0] += gm * (ur - D[:, t])
            ga[1] += gW * (w_of(t - 1) - (a * ur + b * z_p))
            ga[2] += (1 - beta) * gW * ur
            ga[3] += (1 - beta) * gW * z_p
            gZ_prev = (1 - beta) * b * gW
            if reset == "zero":
                gU_prev = gur * (1 - z_p)
                gZ_prev = gZ_prev + nd * (-u_of(t - 1) * gur)
            elif reset == "subtract":
                gU_prev = gur
                gZ_prev = gZ_prev + nd * (-thr * gur)
                ga[4] -= z_p * gur
            else:
                gU_prev = gur
            gW_prev = beta * gW - (1 - alpha) * gm
        gX[:, t] = gc
        if V is not None:
            gV += z_p.t() @ gc
            if not detach_recurrent:
                gZ_prev = gZ_prev + gc @ V.t()
        gU, gW, gZ = gU_prev, gW_prev, gZ_prev
    return (gX, *(p.sum(0) for p in ga), gU, gW, gZ, gV)
