"""Shared statistics of the suites and boards: standard errors, bootstrap, AUROC, correlations,
the paired t test and the minimum detectable difference.

Nothing heavy at import time (numpy, and torch for :func:`bootstrap_weights`, are imported
when a function is called), so plugin modules import this freely. Every
function is a plain formula (tested on hand-computed cases in tests/test_stats.py), so a
plugin's numbers depend only on its inputs and seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


# --------------------------------------------------------------------------- standard errors
def binomial_stderr(p: float, n: int) -> float:
    """Standard error sqrt(p (1 - p) / n) of a proportion ``p`` over ``n`` trials."""
    if n < 1:
        raise ValueError(f"a proportion needs n >= 1 trials, got n={n}.")
    return math.sqrt(p * (1 - p) / n)


def mean_stderr(xs: Sequence[float]) -> float | None:
    """Standard error of the mean of ``xs``: sample standard deviation (ddof 1) / sqrt(n) (numpy); None when n < 2."""
    import numpy as np

    a = np.asarray(xs, dtype=float)
    if a.size < 2:
        return None
    return float(a.std(ddof=1) / np.sqrt(a.size))


def combined_stderr(stderrs: Sequence[float | None]) -> float | None:
    """Standard error of the unweighted mean of k independent values with these standard errors:
    sqrt(sum se^2) / k; None when any is unknown (or there are none)."""
    k = len(stderrs)
    if k == 0 or any(e is None for e in stderrs):
        return None
    return math.sqrt(sum(e * e for e in stderrs)) / k  # type: ignore[operator]


def correlation_stderr(r: float, n: int) -> float | None:
    """Large-sample standard error sqrt((1 - r^2) / (n - 2)) of a correlation over n points; None when n <= 2."""
    return math.sqrt(max(0.0, 1.0 - r * r) / (n - 2)) if n > 2 else None


# --------------------------------------------------------------------------- bootstrap
def bootstrap_stderr(
    statistic: Callable[..., float], *samples: Sequence[Any], n_boot: int = 200, seed: int = 0
) -> float:
    """Bootstrap standard error of ``statistic(*samples)``: ``n_boot`` resamples of the rows (the same
    indices for every sample; ``numpy.random.default_rng(seed).integers`` once per resample), NaN
    statistics skipped; the sample standard deviation (ddof 1) of the rest, NaN when fewer than 2."""
    import numpy as np

    if not samples:
        raise ValueError("bootstrap_stderr needs at least one sample.")
    arrays = [np.asarray(s) for s in samples]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"bootstrap samples must have equal lengths; got {[len(a) for a in arrays]}.")
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        v = statistic(*(a[i] for a in arrays))
        if not math.isnan(v):
            vals.append(v)
    return float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")


def bootstrap_weights(n_units: int, n_boot: int, seed: int = 0) -> Any:
    """Multiplicities [n_boot, n_units] (float64 torch tensor) of ``n_boot`` resamples with replacement
    of ``n_units`` sampling units (``torch.randint`` with a generator seeded by ``seed``).

    A statistic that is a ratio of sums over units is re-weighted by one matrix product per sum
    (``weights @ per_unit_sums``), which does all resamples at once.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    draws = torch.randint(n_units, (n_boot, n_units), generator=g)
    ones = torch.ones(n_boot, n_units, dtype=torch.float64)
    return torch.zeros(n_boot, n_units, dtype=torch.float64).scatter_add_(1, draws, ones)


# --------------------------------------------------------------------------- ranking
def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """AUROC of ``scores`` for predicting ``labels`` (1 = positive), ties counted 1/2; NaN without both classes."""
    import numpy as np

    s, y = np.asarray(scores, float), np.asarray(labels, int)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    gt = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(gt / (len(pos) * len(neg)))


def auroc_stderr(scores: Sequence[float], labels: Sequence[int], n_boot: int = 200, seed: int = 0) -> float:
    """Bootstrap standard error of :func:`auroc` (resamples lacking a class are skipped)."""
    import numpy as np

    return bootstrap_stderr(auroc, np.asarray(scores, float), np.asarray(labels, int), n_boot=n_boot, seed=seed)


