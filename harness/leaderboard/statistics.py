"""Leaderboard statistics: aggregation over seeds, ties, ranks, win rates, normalisation.

- Each value is the mean over seeds with a standard error and a 95% interval
  (mean ± 1.96 se). Over several seeds the error combines the between-seed variance with
  the cells' own sampling variance (when every cell reports one), so a suite that is
  deterministic across seeds keeps its within-cell error; for one seed it is the cell's
  own error. A metric that declares ``aggregation = "median"`` gets the median over seeds
  instead (published in the same ``ValueDoc.mean`` field, so the schema is one for both)
  and that error times sqrt(pi/2); see :func:`aggregate`.
- Rows whose 95% intervals overlap share a rank ("="); the rank follows the ranking
  column's declared direction.
- Normalised score: (v - chance) / (1 - chance) where a value carries a chance level
  (Open LLM Leaderboard style); ``delta_vs_reference``: difference to the unmodified
  model's row of the same model (open-unlearning style reference row).
- Mean win rate (HELM): over every column with a direction and every other row of the
  same group, the fraction of head-to-head wins, ties (overlapping intervals) counting half.
"""

from __future__ import annotations

import math
from statistics import median
from typing import Literal

from harness.leaderboard.documents import ColumnDoc, RowDoc, ValueDoc

Aggregation = Literal["mean", "median"]
#: Large-sample ratio of the standard error of the median to that of the mean for normal data
#: (the sample median's variance is pi * sigma^2 / (2 n), the mean's sigma^2 / n).
MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2)


def aggregate(values: list[tuple[float, float | None]], how: Aggregation = "mean") -> ValueDoc:
    """Combine one column's (value, stderr) over seeds into a :class:`ValueDoc`.

    ``how="mean"``: the mean, and a standard error from the law of total variance: the
    between-seed sample variance plus, when every cell reports a stderr, the mean of the
    cells' squared errors, divided by the number of seeds.

    ``how="median"``: the median (the middle value; the mean of the two middle values for an
    even count), and that same combined standard error times sqrt(pi/2): the normal-theory
    large-sample standard error of a median (for two seeds the median is the mean, so the
    factor errs on the wide side there).

    One seed: the value itself and the cell's own stderr, whichever ``how``.
    """
    if how not in ("mean", "median"):
        raise ValueError(f"aggregation {how!r} is not one of 'mean', 'median': fix the metric's `aggregation`.")
    xs = [v for v, _ in values]
    mean = sum(xs) / len(xs)
    n = len(xs)
    within = [e for _, e in values if e is not None]
    if n > 1:
        # between-seed variance plus the cells' own sampling variance (law of total variance),
        # so a suite that is deterministic across seeds keeps its within-cell error
        var = sum((x - mean) ** 2 for x in xs) / (n - 1)
        if len(within) == n:
            var += sum(e * e for e in within) / n
        se: float | None = math.sqrt(var / n)
    else:
        se = values[0][1]
    centre = mean
    if how == "median" and n > 1:
        centre = median(xs)
        se = se * MEDIAN_SE_FACTOR if se is not None else None
    lo, hi = (centre - 1.96 * se, centre + 1.96 * se) if se is not None else (None, None)
    return ValueDoc(mean=centre, stderr=se, ci_low=lo, ci_high=hi, n_seeds=len(xs))


def tied(a: ValueDoc, b: ValueDoc) -> bool:
    """True when the difference of two values lies within 1.96 combined standard errors."""
    se = math.sqrt((a.stderr or 0.0) ** 2 + (b.stderr or 0.0) ** 2)
    return abs(a.mean - b.mean) <= 1.96 * se if se > 0 else a.mean == b.mean


def rank(rows: list[RowDoc], col: str, higher: bool) -> None:
    """Competition ranking by ``col``; a row tied with the one above takes its rank."""
    scored = sorted((r for r in rows if col in r.values), key=lambda r: r.values[col].mean, reverse=higher)
    for i, r in enumerate(scored):
        if i and tied(scored[i - 1].values[col], r.values[col]):
            r.rank, r.tied, scored[i - 1].tied = scored[i - 1].rank, True, True
        else:
            r.rank = i + 1


def win_rates(rows: list[RowDoc], columns: list[ColumnDoc]) -> None:
    """Each row's mean head-to-head win rate over the columns with a direction (ties = half)."""
    for r in rows:
        wins = games = 0.0
        for c in columns:
            if c.higher_is_better is None or c.name not in r.values:
                continue
            for other in rows:
                if other is r or c.name not in other.values:
                    continue
                a, b = r.values[c.name], other.values[c.name]
                games += 1
                if tied(a, b):
                    wins += 0.5
                elif (a.mean > b.mean) == c.higher_is_better:
                    wins += 1
        r.win_rate = wins / games if games else None


def normalise(rows: list[RowDoc], columns: list[ColumnDoc]) -> None:
    """Fill ``normalised`` (chance-corrected, higher-is-better columns) and ``delta_vs_reference``
    (difference to the same model's row without a method)."""
    refs = {r.model: r for r in rows if r.method is None}
    for c in columns:
        for r in rows:
            v = r.values.get(c.name)
            if v is None:
                continue
            if c.chance is not None and c.chance < 1 and c.higher_is_better:
                v.normalised = (v.mean - c.chance) / (1 - c.chance)
            ref = refs.get(r.model)
            if ref is not None and ref is not r and c.name in ref.values:
                v.delta_vs_reference = v.mean - ref.values[c.name].mean
