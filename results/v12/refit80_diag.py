"""Control for the v12 fits: re-fit the MOS output with its full 80-channel level row (not a candidate).

    python results/v12/refit80_diag.py   # needs cache/v12/v060-logits.npz from build_mos_level_v12.sh fit

Why: `mos-level` on 0.6.0 lowers the val-crop MOS MSE from 0.1758 to 0.1477 with a broadband level.
Part of that is re-fitting to the crops' own labels; this fits a, the 80 level weights and c the
same way (full batch Adam, best val epoch) to show what the spectral row is worth on crops like
the training ones.
"""
import numpy as np, torch
from train.checkpoint import load_model
from train import mos_level as ml
from train.heads import LEVEL_SCALE
z = np.load("cache/v12/v060-logits.npz")
model = load_model("runs/v060/best.pt")[0]
M = ml.MOS
def parts(k):
    lg, lv, t = z[f"{k}_logits"], z[f"{k}_levels"], z[f"{k}_targets"][:, M]
    ok = ~np.isnan(t)
    return [torch.tensor(a[ok], dtype=torch.float64) for a in (ml.encoder_logit(model, lg, lv), lv / LEVEL_SCALE, t)]
te, tl, tt = parts("train"); ve, vl, vt = parts("val")
a = torch.ones((), dtype=torch.float64, requires_grad=True); c = torch.zeros((), dtype=torch.float64, requires_grad=True)
W = torch.zeros(80, dtype=torch.float64, requires_grad=True)
opt = torch.optim.Adam([a, c, W], lr=1e-2)
f = lambda e, l: 1 + 4 * torch.sigmoid(a * e + l @ W + c)
best = (9, 0)
for ep in range(3000):
    opt.zero_grad(); ((f(te, tl) - tt) ** 2).mean().backward(); opt.step()
    with torch.no_grad():
        v = float(((f(ve, vl) - vt) ** 2).mean())
    if v < best[0]: best = (v, ep)
print("80-dim level row refit: val MSE %.4f at epoch %d" % best)