# --------------------------------------------------------------------------- correlations
def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of ``x`` and ``y`` (at least 3 points; a ValueError when one side is constant)."""
    import numpy as np

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 3:
        raise ValueError(f"a correlation needs at least 3 points, got {a.size}.")
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    if den == 0.0:
        raise ValueError("correlation undefined: one side is constant (a correlation needs variation on both sides).")
    return float((a * b).sum() / den)


def ranks(x: Sequence[float]) -> Any:
    """0-based ranks of ``x``, ties given their average rank."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x), dtype=float)
    r[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):  # average ranks of ties
        tie = x == v
        r[tie] = r[tie].mean()
    return r


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation: :func:`pearson` of the (tie-averaged) ranks."""
    return pearson(ranks(x), ranks(y))


# --------------------------------------------------------------------------- paired tests and power
#: Standard normal quantiles: two-sided 5% (z_0.975) and 80% power (z_0.8).
Z_975 = 1.959963984540054
Z_80 = 0.8416212335729143
#: z_0.975 + z_0.8 = 2.8016: a true difference of this many standard errors of the difference is
#: found significant (two-sided 5%) with probability 0.8 (normal approximation).
MDD_FACTOR = Z_975 + Z_80


def _t_central_mass(x: float, df: int) -> float:
    """P(|T| <= x) for Student's t with integer ``df`` (closed form, Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(x / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    total, term = 1.0, 1.0
    for k in range(3 if df % 2 else 2, df - 1, 2):  # the series up to cos^(df-3) (odd df) or cos^(df-2) (even)
        term *= c2 * (k - 1) / k
        total += term
    if df % 2 == 0:
        return math.sin(theta) * total
    if df == 1:
        return 2 * theta / math.pi
    return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)


def t_quantile(p: float, df: int) -> float:
    """Quantile ``p`` (0 < p < 1) of Student's t distribution with an integer ``df`` >= 1 degrees of
    freedom: bisection (to 1e-12 relative) on the closed-form distribution function."""
    if df < 1 or int(df) != df:
        raise ValueError(f"Student's t needs an integer df >= 1 degrees of freedom, got df={df}.")
    if not 0 < p < 1:
        raise ValueError(f"a quantile needs 0 < p < 1, got p={p}.")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    target, lo, hi = 2 * p - 1, 0.0, 1.0
    while _t_central_mass(hi, int(df)) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1e-12 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_central_mass(mid, int(df)) < target else (lo, mid)
    return (lo + hi) / 2


@dataclass(frozen=True)
class PairedTest:
    """Result of :func:`paired_t_test`."""

    #: number of pairs (common seeds)
    n: int
    #: mean of the differences a - b
    mean_diff: float
    #: standard error of that mean (see :func:`paired_t_test`)
    stderr: float
    #: two-sided critical value t_{1 - alpha/2, n - 1}
    critical: float
    #: |mean_diff| > critical x stderr (for stderr 0: mean_diff != 0)
    significant: bool


def paired_t_test(a: Sequence[float], b: Sequence[float], a_stderr: Sequence[float | None] | None = None,
                  b_stderr: Sequence[float | None] | None = None, alpha: float = 0.05) -> PairedTest:
    """Two-sided paired t test of the differences d_i = a_i - b_i (the same seed i on both sides).

    Variance of one difference: the sample variance of the d_i (ddof 1), plus, when every pair has
    both within-cell standard errors, the mean of se_a,i^2 + se_b,i^2 (the law of total variance, as
    :func:`harness.leaderboard.statistics.aggregate` does, so a comparison that is deterministic
    across seeds keeps its sampling error; the two cells' errors are treated as independent, which
    errs on the tied side when they share evaluation data). Standard error: sqrt(variance / n);
    significant when |mean d| > t_{1 - alpha/2, n - 1} x standard error. Needs n >= 2 pairs.
    """
    n = len(a)
    if n != len(b) or n < 2:
        raise ValueError(f"a paired t test needs >= 2 pairs of equal length; got {len(a)} and {len(b)} values.")
    d = [x - y for x, y in zip(a, b, strict=True)]
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1)
    ses = list(zip(a_stderr or [None] * n, b_stderr or [None] * n, strict=True))
    if all(sa is not None and sb is not None for sa, sb in ses):
        var += sum(sa * sa + sb * sb for sa, sb in ses) / n  # type: ignore[operator]
    se = math.sqrt(var / n)
    crit = t_quantile(1 - alpha / 2, n - 1)
    significant = abs(mean) > crit * se if se > 0 else mean != 0
    return PairedTest(n=n, mean_diff=mean, stderr=se, critical=crit, significant=significant)


def minimum_detectable_difference(se_diff: float) -> float:
    """Smallest true difference found at 80% power by a two-sided 5% test whose difference has
    standard error ``se_diff``: (z_0.975 + z_0.8) x se_diff = 2.8016 x se_diff (normal approximation;
    a t test on few seeds needs a little more)."""
    if se_diff < 0 or math.isnan(se_diff):
        raise ValueError(f"a standard error must be >= 0, got {se_diff}.")
    return MDD_FACTOR * se_diff
