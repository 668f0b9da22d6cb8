"""Statistical power of each leaderboard: seeds, evaluation size and the minimum detectable difference.

    python benchmarks/board_power.py --store results          # rebuild the boards from a results store
    python benchmarks/board_power.py --boards leaderboards    # or read published boards (JSON)

``--store``: every suite's board is rebuilt with the current rules (:func:`build_board`, nothing
written), so rows sharing >= 2 seeds give the paired MDD; the evaluation size is the median
``n`` of the primary metric's values over the records. ``--boards``: the MDD is recomputed from the
published rows' standard errors (per-seed values are not published, so always basis "stderr"),
with the current registries deciding descriptive metrics and unranked reference rows; boards
carry no evaluation size. Prints one Markdown table row per suite (the "Statistical power" lines
of the suite READMEs come from it).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from statistics import median

from harness.leaderboard import LeaderboardDoc, build_board
from harness.leaderboard.building import primary_column
from harness.leaderboard.markdown import fmt_number
from harness.leaderboard.statistics import TieRule, minimum_detectable
from harness.plugins import Registries, get_registries
from harness.results import RunRecord
from harness.store import Store


def _line(board: LeaderboardDoc, eval_size: str) -> str:
    seeds = sorted({len(set(r.seeds)) for r in board.rows})
    m = board.mdd
    mdd = "-" if m is None else f"{fmt_number(m.value)} ({m.basis}, SE_diff {fmt_number(m.se_diff)})"
    return f"| {board.suite} | {board.primary_metric or '-'} | {'/'.join(map(str, seeds))} | {eval_size} | {mdd} |"


def _eval_size(records: list[RunRecord], primary: str | None) -> str:
    ns = [mv.n for r in records if r.output for mv in r.output.metrics if mv.column == primary and mv.n]
    return "-" if not ns else f"{median(ns):g}"


def from_store(root: Path, regs: Registries) -> list[str]:
    by_suite: dict[str, list[RunRecord]] = defaultdict(list)
    for rec in Store(root).records():
        by_suite[rec.cell.suite].append(rec)
    lines = []
    for suite, recs in sorted(by_suite.items()):
        board = build_board(suite, recs, regs)
        lines.append(_line(board, _eval_size(recs, board.primary_metric)))
    return lines


def from_boards(folder: Path, regs: Registries) -> list[str]:
    lines = []
    for path in sorted(folder.glob("*.json")):
        board = LeaderboardDoc.model_validate(json.loads(path.read_text()))
        suite = regs.suites.get(board.suite) if board.suite in regs.suites else None
        board.primary_metric = primary_column(suite.metrics if suite else (), [c.name for c in board.columns], regs)
        unranked_reference = suite is not None and not suite.rank_reference
        groups: dict[str, list] = defaultdict(list)
        for r in board.rows:
            if not (unranked_reference and r.method is None):
                groups[r.model if board.ranked_within == "model" else ""].append(r)
        col = board.primary_metric
        board.mdd = minimum_detectable(list(groups.values()), col, TieRule()) if col else None
        lines.append(_line(board, "-"))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--store", type=Path, help="A results store (harness run --output-dir).")
    src.add_argument("--boards", type=Path, help="A folder of published boards (<suite>.json).")
    args = ap.parse_args()
    regs = get_registries()
    print("| suite | primary metric | seeds per row | eval size (n) | MDD (basis, SE_diff) |")
    print("|---|---|---|---|---|")
    for line in from_store(args.store, regs) if args.store else from_boards(args.boards, regs):
        print(line)


if __name__ == "__main__":
    main()
