"""Pearson and Spearman correlations (numpy only) with a standard error for r."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 3:
        raise ValueError(f"a correlation needs at least 3 points, got {a.size}.")
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    if den == 0.0:
        raise ValueError(
            "correlation undefined: one side is constant (e.g. every toy model represents the same number of "
            "features). Widen the sparsity range or train the toy models longer."
        )
    return float((a * b).sum() / den)


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    ranks[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):  # average ranks of ties
        tie = x == v
        ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    return pearson(_ranks(np.asarray(x, dtype=float)), _ranks(np.asarray(y, dtype=float)))


def r_stderr(r: float, n: int) -> float | None:
    """Large-sample standard error sqrt((1 - r^2) / (n - 2))."""
    return math.sqrt(max(0.0, 1.0 - r * r) / (n - 2)) if n > 2 else None
