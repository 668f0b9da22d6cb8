"""Boards from run records: one :class:`LeaderboardDoc` per suite.

- Rows are (method label, model); per (label, model, seed) the newest record counts.
  Each column is aggregated over seeds as its metric declares (``Metric.aggregation``,
  see :mod:`harness.leaderboard.statistics`).
- Suites that compare methods rank rows within each model; suites that score models
  rank all rows. The rank uses the suite's primary metric (its first declared metric that
  is not descriptive; none: the board is unranked) in that metric's declared direction;
  rows the board's tie test does not tell apart share a rank ("="): a paired t test over
  the seeds two rows share, else the unpaired rule (:mod:`harness.leaderboard.statistics`).
  Descriptive metrics (``Metric.descriptive``) are shown but never ranked or in win rates.
- The reference row (no method) is labelled ``Suite.reference_label``; a suite with
  ``rank_reference = False`` shows it unranked, without a win rate and as no opponent.
- Each board states its tie test (``tie_test``) and the minimum detectable difference of
  its primary metric (``mdd``).
- Cross-cell summary: a suite may override :meth:`harness.protocols.Suite.summarize`
  (e.g. a sweep over model sizes); its Markdown is kept in the board's ``summary`` and
  appended to ``<suite>.md``, its files go to ``<leaderboard dir>/<suite>/``.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from harness import __version__
from harness.errors import RegistryError
from harness.leaderboard.documents import ColumnDoc, LeaderboardDoc, RowDoc
from harness.leaderboard.statistics import (
    Aggregation,
    TieRule,
    aggregate,
    describe_ties,
    minimum_detectable,
    normalise,
    rank,
    win_rates,
)
from harness.provenance import now_iso
from harness.results import RunRecord

if TYPE_CHECKING:
    from harness.plugins import Registries

log = logging.getLogger("harness")


def _latest(records: list[RunRecord]) -> list[RunRecord]:
    """Per (label, model, seed) keep the newest record (configs may have changed between runs)."""
    best: dict[tuple[str, str, int], RunRecord] = {}
    for r in records:
        k = (r.label, r.cell.model, r.cell.seed)
        if k not in best or r.provenance.finished_at > best[k].provenance.finished_at:
            best[k] = r
    return list(best.values())


def _column_order(cols: set[str], declared: tuple[str, ...]) -> list[str]:
    """Columns in the suite's declared metric order; keys of one metric in natural order (top2 < top10)."""

    def key(c: str) -> tuple[int, list[tuple[int, int | str]]]:
        metric = c.split("[", 1)[0]
        natural = [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", c) if t]
        return (declared.index(metric) if metric in declared else len(declared), natural)

    return sorted(cols, key=key)


def _aggregation(metric: str, registries: Registries | None) -> Aggregation:
    """The metric's declared aggregation over seeds; "mean" for a metric that is not registered."""
    if registries is None or metric not in registries.metrics:
        return "mean"
    how = registries.metrics.get(metric).aggregation
    if how not in ("mean", "median"):
        raise RegistryError(f"Metric {metric!r} declares aggregation {how!r}; set its `aggregation` class "
                            "attribute to 'mean' or 'median'.")
    return how


def build_board(suite: str, records: list[RunRecord], registries: Registries | None) -> LeaderboardDoc:
    """The board of one suite from its records (any order; failed records become failed rows)."""
    suite_cls = registries.suites.get(suite) if registries and suite in registries.suites else None
    declared: tuple[str, ...] = suite_cls.metrics if suite_cls else ()
    compares_methods = bool(suite_cls.method_kinds) if suite_cls else True
    rank_reference = suite_cls.rank_reference if suite_cls else True
    rows: dict[tuple[str, str], RowDoc] = {}
    values: dict[tuple[str, str], dict[str, list[tuple[float, float | None]]]] = defaultdict(lambda: defaultdict(list))
    per_seed: dict[tuple[str, str], dict[str, dict[int, tuple[float, float | None]]]] = defaultdict(
        lambda: defaultdict(dict))
    chances: dict[str, float] = {}
    n_ok: dict[tuple[str, str], int] = defaultdict(int)
    for rec in sorted(_latest(records), key=lambda r: r.cell.seed):
        label = suite_cls.reference_label if suite_cls and rec.cell.method is None else rec.label
        k = (label, rec.cell.model)
        row = rows.setdefault(k, RowDoc(
            rank=None, tied=False, label=label, method=rec.cell.method, method_config=rec.cell.method_config,
            model=rec.cell.model, seeds=[], status="ok", failures=[], win_rate=None, values={}, provenance={},
            reference=rec.cell.method is None and not rank_reference,
        ))
        row.seeds.append(rec.cell.seed)
        if rec.status != "ok" or rec.output is None:
            err = rec.error or {}
            row.failures.append(f"seed {rec.cell.seed}: {err.get('type', '?')}: {err.get('message', '')}"[:300])
            continue
        n_ok[k] += 1
        row.notes += [f"seed {rec.cell.seed}: {note}" for note in rec.output.notes]
        p = rec.provenance
        row.provenance = {
            "harness_version": p.harness_version, "git_hash": p.git_hash, "device": p.device,
            "packages": p.packages, "model_fingerprint": rec.cell.model_fingerprint,
            "model_revision": rec.cell.model.partition("@")[2] or None, "versions": rec.output.versions,
            "record_keys": sorted({*row.provenance.get("record_keys", []), rec.key}),
            "finished_at": max(p.finished_at, row.provenance.get("finished_at", "")),
        }
        for mv in rec.output.metrics:
            values[k][mv.column].append((mv.value, mv.stderr))
            per_seed[k][mv.column][rec.cell.seed] = (mv.value, mv.stderr)
            if mv.chance is not None:
                chances[mv.column] = mv.chance
    for k, row in rows.items():
        row.status = "ok" if not row.failures else ("partial" if n_ok[k] else "failed")
        for col, vals in values[k].items():
            row.values[col] = aggregate(vals, _aggregation(col.partition("[")[0], registries))
    all_cols = {c for r in rows.values() for c in r.values}
    columns = []
    for col in _column_order(all_cols, declared):
        metric, _, key = col.partition("[")
        mcls = registries.metrics.get(metric) if registries and metric in registries.metrics else None
        columns.append(ColumnDoc(
            name=col, metric=metric, key=key.rstrip("]") or None,
            higher_is_better=mcls.higher_is_better if mcls else None, unit=mcls.unit if mcls else "",
            chance=chances.get(col, mcls.chance if mcls else None),
            descriptive=bool(mcls.descriptive) if mcls else False,
        ))
    normalise(list(rows.values()), columns)
    primary = primary_column(declared, [c.name for c in columns], registries)
    groups: dict[str, list[RowDoc]] = defaultdict(list)
    for r in rows.values():
        groups[r.model if compares_methods else ""].append(r)
    ordered: list[RowDoc] = []
    ranked_groups: list[list[RowDoc]] = []
    direction = {c.name: c.higher_is_better for c in columns}
    ties = TieRule(per_seed)
    for g in sorted(groups):
        group = groups[g]
        ranked = [r for r in group if not r.reference]  # a reference row: shown, never ranked nor an opponent
        ranked_groups.append(ranked)
        if primary and direction.get(primary) is not None:
            rank(ranked, primary, bool(direction[primary]), ties)
        win_rates(ranked, columns, ties)
        group.sort(key=lambda r: (r.rank is None, r.rank or 0, _best_first(r, primary, direction), r.label))
        ordered.extend(group)
    ranks_primary = bool(primary and direction.get(primary) is not None)
    return LeaderboardDoc(
        suite=suite, suite_version=suite_cls.version if suite_cls else None,
        description=suite_cls.description if suite_cls else "", primary_metric=primary,
        ranked_within="model" if compares_methods else "all", generated_at=now_iso(),
        harness_version=__version__, columns=columns, rows=ordered, tie_test=describe_ties(ties.comparisons),
        mdd=minimum_detectable(ranked_groups, primary, ties) if primary and ranks_primary else None,
    )


def primary_column(declared: tuple[str, ...], columns: list[str], registries: Registries | None) -> str | None:
    """The ranking column: of the suite's first declared metric that is not descriptive, the column
    of that name or else its first keyed column; None when there is none (an unranked board)."""
    metric = next((m for m in declared if not (registries and m in registries.metrics
                                                and registries.metrics.get(m).descriptive)), None)
    if metric is None:
        return None
    return next((c for c in columns if c == metric), None) or next(
        (c for c in columns if c.startswith(metric + "[")), None)


def summarize_suite(suite: str, records: list[RunRecord], registries: Registries | None,
                    out_dir: Path) -> str | None:
    """The suite's cross-cell Markdown (:meth:`harness.protocols.Suite.summarize`) from the records
    behind its board; a summary that raises is logged and reported in place of its Markdown."""
    if registries is None or suite not in registries.suites:
        return None
    suite_cls = registries.suites.get(suite)
    ok = [r for r in _latest(records) if r.status == "ok" and r.output is not None]
    if not ok:
        return None
    try:
        return suite_cls.summarize(ok, out_dir)
    except Exception as e:  # noqa: BLE001 - the leaderboard itself must still be written
        log.error("summary of suite %s failed: %s: %s", suite, type(e).__name__, e)
        return f"Summary of suite {suite} failed: {type(e).__name__}: {e}"


def _best_first(row: RowDoc, primary: str | None, direction: dict[str, bool | None]) -> float:
    """Sort key inside one rank: rows tied at a rank are listed by their primary value, best first."""
    value = row.values.get(primary) if primary else None
    if value is None or value.mean is None or direction.get(primary) is None:
        return 0.0
    return -value.mean if direction[primary] else value.mean
