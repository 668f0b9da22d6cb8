"""Leaderboards from the store: aggregate over seeds, rank by declared direction, render.

Per suite: ``leaderboards/<suite>.md`` (tabulate) and ``leaderboards/<suite>.json``
(validated against :class:`LeaderboardDoc`, whose JSON schema is published next to it).

- Rows are (method label, model). Each value is the mean over seeds with a standard
  error and a 95% interval (mean ± 1.96 se). Over several seeds the error combines the
  between-seed variance with the cells' own sampling variance (when every cell reports
  one), so a suite that is deterministic across seeds keeps its within-cell error; for
  one seed it is the cell's own error.
- Suites that compare methods rank rows within each model; suites that score models
  rank all rows. The rank uses the suite's primary metric (its first declared metric) in
  that metric's declared direction; rows whose 95% intervals overlap share a rank ("=").
- Normalised score: (v - chance) / (1 - chance) where a value carries a chance level
  (Open LLM Leaderboard style); ``delta_vs_reference``: difference to the unmodified
  model's row of the same model (open-unlearning style reference row).
- Mean win rate (HELM): over every column with a direction and every other row of the
  same group, the fraction of head-to-head wins, ties (overlapping intervals) counting half.
- Cross-cell summary: a suite may override :meth:`harness.protocols.Suite.summarize`
  (e.g. a sweep over model sizes); its Markdown is kept in the board's ``summary`` and
  appended to ``<suite>.md``, its files go to ``<leaderboard dir>/<suite>/``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness import __version__
from harness.plugins import Registries
from harness.provenance import now_iso
from harness.results import RunRecord
from harness.store import Store, atomic_write_text

LEADERBOARD_SCHEMA_VERSION = 1
log = logging.getLogger("harness")
REFERENCE_LABEL = "base model"


class ValueDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mean: float
    stderr: float | None = Field(description="Standard error (over seeds, or within the cell for one seed).")
    ci_low: float | None = Field(description="Lower end of the 95% interval (mean - 1.96 se).")
    ci_high: float | None = Field(description="Upper end of the 95% interval.")
    n_seeds: int
    normalised: float | None = Field(None, description="(mean - chance) / (1 - chance) when a chance level exists.")
    delta_vs_reference: float | None = Field(None, description="mean minus the reference row's mean (same model).")


class ColumnDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="metric or metric[key].")
    metric: str
    key: str | None
    higher_is_better: bool | None = Field(description="From the metric's declaration; None if not registered.")
    unit: str
    chance: float | None = None


class RowDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int | None
    tied: bool = Field(description="True when the 95% interval overlaps a neighbour's: the rank is shared.")
    label: str
    method: str | None
    method_config: dict[str, Any] | None
    model: str
    seeds: list[int]
    status: Literal["ok", "partial", "failed"]
    failures: list[str]
    win_rate: float | None = Field(description="Mean head-to-head win rate across metrics (ties = half).")
    values: dict[str, ValueDoc]
    provenance: dict[str, Any]


class LeaderboardDoc(BaseModel):
    """The published JSON of one suite's leaderboard."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = LEADERBOARD_SCHEMA_VERSION
    suite: str
    suite_version: str | None
    description: str
    primary_metric: str | None
    ranked_within: Literal["model", "all"]
    generated_at: str
    harness_version: str
    columns: list[ColumnDoc]
    rows: list[RowDoc]
    plots: dict[str, str] = Field(default_factory=dict, description="Plot name -> path relative to the site.")
    summary: str | None = Field(
        None, description="Markdown of the suite's results across cells (Suite.summarize), if it has any."
    )


# --------------------------------------------------------------------------- aggregation
def _latest(records: list[RunRecord]) -> list[RunRecord]:
    """Per (label, model, seed) keep the newest record (configs may have changed between runs)."""
    best: dict[tuple[str, str, int], RunRecord] = {}
    for r in records:
        k = (r.label, r.cell.model, r.cell.seed)
        if k not in best or r.provenance.finished_at > best[k].provenance.finished_at:
            best[k] = r
    return list(best.values())


def _aggregate(values: list[tuple[float, float | None]]) -> ValueDoc:
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
    lo, hi = (mean - 1.96 * se, mean + 1.96 * se) if se is not None else (None, None)
    return ValueDoc(mean=mean, stderr=se, ci_low=lo, ci_high=hi, n_seeds=len(xs))


def _tied(a: ValueDoc, b: ValueDoc) -> bool:
    se = math.sqrt((a.stderr or 0.0) ** 2 + (b.stderr or 0.0) ** 2)
    return abs(a.mean - b.mean) <= 1.96 * se if se > 0 else a.mean == b.mean


