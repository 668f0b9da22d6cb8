"""Leaderboards from the store: aggregate over seeds, rank by declared direction, render.

Per suite: ``leaderboards/<suite>.md`` (tabulate) and ``leaderboards/<suite>.json``.
Rows are (method label, model); each cell is the mean over seeds with a standard error
(over seeds when there are several, else the suite's own within-cell error). Rows are
ranked within each model by the suite's primary metric (its first declared metric) in
that metric's declared direction; rows whose 95% intervals overlap share a rank ("=").
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.plugins import Registries
from harness.results import RunRecord
from harness.store import Store, atomic_write_text


@dataclass
class Cell:
    mean: float
    stderr: float | None
    n_seeds: int


@dataclass
class Row:
    label: str
    model: str
    method: str | None
    cells: dict[str, Cell] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    rank: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class Board:
    suite: str
    description: str
    primary: str | None
    columns: list[str]
    directions: dict[str, bool | None]
    units: dict[str, str]
    rows: list[Row]


def _latest(records: list[RunRecord]) -> list[RunRecord]:
    """Per (label, model, seed) keep the newest record (configs may have changed between runs)."""
    best: dict[tuple[str, str, int], RunRecord] = {}
    for r in records:
        k = (r.label, r.cell.model, r.cell.seed)
        if k not in best or r.provenance.finished_at > best[k].provenance.finished_at:
            best[k] = r
    return list(best.values())


def _aggregate(values: list[tuple[float, float | None]]) -> Cell:
    xs = [v for v, _ in values]
    mean = sum(xs) / len(xs)
    if len(xs) > 1:
        var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
        se: float | None = math.sqrt(var / len(xs))
    else:
        se = values[0][1]
    return Cell(mean, se, len(xs))


def _column_order(cols: set[str], declared: tuple[str, ...]) -> list[str]:
    def key(c: str) -> tuple[int, str]:
        metric = c.split("[", 1)[0]
        return (declared.index(metric) if metric in declared else len(declared), c)

    return sorted(cols, key=key)


def _tied(a: Cell, b: Cell) -> bool:
    se = math.sqrt((a.stderr or 0.0) ** 2 + (b.stderr or 0.0) ** 2)
    return abs(a.mean - b.mean) <= 1.96 * se if se > 0 else a.mean == b.mean


def _rank(rows: list[Row], col: str, higher: bool) -> None:
    """Competition ranking by ``col``; a row tied with the one above takes its rank, marked '='."""
    scored = sorted((r for r in rows if col in r.cells), key=lambda r: r.cells[col].mean, reverse=higher)
    numbers: list[int] = []
    tied: set[int] = set()
    for i, r in enumerate(scored):
        if i and _tied(scored[i - 1].cells[col], r.cells[col]):
            numbers.append(numbers[-1])
            tied.update({i - 1, i})
        else:
            numbers.append(i + 1)
    for i, r in enumerate(scored):
        r.rank = f"{numbers[i]}=" if i in tied else str(numbers[i])


def build_board(suite: str, records: list[RunRecord], registries: Registries | None) -> Board:
    suite_cls = registries.suites.get(suite) if registries and suite in registries.suites else None
    declared: tuple[str, ...] = suite_cls.metrics if suite_cls else ()
    rows: dict[tuple[str, str], Row] = {}
    values: dict[tuple[str, str], dict[str, list[tuple[float, float | None]]]] = defaultdict(lambda: defaultdict(list))
    for rec in _latest(records):
        k = (rec.label, rec.cell.model)
        row = rows.setdefault(k, Row(label=rec.label, model=rec.cell.model, method=rec.cell.method))
        row.seeds.append(rec.cell.seed)
        if rec.status != "ok" or rec.output is None:
            err = rec.error or {}
            row.failed.append(f"seed {rec.cell.seed}: {err.get('type', '?')}: {err.get('message', '')}"[:200])
            continue
        p = rec.provenance
        row.provenance = {
            "harness_version": p.harness_version, "git_hash": p.git_hash, "device": p.device,
            "model_fingerprint": rec.cell.model_fingerprint, "versions": rec.output.versions,
        }
        for mv in rec.output.metrics:
            values[k][mv.column].append((mv.value, mv.stderr))
    columns: set[str] = set()
    for k, cols in values.items():
        for col, vals in cols.items():
            rows[k].cells[col] = _aggregate(vals)
            columns.add(col)
    ordered = _column_order(columns, declared)
    directions: dict[str, bool | None] = {}
    units: dict[str, str] = {}
    for col in ordered:
        metric = col.split("[", 1)[0]
        mcls = registries.metrics.get(metric) if registries and metric in registries.metrics else None
        directions[col] = mcls.higher_is_better if mcls else None
        units[col] = mcls.unit if mcls else ""
    primary = None
    if declared:
        primary = next((c for c in ordered if c == declared[0]), None) or next(
            (c for c in ordered if c.startswith(declared[0] + "[")), None
        )
    by_model: dict[str, list[Row]] = defaultdict(list)
    for r in rows.values():
        by_model[r.model].append(r)
    ordered_rows: list[Row] = []
    for model in sorted(by_model):
        group = by_model[model]
        if primary and directions.get(primary) is not None:
            _rank(group, primary, bool(directions[primary]))
            group.sort(key=lambda r: (r.rank == "", int(r.rank.rstrip("=") or 0), r.label))
        else:
            group.sort(key=lambda r: r.label)
        ordered_rows.extend(group)
    return Board(
        suite=suite,
        description=suite_cls.description if suite_cls else "",
        primary=primary,
        columns=ordered,
        directions=directions,
        units=units,
        rows=ordered_rows,
    )


def _fmt(c: Cell | None) -> str:
    if c is None:
        return "-"
    digits = 3 if abs(c.mean) < 100 else 1
    if c.stderr is None:
        return f"{c.mean:.{digits}f}"
    return f"{c.mean:.{digits}f} ± {c.stderr:.{digits}f}"


def render_markdown(board: Board) -> str:
    from tabulate import tabulate

    arrows = {True: " ↑", False: " ↓", None: ""}
    headers = ["rank", "method", "model", "seeds"] + [c + arrows[board.directions[c]] for c in board.columns]
    table = []
    for r in board.rows:
        status = f" (FAILED: {'; '.join(r.failed)})" if r.failed else ""
        cells = [_fmt(r.cells.get(c)) for c in board.columns]
        table.append([r.rank or "-", r.label + status, r.model, len(set(r.seeds))] + cells)
    lines = [f"## {board.suite}", ""]
    if board.description:
        lines += [board.description, ""]
    if board.primary:
        lines += [f"Ranked by `{board.primary}` within each model; `=` marks rows whose 95% intervals overlap.", ""]
    lines.append(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
    lines.append("")
    lines.append("Values: mean ± standard error (over seeds, or within the cell for a single seed).")
    return "\n".join(lines) + "\n"


def board_json(board: Board) -> dict[str, Any]:
    return {
        "suite": board.suite,
        "description": board.description,
        "primary_metric": board.primary,
        "columns": [
            {"name": c, "higher_is_better": board.directions[c], "unit": board.units[c]} for c in board.columns
        ],
        "rows": [
            {
                "rank": r.rank or None,
                "label": r.label,
                "method": r.method,
                "model": r.model,
                "seeds": sorted(set(r.seeds)),
                "failed": r.failed,
                "values": {c: {"mean": v.mean, "stderr": v.stderr, "n_seeds": v.n_seeds} for c, v in r.cells.items()},
                "provenance": r.provenance,
            }
            for r in board.rows
        ],
    }


def build_leaderboards(
    store: Store, out_dir: Path, registries: Registries | None, suites: list[str] | None = None
) -> dict[str, str]:
    """Write ``<suite>.md`` and ``<suite>.json`` for each suite with records; return the Markdown."""
    out: dict[str, str] = {}
    for suite in suites or store.suites():
        records = list(store.records(suite))
        if not records:
            continue
        board = build_board(suite, records, registries)
        md = render_markdown(board)
        atomic_write_text(Path(out_dir) / f"{suite}.md", md)
        atomic_write_text(Path(out_dir) / f"{suite}.json", json.dumps(board_json(board), indent=2) + "\n")
        out[suite] = md
    return out
