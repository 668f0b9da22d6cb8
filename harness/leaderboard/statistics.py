"""Leaderboard statistics: aggregation over seeds, ties, ranks, win rates, power, normalisation.

- Each value is the mean over seeds with a standard error and a 95% interval
  (mean ± 1.96 se). Over several seeds the error combines the between-seed variance with
  the cells' own sampling variance (when every cell reports one), so a suite that is
  deterministic across seeds keeps its within-cell error; for one seed it is the cell's
  own error. A metric that declares ``aggregation = "median"`` gets the median over seeds
  instead (published in the same ``ValueDoc.mean`` field, so the schema is one for both)
  and that error times sqrt(pi/2); see :func:`aggregate`.
- Ties (:class:`TieRule`): two rows' values of one column tie when they are not different by
  - a **paired test** when the rows share >= 2 seeds with a value (the same seed = a pair): the
    two-sided paired t test at 5% of the per-seed differences d_s = a_s - b_s over the common
    seeds s (n of them, n - 1 degrees of freedom), with standard error sqrt(v / n), v = the sample
    variance of the d_s plus, when every one of those cells reports a stderr, the mean of
    se_a,s^2 + se_b,s^2 (within-cell errors folded in, as in :func:`aggregate`); see
    :func:`harness.stats.paired_t_test`;
  - otherwise (one seed, or < 2 common seeds) the **unpaired rule** on the aggregated values:
    |difference| <= 1.96 x sqrt(se_a^2 + se_b^2) (:func:`tied`).
  :func:`describe_ties` states the test actually run, for the board text (``tie_test``).
- Ranks: competition ranking by the primary column in its declared direction; a row tied
  with the one above shares its rank ("="). Reference rows a suite keeps out of the ranking
  (``Suite.rank_reference = False``) are not passed in.
- Mean win rate (HELM): over every scored column (a direction, not descriptive) and every other
  ranked row of the same group, the fraction of head-to-head wins, ties (the same rule) counting
  half. Descriptive columns (``Metric.descriptive``) never enter ranks or win rates.
- Minimum detectable difference (:func:`minimum_detectable`) of the primary column: at 80% power
  and two-sided 5%, MDD = (z_0.975 + z_0.8) x SE_diff = 2.8016 x SE_diff, where SE_diff is the
  median, over the pairs of ranked rows (same group) sharing >= 2 seeds, of the paired test's
  standard error of the mean difference (basis "paired"); without such pairs, sqrt(2) x the
  median standard error of the ranked rows' values (basis "stderr": two independent rows of
  that precision).
- Normalised score: (v - chance) / (1 - chance) where a value carries a chance level
  (Open LLM Leaderboard style); ``delta_vs_reference``: difference to the unmodified
  model's row of the same model (open-unlearning style reference row).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import median
from typing import Literal

from harness.leaderboard.documents import ColumnDoc, MDDDoc, RowDoc, ValueDoc
from harness.stats import minimum_detectable_difference, paired_t_test

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
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None
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
    return ValueDoc(mean=centre, stderr=se, ci_low=lo, ci_high=hi, n_seeds=len(xs), seed_sd=sd)


def tied(a: ValueDoc, b: ValueDoc) -> bool:
    """The unpaired rule: the difference of two values lies within 1.96 combined standard errors."""
    se = math.sqrt((a.stderr or 0.0) ** 2 + (b.stderr or 0.0) ** 2)
    return abs(a.mean - b.mean) <= 1.96 * se if se > 0 else a.mean == b.mean


#: seed -> (value, within-cell stderr) of one row's column
SeedValues = Mapping[int, tuple[float, float | None]]
#: (row label, row model) -> column -> per-seed values
PerSeed = Mapping[tuple[str, str], Mapping[str, SeedValues]]


@dataclass(frozen=True)
class Comparison:
    """One tie decision between two rows' values of a column."""

    tied: bool
    #: True: the paired t test over the common seeds; False: the unpaired rule
    paired: bool
    #: seeds both rows have a value of the column for
    common_seeds: int
    #: standard error of the difference the decision used (None when unknown)
    se_diff: float | None