def _rank(rows: list[RowDoc], col: str, higher: bool) -> None:
    """Competition ranking by ``col``; a row tied with the one above takes its rank."""
    scored = sorted((r for r in rows if col in r.values), key=lambda r: r.values[col].mean, reverse=higher)
    for i, r in enumerate(scored):
        if i and _tied(scored[i - 1].values[col], r.values[col]):
            r.rank, r.tied, scored[i - 1].tied = scored[i - 1].rank, True, True
        else:
            r.rank = i + 1


def _win_rates(rows: list[RowDoc], columns: list[ColumnDoc]) -> None:
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
                if _tied(a, b):
                    wins += 0.5
                elif (a.mean > b.mean) == c.higher_is_better:
                    wins += 1
        r.win_rate = wins / games if games else None


def _column_order(cols: set[str], declared: tuple[str, ...]) -> list[str]:
    """Columns in the suite's declared metric order; keys of one metric in natural order (top2 < top10)."""

    def key(c: str) -> tuple[int, list[tuple[int, int | str]]]:
        metric = c.split("[", 1)[0]
        natural = [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", c) if t]
        return (declared.index(metric) if metric in declared else len(declared), natural)

    return sorted(cols, key=key)


def build_board(suite: str, records: list[RunRecord], registries: Registries | None) -> LeaderboardDoc:
    suite_cls = registries.suites.get(suite) if registries and suite in registries.suites else None
    declared: tuple[str, ...] = suite_cls.metrics if suite_cls else ()
    compares_methods = bool(suite_cls.method_kinds) if suite_cls else True
    rows: dict[tuple[str, str], RowDoc] = {}
    values: dict[tuple[str, str], dict[str, list[tuple[float, float | None]]]] = defaultdict(lambda: defaultdict(list))
    chances: dict[str, float] = {}
    n_ok: dict[tuple[str, str], int] = defaultdict(int)
    for rec in sorted(_latest(records), key=lambda r: r.cell.seed):
        k = (rec.label, rec.cell.model)
        row = rows.setdefault(k, RowDoc(
            rank=None, tied=False, label=rec.label, method=rec.cell.method, method_config=rec.cell.method_config,
            model=rec.cell.model, seeds=[], status="ok", failures=[], win_rate=None, values={}, provenance={},
        ))
        row.seeds.append(rec.cell.seed)
        if rec.status != "ok" or rec.output is None:
            err = rec.error or {}
            row.failures.append(f"seed {rec.cell.seed}: {err.get('type', '?')}: {err.get('message', '')}"[:300])
            continue
        n_ok[k] += 1
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
            if mv.chance is not None:
                chances[mv.column] = mv.chance
    for k, row in rows.items():
        row.status = "ok" if not row.failures else ("partial" if n_ok[k] else "failed")
        for col, vals in values[k].items():
            row.values[col] = _aggregate(vals)
    all_cols = {c for r in rows.values() for c in r.values}
    columns = []
    for col in _column_order(all_cols, declared):
        metric, _, key = col.partition("[")
        mcls = registries.metrics.get(metric) if registries and metric in registries.metrics else None
        columns.append(ColumnDoc(
            name=col, metric=metric, key=key.rstrip("]") or None,
            higher_is_better=mcls.higher_is_better if mcls else None, unit=mcls.unit if mcls else "",
            chance=chances.get(col, mcls.chance if mcls else None),
        ))
    _normalise(list(rows.values()), columns)
    primary = None
    if declared:
        names = [c.name for c in columns]
        primary = next((c for c in names if c == declared[0]), None) or next(
            (c for c in names if c.startswith(declared[0] + "[")), None)
    groups: dict[str, list[RowDoc]] = defaultdict(list)
    for r in rows.values():
        groups[r.model if compares_methods else ""].append(r)
    ordered: list[RowDoc] = []
    direction = {c.name: c.higher_is_better for c in columns}
    for g in sorted(groups):
        group = groups[g]
        if primary and direction.get(primary) is not None:
            _rank(group, primary, bool(direction[primary]))
        _win_rates(group, columns)
        group.sort(key=lambda r: (r.rank is None, r.rank or 0, r.label))
        ordered.extend(group)
    return LeaderboardDoc(
        suite=suite, suite_version=suite_cls.version if suite_cls else None,
        description=suite_cls.description if suite_cls else "", primary_metric=primary,
        ranked_within="model" if compares_methods else "all", generated_at=now_iso(),
        harness_version=__version__, columns=columns, rows=ordered,
    )


def _normalise(rows: list[RowDoc], columns: list[ColumnDoc]) -> None:
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


# --------------------------------------------------------------------------- rendering
def fmt_value(v: ValueDoc | None) -> str:
    if v is None:
        return "-"
    digits = 3 if abs(v.mean) < 100 else 1
    if v.stderr is None:
        return f"{v.mean:.{digits}f}"
    return f"{v.mean:.{digits}f} ± {v.stderr:.{digits}f}"


def fmt_rank(r: RowDoc) -> str:
    return "-" if r.rank is None else f"{r.rank}{'=' if r.tied else ''}"


def short_headers(board: LeaderboardDoc) -> tuple[list[str], list[str]]:
    """Column headers (a key alone where no other column shares it) and legend lines."""
    arrows = {True: " ↑", False: " ↓", None: ""}
    keys = [c.key for c in board.columns if c.key]
    heads, legend = [], []
    by_metric: dict[str, list[str]] = defaultdict(list)
    for c in board.columns:
        if c.key and keys.count(c.key) == 1:
            heads.append(c.key + arrows[c.higher_is_better])
            by_metric[c.metric].append(c.key)
        else:
            heads.append(c.name + arrows[c.higher_is_better])
    for metric, ks in by_metric.items():
        legend.append(f"Columns {', '.join(ks)}: `{metric}` of that key.")
    return heads, legend


def md_text(text: str) -> str:
    """Plugin-supplied text made safe for a Markdown table cell: no row/column breakers, no raw HTML."""
    return " ".join(str(text).split()).replace("<", "&lt;").replace("|", "\\|")  # "<" opens no tag


def render_markdown(board: LeaderboardDoc) -> str:
    from tabulate import tabulate

    heads, legend = short_headers(board)
    headers = ["rank", "method", "model", "seeds", "win rate"] + [md_text(h) for h in heads]
    table = []
    for r in board.rows:
        status = f" (FAILED: {'; '.join(r.failures)})" if r.failures else ""
        win = "-" if r.win_rate is None else f"{r.win_rate:.2f}"
        table.append([fmt_rank(r), md_text(r.label + status), md_text(r.model), len(set(r.seeds)), win]
                     + [fmt_value(r.values.get(c.name)) for c in board.columns])
    lines = [f"## {md_text(board.suite)}", ""]
    if board.description:
        lines += [md_text(board.description), ""]
    if board.primary_metric:
        scope = "within each model" if board.ranked_within == "model" else "across models"
        lines += [f"Ranked by `{board.primary_metric}` {scope}; `=` marks ranks shared because 95% intervals "
                  "overlap. Win rate: mean head-to-head wins over all metrics (ties = half).", ""]
    lines.append(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
    lines += ["", "Values: mean ± standard error (between seeds plus within-cell sampling error).", *legend]
    if board.summary:
        lines += ["", board.summary.rstrip()]
    return "\n".join(lines) + "\n"


def render_summary(board: LeaderboardDoc, top: int = 5) -> str:
    """A few lines per suite for the end of `harness run`."""
    if not board.primary_metric:
        return f"{board.suite}: {len(board.rows)} rows"
    lines = [f"{board.suite} (by {board.primary_metric}):"]
    for r in board.rows[:top]:
        lines.append(f"  {fmt_rank(r):>4}  {r.label:<28} {r.model:<22} {fmt_value(r.values.get(board.primary_metric))}"
                     + ("  FAILED" if r.failures else ""))
    if len(board.rows) > top:
        lines.append(f"  ... {len(board.rows) - top} more rows")
    return "\n".join(lines)


def _summarize(suite: str, records: list[RunRecord], registries: Registries | None, out_dir: Path) -> str | None:
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


def build_leaderboards(
    store: Store, out_dir: Path, registries: Registries | None, suites: list[str] | None = None,
    extra_records: list[RunRecord] | None = None,
) -> dict[str, LeaderboardDoc]:
    """Write ``<suite>.md``, ``<suite>.json``, the JSON schemas and the static site
    (``site/index.html``) for each suite with records (all suites of the store and
    ``extra_records`` unless ``suites`` narrows it)."""
    by_suite: dict[str, list[RunRecord]] = defaultdict(list)
    for rec in store.records():
        by_suite[rec.cell.suite].append(rec)
    for rec in extra_records or []:
        by_suite[rec.cell.suite].append(rec)
    out: dict[str, LeaderboardDoc] = {}
    for suite in suites or sorted(by_suite):
        if not by_suite.get(suite):
            continue
        out[suite] = build_board(suite, by_suite[suite], registries)
        out[suite].summary = _summarize(suite, by_suite[suite], registries, Path(out_dir) / suite)
    from harness.site import build_site

    build_site(out, Path(out_dir) / "site", store, summary_root=Path(out_dir))  # also fills each board's plots
    for suite, board in out.items():
        atomic_write_text(Path(out_dir) / f"{suite}.md", render_markdown(board))
        atomic_write_text(Path(out_dir) / f"{suite}.json", board.model_dump_json(indent=2) + "\n")
    write_schemas(Path(out_dir) / "schema")
    return out


def write_schemas(folder: Path) -> None:
    """Publish the JSON schemas of leaderboards and run records (generated from pydantic)."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "leaderboard.schema.json", json.dumps(LeaderboardDoc.model_json_schema(), indent=2))
    atomic_write_text(folder / "record.schema.json", json.dumps(RunRecord.model_json_schema(), indent=2))
