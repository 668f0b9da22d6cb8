"""Probes in plain torch (no sklearn): batched L2 logistic regression by Newton's method,
leave-one-out accuracy, k-fold accuracy, a small MLP probe, and the attacker's variants."""

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


def loo_accuracy(x: Any, y: Any, l2: float = 1.0) -> float:
    """Leave-one-out accuracy: probe i trains on every sequence but i and is tested on i."""
    import torch

    n = len(y)
    mask = ~torch.eye(n, dtype=torch.bool)
    theta = fit_logistic(x, y, mask, l2=l2)
    pred = predict(theta, x).diagonal() > 0
    return float((pred == y.bool()).double().mean())


def kfold_masks(n: int, k: int, seed: int) -> Any:
    import torch

    g = torch.Generator().manual_seed(seed)
    fold = torch.randperm(n, generator=g) % k
    return torch.stack([fold != i for i in range(k)])


def masked_accuracy(x: Any, y: Any, masks: Any, l2: float = 1.0) -> float:
    """Held-out accuracy of logistic probes, one per row of ``masks`` [f, n] (True = trains on that
    sequence), each tested on the sequences its mask leaves out; pooled over folds."""
    scores = predict(fit_logistic(x, y, masks, l2=l2), x)
    hits = ((scores > 0) == y.bool().unsqueeze(0)) & ~masks
    return float(hits.sum() / (~masks).sum())


def kfold_accuracy(x: Any, y: Any, k: int = 5, seed: int = 0, l2: float = 1.0) -> float:
    """Held-out accuracy of freshly fitted logistic probes (k folds)."""
    return masked_accuracy(x, y, kfold_masks(len(y), k, seed), l2)


def mlp_kfold_accuracy(x: Any, y: Any, k: int = 5, seed: int = 0, hidden: int = 64, steps: int = 300) -> float:
    """Held-out accuracy of a one-hidden-layer MLP probe (Adam, weight decay 1e-2), k folds."""
    import torch

    masks = kfold_masks(len(y), k, seed)
    hits = 0
    for mask in masks:
        torch.manual_seed(seed)
        xt, yt = x[mask].float(), y[mask].float()
        mu, sd = xt.mean(0), xt.std(0).clamp_min(1e-6)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-2)
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net((xt - mu) / sd).squeeze(-1), yt)
            loss.backward()
            opt.step()
        with torch.no_grad():
            pred = net((x[~mask].float() - mu) / sd).squeeze(-1) > 0
        hits += int((pred == y[~mask].bool()).sum())
    return hits / len(y)


#: The re-fitted attacker's seven probe variants: (name, pooling, kind, l2). The paper names six
#: variants (not which); ``logreg_suffix_mean`` (positions predicting the suffix) is our addition.
ATTACKERS: tuple[tuple[str, str, str, float], ...] = (
    ("logreg_mean", "mean", "logreg", 1.0),
    ("logreg_mean_weak_l2", "mean", "logreg", 1e-2),
    ("logreg_mean_strong_l2", "mean", "logreg", 100.0),
    ("logreg_last", "last", "logreg", 1.0),
    ("logreg_max", "max", "logreg", 1.0),
    ("logreg_suffix_mean", "suffix_mean", "logreg", 1.0),
    ("mlp_mean", "mean", "mlp", 0.0),
)


def attacker_accuracy(x: Any, y: Any, kind: str, l2: float, seed: int) -> float:
    return mlp_kfold_accuracy(x, y, seed=seed) if kind == "mlp" else kfold_accuracy(x, y, seed=seed, l2=l2)