class TieRule:
    """Decides ties between two rows' values of one column (module docstring): the paired t test
    when the rows share >= 2 seeds in ``per_seed``, otherwise the unpaired rule; every decision is
    kept in :attr:`comparisons` so the board can state the tests it ran."""

    def __init__(self, per_seed: PerSeed | None = None) -> None:
        self.per_seed = per_seed or {}
        self.comparisons: list[Comparison] = []

    def seeds(self, row: RowDoc, col: str) -> SeedValues:
        return self.per_seed.get((row.label, row.model), {}).get(col, {})

    def compare(self, a: RowDoc, b: RowDoc, col: str, record: bool = True) -> Comparison:
        """The decision for ``a`` and ``b`` on ``col`` (both must have a value); kept when ``record``."""
        sa, sb = self.seeds(a, col), self.seeds(b, col)
        common = sorted(set(sa) & set(sb))
        if len(common) >= 2:
            t = paired_t_test([sa[s][0] for s in common], [sb[s][0] for s in common],
                              [sa[s][1] for s in common], [sb[s][1] for s in common])
            c = Comparison(tied=not t.significant, paired=True, common_seeds=len(common), se_diff=t.stderr)
        else:
            va, vb = a.values[col], b.values[col]
            known = va.stderr is not None or vb.stderr is not None
            se = math.sqrt((va.stderr or 0.0) ** 2 + (vb.stderr or 0.0) ** 2) if known else None
            c = Comparison(tied=tied(va, vb), paired=False, common_seeds=len(common), se_diff=se)
        if record:
            self.comparisons.append(c)
        return c


def rank(rows: list[RowDoc], col: str, higher: bool, ties: TieRule | None = None) -> None:
    """Competition ranking by ``col``; a row tied (``ties``, default the unpaired rule) with the one
    above takes its rank."""
    ties = ties or TieRule()
    scored = sorted((r for r in rows if col in r.values), key=lambda r: r.values[col].mean, reverse=higher)
    for i, r in enumerate(scored):
        if i and ties.compare(scored[i - 1], r, col).tied:
            r.rank, r.tied, scored[i - 1].tied = scored[i - 1].rank, True, True
        else:
            r.rank = i + 1


def scored(c: ColumnDoc) -> bool:
    """Whether a column counts in ranks and win rates: a declared direction and not descriptive."""
    return c.higher_is_better is not None and not c.descriptive


def win_rates(rows: list[RowDoc], columns: list[ColumnDoc], ties: TieRule | None = None) -> None:
    """Each row's mean head-to-head win rate over the scored columns (ties = half, decided by ``ties``)."""
    ties = ties or TieRule()
    for r in rows:
        wins = games = 0.0
        for c in columns:
            if not scored(c) or c.name not in r.values:
                continue
            for other in rows:
                if other is r or c.name not in other.values:
                    continue
                a, b = r.values[c.name], other.values[c.name]
                games += 1
                if ties.compare(r, other, c.name).tied:
                    wins += 0.5
                elif (a.mean > b.mean) == c.higher_is_better:
                    wins += 1
        r.win_rate = wins / games if games else None


def describe_ties(comparisons: list[Comparison]) -> str:
    """Board text naming the tie tests that ``comparisons`` ran (shared ranks and win rates)."""
    paired = sorted({c.common_seeds for c in comparisons if c.paired})
    unpaired = sorted({c.common_seeds for c in comparisons if not c.paired})
    parts = []
    if paired:
        n = str(paired[0]) if len(paired) == 1 else f"{paired[0]}-{paired[-1]}"
        parts.append(f"not different by a two-sided paired t test over {n} common seeds (5%; within-cell "
                     "errors folded in where every cell has one)")
    if unpaired:
        why = "one seed" if unpaired == [1] else "fewer than 2 common seeds"
        parts.append(f"|difference| <= 1.96 x combined standard error ({why})")
    if not parts:
        return "`=`: no two rows were compared."
    return "`=`: " + "; otherwise ".join(parts) + "."


def minimum_detectable(groups: list[list[RowDoc]], col: str, ties: TieRule) -> MDDDoc | None:
    """The minimum detectable difference of ``col`` among the ranked rows of each group (module docstring)."""
    rows = [r for g in groups for r in g if col in r.values]
    if not rows:
        return None
    paired = []
    for g in groups:
        have = [r for r in g if col in r.values]
        for i, a in enumerate(have):
            for b in have[i + 1:]:
                c = ties.compare(a, b, col, record=False)
                if c.paired and c.se_diff is not None:
                    paired.append(c.se_diff)
    n_seeds = max(r.values[col].n_seeds for r in rows)
    if paired:
        se = median(paired)
        basis: Literal["paired", "stderr"] = "paired"
        how = (f"SE_diff = median over {len(paired)} row pair(s) sharing >= 2 seeds of the paired t test's "
               "standard error of the mean per-seed difference")
    else:
        errs = [r.values[col].stderr for r in rows if r.values[col].stderr is not None]
        if not errs:
            return None
        se = math.sqrt(2) * median(errs)  # type: ignore[type-var]
        basis = "stderr"
        how = f"SE_diff = sqrt(2) x median standard error of the {len(errs)} ranked row(s)' values (no paired seeds)"
    return MDDDoc(metric=col, value=minimum_detectable_difference(se), se_diff=se, basis=basis, n_seeds=n_seeds,
                  definition=f"MDD = (z_0.975 + z_0.8) x SE_diff = 2.80 x SE_diff (80% power, two-sided 5%); {how}.")


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
