"""Unlearning method "leace": LEACE concept erasure (Belrose et al. 2023), closed form, at every depth (live).

A thin subclass of :class:`harness.unlearning.methods.HookEditMethod`: :func:`leace_edit` is
the edit of one depth; :func:`harness.unlearning.erasure.fit_depthwise` fits it depth by depth.
"""

from __future__ import annotations

from typing import Any

from harness import hookimpl
from harness.unlearning.erasure import AffineEdit
from harness.unlearning.methods import HookEditConfig, HookEditMethod


def leace_edit(x: Any, y: Any, eps: float = 1e-6) -> AffineEdit:
    """Closed-form LEACE (Belrose et al. 2023, arXiv 2306.03819) for a binary concept:
    r(x) = x - W^+ P W (x - mu), W = Sigma^{-1/2} (pseudo-inverse on the data's span),
    P = projection onto W Sigma_xz. Afterwards no linear probe beats the constant predictor."""
    import torch

    x = x.double()
    z = y.double() - y.double().mean()
    mu = x.mean(0)
    xc = x - mu
    sigma = xc.T @ xc / len(x)
    sxz = xc.T @ z / len(x)
    evals, evecs = torch.linalg.eigh(sigma)
    keep = evals > eps * evals.max()
    v, lam = evecs[:, keep], evals[keep]
    W = v @ torch.diag(lam.rsqrt()) @ v.T
    W_pinv = v @ torch.diag(lam.sqrt()) @ v.T
    u = W @ sxz
    u = u / u.norm().clamp_min(1e-30)
    U, V = (W_pinv @ u).unsqueeze(0), (W @ u).unsqueeze(0)
    return AffineEdit(U=U.float(), V=V.float(), t=(mu @ V.T).float())


class Leace(HookEditMethod):
    name = "leace"
    description = "LEACE concept erasure (Belrose et al. 2023), closed form, at every depth (live)."
    paper = "arXiv:2306.03819"

    class Config(HookEditConfig):
        pass  # own class so the schema title stays "Config"

    def edit(self, x: Any, y: Any) -> AffineEdit:
        return leace_edit(x, y)


@hookimpl
def register_unlearning_methods(register):
    register(Leace)
