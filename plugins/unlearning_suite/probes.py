"""The suite's probes in plain torch (no sklearn): held-out (cross-fitted) frozen probes, leave-one-out
accuracy, k-fold accuracy, a small MLP probe, and the attacker's variants, on the logistic probe of
:mod:`harness.unlearning.probes`.

Every accuracy here is over held-out sequences: a sequence is scored only by probes that did not
train on it. Its standard error treats sequences as the sampling unit (:func:`sequence_stderr`).
"""

from __future__ import annotations

from typing import Any

from harness.unlearning.probes import fit_logistic, predict


def loo_accuracy(x: Any, y: Any, l2: float = 1.0) -> float:
    """Leave-one-out accuracy: probe i trains on every sequence but i and is tested on i."""
    import torch

    n = len(y)
    mask = ~torch.eye(n, dtype=torch.bool)
    theta = fit_logistic(x, y, mask, l2=l2)
    pred = predict(theta, x).diagonal() > 0
    return float((pred == y.bool()).double().mean())


def sequence_stderr(scores: Any) -> float:
    """Standard error of the mean of per-sequence scores ``[n]``: sqrt(population variance / n);
    for 0/1 hits it is the binomial stderr sqrt(p (1 - p) / n)."""
    s = scores.double()
    return float((s.var(unbiased=False) / len(s)).sqrt())


def stratified_masks(y: Any, folds: int, seed: int) -> Any:
    """Training masks ``[folds, n]`` (True = trains) of a seeded stratified partition: each class's
    indices are permuted and dealt round-robin into the folds, so every sequence is held out by
    exactly one fold and every training set keeps the class ratio (with balanced classes, balanced
    training sets: no leave-one-out intercept bias). ``folds`` must be in 2 .. the smaller class's size."""
    import torch

    counts = [int((y == c).sum()) for c in (0, 1)]
    if not 2 <= folds <= min(counts):
        raise ValueError(
            f"held-out probes need 2 <= folds <= the smaller class's size ({min(counts)}; classes {counts}), got "
            f"folds={folds}: lower the folds or give more sequences of the smaller class."
        )
    g = torch.Generator().manual_seed(seed)
    fold = torch.empty(len(y), dtype=torch.long)
    for c in (0, 1):
        idx = torch.nonzero(y == c).flatten()
        fold[idx[torch.randperm(len(idx), generator=g)]] = torch.arange(len(idx)) % folds
    return torch.stack([fold != i for i in range(folds)])


def heldout_hits(theta: Any, masks: Any, x: Any, y: Any) -> Any:
    """Per sequence (``[n]`` bool): whether the probe of the fold that held it out classifies it
    right. ``theta``: probes fitted with ``masks`` (a partition: each sequence held out once);
    ``x``: the activations to score (the fitting ones, or an edited model's for a frozen probe)."""
    right = (predict(theta, x) > 0) == y.bool().unsqueeze(0)
    return (right & ~masks).any(0)


def heldout_accuracy(x: Any, y: Any, folds: int | None = None, seed: int = 0, l2: float = 1.0,
                     x_eval: Any = None) -> tuple[float, float]:
    """``(accuracy, stderr)`` of cross-fitted logistic probes: fitted on ``x`` with stratified
    ``folds`` (None = the smaller class's size: leave-one-pair-out with balanced classes), each
    scoring the sequences it held out, on ``x_eval`` (default ``x``)."""
    masks = stratified_masks(y, folds or min(int((y == 0).sum()), int((y == 1).sum())), seed)
    hits = heldout_hits(fit_logistic(x, y, masks, l2=l2), masks, x if x_eval is None else x_eval, y)
    return float(hits.double().mean()), sequence_stderr(hits)


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
