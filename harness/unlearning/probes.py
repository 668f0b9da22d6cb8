"""The L2 logistic probe in plain torch (no sklearn), batched over folds, fitted by Newton's method.

The probe-based edits (:mod:`harness.unlearning.erasure`) take its direction; the unlearning
suite's probes (leave-one-out, k-fold, the attackers) fit and score it too.
"""

from __future__ import annotations

from typing import Any


def _standardise(x: Any, mask: Any) -> tuple[Any, Any]:
    """Mean/std over the rows selected by ``mask`` [f, n] (per fold)."""
    w = mask.float().unsqueeze(-1)
    cnt = w.sum(1, keepdim=True).clamp_min(1)
    mu = (w * x).sum(1, keepdim=True) / cnt
    sd = ((w * (x - mu) ** 2).sum(1, keepdim=True) / cnt).sqrt().clamp_min(1e-6)
    return mu, sd


def fit_logistic(x: Any, y: Any, mask: Any | None = None, l2: float = 1.0, iters: int = 25) -> tuple[Any, Any, Any, Any]:
    """Fit ``folds`` L2-logistic probes at once on standardised features (Newton, at most ``iters`` steps).

    x: [n, d]; y: [n] (0/1); mask: [f, n] bool (rows each fold trains on; default: one fold, all rows).
    Returns (weights [f, d], bias [f], mean [f, 1, d], std [f, 1, d]) of the standardised problem.
    """
    import torch

    x = x.double()
    y = y.double()
    mask = torch.ones(1, len(y), dtype=torch.bool) if mask is None else mask
    f, n = mask.shape
    mu, sd = _standardise(x.unsqueeze(0).expand(f, n, -1), mask)
    z = (x.unsqueeze(0) - mu) / sd
    z = torch.cat([z, torch.ones(f, n, 1, dtype=z.dtype)], -1)
    m = mask.double()
    theta = torch.zeros(f, z.shape[-1], dtype=z.dtype)
    reg = torch.full((z.shape[-1],), l2, dtype=z.dtype)
    reg[-1] = 1e-6
    for _ in range(iters):
        p = torch.sigmoid((z * theta.unsqueeze(1)).sum(-1))
        g = ((p - y) * m).unsqueeze(-1).mul(z).sum(1) + reg * theta
        h = torch.einsum("fn,fni,fnj->fij", p * (1 - p) * m, z, z) + torch.diag(reg)
        # One small solve per fold: a batched CPU solve runs MKL's LU inside torch's parallel_for (nested
        # OpenMP), which can spin for minutes and print "Parameter 6 was incorrect on entry to DLASWP".
        step = torch.stack([torch.linalg.solve(h[i], g[i]) for i in range(f)])
        theta = theta - step
        if float(step.abs().max()) < 1e-10:  # converged (Newton on a strongly convex loss: ~8 steps)
            break
    return theta[:, :-1], theta[:, -1], mu, sd


def predict(theta: tuple[Any, Any, Any, Any], x: Any) -> Any:
    """Scores [f, n] of fitted probes on x [n, d] (> 0 = class 1)."""
    w, b, mu, sd = theta
    z = (x.double().unsqueeze(0) - mu) / sd
    return (z * w.unsqueeze(1)).sum(-1) + b.unsqueeze(-1)
